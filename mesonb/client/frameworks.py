"""The frameworks a :class:`~.cluster.Cluster` runs for its user besides the functions
framework: one driven by hand from a notebook (:meth:`ClusterFrameworks.framework`),
Marathon-style apps (:attr:`ClusterFrameworks.apps`) and a Spark-like dataflow context
(:meth:`ClusterFrameworks.dataflow`), each a Mesos framework of its own on the same master,
closed with the cluster; and the link to the master's web UI.
"""

from __future__ import annotations

import asyncio
import os
import urllib.parse
from collections.abc import Callable
from typing import Any

from mesonb.discovery import is_zk
from mesonb.frameworks.driver import master_url

from .calls import executor_env


class ClusterFrameworks:
    """The part of :class:`~.cluster.Cluster` that starts other frameworks for its user."""

    # set by Cluster
    address: str
    secret: str | None
    _lt: Any
    _closers: list[Callable[[], Any]]
    _sandboxes: Any
    _offer_holders: list[Any]

    def framework(self, name: str = "notebook", *, role: str = "*", **info: Any) -> Any:
        """A framework of your own, driven from the notebook: see offers, launch on one,
        decline, revive, suppress (:class:`~mesonb.client.interactive.NotebookFramework`).
        The offers it holds go back to the master whenever this client's own calls wait
        for resources, so ``submit`` keeps working while it (or its offers widget) is
        open."""
        from .interactive import NotebookFramework

        host: Any = self  # the Cluster this is part of (its loop and its closing)
        framework = NotebookFramework(host, name, role=role, sandboxes=self._sandboxes,
                                      executor_env=executor_env(), **info)
        self._offer_holders.append(framework)
        return framework

    @property
    def apps(self) -> Any:
        """Long-running apps: a Marathon framework run by this client (started on first
        use; its v2 REST API at ``cluster.apps.url``). Deploy from a dict or JSON file,
        scale, restart, destroy, ``list()`` as a DataFrame; a deployment's ``progress()``
        is a widget (:mod:`mesonb.frameworks.marathon.apps_client`)."""
        apps = getattr(self, "_apps", None)
        if apps is None:
            from mesonb.frameworks.marathon.apps_client import Apps

            apps = self._apps = Apps(self.address, self._lt.run, secret=self.secret)
            self._closers.insert(0, apps.close)
        return apps

    def dataflow(self, name: str = "mesonb-dataflow", *, executors: int = 2,
                 cpus: float = 1.0, mem: str | float = "1GB", **options: Any) -> Any:
        """A Spark-like dataflow context on this cluster's master: a framework of its own
        with ``executors`` long-running executors of ``cpus``/``mem`` each
        (:class:`~mesonb.frameworks.dataflow.Dataflow`; closed with this cluster too)."""
        from mesonb.frameworks.dataflow import Dataflow

        flow = Dataflow(self.address, name=name, executors=executors, cpus=cpus, mem=mem,
                        secret=self.secret, **options)

        async def close() -> None:
            await asyncio.to_thread(flow.close)

        self._closers.append(close)
        return flow

    @property
    def dashboard_link(self) -> str:
        """The master's web UI. Under JupyterHub (``JUPYTERHUB_SERVICE_PREFIX`` set) the
        link goes through the mesonb jupyter-server extension's proxy, behind the Hub's
        login, as dask's ``dashboard_link`` does: ``/user/<name>/mesonb/proxy/<host:port>/``.
        Otherwise, with a secret (every local cluster has one), the link carries it as
        ``?token=``, as Jupyter's own links do: the page needs it to read the cluster, and
        it is no more exposed than the notebook that holds the cluster object.
        """
        address = self.address
        if is_zk(address):  # the leader ZooKeeper last named ("" until one is known)
            address = getattr(getattr(self, "_master", None), "_leader", None) or ""
            if not address:
                return ""
        prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX")
        if prefix:
            return f"{prefix.rstrip('/')}/mesonb/proxy/{address}/"
        link = master_url(address).rstrip("/") + "/"
        secret = getattr(self, "secret", None)
        return f"{link}?token={urllib.parse.quote(secret, safe='')}" if secret else link
