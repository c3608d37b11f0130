"""Re-attaching a restarted agent to the executors of its earlier run.

:func:`recover` puts the checkpointed frameworks, executors and tasks (read by
:mod:`mesonb.agent.recovery`) back into the agent's book, through the executors'
:class:`~.lifecycle.Lifecycle`.
A live executor gets ``executor_reregistration_timeout`` to re-subscribe (or, with
``--recover=cleanup``, is killed); a dead one ends its unfinished tasks; processes left in
sandboxes that no checkpoint names are killed as orphans.
"""

from __future__ import annotations

import logging
import signal

from mesonb.protocol.mesos import TaskStatus
from mesonb.protocol.states import TaskState

from . import containerizer, launcher, paths, recovery
from .book import Executor, Framework, Task
from .lifecycle import Lifecycle
from .status_updates import StatusUpdateManager
from .task_fsm import TaskPhase

log = logging.getLogger("mesonb.agent.executors")


def recover(lifecycle: Lifecycle, updates: StatusUpdateManager, state: recovery.AgentCheckpoint,
            cleanup: bool = False) -> None:
    """Put an earlier run's checkpointed frameworks, executors and tasks back in the
    book (see :mod:`mesonb.agent.recovery`), their update streams in ``updates``. Live
    executors wait for their SUBSCRIBE (or, with ``cleanup``, are killed); dead ones end
    their unfinished tasks (the container machine's ``recovered`` event)."""
    book = lifecycle.book
    known: set[int] = set()
    lifecycle.recovering = True
    try:
        for fw in state.frameworks:
            framework = Framework(info=fw.info)
            book.frameworks[framework.framework_id] = framework
            for ckpt in fw.executors:
                executor = _recover_executor(updates, ckpt)
                if executor is None:
                    continue
                lifecycle.adopt(framework, executor)
                container = None
                if ckpt.pid is not None and not state.rebooted:
                    container = containerizer.recover(ckpt.container_id, ckpt.pid,
                                                      ckpt.directory)
                if container is not None:
                    known.add(container.pid)
                    adopt = lifecycle.host.adopt_task
                    if ckpt.in_agent and adopt is not None and not cleanup:
                        container = adopt(executor, container)
                    executor.container = container
                why = "the machine rebooted" if state.rebooted else "its process is gone"
                lifecycle.recovered(executor, alive=container is not None, cleanup=cleanup,
                                    why=why)
            if not framework.executors:
                book.frameworks.pop(framework.framework_id, None)
    finally:
        lifecycle.recovering = False
    sandboxes = paths.sandboxes_root(lifecycle.host.config.work_dir)
    for pid in containerizer.orphans(sandboxes, known):
        log.warning("killing orphan executor pid %d (not recovered)", pid)
        containerizer.kill_session(pid, signal.SIGKILL)


def _recover_executor(updates: StatusUpdateManager,
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
                        token=ckpt.token, command_executor=command_executor)
    for item in ckpt.tasks:
        task = Task(info=item.info, framework_id=ckpt.framework_id,
                    executor_id=executor.executor_id)
        stream = updates.recover(ckpt.framework_id, task.task_id, item.records)
        task.statuses = [TaskStatus(
            task_id=s.task_id, state=s.state, timestamp=s.timestamp, message=s.message,
            reason=s.reason, source=s.source, healthy=s.healthy) for s in stream.statuses]
        task.state = stream.latest_state or TaskState.TASK_STAGING
        if stream.closed:
            task.phase = TaskPhase.COMPLETED
            executor.completed.append(task)
        else:
            task.phase = TaskPhase.LAUNCHED  # it was given to the executor before
            executor.launched[task.task_id] = task
    return executor
