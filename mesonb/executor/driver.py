"""An asyncio driver for the Mesos v1 Executor HTTP API: the base of every mesonb executor.

The driver subscribes to the agent named by the Mesos environment
(``MESOS_AGENT_ENDPOINT``, ``MESOS_FRAMEWORK_ID``, ``MESOS_EXECUTOR_ID``, and
``MESOS_EXECUTOR_AUTHENTICATION_TOKEN``), reads the RecordIO event stream, and calls an
:class:`ExecutorHandler`. Status updates get a fresh uuid each and are kept until the agent
answers ACKNOWLEDGED; unacknowledged updates and tasks are re-sent in the next SUBSCRIBE.

When the connection to the agent drops, a checkpointing executor (``MESOS_CHECKPOINT=1``)
re-subscribes with back-off for up to ``MESOS_RECOVERY_TIMEOUT`` (the agent may be
restarting); any other executor gives up at once, as in Mesos.

Example, an executor that runs every task by echoing it::

    import asyncio
    from mesonb.executor.driver import ExecutorDriver, ExecutorHandler
    from mesonb.protocol.states import TaskState

    class Echo(ExecutorHandler):
        async def launch(self, driver, task):
            await driver.update(task.task_id, TaskState.TASK_RUNNING)
            await driver.update(task.task_id, TaskState.TASK_FINISHED, message=task.name)

        async def shutdown(self, driver):
            await driver.wait_acknowledged(timeout=5)

    asyncio.run(ExecutorDriver(Echo()).run())

Handler methods may be plain functions or coroutines. Coroutines run as tasks of their
own, so a long ``launch`` does not hold up the next event (a KILL, an ACKNOWLEDGED).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import random
import time
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from mesonb.protocol import jsontext
from mesonb.protocol.errors import BadRequest
from mesonb.protocol.executor import (
    BATCH_HEADER,
    EXECUTOR_PATH,
    SOCKET_ENV,
    TOKEN_ENV,
    ExecutorAcknowledged,
    ExecutorEvent,
    ExecutorEventType,
    ExecutorSubscribed,
)
from mesonb.protocol.mesos import ExecutorInfo, KillPolicy, TaskGroupInfo, TaskInfo, TaskStatus
from mesonb.protocol.states import Reason, Source, TaskState
from mesonb.tasks import spawn

from . import _http
from .outbox import Outbox
from .records import RecordReader

log = logging.getLogger(__name__)

_UNITS = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "secs": 1.0, "mins": 60.0, "hrs": 3600.0,
          "days": 86400.0, "weeks": 604800.0}


def parse_duration(text: str | None, default: float) -> float:
    """Mesos's duration strings (``"5secs"``, ``"15mins"``, ``"500ms"``) in seconds."""
    if not text:
        return default
    text = text.strip()
    for unit in sorted(_UNITS, key=len, reverse=True):
        if text.endswith(unit):
            try:
                return float(text[: -len(unit)]) * _UNITS[unit]
            except ValueError:
                break
    try:
        return float(text)
    except ValueError:
        log.warning("cannot parse duration %r; using %gs", text, default)
        return default


def new_uuid() -> bytes:
    """A random (version 4) UUID's 16 bytes: ``uuid.uuid4().bytes`` without building a
    ``uuid.UUID`` (a few microseconds of each status update)."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # the RFC 4122 variant
    return bytes(raw)


class SubscribeRefused(Exception):
    """The agent answered SUBSCRIBE with a 4xx: it does not know this executor."""


class ExecutorHandler:
    """What an executor does on each event. Override what you need.

    Every method receives the :class:`ExecutorDriver` first. ``shutdown`` is the last
    call; the driver stops when it returns (the default waits briefly for acks).
    """

    def subscribed(self, driver: ExecutorDriver, event: ExecutorSubscribed) -> Any:
        """The agent accepted the subscription (again, after a reconnection)."""

    def launch(self, driver: ExecutorDriver, task: TaskInfo) -> Any:
        """Run ``task``; report progress with :meth:`ExecutorDriver.update`."""

    def launch_group(self, driver: ExecutorDriver, group: TaskGroupInfo) -> Any:
        """Run all tasks of ``group`` (all or nothing)."""

    def kill(self, driver: ExecutorDriver, task_id: str, kill_policy: KillPolicy | None) -> Any:
        """Kill a task; end with a TASK_KILLED update."""

    def acknowledged(self, driver: ExecutorDriver, task_id: str, uuid: bytes) -> Any:
        """The agent recorded the update ``uuid``."""

    def message(self, driver: ExecutorDriver, data: bytes) -> Any:
        """A framework message from the scheduler."""

    def error(self, driver: ExecutorDriver, message: str) -> Any:
        """The agent reported an error."""

    def disconnected(self, driver: ExecutorDriver) -> Any:
        """The connection to the agent dropped."""

    async def shutdown(self, driver: ExecutorDriver) -> None:
        """Kill every task and return; the driver then stops."""
        await driver.wait_acknowledged(timeout=driver.shutdown_grace_period)


class ExecutorDriver:
    """Subscribes to the agent, dispatches events to ``handler``, sends calls reliably.

    Configuration comes from the Mesos environment (``env``, default ``os.environ``);
    keyword arguments override it. :meth:`run` returns after SHUTDOWN, :meth:`stop`, a
    refused subscription, or a connection loss the executor may not survive.
    """

    def __init__(
        self,
        handler: ExecutorHandler,
        *,
        env: Mapping[str, str] | None = None,
        agent_endpoint: str | None = None,
        framework_id: str | None = None,
        executor_id: str | None = None,
        token: str | None = None,
        checkpoint: bool | None = None,
        recovery_timeout: float | None = None,
        subscribe_timeout: float = 60.0,
        http_timeout: float = 10.0,
    ) -> None:
        env = os.environ if env is None else env
        self.handler = handler
        self.agent_endpoint = agent_endpoint or env.get("MESOS_AGENT_ENDPOINT", "")
        self.framework_id = framework_id or env.get("MESOS_FRAMEWORK_ID", "")
        self.executor_id = executor_id or env.get("MESOS_EXECUTOR_ID", "")
        missing = [n for n, v in (("MESOS_AGENT_ENDPOINT", self.agent_endpoint),
                                  ("MESOS_FRAMEWORK_ID", self.framework_id),
                                  ("MESOS_EXECUTOR_ID", self.executor_id)) if not v]
        if missing:
            raise ValueError(f"executor driver: missing {', '.join(missing)}")
        self.token = token if token is not None else env.get(TOKEN_ENV)
        self.checkpoint = (env.get("MESOS_CHECKPOINT") == "1") if checkpoint is None \
            else checkpoint
        self.recovery_timeout = recovery_timeout if recovery_timeout is not None else \
            parse_duration(env.get("MESOS_RECOVERY_TIMEOUT"), 15 * 60.0)
        self.backoff_max = parse_duration(env.get("MESOS_SUBSCRIPTION_BACKOFF_MAX"), 2.0)
        self.shutdown_grace_period = parse_duration(
            env.get("MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD"), 5.0)
        self.sandbox = env.get("MESOS_SANDBOX") or env.get("MESOS_DIRECTORY") or os.getcwd()
        self.subscribe_timeout = subscribe_timeout
        self.http_timeout = http_timeout

        self.subscribed_event: ExecutorSubscribed | None = None
        self.connected = False
        self.unacknowledged_updates: OrderedDict[bytes, TaskStatus] = OrderedDict()
        self.unacknowledged_tasks: OrderedDict[str, TaskInfo] = OrderedDict()
        self._stopping: asyncio.Event | None = None
        self._ack_waiters: list[asyncio.Future[None]] = []
        self._tasks: set[asyncio.Future[Any]] = set()
        self._gave_up = False  # the connection loop ended (the agent is gone for good)
        # Where to subscribe, in order of preference: the agent's socket, then its port.
        socket = None if agent_endpoint else env.get(SOCKET_ENV)
        self._endpoints = [socket, self.agent_endpoint] if socket else [self.agent_endpoint]
        self._conn = _http.Connection(self._endpoints[0])  # keep-alive, for calls
        # The agent takes a JSON array of calls in one POST (mesonb's agent says so in a
        # header of its SUBSCRIBE answer): updates of one loop turn then go together.
        self._batching = False
        self._outbox = Outbox(lambda: self._conn.endpoint, self._headers, self._call,
                              http_timeout)
        # the last LAUNCH's ExecutorInfo, as JSON and parsed (see _parse_event)
        self._executor_json: Any = None
        self._executor_info: ExecutorInfo | None = None

    # -- public API -----------------------------------------------------------------
    @property
    def framework_info(self) -> Any:
        return self.subscribed_event.framework_info if self.subscribed_event else None

    @property
    def executor_info(self) -> Any:
        return self.subscribed_event.executor_info if self.subscribed_event else None

    async def run(self) -> None:
        """Subscribe and process events until the executor should exit."""
        self._stopping = asyncio.Event()
        loop_task = asyncio.ensure_future(self._connection_loop())
        stop_task = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait({loop_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._gave_up = True
            for t in (loop_task, stop_task):
                t.cancel()
            await asyncio.gather(loop_task, stop_task, return_exceptions=True)
            pending = [f for f in self._tasks if not f.done()]
            for fut in pending:
                fut.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
            self.connected = False
            self._conn.close()
            self._outbox.stop()

    def stop(self) -> None:
        """Make :meth:`run` return (pending handler coroutines are cancelled)."""
        if self._stopping is not None:
            self._stopping.set()

    async def update(
        self,
        task_id: str,
        state: TaskState,
        *,
        message: str | None = None,
        reason: Reason | None = None,
        data: bytes | None = None,
        healthy: bool | None = None,
    ) -> bytes:
        """Send a status update for ``task_id`` (see :meth:`send_status`); its uuid."""
        return await self.send_status(TaskStatus(
            task_id=task_id, state=state, message=message, reason=reason, data=data,
            healthy=healthy))

    async def send_status(self, status: TaskStatus) -> bytes:
        """Send ``status`` with a fresh uuid; it is kept until ACKNOWLEDGED and re-sent on
        re-subscription. Raises :class:`_http.HTTPError` if the agent rejects it (4xx)."""
        body = self._stamp(status)
        try:
            if self._batching:
                await self._outbox.call(body)
            else:
                await self._call(body)
        except Exception as exc:
            self._not_delivered(status, exc)
        return status.uuid or b""

    def post_update(self, task_id: str, state: TaskState, *, message: str | None = None,
                    data: bytes | None = None) -> None:
        """:meth:`update` without waiting for the agent's answer: with an agent that takes
        batches, the update joins this loop turn's calls with no task of its own (the
        functions executor's one update per call). Kept until ACKNOWLEDGED, as every
        update; a refusal (4xx) is logged."""
        status = TaskStatus(task_id=task_id, state=state, message=message, data=data)
        if not self._batching:
            self._spawn(self.send_status(status))
            return
        self._outbox.queue(self._stamp(status), lambda exc: self._posted(status, exc))

    def _posted(self, status: TaskStatus, exc: BaseException | None) -> None:
        if exc is None:
            return
        try:
            self._not_delivered(status, exc)
        except Exception as refused:  # what update() would raise to its caller
            log.error("update %s of task %s refused: %s", status.state.value,
                      status.task_id, refused)

    def _stamp(self, status: TaskStatus) -> dict[str, Any]:
        """Give ``status`` a fresh uuid, keep it until ACKNOWLEDGED; its UPDATE call."""
        status.uuid = new_uuid()
        status.source = Source.SOURCE_EXECUTOR
        status.executor_id = self.executor_id
        if status.timestamp is None:
            status.timestamp = time.time()
        self.unacknowledged_updates[status.uuid] = status
        return {"type": "UPDATE", "framework_id": {"value": self.framework_id},
                "executor_id": {"value": self.executor_id},
                "update": {"status": status.to_json()}}

    def _not_delivered(self, status: TaskStatus, exc: BaseException) -> None:
        """An update's call failed: a refusal (4xx) forgets it and raises ``exc``; a
        connection failure leaves it to be resent on re-subscription."""
        if isinstance(exc, _http.HTTPError) and 400 <= exc.status < 500:
            self.unacknowledged_updates.pop(status.uuid or b"", None)
            self._notify_acked()
            raise exc
        if not isinstance(exc, _http.HTTPError | OSError | TimeoutError | ConnectionError):
            raise exc
        log.warning("update %s of task %s not delivered (%s); it is resent on"
                    " re-subscription", status.state.value, status.task_id, exc)

    async def send_message(self, data: bytes) -> None:
        """Send a framework message to the scheduler (at most once)."""
        await self._call({"type": "MESSAGE", "framework_id": {"value": self.framework_id},
                          "executor_id": {"value": self.executor_id},
                          "message": {"data": base64.b64encode(data).decode("ascii")}})

    async def wait_acknowledged(self, timeout: float | None = None) -> bool:
        """Wait until every update sent so far is acknowledged; False on timeout."""
        if not self.unacknowledged_updates:
            return True
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._ack_waiters.append(fut)
        try:
            await asyncio.wait_for(fut, timeout)
            return True
        except TimeoutError:
            return not self.unacknowledged_updates
        finally:
            if fut in self._ack_waiters:
                self._ack_waiters.remove(fut)

    async def wait_acknowledged_or_agent_gone(self, timeout: float) -> bool:
        """Like :meth:`wait_acknowledged`, but a checkpointing executor that is waiting for
        a restarting agent keeps waiting (up to its recovery timeout, when :meth:`run`
        gives up): the restarted agent must still get its terminal updates."""
        while True:
            if await self.wait_acknowledged(timeout=timeout):
                return True
            if (self.connected or not self.checkpoint or self._stopping is None
                    or self._stopping.is_set() or self._gave_up):
                return False
            log.info("updates still unacknowledged; waiting for the agent to come back")

    # -- connection -----------------------------------------------------------------
    async def _connection_loop(self) -> None:
        give_up_at = time.monotonic() + self.subscribe_timeout
        delay = 0.1
        ever_subscribed = False
        while True:
            try:
                response = await self._subscribe()
            except SubscribeRefused as exc:
                log.error("the agent refused the subscription: %s", exc)
                await self._invoke(self.handler.error, str(exc))
                return
            except (OSError, TimeoutError, ConnectionError, EOFError) as exc:
                if time.monotonic() >= give_up_at:
                    log.error("cannot subscribe to the agent at %s: %s; giving up",
                              self.agent_endpoint, exc)
                    return
                log.info("cannot subscribe to the agent at %s (%s); retrying in %.2fs",
                         self.agent_endpoint, exc, delay)
                await asyncio.sleep(delay * random.uniform(0.5, 1.0))
                delay = min(delay * 2, self.backoff_max)
                continue
            ever_subscribed = True
            delay = 0.1
            self.connected = True
            try:
                await self._read_events(response)
            except (OSError, ConnectionError, EOFError, asyncio.IncompleteReadError,
                    asyncio.LimitOverrunError, BadRequest, ValueError) as exc:
                log.warning("the event stream from the agent broke: %s", exc)
            finally:
                self.connected = False
                response.close()
                self._conn.close()  # calls go to whichever agent we subscribe to next
                self._outbox.disconnect()
            if self._stopping is not None and self._stopping.is_set():
                return
            await self._invoke(self.handler.disconnected)
            if not (ever_subscribed and self.checkpoint):
                log.warning("disconnected from the agent; not checkpointing, so exiting")
                return
            log.warning("disconnected from the agent; re-subscribing for up to %gs",
                        self.recovery_timeout)
            give_up_at = time.monotonic() + self.recovery_timeout

    async def _subscribe(self) -> _http.Response:
        body = {
            "type": "SUBSCRIBE",
            "framework_id": {"value": self.framework_id},
            "executor_id": {"value": self.executor_id},
            "subscribe": {
                "unacknowledged_tasks": [t.to_json() for t in self.unacknowledged_tasks.values()],
                "unacknowledged_updates": [{"status": s.to_json()}
                                           for s in self.unacknowledged_updates.values()],
            },
        }
        data = jsontext.dumpb(body)
        for endpoint in self._endpoints:
            try:
                response = await _http.post(endpoint, EXECUTOR_PATH, data, self._headers(),
                                            self.http_timeout)
                break
            except OSError:
                if endpoint is self._endpoints[-1]:
                    raise
                log.info("cannot reach the agent at %s; trying %s", endpoint,
                         self._endpoints[-1])
        if endpoint != self._conn.endpoint:  # calls go where the events come from
            self._conn.close()
            self._conn = _http.Connection(endpoint)
        if response.status != 200:
            try:
                text = (await asyncio.wait_for(response.body(), self.http_timeout)).decode(
                    "utf-8", "replace")
            except (OSError, TimeoutError, asyncio.IncompleteReadError):
                text = ""
            response.close()
            if 400 <= response.status < 500:
                raise SubscribeRefused(f"HTTP {response.status}: {text}")
            raise ConnectionError(f"HTTP {response.status}: {text}")
        self._batching = response.headers.get(BATCH_HEADER.lower()) == "1"
        return response

    async def _read_events(self, response: _http.Response) -> None:
        records = RecordReader()
        async for chunk in response.chunks():
            for record in records.feed(chunk):
                try:
                    event = self._parse_event(record)
                except (ValueError, BadRequest) as exc:
                    log.warning("ignoring a malformed event from the agent: %s", exc)
                    continue
                self._dispatch(event)
            self._outbox.poll()  # an answer to updates, read while awake (see outbox)

    def _parse_event(self, record: bytes) -> ExecutorEvent:
        """An event from its JSON text. A LAUNCH's ExecutorInfo, the same for every task
        of this executor, is parsed once: a task whose ``executor`` JSON equals the last
        one parsed gets that ExecutorInfo (the same object; nothing here changes it)."""
        data = jsontext.loads_lenient(record)
        launch = data.get("launch") if type(data) is dict else None
        task = launch.get("task") if type(launch) is dict else None
        executor = task.get("executor") if type(task) is dict else None
        if executor is None:
            return ExecutorEvent.from_json(data, "Event")
        known = self._executor_json is not None and executor == self._executor_json
        if known:
            del task["executor"]  # type: ignore[union-attr]
        event = ExecutorEvent.from_json(data, "Event")
        if event.launch is not None:
            if known:
                event.launch.task.executor = self._executor_info
            else:
                self._executor_json, self._executor_info = executor, event.launch.task.executor
        return event

    def _dispatch(self, event: ExecutorEvent) -> None:
        """Hand ``event`` to the handler (nothing here waits: a handler's coroutine runs
        as a task of its own)."""
        kind = event.type
        h = self.handler
        if kind is ExecutorEventType.SUBSCRIBED and event.subscribed is not None:
            self.subscribed_event = event.subscribed
            self._call_handler(h.subscribed, event.subscribed)
        elif kind is ExecutorEventType.LAUNCH and event.launch is not None:
            self.unacknowledged_tasks[event.launch.task.task_id] = event.launch.task
            self._call_handler(h.launch, event.launch.task)
        elif kind is ExecutorEventType.LAUNCH_GROUP and event.launch_group is not None:
            for task in event.launch_group.task_group.tasks:
                self.unacknowledged_tasks[task.task_id] = task
            self._call_handler(h.launch_group, event.launch_group.task_group)
        elif kind is ExecutorEventType.KILL and event.kill is not None:
            self._call_handler(h.kill, event.kill.task_id, event.kill.kill_policy)
        elif kind is ExecutorEventType.ACKNOWLEDGED and event.acknowledged is not None:
            self._on_acknowledged(event.acknowledged)
            self._call_handler(h.acknowledged, event.acknowledged.task_id,
                               event.acknowledged.uuid)
        elif kind is ExecutorEventType.MESSAGE and event.message is not None:
            self._call_handler(h.message, event.message.data)
        elif kind is ExecutorEventType.ERROR and event.error is not None:
            self._call_handler(h.error, event.error.message)
        elif kind is ExecutorEventType.SHUTDOWN:
            log.info("the agent asked this executor to shut down")
            self._spawn(self._shutdown())
        elif kind is not ExecutorEventType.HEARTBEAT:
            log.warning("ignoring an executor event of type %s", kind.value)

    async def _shutdown(self) -> None:
        try:
            await self._invoke(self.handler.shutdown)
        finally:
            self.stop()

    def _on_acknowledged(self, ack: ExecutorAcknowledged) -> None:
        status = self.unacknowledged_updates.pop(ack.uuid, None)
        if status is not None and status.state.terminal:
            self.unacknowledged_tasks.pop(status.task_id, None)
        self._notify_acked()

    def _notify_acked(self) -> None:
        if not self.unacknowledged_updates:
            for fut in self._ack_waiters:
                if not fut.done():
                    fut.set_result(None)

    # -- plumbing -------------------------------------------------------------------
    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    async def _call(self, body: dict[str, Any] | list[dict[str, Any]]) -> None:
        await self._conn.post_and_read(EXECUTOR_PATH, jsontext.dumpb(body),
                                       self._headers(), self.http_timeout)

    def _call_handler(self, fn: Any, *args: Any) -> None:
        """Call a handler method; a coroutine it returns runs as its own task."""
        try:
            result = fn(self, *args)
        except Exception:
            log.exception("executor handler %s failed", getattr(fn, "__name__", fn))
            return
        if asyncio.iscoroutine(result):
            self._spawn(result)

    async def _invoke(self, fn: Any, *args: Any) -> None:
        """Call a handler method and wait for the coroutine it returns, if any."""
        try:
            result = fn(self, *args)
        except Exception:
            log.exception("executor handler %s failed", getattr(fn, "__name__", fn))
            return
        if asyncio.iscoroutine(result):
            try:
                await result
            except Exception:
                log.exception("executor handler %s failed", getattr(fn, "__name__", fn))

    def _spawn(self, coro: Any) -> None:
        spawn(coro, self._tasks, "executor handler", logger=log, level=logging.ERROR)

