"""``/v2/deployments``: the running deployments; DELETE cancels (``force``: no rollback)."""

from __future__ import annotations

from .base import MarathonHandler


class DeploymentsHandler(MarathonHandler):
    async def get(self) -> None:
        self.write_json([d.to_json() for d in self.service.core.deployments.values()])


class DeploymentHandler(MarathonHandler):
    async def delete(self, deployment_id: str) -> None:
        result = await self.service.ops.cancel_deployment(deployment_id, self.flag("force"))
        if result is None:
            self.set_status(202)
            self.finish()
            return
        self.write_json(result)
