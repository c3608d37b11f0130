"""The functions framework: Python calls as Mesos tasks in long-lived executors.

``scheduler.py`` is the framework (queue, placement on offers, retries) on
:class:`mesonb.frameworks.driver.SchedulerDriver`; ``executor.py`` is the executor each
agent runs once (``python -m mesonb.frameworks.functions.executor``); ``worker.py`` is its
pool of forked worker processes; ``protocol.py`` is what travels in ``TaskInfo.data`` and
``TaskStatus.data``.
"""
