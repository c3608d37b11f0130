"""Fixtures for every test tier.

``Cluster.local()`` is secure by default: it makes a secret, requires it on every API,
and keeps it in a file only this user can read (:mod:`mesonb.security.local_secret`).
mesonb's own clients find it there; the tests that call a local cluster's APIs with
``requests`` get it the same way, here: a request that carries no ``Authorization`` to
an address where this user runs a local cluster sends that cluster's secret, as a client
of the user's that read the user's file would. A test that means to call without
credentials names a cluster with its own ``secret=`` (never published) or sends an
``Authorization`` header of its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from mesonb.security import local_secret


@pytest.fixture(autouse=True)
def local_cluster_credentials(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    original = requests.Session.request

    def request(self: requests.Session, method: str, url: str, *args: Any,
                **kwargs: Any) -> requests.Response:
        headers = dict(kwargs.get("headers") or {})
        if not any(name.lower() == "authorization" for name in headers):
            headers.update(local_secret.headers_for(str(url)))
            kwargs["headers"] = headers
        return original(self, method, url, *args, **kwargs)

    monkeypatch.setattr(requests.Session, "request", request)
    yield
