"""The agent link: one WebSocket per agent at ``/mesonb/v1/agent`` (protocol/agent.py).

Commands the master sends an agent within one event-loop turn leave as one frame.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import tornado.ioloop
import tornado.websocket

from mesonb.http.base import BaseHandler
from mesonb.master.book import Agent
from mesonb.master.master import Master
from mesonb.protocol.agent import (
    AgentCallType,
    MasterCommand,
    MasterCommandType,
    Notice,
    frame,
    load_calls,
)
from mesonb.protocol.errors import ProtocolError

log = logging.getLogger(__name__)


class AgentSocket(BaseHandler, tornado.websocket.WebSocketHandler):
    master: Master

    def prepare(self) -> None:
        super().prepare()
        self.master.check_leader()

    def open(self) -> None:  # type: ignore[override]
        self.agent: Agent | None = None
        self._outbox: list[dict[str, Any]] = []
        self.set_nodelay(True)

    def _send(self, message: dict[str, Any]) -> None:
        if not self._outbox:
            tornado.ioloop.IOLoop.current().add_callback(self._flush)
        self._outbox.append(message)

    def _flush(self) -> None:
        messages, self._outbox = self._outbox, []
        if not messages:
            return
        with contextlib.suppress(tornado.websocket.WebSocketClosedError):
            self.write_message(frame(messages))

    def _close_link(self) -> None:
        """The master closes the link: what it queued this turn (e.g. SHUTDOWN) goes first."""
        self._flush()
        self.close()

    def on_message(self, message: str | bytes) -> None:
        try:
            calls = load_calls(message)
        except ProtocolError as exc:
            self._refuse(exc)
            return
        for call in calls:
            try:
                if self.agent is None:
                    if call.type is not AgentCallType.REGISTER or call.register is None:
                        raise ProtocolError("the first message on an agent link must be REGISTER")
                    self.agent = self.master.agents.register(call.register, self._send,
                                                             self._close_link)
                else:
                    self.master.agents.handle(self.agent, call)
            except ProtocolError as exc:
                self._refuse(exc)

    def _refuse(self, exc: ProtocolError) -> None:
        log.warning("bad message from agent %s: %s", self.request.remote_ip, exc.message)
        self._send(MasterCommand(type=MasterCommandType.ERROR,
                                 error=Notice(message=exc.message)).to_json())

    def on_close(self) -> None:
        self._outbox = []
        if getattr(self, "agent", None) is not None:
            self.master.agents.disconnected(self.agent, self._send)
