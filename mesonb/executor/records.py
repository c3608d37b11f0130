"""RecordIO records out of the event stream's chunks, as :class:`~mesonb.protocol.recordio.
Decoder` reads them, by offsets into each chunk: a chunk of many records costs one slice
per record, not a copy of the rest of the buffer per record."""

from __future__ import annotations

from collections.abc import Iterator

from mesonb.protocol.errors import BadRequest
from mesonb.protocol.recordio import Decoder

MAX_RECORD = Decoder.MAX_RECORD


class RecordReader:
    """Feed it chunks as they arrive, get whole records back (``Decoder.feed``'s records
    and errors)."""

    def __init__(self) -> None:
        self._rest = bytearray()  # the start of a record not whole yet
        self._whole_at = 0  # the length at which it is (0: its header is not whole)

    def feed(self, chunk: bytes) -> Iterator[bytes]:
        if self._rest:
            self._rest += chunk
            if len(self._rest) < self._whole_at:
                return
            data = bytes(self._rest)
            self._rest.clear()
        else:
            data = chunk
        pos, size = 0, len(data)
        while pos < size:
            newline = data.find(b"\n", pos)
            if newline < 0:
                if size - pos > 20:
                    raise BadRequest("recordio: record length header too long")
                self._whole_at = 0
                break
            header = data[pos:newline].strip()
            if not header.isdigit():
                raise BadRequest(f"recordio: bad record length {header[:20]!r}")
            need = int(header)
            if need > MAX_RECORD:
                raise BadRequest(f"recordio: record of {need} bytes is too large")
            end = newline + 1 + need
            if end > size:
                self._whole_at = end - pos
                break
            pos = end
            yield data[newline + 1:end]
        if pos < size:
            self._rest += data[pos:]
