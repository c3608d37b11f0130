"""Executors: the Mesos v1 executor driver and the built-in command and default executors.

Kept import-light (no tornado, no psutil): executors start once per task.
"""
