"""``/v2/queue``: what waits for offers and why offers did not fit; ``DELETE
/v2/queue/{id}/delay`` resets an app's launch backoff."""

from __future__ import annotations

from ..model import normalize_path
from ..operations import ApiError
from ..views import queue_json
from .base import MarathonHandler


class QueueHandler(MarathonHandler):
    async def get(self) -> None:
        embed = "lastUnusedOffers" in ",".join(self.get_query_arguments("embed"))
        self.write_json({"queue": queue_json(self.service.core, embed)})


class QueueDelayHandler(MarathonHandler):
    async def delete(self, app_id: str) -> None:
        core = self.service.core
        state = core.apps.get(normalize_path(app_id))
        if state is None or state.deleting or state.definition.pod is not None:
            raise ApiError(404, f"Application {normalize_path(app_id)} not found in tasks queue.")
        state.backoff.reset()
        await core.converge(state.definition.id)
        self.set_status(204)
        self.finish()
