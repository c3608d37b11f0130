"""Re-attaching a restarted agent to the executors of its earlier run.

:func:`recover` puts the checkpointed frameworks, executors and tasks (read by
:mod:`mesonb.agent.recovery`) back into the agent's :class:`~.executors.Executors` book.
A live executor gets ``executor_reregistration_timeout`` to re-subscribe (or, with
``--recover=cleanup``, is killed); a dead one ends its unfinished tasks; processes left in
sandboxes that no checkpoint names are killed as orphans.
"""

from __future__ import annotations

import logging
import signal
from typing import TYPE_CHECKING

from mesonb.protocol.mesos import TaskStatus
from mesonb.protocol.states import Reason, TaskState

from . import containerizer, launcher, paths, recovery
from .book import Executor, ExecutorState, Framework, Task, Termination

if TYPE_CHECKING:
    from .executors import Executors

log = logging.getLogger("mesonb.agent.executors")


def recover(ex: Executors, state: recovery.AgentCheckpoint, cleanup: bool = False) -> None:
    """Put an earlier run's checkpointed frameworks, executors and tasks back in the
    book (see :mod:`mesonb.agent.recovery`). Live executors wait for their SUBSCRIBE
    (or, with ``cleanup``, are killed); dead ones end their unfinished tasks."""
    timeout = ex.agent.recovery.executor_reregistration_timeout
    known: set[int] = set()
    for fw in state.frameworks:
        framework = Framework(info=fw.info)
        ex.frameworks[framework.framework_id] = framework
        for ckpt in fw.executors:
            executor = _recover_executor(ex, framework, ckpt)
            if executor is None:
                continue
            container = None
            if ckpt.pid is not None and not state.rebooted:
                container = containerizer.recover(ckpt.container_id, ckpt.pid,
                                                  ckpt.directory)
            if container is not None:
                known.add(container.pid)
                executor.container = container
                ex._spawn(_watch_recovered(ex, executor, container))
                if cleanup:
                    executor.termination = Termination(
                        TaskState.TASK_FAILED, Reason.REASON_EXECUTOR_TERMINATED,
                        "Executor killed: the agent was started with --recover=cleanup")
                    ex._terminate(executor, "--recover=cleanup")
                else:
                    log.info("waiting %gs for executor %s of framework %s to re-subscribe",
                             timeout, executor.executor_id, framework.framework_id)
                    ex._set_timer(executor, timeout,
                                    lambda e=executor: _reregistration_timeout(ex, e))
            elif executor.tasks():
                why = "the machine rebooted" if state.rebooted else "its process is gone"
                ex._terminated(executor, None, how=f"exited while the agent was down"
                                 f" ({why})")
            else:
                executor.state = ExecutorState.TERMINATED
                framework.complete_executor(executor)
        if not framework.executors:
            ex.frameworks.pop(framework.framework_id, None)
    sandboxes = paths.sandboxes_root(ex.agent.config.work_dir)
    for pid in containerizer.orphans(sandboxes, known):
        log.warning("killing orphan executor pid %d (not recovered)", pid)
        containerizer.kill_session(pid, signal.SIGKILL)

def _recover_executor(ex: Executors, framework: Framework,
                      ckpt: recovery.ExecutorCheckpoint) -> Executor | None:
    if ckpt.token is None:
        log.warning("executor %s of framework %s has no checkpointed token; not recovered",
                    ckpt.info.executor_id, ckpt.framework_id)
        return None
    command_executor = launcher.is_builtin(ckpt.info.command) and bool(
        ckpt.info.command and launcher.COMMAND_EXECUTOR_MODULE in (
            ckpt.info.command.arguments or ()))
    executor = Executor(info=ckpt.info, framework_id=ckpt.framework_id,
                        container_id=ckpt.container_id, directory=ckpt.directory,
                        token=ckpt.token, command_executor=command_executor,
                        recovered=True)
    framework.executors[executor.executor_id] = executor
    ex._tokens[ckpt.token] = (ckpt.framework_id, executor.executor_id)
    updates = ex.agent.status_updates
    for item in ckpt.tasks:
        task = Task(info=item.info, framework_id=ckpt.framework_id,
                    executor_id=executor.executor_id)
        stream = updates.recover(ckpt.framework_id, task.task_id, item.records)
        task.statuses = [TaskStatus(
            task_id=s.task_id, state=s.state, timestamp=s.timestamp, message=s.message,
            reason=s.reason, source=s.source, healthy=s.healthy) for s in stream.statuses]
        task.state = stream.latest_state or TaskState.TASK_STAGING
        if stream.closed:
            executor.completed.append(task)
        else:
            executor.launched[task.task_id] = task
    return executor

async def _watch_recovered(ex: Executors, executor: Executor,
                           container: containerizer.Container) -> None:
    await container.wait()
    ex._terminated(executor, None, how="exited (status unknown: started by an earlier"
                     " run of the agent)")

def _reregistration_timeout(ex: Executors, executor: Executor) -> None:
    if executor.state is not ExecutorState.REGISTERING:
        return
    timeout = ex.agent.recovery.executor_reregistration_timeout
    log.warning("recovered executor %s did not re-subscribe within %gs",
                executor.executor_id, timeout)
    executor.termination = Termination(
        TaskState.TASK_FAILED, Reason.REASON_EXECUTOR_REREGISTRATION_TIMEOUT,
        f"Executor did not re-register within {timeout:g}secs")
    ex._terminate(executor, "re-registration timeout")
