"""The wire protocols as data: Mesos v1 scheduler, executor and operator messages, the
agent <-> master messages, resources, task states, RecordIO and the error registry.

This package imports nothing else from mesonb.
"""

from .codec import ID, Message, message
from .errors import BadRequest, ProtocolError
from .resources import Resources
from .states import Reason, Source, TaskState

__all__ = [
    "ID",
    "BadRequest",
    "Message",
    "ProtocolError",
    "Reason",
    "Resources",
    "Source",
    "TaskState",
    "message",
]
