"""A jupyter-server extension: mesonb clusters next to the notebooks, behind Jupyter's login.

Enabled by installing ``mesonb[notebook]`` (the package ships
``etc/jupyter/jupyter_server_config.d/mesonb.json``), or by hand with
``jupyter server extension enable mesonb.jupyter``. Under the server's base URL:

* ``GET /mesonb/clusters``: the clusters this server knows, as JSON;
  ``GET /mesonb/clusters/<id>``: one of them.
* ``PUT /mesonb/clusters[/<id>]``: start a local cluster (body ``{"agents": 2,
  "resources": "cpus:1;mem:1024"}``, all optional), or with ``{"address": "host:port"}``
  register a running master on this machine; answers the cluster.
  ``DELETE /mesonb/clusters/<id>``: stop it (or forget a registered one).
  The shape is dask-labextension's ``/dask/clusters``.
* ``/mesonb/proxy/<cluster>/<path>``: the cluster's master (web UI and APIs), HTTP and
  WebSocket, where ``<cluster>`` is an id above or a loopback ``host:port``
  (``127.0.0.1:5050``). Every request, WebSocket upgrades included, must carry Jupyter's
  credentials (403 otherwise); Jupyter's token and cookies are not passed to the master.
"""

from __future__ import annotations

from typing import Any


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "mesonb.jupyter"}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    from .handlers import setup_handlers

    setup_handlers(serverapp)


# jupyter_server < 2 name
load_jupyter_server_extension = _load_jupyter_server_extension
