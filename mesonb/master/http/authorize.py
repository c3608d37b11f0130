"""What an authenticated caller may do on the master's scheduler and operator APIs.

Mesos's rules (src/master/master.cpp, src/master/http.cpp), with its words:

- SUBSCRIBE: a framework whose caller authenticated as a principal must name that same
  principal in its ``FrameworkInfo`` (or none, and it is given the caller's); each of its
  roles must pass ``register_frameworks``.
- Every other scheduler call acts on the caller's own framework only: a framework
  registered by principal P is driven only by P (the cluster secret, which speaks for the
  cluster's operator, may drive any).
- ACCEPT with LAUNCH or LAUNCH_GROUP: each task's user must pass ``run_tasks``; that is
  checked per task where it launches (:meth:`mesonb.master.launch.Launcher.unauthorized`),
  a refused task getting TASK_ERROR with REASON_TASK_UNAUTHORIZED as in Mesos.
- Operator TEARDOWN: ``teardown_frameworks`` on the framework's principal;
  UPDATE_WEIGHTS: ``update_weights`` on each role; MARK_AGENT_GONE: ``mark_agents_gone``.

Each check raises :class:`~mesonb.protocol.errors.Forbidden` (403) with the reason; nothing
is done before it passes.
"""

from __future__ import annotations

from mesonb.http.base import Security
from mesonb.master.master import Master
from mesonb.protocol.errors import Forbidden
from mesonb.protocol.mesos import FrameworkInfo
from mesonb.protocol.operator import Call as OperatorCall
from mesonb.protocol.operator import CallType as OperatorCallType
from mesonb.protocol.scheduler import Call, CallType
from mesonb.security.acls import Action


def subscribe(security: Security, principal: str | None, info: FrameworkInfo) -> None:
    """Check a SUBSCRIBE; give an unnamed framework its caller's principal."""
    if principal is not None:
        if info.principal is None:
            info.principal = principal
        elif info.principal != principal:
            raise Forbidden(f"Framework principal '{info.principal}' does not match "
                            f"authenticated principal '{principal}'")
    acting = principal if principal is not None else info.principal
    for role in info.role_list or ["*"]:
        security.authorize(Action.REGISTER_FRAMEWORK, acting, role)


def scheduler_call(security: Security, principal: str | None, master: Master,
                   call: Call) -> None:
    """Check a non-SUBSCRIBE scheduler call against the caller's framework and the ACLs."""
    framework = master.book.frameworks.get(call.framework_id or "")
    if framework is None:
        return  # the call itself answers that the framework is unknown
    info = framework.info
    if principal is not None and info.principal != principal:
        raise Forbidden(f"Principal '{principal}' may not act on framework "
                        f"'{call.framework_id}' of principal '{info.principal or ''}'")
    if call.type is CallType.UPDATE_FRAMEWORK and call.update_framework is not None:
        subscribe(security, principal, call.update_framework.framework_info)


def operator_call(security: Security, principal: str | None, master: Master,
                  call: OperatorCall) -> None:
    """Check the operator calls that change the cluster."""
    if call.type is OperatorCallType.TEARDOWN and call.teardown is not None:
        framework = master.book.frameworks.get(call.teardown.framework_id)
        owner = framework.info.principal if framework is not None else None
        security.authorize(Action.TEARDOWN_FRAMEWORK, principal, owner)
    elif call.type is OperatorCallType.UPDATE_WEIGHTS and call.update_weights is not None:
        for info in call.update_weights.weight_infos or ():
            security.authorize(Action.UPDATE_WEIGHT, principal, (info.role or "").strip())
    elif call.type is OperatorCallType.MARK_AGENT_GONE and call.mark_agent_gone is not None:
        security.authorize(Action.MARK_AGENT_GONE, principal, call.mark_agent_gone.agent_id)
