"""RecordIO framing (Mesos docs/recordio.md): ``<decimal length>\\n<bytes>`` per record."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from . import jsontext
from .errors import BadRequest


def encode(record: bytes) -> bytes:
    """Frame one record."""
    return b"%d\n%s" % (len(record), record)


dumps = jsontext.dumps
"""Compact JSON text (as ``json.dumps(obj, separators=(",", ":"))``, with orjson)."""
_dumpb = jsontext.dumpb


def encode_json(obj: Any) -> bytes:
    """Frame one JSON object (compact separators, as Mesos sends)."""
    data = _dumpb(obj)
    return b"%d\n%s" % (len(data), data)


class Decoder:
    """Incremental decoder: feed it chunks as they arrive, get whole records back.

    Chunk boundaries are unrelated to record boundaries, so a record may span chunks
    and a chunk may hold several records.
    """

    MAX_RECORD = 64 * 1024 * 1024

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._need: int | None = None

    def feed(self, chunk: bytes) -> Iterator[bytes]:
        self._buffer += chunk
        while True:
            if self._need is None:
                newline = self._buffer.find(b"\n")
                if newline < 0:
                    if len(self._buffer) > 20:
                        raise BadRequest("recordio: record length header too long")
                    return
                header = bytes(self._buffer[:newline]).strip()
                if not header.isdigit():
                    raise BadRequest(f"recordio: bad record length {header[:20]!r}")
                self._need = int(header)
                if self._need > self.MAX_RECORD:
                    raise BadRequest(f"recordio: record of {self._need} bytes is too large")
                del self._buffer[: newline + 1]
            if len(self._buffer) < self._need:
                return
            record = bytes(self._buffer[: self._need])
            del self._buffer[: self._need]
            self._need = None
            yield record

    def feed_json(self, chunk: bytes) -> Iterator[Any]:
        for record in self.feed(chunk):
            yield jsontext.loads_lenient(record)
