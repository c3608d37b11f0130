"""The dataflow executor: one long-running Mesos task that runs a driver's tasks.

Started by the agent as ``python -m mesonb.frameworks.dataflow.executor`` (a custom
executor, :mod:`mesonb.executor.driver`) with one Mesos task, whose data is an
:class:`~.messages.ExecutorConfig`. It starts its shuffle server, connects to the
driver's control server, sends TASK_RUNNING, then runs the tasks the driver sends, up to
``slots`` at a time in threads, until the driver goes away (TASK_FINISHED) or Mesos
kills the task (TASK_KILLED). Coarse-grained, as Spark on Mesos: one interpreter serves
every task of the application, and keeps shuffle outputs and persisted partitions.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import pickle
import socket
import sys
import time
import traceback
from collections import OrderedDict
from typing import Any

import cloudpickle

from mesonb import tls
from mesonb.executor.driver import ExecutorDriver, ExecutorHandler
from mesonb.protocol.mesos import KillPolicy, TaskInfo
from mesonb.protocol.states import TaskState

from . import messages
from .blocks import BlockStore
from .lineage import MapWork, Node, ResultWork
from .shuffle import Fetcher, FetchFailed, ShuffleServer, ShuffleStore

log = logging.getLogger(__name__)
STAGES_KEPT = 32


class _Context:
    """The :class:`~.lineage.TaskContext` of one task on this executor."""

    def __init__(self, worker: Worker, task: messages.RunTask) -> None:
        self.worker = worker
        self.task = task
        self.partition = task.partition
        self.bytes_read = 0
        self.stored: list[tuple[int, int]] = []  # blocks this task persisted

    def input(self, node_id: int, partition: int) -> Any:
        return self.task.inputs[(node_id, partition)]

    def fetch(self, shuffle_id: int, partition: int) -> list[Any]:
        buckets, size = self.worker.fetcher.fetch(shuffle_id, partition,
                                                  self.task.locations.get(shuffle_id, []))
        self.bytes_read += size
        return buckets

    def cached(self, node: Node, partition: int) -> list[Any] | None:
        return self.worker.blocks.get((node.id, partition))

    def store(self, node: Node, partition: int, records: list[Any]) -> None:
        self.worker.blocks.put((node.id, partition), records)
        self.stored.append((node.id, partition))


class Worker:
    """The executor's state: stores, servers, the control connection and its tasks."""

    def __init__(self, config: messages.ExecutorConfig, sandbox: str) -> None:
        self.config = config
        self.store = ShuffleStore(os.path.join(sandbox, "shuffle"))
        self.blocks = BlockStore(os.path.join(sandbox, "blocks"), config.memory_limit)
        self.server = ShuffleServer(self.store, config.token, secure=config.tls)
        self.fetcher = Fetcher(self.store, config.executor_id, config.token, secure=config.tls)
        self.pool = concurrent.futures.ThreadPoolExecutor(max(1, config.slots),
                                                          thread_name_prefix="dataflow-task")
        self.stages: OrderedDict[str, Any] = OrderedDict()
        self.writer: asyncio.StreamWriter | None = None
        self._running: set[asyncio.Future[Any]] = set()

    async def serve(self, host: str, on_connected: Any) -> None:
        """Connect to the driver and run its tasks until it goes away."""
        address = await self.server.start(host)
        driver_host, driver_port = self.config.driver.rsplit(":", 1)
        reader, writer = await asyncio.open_connection(
            driver_host, int(driver_port), ssl=tls.client_context() if self.config.tls else None)
        self.writer = writer
        writer.write(messages.frame(self.config.token.encode()))
        writer.write(messages.dumps(messages.Hello(self.config.executor_id, address, host,
                                                   os.getpid())))
        await writer.drain()
        await on_connected()
        loop = asyncio.get_running_loop()
        try:
            while True:
                try:
                    message = await messages.read_message(reader)
                except (asyncio.IncompleteReadError, OSError):
                    log.info("the driver went away")
                    return
                if isinstance(message, messages.RunTask):
                    fut = loop.run_in_executor(self.pool, self.run_task, message)
                    self._running.add(fut)
                    fut.add_done_callback(self._send_result)
                elif isinstance(message, messages.Forget):
                    for shuffle_id in message.shuffles:
                        self.store.drop(shuffle_id)
                    self.blocks.drop(message.blocks, message.datasets)
        finally:
            writer.close()

    def _send_result(self, fut: asyncio.Future[Any]) -> None:
        self._running.discard(fut)
        if fut.cancelled() or self.writer is None or self.writer.is_closing():
            return
        result: messages.TaskResult = fut.result()
        try:
            self.writer.write(messages.dumps(result))
        except Exception:
            log.exception("cannot send the result of task %d", result.task_id)
            self.writer.write(messages.dumps(messages.TaskResult(
                result.task_id, False, error_type="UnpicklableResult",
                traceback=traceback.format_exc())))

    def _stage(self, key: str, blob: bytes) -> Any:
        stage = self.stages.get(key)
        if stage is None:
            stage = cloudpickle.loads(blob)
            self.stages[key] = stage
            while len(self.stages) > STAGES_KEPT:
                self.stages.popitem(last=False)
        return stage

    def run_task(self, task: messages.RunTask) -> messages.TaskResult:
        """Run one task (in a pool thread); never raises."""
        began = time.perf_counter()
        ctx = _Context(self, task)
        try:
            work = self._stage(task.stage_key, task.stage)
            if isinstance(work, MapWork):
                records = work.node.iterator(task.partition, ctx)
                buckets = work.dep.split(records, work.dep.partitions)
                sizes = self.store.write(work.dep.shuffle_id, task.partition, buckets)
                return messages.TaskResult(task.task_id, True, sizes=sizes,
                                           duration=time.perf_counter() - began,
                                           bytes_read=ctx.bytes_read, cached=ctx.stored)
            assert isinstance(work, ResultWork)
            value = work.func(task.partition,
                              work.node.iterator(task.partition, ctx))
            data = cloudpickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
            return messages.TaskResult(task.task_id, True, value=data,
                                       duration=time.perf_counter() - began,
                                       bytes_read=ctx.bytes_read, cached=ctx.stored)
        except FetchFailed as exc:
            return messages.TaskResult(task.task_id, False, error_type="FetchFailed",
                                       traceback=str(exc), fetch_failed=exc.executor_id,
                                       duration=time.perf_counter() - began)
        except BaseException as exc:  # the user's code: report it, whatever it is
            return messages.TaskResult(task.task_id, False, error=_pickle_exception(exc),
                                       error_type=f"{type(exc).__module__}."
                                                  f"{type(exc).__qualname__}",
                                       traceback=traceback.format_exc(),
                                       duration=time.perf_counter() - began)

    async def close(self) -> None:
        await self.server.stop()
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.store.close()
        self.blocks.close()


def _serving_host(agent_endpoint: str) -> str:
    """Where other executors reach this one: the address its agent serves on (this
    machine's name when the agent listens on every interface)."""
    host = agent_endpoint.rsplit(":", 1)[0].strip("[]") if ":" in agent_endpoint \
        else "127.0.0.1"
    if host in ("", "0.0.0.0", "::"):
        try:
            host = socket.gethostbyname(socket.gethostname())
        except OSError:
            host = "127.0.0.1"
    return host


def _pickle_exception(exc: BaseException) -> bytes | None:
    try:
        data = cloudpickle.dumps(exc, protocol=pickle.HIGHEST_PROTOCOL)
        pickle.loads(data)
        return data
    except Exception:
        return None


class DataflowExecutor(ExecutorHandler):
    """Runs the one task this executor gets: a :class:`Worker` until the driver leaves."""

    def __init__(self) -> None:
        self.worker: Worker | None = None
        self.task_id: str | None = None
        self._serving: asyncio.Task[None] | None = None

    async def launch(self, driver: ExecutorDriver, task: TaskInfo) -> None:
        self.task_id = task.task_id
        config = pickle.loads(task.data or b"")
        if not isinstance(config, messages.ExecutorConfig):
            await driver.update(task.task_id, TaskState.TASK_ERROR,
                                message="task data is not a dataflow executor config")
            driver.stop()
            return
        host = _serving_host(driver.agent_endpoint)
        self.worker = Worker(config, driver.sandbox)

        async def connected() -> None:
            await driver.update(task.task_id, TaskState.TASK_RUNNING)

        self._serving = asyncio.current_task()
        state, message = TaskState.TASK_FINISHED, "the driver went away"
        try:
            await self.worker.serve(host, connected)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("the dataflow executor failed")
            state, message = TaskState.TASK_FAILED, f"{type(exc).__name__}: {exc}"
        finally:
            await self.worker.close()
        await driver.update(task.task_id, state, message=message)
        await driver.wait_acknowledged(timeout=5.0)
        driver.stop()

    async def kill(self, driver: ExecutorDriver, task_id: str,
                   kill_policy: KillPolicy | None) -> None:
        if self.worker is not None and self.worker.writer is not None:
            self.worker.writer.close()
        if self._serving is not None:
            self._serving.cancel()  # launch() closes the worker
        await driver.update(task_id, TaskState.TASK_KILLED, message="killed by the framework")
        await driver.wait_acknowledged(timeout=5.0)
        driver.stop()

    async def shutdown(self, driver: ExecutorDriver) -> None:
        if self.worker is not None:
            with contextlib.suppress(Exception):
                await self.worker.close()
        await driver.wait_acknowledged(timeout=2.0)


def main() -> None:
    logging.basicConfig(level=os.environ.get("MESONB_LOG_LEVEL", "WARNING"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(ExecutorDriver(DataflowExecutor()).run())
    sys.exit(0)


if __name__ == "__main__":
    main()
