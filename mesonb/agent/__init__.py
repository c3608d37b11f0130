"""The mesonb agent: fingerprinting, executors in sandboxes, reliable status updates.

:class:`~mesonb.agent.agent.Agent` is the daemon; ``mesonb.agent.cli`` its command line.
"""

from .agent import Agent

__all__ = ["Agent"]
