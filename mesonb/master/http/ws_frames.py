"""The agent link's WebSocket frames, read and written with less of tornado's machinery.

:class:`BufferedFrameReader` is tornado's RFC 6455 server protocol reading the socket a
burst at a time and taking every whole frame of it in one pass; :func:`server_frame` is
the unmasked text frame tornado's ``_write_frame`` writes, for a write that goes straight
to the socket (:mod:`mesonb.http.direct_write`). Used by :mod:`.agent_link`.
"""

from __future__ import annotations

import asyncio
import inspect
import struct
from typing import Any

import tornado.websocket
from tornado.iostream import IOStream, StreamClosedError
from tornado.util import _websocket_mask

TEXT_OPCODE = 0x1  # RFC 6455: a text frame


def server_frame(data: bytes) -> bytes:
    """One final, unmasked text frame of ``data`` (RFC 6455 section 5.2), as tornado's
    ``_write_frame(True, TEXT_OPCODE, data)`` of a server writes it."""
    n = len(data)
    if n < 126:
        head = _HEAD_SHORT.pack(0x80 | TEXT_OPCODE, n)
    elif n <= 0xFFFF:
        head = _HEAD_16.pack(0x80 | TEXT_OPCODE, 126, n)
    else:
        head = _HEAD_64.pack(0x80 | TEXT_OPCODE, 127, n)
    return head + data


_HEAD_SHORT = struct.Struct("BB")
_HEAD_16 = struct.Struct("!BBH")
_HEAD_64 = struct.Struct("!BBQ")


class BufferedFrameReader(tornado.websocket.WebSocketProtocol13):
    """tornado's RFC 6455 protocol, reading the socket's bytes a burst at a time and the
    frames in them in one go.

    tornado reads a frame in three or four ``read_bytes(n)`` calls (header, length, mask,
    payload), each a coroutine and a Future; and after a socket read that brought more
    than the ``n`` asked for (the usual case: a whole frame, or several, arrive together)
    its IOStream stops listening for reads while the rest waits in its buffer, and listens
    again on the next read: two epoll changes per socket read. Here each read takes
    whatever the stream has (``read_bytes(..., partial=True)``, which leaves its buffer
    empty, so it keeps listening) into a buffer of this protocol, and every whole frame
    in it is parsed there and then by plain code (:meth:`_next_frame`, tornado's
    ``_receive_frame`` less its awaits): the same messages in the same order, the same
    checks with the same outcomes (abort, or close 1009 for a message too big), and a
    stream that closes mid-frame ends the link as before.
    """

    READ_SIZE = 1 << 16
    YIELD_AFTER = 256 * 1024  # tornado's _YIELD_THRESHOLD: let other work in meanwhile
    FRAME_COST = 1024  # its _FRAME_YIELD_COST

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._buffered = bytearray()

    async def _receive_frame_loop(self) -> None:
        try:
            if self._hookable():
                await self._receive_on_events()
            else:
                await self._receive_by_reads()
        except StreamClosedError:
            self._abort()
        finally:
            self.handler.on_ws_connection_close(self.close_code, self.close_reason)

    async def _receive_by_reads(self) -> None:
        """Read with ``read_bytes``, one Future (and one loop turn) a socket read."""
        work = 0
        while not self.client_terminated:
            start = self._wire_bytes_in
            message = self._next_frame()
            if message is None:
                if self.client_terminated:
                    break
                self._buffered += await self.stream.read_bytes(self.READ_SIZE, partial=True)
                continue
            if message is not _NO_MESSAGE:
                handled = self._handle_message(*message)
                if handled is not None:
                    await handled
            work += self.FRAME_COST + self._wire_bytes_in - start
            if work >= self.YIELD_AFTER:
                work = 0
                await asyncio.sleep(0)

    # -- reading on the stream's events --------------------------------------------------
    # A plain IOStream (no TLS) and handlers that finish each message before returning:
    # the socket is read when the loop reports it readable, in the IOStream's own event
    # handler (its _handle_read, replaced on this stream), and the frames taken there and
    # then: no Future, no task to wake on the next loop turn (~9 us a read). The stream
    # keeps listening for reads as it does when idle (to see the peer close), its close
    # callback ends the link as a failed read does, and what it had buffered before comes
    # first; at most READ_SIZE bytes are taken per event, so other work goes on between.

    def _hookable(self) -> bool:
        handler = type(self.handler)
        stream = self.stream
        return (type(stream) is IOStream and hasattr(stream, "_handle_read")
                and hasattr(stream, "_read_buffer_size")
                and not inspect.iscoroutinefunction(getattr(handler, "on_message", None))
                and not inspect.iscoroutinefunction(getattr(handler, "on_pong", None)))

    async def _receive_on_events(self) -> None:
        stream = self.stream
        assert stream is not None
        while stream._read_buffer_size:  # what came with the handshake, all of it
            self._buffered += await stream.read_bytes(self.READ_SIZE, partial=True)
        self._ended: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._take_frames()
        if self.client_terminated:
            return
        stream._handle_read = self._on_readable  # type: ignore[method-assign]
        stream.set_close_callback(self._stream_closed)
        await self._ended
        if not self.client_terminated:  # the stream closed under the link
            raise StreamClosedError()

    def _on_readable(self) -> None:
        stream = self.stream
        assert stream is not None
        try:
            data = stream.socket.recv(self.READ_SIZE)
        except BlockingIOError:
            return
        except OSError as exc:  # as IOStream._handle_read: a read error closes the stream
            stream.close(exc_info=exc)
            return
        if not data:
            stream.close()
            return
        if self.client_terminated:  # (tornado reads no more once the peer said close)
            return
        self._buffered += data
        self._take_frames()
        if self.client_terminated and not self._ended.done():
            self._ended.set_result(None)

    def _take_frames(self) -> None:
        while not self.client_terminated:
            message = self._next_frame()
            if message is None:
                return
            if message is not _NO_MESSAGE:
                self._handle_message(*message)  # None: the handlers return nothing

    def _stream_closed(self) -> None:
        if not self._ended.done():
            self._ended.set_result(None)

    def _next_frame(self) -> tuple[int, bytes] | None:
        """The next whole frame in the buffer, taken out of it: ``(opcode, payload)``
        of a message to hand on (a final frame), ``_NO_MESSAGE`` for a frame that only
        begins or continues one; None when no whole frame is buffered or the link was
        aborted (``client_terminated``)."""
        buf = self._buffered
        have = len(buf)
        if have < 2:
            return None
        header = buf[0]
        mask_payloadlen = buf[1]
        is_final_frame = header & self.FIN
        reserved_bits = header & self.RSV_MASK
        opcode = header & self.OPCODE_MASK
        opcode_is_control = opcode & 0x8
        if self._decompressor is not None and opcode != 0:
            self._frame_compressed = bool(reserved_bits & self.RSV1)
            reserved_bits &= ~self.RSV1
        if reserved_bits:
            self._abort()
            return None
        payloadlen = mask_payloadlen & 0x7F
        if opcode_is_control and payloadlen >= 126:
            self._abort()
            return None
        pos = 2
        if payloadlen == 126:
            if have < 4:
                return None
            payloadlen = _LENGTH_16.unpack_from(buf, 2)[0]
            pos = 4
        elif payloadlen == 127:
            if have < 10:
                return None
            payloadlen = _LENGTH_64.unpack_from(buf, 2)[0]
            pos = 10
        new_len = payloadlen
        if self._fragmented_message_buffer is not None:
            new_len += len(self._fragmented_message_buffer)
        if new_len > self.params.max_message_size:
            self.close(1009, "message too big")
            self._abort()
            return None
        mask = None
        if mask_payloadlen & 0x80:
            mask = bytes(buf[pos:pos + 4])
            pos += 4
        end = pos + payloadlen
        if have < end:
            return None
        data = bytes(buf[pos:end])
        if end == have:
            buf.clear()
        else:
            del buf[:end]
        self._wire_bytes_in += end
        if mask is not None:
            self._frame_mask = mask
            data = _websocket_mask(mask, data)

        if opcode_is_control:
            if not is_final_frame:
                self._abort()
                return None
        elif opcode == 0:  # continuation frame
            if self._fragmented_message_buffer is None:
                self._abort()
                return None
            self._fragmented_message_buffer.extend(data)
            if is_final_frame:
                opcode = self._fragmented_message_opcode  # type: ignore[assignment]
                data = bytes(self._fragmented_message_buffer)
                self._fragmented_message_buffer = None
        else:  # start of new data message
            if self._fragmented_message_buffer is not None:
                self._abort()
                return None
            if not is_final_frame:
                self._fragmented_message_opcode = opcode  # type: ignore[assignment]
                self._fragmented_message_buffer = bytearray(data)
        if not is_final_frame:
            return _NO_MESSAGE
        return opcode, data


_NO_MESSAGE = (-1, b"")  # (compared by identity)
_LENGTH_16 = struct.Struct("!H")
_LENGTH_64 = struct.Struct("!Q")
