"""The master's frames read into commands, with RUN_TASK's repeated parts decoded once.

Every RUN_TASK of a framework carries the same ``framework_info`` and, for a framework
with its own executor, the same ``ExecutorInfo`` twice (the command's ``executor`` and
the task's). :class:`CommandReader` reads a frame as
:func:`mesonb.protocol.agent.load_commands` does, except that it decodes each distinct
``FrameworkInfo`` and ``ExecutorInfo`` once and hands the same object out again for the
same JSON. Same JSON means the same bytes once written compactly (``1`` and ``1.0`` and
``true`` differ), so the object is the one a fresh decode would give. The agent treats
what the master sends as read-only (as it must already: a master in the same process
hands over its own objects, :mod:`mesonb.http.inproc`), so sharing the objects changes
nothing downstream.

Anything else, and any RUN_TASK that is not plainly shaped (extra fields, a part that
does not decode), goes through the ordinary decoder, so errors read exactly as before.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, TypeVar

import orjson

from mesonb.protocol.agent import MasterCommand, MasterCommandType, RunTask, command_from_json
from mesonb.protocol.codec import Message
from mesonb.protocol.errors import BadRequest
from mesonb.protocol.jsontext import loads
from mesonb.protocol.mesos import ExecutorInfo, FrameworkInfo, TaskInfo

M = TypeVar("M", bound=Message)

KEEP = 32  # distinct FrameworkInfo/ExecutorInfo kept (least recently used goes first)
_RUN_TASK_FIELDS = frozenset(("framework_info", "task", "executor"))


class CommandReader:
    """``reader(frame)`` -> the commands in it, as ``load_commands(frame)``."""

    def __init__(self, keep: int = KEEP) -> None:
        self.keep = keep
        self._decoded: OrderedDict[tuple[type, bytes], Any] = OrderedDict()

    def __call__(self, text: str | bytes) -> list[MasterCommand]:
        data = loads(text, "agent protocol")
        if isinstance(data, list):
            return [self._command(item) for item in data]
        return [self._command(data)]

    def _command(self, item: Any) -> MasterCommand:
        if type(item) is dict and item.get("type") == "RUN_TASK" and len(item) == 2:
            command = self._run_task(item.get("run_task"))
            if command is not None:
                return command
        return command_from_json(item)

    def _run_task(self, body: Any) -> MasterCommand | None:
        """RUN_TASK from its body with the framework and executors shared; None where
        the ordinary decoder must read it (and say what is wrong)."""
        if type(body) is not dict or not body.keys() <= _RUN_TASK_FIELDS:
            return None
        framework, task, executor = (body.get("framework_info"), body.get("task"),
                                     body.get("executor"))
        if type(framework) is not dict or type(task) is not dict:
            return None
        try:
            task_executor = task.get("executor")
            if task_executor is not None:
                task = {k: v for k, v in task.items() if k != "executor"}
            task_info = TaskInfo.from_json(task)
            if task_executor is not None:
                task_info.executor = self._shared(ExecutorInfo, task_executor)
            run = RunTask(framework_info=self._shared(FrameworkInfo, framework), task=task_info,
                          executor=None if executor is None
                          else self._shared(ExecutorInfo, executor))
        except BadRequest:
            return None
        return MasterCommand(type=MasterCommandType.RUN_TASK, run_task=run)

    def _shared(self, cls: type[M], data: Any) -> M:
        """``cls.from_json(data)``, the same object for the same JSON."""
        try:
            key = (cls, orjson.dumps(data))
        except TypeError:  # a number orjson does not write (> 64 bits): not kept
            return cls.from_json(data)
        decoded = self._decoded.get(key)
        if decoded is not None:
            self._decoded.move_to_end(key)
            return decoded
        decoded = cls.from_json(data)
        self._decoded[key] = decoded
        if len(self._decoded) > self.keep:
            self._decoded.popitem(last=False)
        return decoded
