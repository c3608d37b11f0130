"""Test helpers that ship with mesonb, for its own tests and for users testing frameworks.

- :mod:`.zookeeper`: a real ZooKeeper (one server or an ensemble) on free loopback ports,
  and fault injectors (``expire_session``).
- :mod:`.processes`: master and agent daemons as real processes (``ProcessCluster``,
  ``Daemon``), ``wait_for`` (a condition with a deadline, never a bare sleep).
- :mod:`.ha`: masters contending in a real ZooKeeper and agents that find the leader there
  (``ZooKeeperCluster``, ``leading``, ``active_agents``).
- :mod:`.frameworks`: framework handlers that record what the scheduler driver hands them
  (``Tracker`` launches given tasks, ``Recorder`` records every event).
- :mod:`.harness`: an in-memory master with agents and frameworks driven by hand.
- :mod:`.clock`: a fake clock.
"""
