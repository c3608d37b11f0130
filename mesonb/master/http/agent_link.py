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
from collections.abc import Callable
from typing import Any

import tornado.websocket
from tornado.iostream import StreamClosedError

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

from .ws_frames import TEXT_OPCODE, BufferedFrameReader, server_frame

log = logging.getLogger(__name__)


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
