"""The functions framework: Python calls as Mesos tasks in long-lived executors.

``scheduler.py`` is the framework (queue, placement on offers) on
:class:`mesonb.frameworks.driver.SchedulerDriver`; ``results.py`` turns a task's terminal
status into a value or an exception (retries, remote exceptions with the user's frames,
:class:`~.results.CommandResult`, :class:`~.results.Logs`); ``sandbox.py`` reads what
tasks left on their agents; ``executor.py`` is the executor each agent runs once
(``python -m mesonb.frameworks.functions.executor``); ``worker.py`` is its pool of forked
worker processes and ``failures.py`` what a worker runs for one call and sends back when
it fails; ``protocol.py`` is what travels in ``TaskInfo.data`` and ``TaskStatus.data``;
``shm.py`` carries large values through shared memory when client and worker share a
host, and ``shm_pool.py`` reuses its files between calls.
"""
