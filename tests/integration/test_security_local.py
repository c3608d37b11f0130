"""Secure by default: a local cluster makes a secret, requires it on every API, and keeps
it in a file only its user can read, where the user's own clients find it; with
``tls=True`` it also makes a CA and speaks HTTPS. Daemons bind to loopback unless told
otherwise and refuse any other address without authentication unless ``--insecure``."""

from __future__ import annotations

import asyncio
import os
import ssl
import stat
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from mesonb import Cluster, tls
from mesonb.agent.agent import UnsafeConfiguration, check_safety
from mesonb.config import AgentConfig, MasterConfig
from mesonb.master.daemon import MasterDaemon
from mesonb.security import local_secret
from mesonb.testing.processes import Daemon, wait_for

pytestmark = pytest.mark.slow
SMALL = {"cpus": 0.1, "mem": "64MiB"}


@pytest.fixture
def runtime_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    directory = tmp_path / "run"
    monkeypatch.setenv(local_secret.ENV, str(directory))
    yield directory


def status_without_credentials(url: str, context: ssl.SSLContext | None = None) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10, context=context) as answer:
            return answer.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_cluster_local_requires_its_generated_secret_kept_in_a_private_file(
        runtime_dir: Path) -> None:
    with Cluster.local(agents=1, resources="cpus:1;mem:1024;disk:100") as cluster:
        local = cluster.local
        agent_address = f"127.0.0.1:{local.agents[0].port}"
        assert cluster.secret and len(cluster.secret) >= 32
        # nothing answers without it: master and agent APIs, the UI's data
        for url in (local.url + "/master/state", local.url + "/api/v1/scheduler",
                    f"http://{agent_address}/state", local.url + "/metrics/snapshot"):
            assert status_without_credentials(url) == 401, url
        assert status_without_credentials(local.url + "/health") == 200
        # the secret is in a 0600 file in a 0700 directory of the user's, per address
        files = sorted(runtime_dir.iterdir())
        assert {f.name for f in files} == {f"port-{local.master.port}.json",
                                           f"port-{local.agents[0].port}.json"}
        assert stat.S_IMODE(runtime_dir.stat().st_mode) == 0o700
        for file in files:
            assert stat.S_IMODE(file.stat().st_mode) == 0o600
            assert file.stat().st_uid == os.getuid()
        found = local_secret.lookup(cluster.address)
        assert found is not None and found.secret == cluster.secret
        assert local_secret.lookup(f"localhost:{local.master.port}") == found
        # the user's own clients read it from there: Cluster("host:port"), mesonb commands
        with Cluster(cluster.address) as second:
            assert second.secret == cluster.secret
            assert second.submit(abs, -4, **SMALL).result(timeout=60) == 4
        done = subprocess.run(
            [sys.executable, "-m", "mesonb", "execute", "--master", cluster.address,
             "--name", "whoami", "--command", "echo from-the-cli", "--cpus", "0.1",
             "--mem", "32"], capture_output=True, text=True, timeout=120,
            env={**os.environ, local_secret.ENV: str(runtime_dir)})
        assert done.returncode == 0, done.stdout + done.stderr
        # a file readable by others is not trusted
        file = runtime_dir / f"port-{local.master.port}.json"
        file.chmod(0o644)
        assert local_secret.lookup(cluster.address) is None
        file.chmod(0o600)
    assert list(runtime_dir.iterdir()) == []  # withdrawn on close


def test_a_chosen_secret_is_not_written_anywhere(runtime_dir: Path) -> None:
    with Cluster.local(agents=1, secret="chosen-secret", warm=False) as cluster:
        assert status_without_credentials(cluster.local.url + "/master/state") == 401
        assert not runtime_dir.exists() or list(runtime_dir.iterdir()) == []


def test_mesonb_local_is_secure_by_default_and_serves_its_user(tmp_path: Path,
                                                               runtime_dir: Path) -> None:
    env = {local_secret.ENV: str(runtime_dir), "MESONB_SECRET": ""}
    daemon = Daemon(["local", "--port", "0", "--resources", "cpus:1;mem:512;disk:100",
                     "--log-level", "INFO"], tmp_path / "local.log", env)
    try:
        daemon.wait_listening()
        file = wait_for(lambda: next(runtime_dir.glob(f"port-{daemon.port}.json"), None), 20,
                        what="the secret file")
        assert stat.S_IMODE(file.stat().st_mode) == 0o600
        wait_for(lambda: "secret: in" in daemon.output(), 20, what="the secret's path printed")
        assert status_without_credentials(daemon.url + "/master/state") == 401
        with Cluster(daemon.address) as cluster:
            assert cluster.submit(abs, -6, **SMALL).result(timeout=60) == 6
    finally:
        daemon.stop()
    assert not file.exists()


def test_mesonb_local_tls_is_trusted_by_the_users_clients_through_its_file(
        tmp_path: Path, runtime_dir: Path) -> None:
    env = {local_secret.ENV: str(runtime_dir), "MESONB_SECRET": ""}
    daemon = Daemon(["local", "--tls", "--port", "0", "--resources", "cpus:1;mem:512;disk:100",
                     "--log-level", "INFO"], tmp_path / "local.log", env)
    previous = tls.settings()
    try:
        daemon.wait_listening()
        assert daemon.scheme == "https"
        wait_for(lambda: "CA: " in daemon.output(), 20, what="the CA's path printed")
        with pytest.raises(urllib.error.URLError):  # the system's CAs do not know it
            urllib.request.urlopen(daemon.url + "/health", timeout=5,
                                   context=ssl.create_default_context())
        with Cluster(daemon.address) as cluster:  # the secret and the CA, from the file
            assert tls.enabled() and tls.settings().ca == local_secret.lookup(
                daemon.address).ca
            assert cluster.submit(abs, -8, **SMALL).result(timeout=60) == 8
    finally:
        tls.configure(previous)
        daemon.stop()


def test_cluster_local_with_tls_makes_a_ca_and_speaks_https(runtime_dir: Path) -> None:
    with Cluster.local(agents=1, resources="cpus:1;mem:1024;disk:100", tls=True) as cluster:
        local = cluster.local
        assert local.url.startswith("https://")
        bundle = local.tls_bundle
        assert bundle.ca.parent.parent == runtime_dir
        assert stat.S_IMODE(bundle.key.stat().st_mode) == 0o600
        assert local_secret.lookup(cluster.address).ca == bundle.ca
        assert cluster.submit(abs, -7, **SMALL).result(timeout=60) == 7
        assert "tls" in cluster.run("echo tls", **SMALL).result(timeout=60).stdout
        # a client that does not trust the cluster's CA is refused
        with pytest.raises(urllib.error.URLError):
            urllib.request.urlopen(local.url + "/health", timeout=5,
                                   context=ssl.create_default_context())
        trusting = ssl.create_default_context(cafile=str(bundle.ca))
        assert status_without_credentials(local.url + "/master/state", trusting) == 401
    assert not tls.enabled()  # the process's TLS settings are restored
    assert not bundle.ca.exists()


def test_daemons_refuse_other_addresses_without_authentication_unless_insecure(
        tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"refusing to bind the master to 0\.0\.0\.0"):
        MasterDaemon(MasterConfig(ip="0.0.0.0", port=0, work_dir=tmp_path / "m"))
    with pytest.raises(UnsafeConfiguration, match=r"refusing to listen on 0\.0\.0\.0"):
        check_safety(AgentConfig(ip="0.0.0.0", port=0, work_dir=tmp_path / "a"))
    # with authentication, or with --insecure, they do
    MasterDaemon(MasterConfig(ip="0.0.0.0", port=0, secret="s", work_dir=tmp_path / "m"))
    check_safety(AgentConfig(ip="0.0.0.0", port=0, secret="s", work_dir=tmp_path / "a"))
    check_safety(AgentConfig(ip="0.0.0.0", port=0, insecure=True, work_dir=tmp_path / "a"))

    async def insecure_master() -> str:
        daemon = MasterDaemon(MasterConfig(ip="0.0.0.0", port=0, insecure=True,
                                           work_dir=tmp_path / "m2"))
        await daemon.start()
        try:
            return daemon.config.ip
        finally:
            await daemon.stop()

    assert asyncio.run(insecure_master()) == "0.0.0.0"
    # every daemon's default address is loopback
    assert MasterConfig().ip == AgentConfig().ip == "127.0.0.1"
    marathon = subprocess.run([sys.executable, "-m", "mesonb", "marathon", "--master",
                               "127.0.0.1:1", "--ip", "0.0.0.0"], capture_output=True,
                              text=True, timeout=60)
    assert marathon.returncode == 2 and "needs --secret" in marathon.stderr
    history_ui = subprocess.run([sys.executable, "-m", "mesonb", "ui", "--history",
                                 str(tmp_path), "--ip", "0.0.0.0", "--port", "0"],
                                capture_output=True, text=True, timeout=60,
                                env={**os.environ, "MESONB_SECRET": ""})
    assert history_ui.returncode == 2 and "refusing to serve" in history_ui.stderr
