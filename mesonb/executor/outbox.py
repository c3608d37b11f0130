"""The calls an executor sends its agent in batches: mesonb's agent takes a JSON array of
calls in one POST (it says so in a header of its SUBSCRIBE answer), so the calls queued in
one loop turn leave together, in order, in one POST.

On a plain connection (a Unix socket, or TCP without TLS) a batch goes without waiting
for the answers to earlier ones (HTTP/1.1 pipelining), and answers are read lazily
(:class:`~._http.LazyConnection`): when the executor is awake anyway (a batch is ready,
an event came: :meth:`Outbox.poll`), at once when someone waits for one (an awaited
:meth:`~.driver.ExecutorDriver.update`), or after :data:`READ_AFTER` seconds at the
latest. A ``202 Accepted`` nobody waits for then costs no wake-up of its own. Over TLS
each batch's answer is awaited before the next batch goes, on a keep-alive stream
connection.

An answer settles each call of its batch. When the agent refuses a batch (4xx), each of
its calls goes again on its own, before any later call, so each gets its own answer; so
that such a call never overtakes a later update of its task, a batch with an update of a
task whose update is in a batch not answered yet waits for that answer.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from mesonb.http import wire
from mesonb.protocol import jsontext
from mesonb.protocol.executor import EXECUTOR_PATH

from . import _http

# who waits for a queued call's answer: a future, or a function given None or the error
Answered = asyncio.Future[None] | Callable[[BaseException | None], None]
Queued = tuple[dict[str, Any], Answered]
READ_AFTER = 0.05  # seconds after which an answer nobody waited for is read as it comes


class _Flight:
    """A batch sent whose answer has not been read."""

    __slots__ = ("awaited", "batch", "sent_at", "tasks")

    def __init__(self, batch: list[Queued], tasks: set[str], sent_at: float) -> None:
        self.batch, self.tasks, self.sent_at = batch, tasks, sent_at
        self.awaited = any(isinstance(answered, asyncio.Future) for _, answered in batch)


class Outbox:
    """Batches of calls to the agent; see the module docstring.

    ``endpoint()`` is where calls go now, ``headers()`` their headers, ``call(body)``
    sends one body and awaits its answer (the eager way, over TLS), ``timeout`` is the
    longest an answer may take.
    """

    def __init__(self, endpoint: Callable[[], str], headers: Callable[[], dict[str, str]],
                 call: Callable[[Any], Awaitable[None]], timeout: float) -> None:
        self._endpoint, self._headers, self._call = endpoint, headers, call
        self.timeout = timeout
        self._queue: list[Queued] = []
        self._alone: list[Queued] = []  # calls of a refused batch, to go one by one first
        self._flights: deque[_Flight] = deque()  # sent, answers not read, oldest first
        self._blocked = False  # a batch waits for the answer of one about the same task
        self._overdue = False  # an answer is READ_AFTER late: read it as it comes
        self._flush_due = False
        self._timer: asyncio.TimerHandle | None = None
        self._conn: _http.LazyConnection | None = None
        self._connecting: asyncio.Future[None] | None = None
        self._eager: asyncio.Future[None] | None = None

    def queue(self, body: dict[str, Any], answered: Answered) -> None:
        """Send ``body`` with the other calls queued in this loop turn; ``answered`` gets
        its outcome (a future, or a function called with None or the exception)."""
        self._queue.append((body, answered))
        if not self._flush_due:
            self._flush_due = True
            # on the next loop turn: this turn's calls are all queued by then
            asyncio.get_running_loop().call_soon(self._flush)

    async def call(self, body: dict[str, Any]) -> None:
        """Send ``body`` as :meth:`queue` does and wait for its answer."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.queue(body, fut)
        await fut

    def poll(self) -> None:
        """Read the answers that have come (the executor is awake anyway)."""
        if self._flights and self._conn is not None:
            self._conn.read()

    def disconnect(self) -> None:
        """The agent connection is gone: the batches in flight fail (what is queued goes
        on the next connection)."""
        if self._conn is not None:
            self._conn.close()
        self._fail_flights(ConnectionError("the connection to the agent closed"))
        self._reflush()

    def stop(self) -> None:
        """Fail everything queued: the driver stopped."""
        if self._conn is not None:
            self._conn.close()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for task in (self._connecting, self._eager):
            if task is not None:
                task.cancel()
        stopped = ConnectionError("the executor driver stopped")
        self._fail_flights(stopped)
        queued, self._queue, alone, self._alone = self._queue, [], self._alone, []
        for _, answered in alone + queued:
            _settle(answered, stopped)

    # -- lazy: a plain connection ---------------------------------------------------------
    def _flush(self) -> None:
        """Send what is queued: each call of a refused batch on its own, then the rest in
        one POST, without waiting for earlier answers, unless a call is about a task
        whose update is in a batch not answered yet (a refused batch goes again call by
        call: it must not overtake a later update of the same task)."""
        self._flush_due = False
        endpoint = self._endpoint()
        if not _http.tls_free(endpoint):
            if self._eager is None or self._eager.done():
                self._eager = asyncio.ensure_future(self._flush_eagerly())
            return
        conn = self._conn
        if conn is not None and self._flights:
            conn.read()
        if not (self._alone or self._queue):
            return
        if conn is None or not conn.connected or conn.endpoint != endpoint:
            if self._connecting is None or self._connecting.done():
                self._connecting = asyncio.ensure_future(self._connect(endpoint))
            return
        self._blocked = False
        while (self._alone or self._queue) and conn.connected:
            batch = self._alone[:1] or self._queue
            tasks = _tasks_of(batch)
            if tasks and any(not tasks.isdisjoint(f.tasks) for f in self._flights):
                self._blocked = True  # sent once that answer is in
                break
            if self._alone:
                del self._alone[0]
            else:
                self._queue = []
            self._send(batch, tasks)
        self._watch()

    def _send(self, batch: list[Queued], tasks: set[str]) -> None:
        conn = self._conn
        assert conn is not None
        body = batch[0][0] if len(batch) == 1 else [b for b, _ in batch]
        loop = asyncio.get_running_loop()
        self._flights.append(_Flight(batch, tasks, loop.time()))
        conn.send(wire.request("POST", EXECUTOR_PATH, conn.host, self._headers(),
                               jsontext.dumpb(body)))
        if self._timer is None and self._flights:
            self._timer = loop.call_at(self._flights[0].sent_at + READ_AFTER, self._tick)

    def _watch(self) -> None:
        """Read answers as they come while someone waits for one; else when awake."""
        if self._conn is not None:
            self._conn.watch(bool(self._flights) and (
                self._blocked or self._overdue or any(f.awaited for f in self._flights)))

    async def _connect(self, endpoint: str) -> None:
        if self._conn is not None:
            self._conn.close()
            # (answers due on the old connection are lost with it)
            self._fail_flights(ConnectionError("the connection to the agent closed"))
        conn = _http.LazyConnection(endpoint, self._answered, self._broken)
        try:
            await asyncio.wait_for(conn.connect(), self.timeout)
        except (OSError, TimeoutError) as exc:
            # what is queued fails, as a call on a connection that cannot be made does
            failed = [*self._alone, *self._queue]
            self._alone, self._queue = [], []
            for _, answered in failed:
                _settle(answered, exc)
            return
        self._conn = conn
        if not self._flush_due:
            self._flush()

    def _tick(self) -> None:
        """The latest an answer is read: :data:`READ_AFTER` after its request, as it comes
        from then on; it fails after ``timeout``."""
        self._timer = None
        if not self._flights or self._conn is None:
            return
        self._conn.read()
        if not self._flights:
            return
        sent_at = self._flights[0].sent_at
        now = asyncio.get_running_loop().time()
        if now - sent_at >= self.timeout:
            self._conn.close()
            self._fail_flights(TimeoutError("the agent did not answer an executor call"))
            self._reflush()
            return
        if now - sent_at >= READ_AFTER:
            self._overdue = True
            self._watch()
            due = sent_at + self.timeout
        else:
            due = sent_at + READ_AFTER
        self._timer = asyncio.get_running_loop().call_at(due, self._tick)

    def _answered(self, status: int, reason: str, body: bytes) -> None:
        if not self._flights:
            return
        batch = self._flights.popleft().batch
        if not self._flights:
            self._overdue = False
        if 200 <= status < 300:
            for _, answered in batch:
                _settle(answered, None)
        elif len(batch) > 1 and 400 <= status < 500:
            self._alone[:0] = batch  # each call on its own, before anything else
        else:
            error = _http.HTTPError(status, reason, body.decode("utf-8", "replace"))
            for _, answered in batch:
                _settle(answered, error)
        self._watch()
        if self._blocked or self._alone:
            self._blocked = False
            self._reflush()

    def _broken(self, exc: BaseException, resend: bool) -> None:
        if resend and self._flights:
            # The agent closed the connection while it was idle: the calls go again, each
            # on its own, on a new connection (where they cannot be resent: it is new).
            self._alone[:0] = [call for flight in self._flights for call in flight.batch]
            self._flights.clear()
        else:
            self._fail_flights(exc)
        self._reflush()

    def _fail_flights(self, exc: BaseException) -> None:
        flights, self._flights = self._flights, deque()
        self._overdue = self._blocked = False
        for flight in flights:
            for _, answered in flight.batch:
                _settle(answered, exc)

    def _reflush(self) -> None:
        if (self._queue or self._alone) and not self._flush_due:
            self._flush_due = True
            asyncio.get_running_loop().call_soon(self._flush)

    # -- eager: over TLS --------------------------------------------------------------
    async def _flush_eagerly(self) -> None:
        batch: list[Queued] = []
        try:
            while self._alone or self._queue:
                batch, self._queue = self._alone + self._queue, []
                self._alone = []
                try:
                    await self._call(batch[0][0] if len(batch) == 1 else [b for b, _ in batch])
                except _http.HTTPError as exc:
                    if len(batch) > 1 and 400 <= exc.status < 500:
                        # The agent refused the whole batch: each call gets its own answer.
                        for body, answered in batch:
                            try:
                                await self._call(body)
                            except Exception as one:
                                _settle(answered, one)
                            else:
                                _settle(answered, None)
                    else:
                        for _, answered in batch:
                            _settle(answered, exc)
                except Exception as exc:
                    for _, answered in batch:
                        _settle(answered, exc)
                else:
                    for _, answered in batch:
                        _settle(answered, None)
                batch = []
        finally:
            for _, answered in batch:
                _settle(answered, ConnectionError("the executor driver stopped"))



def _tasks_of(batch: list[Queued]) -> set[str]:
    """The tasks whose updates are in ``batch``."""
    tasks = set()
    for body, _ in batch:
        update = body.get("update")
        if update is not None:
            tasks.add(update["status"]["task_id"]["value"])
    return tasks


def _settle(answered: Answered, exc: BaseException | None) -> None:
    if not isinstance(answered, asyncio.Future):
        answered(exc)
        return
    if answered.done():
        return
    if exc is None:
        answered.set_result(None)
    else:
        answered.set_exception(exc)
