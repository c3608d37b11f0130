"""The calls an executor sends its agent in batches: mesonb's agent takes a JSON array of
calls in one POST (it says so in a header of its SUBSCRIBE answer), so the calls queued in
one loop turn leave together, in order, one POST at a time.

On a plain connection (a Unix socket, or TCP without TLS) the answer to a POST is read
lazily (:class:`~._http.LazyConnection`): when the executor is awake anyway (the next
batch is ready, an event came: :meth:`Outbox.poll`), or at once when someone waits for it
(an awaited :meth:`~.driver.ExecutorDriver.update`), or after :data:`READ_AFTER` seconds
at the latest. A ``202 Accepted`` that only releases the next batch then costs no wake-up
of its own. Over TLS each batch's answer is awaited before the next batch goes, on a
keep-alive stream connection.

An answer settles each call of its batch. When the agent refuses a batch (4xx), each of
its calls goes again on its own, before any later call, so each gets its own answer.
"""

from __future__ import annotations

import asyncio
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
        self._flight: list[Queued] | None = None  # the batch whose answer is due
        self._sent_at = 0.0
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
        """Read the answer due if it has come (the executor is awake anyway)."""
        if self._flight is not None and self._conn is not None:
            self._conn.read()

    def disconnect(self) -> None:
        """The agent connection is gone: the batch in flight fails (what is queued goes
        on the next connection)."""
        if self._conn is not None:
            self._conn.close()
        self._fail_flight(ConnectionError("the connection to the agent closed"))
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
        self._fail_flight(stopped)
        queued, self._queue, alone, self._alone = self._queue, [], self._alone, []
        for _, answered in alone + queued:
            _settle(answered, stopped)

    # -- lazy: a plain connection ---------------------------------------------------------
    def _flush(self) -> None:
        self._flush_due = False
        endpoint = self._endpoint()
        if not _http.tls_free(endpoint):
            if self._eager is None or self._eager.done():
                self._eager = asyncio.ensure_future(self._flush_eagerly())
            return
        if self._flight is not None:
            assert self._conn is not None
            self._conn.read()
            if self._flight is not None:  # not yet: send the rest once it comes
                self._conn.watch(True)
                return
        if not (self._alone or self._queue):
            return
        if self._conn is None or not self._conn.connected or self._conn.endpoint != endpoint:
            if self._connecting is None or self._connecting.done():
                self._connecting = asyncio.ensure_future(self._connect(endpoint))
            return
        if self._alone:
            batch = [self._alone.pop(0)]
        else:
            batch, self._queue = self._queue, []
        self._send(batch)

    def _send(self, batch: list[Queued]) -> None:
        assert self._conn is not None
        body = batch[0][0] if len(batch) == 1 else [b for b, _ in batch]
        self._flight = batch
        loop = asyncio.get_running_loop()
        self._sent_at = loop.time()
        self._conn.send(wire.request("POST", EXECUTOR_PATH, self._conn.host, self._headers(),
                                     jsontext.dumpb(body)))
        if self._flight is batch:  # (not failed on the spot)
            self._conn.watch(any(isinstance(a, asyncio.Future) for _, a in batch))
            if self._timer is None:
                self._timer = loop.call_at(self._sent_at + READ_AFTER, self._tick)

    async def _connect(self, endpoint: str) -> None:
        if self._conn is not None:
            self._conn.close()
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
        if self._flight is None or self._conn is None:
            return
        self._conn.read()
        if self._flight is None:
            return
        now = asyncio.get_running_loop().time()
        if now - self._sent_at >= self.timeout:
            self._conn.close()
            self._fail_flight(TimeoutError("the agent did not answer an executor call"))
            self._reflush()
            return
        if now - self._sent_at >= READ_AFTER:
            self._conn.watch(True)
            due = self._sent_at + self.timeout
        else:
            due = self._sent_at + READ_AFTER
        self._timer = asyncio.get_running_loop().call_at(due, self._tick)

    def _answered(self, status: int, reason: str, body: bytes) -> None:
        batch, self._flight = self._flight or [], None
        if self._conn is not None:
            self._conn.watch(False)
        if 200 <= status < 300:
            for _, answered in batch:
                _settle(answered, None)
        elif len(batch) > 1 and 400 <= status < 500:
            self._alone[:0] = batch  # each call on its own, before anything else
        else:
            error = _http.HTTPError(status, reason, body.decode("utf-8", "replace"))
            for _, answered in batch:
                _settle(answered, error)
        self._reflush()

    def _broken(self, exc: BaseException, resend: bool) -> None:
        if resend and self._flight is not None:
            # The agent closed the connection while it was idle: the batch goes again, on
            # a new connection (where it cannot be resent: that one is not reused).
            self._alone[:0] = self._flight
            self._flight = None
        else:
            self._fail_flight(exc)
        self._reflush()

    def _fail_flight(self, exc: BaseException) -> None:
        batch, self._flight = self._flight or [], None
        for _, answered in batch:
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
