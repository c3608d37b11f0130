"""The HTML reprs of the client's objects: :mod:`mesonb.client.reprs`, under its former
name."""

from mesonb.client.reprs import (
           badge,
           cluster_html,
           future_html,
           offer_html,
           resources,
           table,
           task_html,
)

__all__ = ["badge", "cluster_html", "future_html", "offer_html", "resources", "table",
           "task_html"]
