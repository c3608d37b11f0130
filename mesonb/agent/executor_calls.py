"""What the agent does with an executor's calls: SUBSCRIBE, UPDATE and MESSAGE, once the
executor API (:mod:`.executor_api`, :mod:`.executor_socket`) parsed and authorized them.

Who may call is decided here too (:meth:`ExecutorCalls.authenticate`): the token the
agent gave the executor's container, or the cluster secret.
"""

from __future__ import annotations

import hmac
import logging

from mesonb.protocol.agent import AgentCall, AgentCallType, AgentFrameworkMessage
from mesonb.protocol.errors import BadRequest, Unauthorized
from mesonb.protocol.executor import (
    ExecutorCall,
    ExecutorEvent,
    ExecutorEventType,
    ExecutorSubscribed,
)
from mesonb.protocol.mesos import TaskStatus
from mesonb.security import tokens

from . import container_fsm as fsm
from .book import AgentBook, EventStream, Executor
from .host import Host
from .lifecycle import Lifecycle
from .tasks import Tasks

log = logging.getLogger("mesonb.agent.executors")


class ExecutorCalls:
    """The executor API's calls, carried out on one agent's book."""

    def __init__(self, host: Host, book: AgentBook, lifecycle: Lifecycle, tasks: Tasks) -> None:
        self.host = host
        self.book = book
        self.lifecycle = lifecycle
        self.tasks = tasks
        # Tokens whose signature this agent checked, and the principal it names: an
        # executor's every call carries its token, and the HMAC needs checking once.
        # Whether the token is still live is looked up in ``lifecycle.tokens`` each time.
        self._verified: dict[str, tuple[str, str]] = {}

    def authenticate(self, authorization: str | None) -> tuple[str, str] | None:
        """Who is calling: ``(framework_id, executor_id)`` for a container token, None for
        the cluster secret or (on an agent without a secret) no credentials."""
        secret = self.host.secret
        token = None
        if authorization:
            scheme, _, value = authorization.partition(" ")
            if scheme.lower() == "bearer":
                token = value.strip()
        if token is None:
            if secret is None and not authorization:
                return None
            raise Unauthorized("Missing 'Authorization: Bearer <executor token>' header")
        if secret is not None and hmac.compare_digest(token.encode(), secret.encode()):
            return None
        principal = self.lifecycle.tokens.get(token)  # a live container's token only
        if principal is None:
            raise Unauthorized("Invalid executor token")
        if token.startswith(tokens.PREFIX) and self.host.token_key is not None \
                and self._verified.get(token) != principal:
            try:  # signed by this agent for this very executor (HMAC, as Mesos's JWTs)
                claims = tokens.verify(self.host.token_key, token)
            except tokens.InvalidToken as exc:
                raise Unauthorized(f"Invalid executor token: {exc}") from None
            if (claims.framework_id, claims.executor_id) != principal:
                raise Unauthorized("Invalid executor token: it names another executor")
            self._remember(token, principal)
        return principal

    def _remember(self, token: str, principal: tuple[str, str]) -> None:
        live = self.lifecycle.tokens
        if len(self._verified) >= 2 * len(live) + 16:  # forget tokens of gone containers
            self._verified = {t: p for t, p in self._verified.items() if t in live}
        self._verified[token] = principal

    def subscribe(self, call: ExecutorCall, stream: EventStream) -> None:
        """SUBSCRIBE: ``stream`` carries the executor's events from now on."""
        executor = self._lookup(call)
        framework = self.book.frameworks[call.framework_id]
        actions = self.lifecycle.subscribed(executor)
        if any(isinstance(a, fsm.Refuse) for a in actions):
            raise BadRequest(f"Executor '{call.executor_id}' has terminated")
        if executor.stream is not None and executor.stream is not stream:
            executor.stream.close()
        executor.stream = stream
        if any(isinstance(a, fsm.SendShutdown) for a in actions):
            stream.send(ExecutorEvent(type=ExecutorEventType.SHUTDOWN))
            return
        log.info("executor %s of framework %s subscribed", executor.executor_id,
                 framework.framework_id)
        stream.send(ExecutorEvent(type=ExecutorEventType.SUBSCRIBED, subscribed=ExecutorSubscribed(
            executor_info=executor.info, framework_info=framework.info,
            agent_info=self.host.agent_info(), container_id=executor.container_id)))
        subscribe = call.subscribe
        for item in (subscribe.unacknowledged_updates or []) if subscribe else []:
            try:
                status = TaskStatus.from_json(item.get("status") if isinstance(item, dict)
                                              else None, "unacknowledged_updates[].status")
            except BadRequest as exc:
                log.warning("executor %s resent a bad update: %s", executor.executor_id, exc)
                continue
            self.tasks.executor_update(framework, executor, status)
        if executor.recovered and subscribe is not None:
            known = {t.task_id for t in subscribe.unacknowledged_tasks or ()}
            self.tasks.drop_unknown_to_executor(framework, executor, known)
        self.tasks.deliver_queued(executor)

    def update(self, call: ExecutorCall) -> None:
        """An executor's UPDATE (``call.validate()`` passed)."""
        assert call.update is not None
        executor = self._lookup(call)
        self.tasks.executor_update(self.book.frameworks[call.framework_id], executor,
                                   call.update.status)

    def message(self, call: ExecutorCall) -> None:
        """An executor's MESSAGE, for its framework's scheduler."""
        assert call.message is not None
        self._lookup(call)
        self.host.to_master(AgentCall(
            type=AgentCallType.FRAMEWORK_MESSAGE, framework_message=AgentFrameworkMessage(
                framework_id=call.framework_id, executor_id=call.executor_id,
                data=call.message.data)))

    def _lookup(self, call: ExecutorCall) -> Executor:
        framework = self.book.frameworks.get(call.framework_id)
        if framework is None:
            raise BadRequest(f"Framework '{call.framework_id}' is not known to this agent")
        executor = framework.executors.get(call.executor_id)
        if executor is None:
            raise BadRequest(f"Executor '{call.executor_id}' of framework"
                             f" '{call.framework_id}' is not known to this agent")
        return executor
