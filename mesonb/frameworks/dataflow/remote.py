"""A task's exception, rebuilt on the driver with its own type and remote traceback."""

from __future__ import annotations

import pickle


class RemoteTraceback(Exception):
    """The traceback of an exception raised on an executor (its ``__cause__``)."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return "\n" + self.text


class RemoteError(Exception):
    """A task's exception whose type could not be rebuilt here."""


def remote_exception(data: bytes | None, type_name: str, traceback: str) -> BaseException:
    """The pickled exception (else a :class:`RemoteError` naming its type), with the
    remote traceback as its cause."""
    exc: object = None
    if data is not None:
        try:
            exc = pickle.loads(data)
        except Exception:
            exc = None
    if not isinstance(exc, BaseException):
        exc = RemoteError(f"{type_name}: {traceback.strip().splitlines()[-1:] or ''}")
    exc.__cause__ = RemoteTraceback(traceback)
    return exc
