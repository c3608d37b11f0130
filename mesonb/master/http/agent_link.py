"""The agent link: one WebSocket per agent at ``/mesonb/v1/agent`` (protocol/agent.py)."""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import tornado.websocket

from mesonb.http.base import BaseHandler
from mesonb.master.book import Agent
from mesonb.master.master import Master
from mesonb.protocol import recordio
from mesonb.protocol.agent import AgentCallType, MasterCommand, MasterCommandType, Notice, load_call
from mesonb.protocol.errors import ProtocolError

log = logging.getLogger(__name__)


class AgentSocket(BaseHandler, tornado.websocket.WebSocketHandler):
    master: Master

    def prepare(self) -> None:
        super().prepare()
        self.master.check_leader()

    def open(self) -> None:  # type: ignore[override]
        self.agent: Agent | None = None
        self.set_nodelay(True)

    def _send(self, message: dict[str, Any]) -> None:
        with contextlib.suppress(tornado.websocket.WebSocketClosedError):
            self.write_message(recordio.dumps(message))

    def on_message(self, message: str | bytes) -> None:
        try:
            call = load_call(message)
            if self.agent is None:
                if call.type is not AgentCallType.REGISTER or call.register is None:
                    raise ProtocolError("the first message on an agent link must be REGISTER")
                self.agent = self.master.agents.register(call.register, self._send, self.close)
            else:
                self.master.agents.handle(self.agent, call)
        except ProtocolError as exc:
            log.warning("bad message from agent %s: %s", self.request.remote_ip, exc.message)
            self._send(MasterCommand(type=MasterCommandType.ERROR,
                                     error=Notice(message=exc.message)).to_json())

    def on_close(self) -> None:
        if getattr(self, "agent", None) is not None:
            self.master.agents.disconnected(self.agent, self._send)
