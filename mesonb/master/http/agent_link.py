"""The agent link: one WebSocket per agent at ``/mesonb/v1/agent`` (protocol/agent.py).

:class:`AgentSession` is one link as the master sees it, whatever carries it: messages
in, and what the master sends an agent within one event-loop turn out together.
:class:`AgentSocket` carries it over a WebSocket (one JSON frame per turn); an agent in
this process gets it in-process (:mod:`mesonb.master.http.inproc`), where the messages
are handed over as objects.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
from collections.abc import Callable
from typing import Any

import tornado.websocket
from tornado.iostream import StreamClosedError
from tornado.util import _websocket_mask

from mesonb.http.base import BaseHandler
from mesonb.http.direct_write import write_now
from mesonb.master.book import Agent
from mesonb.master.master import Master
from mesonb.protocol.agent import (
    AgentCall,
    AgentCallType,
    MasterCommand,
    MasterCommandType,
    Notice,
    load_calls,
)
from mesonb.protocol.errors import ProtocolError
from mesonb.protocol.jsontext import dumpb

log = logging.getLogger(__name__)
TEXT_OPCODE = 0x1  # RFC 6455: a text frame


class AgentSession:
    """One agent's link: ``write(messages)`` sends what one turn queued (MasterCommands or
    their JSON), ``close()`` ends the link."""

    def __init__(self, master: Master, write: Callable[[list[Any]], Any],
                 close: Callable[[], Any], peer: str) -> None:
        self.master = master
        self.agent: Agent | None = None
        self.peer = peer
        self._write = write
        self._close = close
        self._outbox: list[Any] = []

    def send(self, message: Any) -> None:
        if not self._outbox:
            asyncio.get_running_loop().call_soon(self.flush)
        self._outbox.append(message)

    def flush(self) -> None:
        messages, self._outbox = self._outbox, []
        if messages:
            self._write(messages)

    def close_link(self) -> None:
        """The master closes the link: what it queued this turn (e.g. SHUTDOWN) goes first."""
        self.flush()
        self._close()

    def received(self, message: str | bytes) -> None:
        """A frame of JSON text."""
        try:
            calls = load_calls(message)
        except ProtocolError as exc:
            self._refuse(exc)
            return
        self.handle(calls)

    def handle(self, calls: list[AgentCall]) -> None:
        """Calls from the agent, in order."""
        for call in calls:
            try:
                if self.agent is None:
                    if call.type is not AgentCallType.REGISTER or call.register is None:
                        raise ProtocolError("the first message on an agent link must be REGISTER")
                    self.agent = self.master.agents.register(call.register, self.send,
                                                             self.close_link)
                else:
                    self.master.agents.handle(self.agent, call)
            except ProtocolError as exc:
                self._refuse(exc)

    def _refuse(self, exc: ProtocolError) -> None:
        log.warning("bad message from agent %s: %s", self.peer, exc.message)
        self.send(MasterCommand(type=MasterCommandType.ERROR,
                                error=Notice(message=exc.message)).to_json())

    def closed(self) -> None:
        """The link is gone (either side closed it)."""
        self._outbox = []
        if self.agent is not None:
            self.master.agents.disconnected(self.agent, self.send)


def frame_writer(conn: Any) -> Callable[..., Any] | None:
    """tornado's ``_write_frame(fin, opcode, data)`` of a WebSocket connection, where this
    tornado has it and the link is not compressed; None: use ``write_message``."""
    write_frame = getattr(conn, "_write_frame", None)
    if not callable(write_frame) or getattr(conn, "_compressor", True) is not None:
        return None
    return write_frame


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
            work = 0
            while not self.client_terminated:
                start = self._wire_bytes_in
                message = self._next_frame()
                if message is None:
                    if self.client_terminated:
                        break
                    self._buffered += await self.stream.read_bytes(self.READ_SIZE,
                                                                   partial=True)
                    continue
                if message is not _NO_MESSAGE:
                    handled = self._handle_message(*message)
                    if handled is not None:
                        await handled
                work += self.FRAME_COST + self._wire_bytes_in - start
                if work >= self.YIELD_AFTER:
                    work = 0
                    await asyncio.sleep(0)
        except StreamClosedError:
            self._abort()
        finally:
            self.handler.on_ws_connection_close(self.close_code, self.close_reason)

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


class AgentSocket(BaseHandler, tornado.websocket.WebSocketHandler):
    master: Master

    def get_websocket_protocol(self) -> tornado.websocket.WebSocketProtocol | None:
        protocol = super().get_websocket_protocol()
        if type(protocol) is tornado.websocket.WebSocketProtocol13:
            protocol = BufferedFrameReader(self, False, protocol.params)
        return protocol

    def prepare(self) -> None:
        super().prepare()
        self.master.check_leader()

    def open(self) -> None:
        self.session = AgentSession(self.master, self._write, self.close,
                                    self.request.remote_ip or "?")
        self.set_nodelay(True)

    def _write(self, messages: list[Any]) -> None:
        messages = [m if type(m) is dict else m.to_json() for m in messages]
        data = dumpb(messages[0] if len(messages) == 1 else messages)  # frame(), as bytes
        conn = self.ws_connection
        if conn is None or conn.is_closing():
            return  # the link is going: the agent re-registers and is told again
        write_frame = frame_writer(conn)
        if write_frame is None:
            with contextlib.suppress(tornado.websocket.WebSocketClosedError):
                self.write_message(data.decode())
            return
        if (isinstance(conn, tornado.websocket.WebSocketProtocol13)
                and not conn.mask_outgoing and conn.stream is not None):
            # _write_frame's unmasked frame, written without IOStream.write's Future
            # (mesonb.http.direct_write): the same bytes in the same order.
            frame = server_frame(data)
            conn._wire_bytes_out += len(frame)
            write_now(conn.stream, frame)
            return
        # write_message less the asyncio Task it wraps around every write to turn a
        # StreamClosedError into a WebSocketClosedError (~3% of the master's CPU): the
        # frame itself is the same one text frame (no compression on this link), and
        # tornado retrieves a failed write's error itself when the stream closes.
        with contextlib.suppress(StreamClosedError):
            write_frame(True, TEXT_OPCODE, data)

    def on_message(self, message: str | bytes) -> None:
        self.session.received(message)

    def on_close(self) -> None:
        session = getattr(self, "session", None)
        if session is not None:
            session.closed()
