"""TLS between every mesonb part: a real master and agent (processes) serving HTTPS with
certificates from a CA this test makes, the agent's link to the master over wss, and the
client (``Cluster``) verifying them; refusals for a client that does not trust the CA,
for plaintext on a TLS port, and for a missing client certificate when one is required."""

from __future__ import annotations

import asyncio
import http.client
import socket
import ssl
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from mesonb import tls
from mesonb.http.client import Connection
from mesonb.security.certs import Bundle, make_bundle
from mesonb.testing.processes import Daemon, ProcessCluster, get_json, wait_for

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    return make_bundle(tmp_path_factory.mktemp("tls"))


def server_env(bundle: Bundle, require_client_cert: bool = False) -> dict[str, str]:
    return tls.TlsSettings(cert=bundle.cert, key=bundle.key, ca=bundle.ca,
                           require_client_cert=require_client_cert).env()


@pytest.fixture
def trust(bundle: Bundle) -> Iterator[tls.TlsSettings]:
    """This test process speaks TLS, trusts the CA and has a certificate (for its blob
    server, and for servers that require client certificates)."""
    settings = tls.TlsSettings(ca=bundle.ca, cert=bundle.cert, key=bundle.key)
    previous = tls.configure(settings)
    try:
        yield settings
    finally:
        tls.configure(previous)


@pytest.fixture
def master(tmp_path: Path, bundle: Bundle, request: pytest.FixtureRequest) -> Iterator[Daemon]:
    require = getattr(request, "param", False)
    daemon = Daemon(["master", "--port", "0", "--work-dir", str(tmp_path / "master")],
                    tmp_path / "master.log", server_env(bundle, require))
    try:
        daemon.wait_listening()
        yield daemon
    finally:
        daemon.stop()


def test_a_cluster_runs_a_call_and_a_command_over_tls(tmp_path: Path, bundle: Bundle,
                                                     trust: tls.TlsSettings) -> None:
    from mesonb import Cluster

    with ProcessCluster(tmp_path, agents=1, env=server_env(bundle)) as processes:
        assert processes.url.startswith("https://")
        assert processes.agents[0].scheme == "https"
        # the agent registered over its wss:// link (it verified the master's certificate)
        (agent,) = processes.wait_agents(1)
        assert agent["active"]
        with Cluster(processes.address) as cluster:
            assert cluster.submit(abs, -3, cpus=0.1, mem="64MiB").result(timeout=60) == 3
            big = b"x" * (256 * 1024)  # over INLINE_MAX: fetched from the client's blob server
            assert cluster.submit(len, big, cpus=0.1, mem="64MiB").result(timeout=60) == len(big)
            done = cluster.run("echo over-tls", cpus=0.1, mem="64MiB").result(timeout=60)
            assert "over-tls" in done.stdout
        state = processes.state()
        assert any(f["name"] == "mesonb-functions" for f in
                   state["frameworks"] + state["completed_frameworks"])


def test_a_client_that_does_not_trust_the_ca_is_refused(master: Daemon, tmp_path: Path,
                                                        trust: tls.TlsSettings) -> None:
    assert master.url.startswith("https://")
    assert get_json(master.url + "/version")["version"]  # trusting the CA: served
    with pytest.raises(urllib.error.URLError) as refused:  # the system's CAs only
        urllib.request.urlopen(master.url + "/version", timeout=5,
                               context=ssl.create_default_context())
    assert isinstance(refused.value.reason, ssl.SSLCertVerificationError)
    # mesonb's own client, trusting another CA: refused before a byte of the call is sent
    other = make_bundle(tmp_path / "other")
    tls.configure(tls.TlsSettings(ca=other.ca))

    async def call() -> None:
        conn = Connection.to(master.url)
        try:
            await conn.request("GET", "/version")
        finally:
            conn.close()

    with pytest.raises(ssl.SSLCertVerificationError):
        asyncio.run(call())


def test_plaintext_to_a_tls_port_fails_cleanly(master: Daemon,
                                               trust: tls.TlsSettings) -> None:
    assert master.host is not None and master.port is not None
    plain = http.client.HTTPConnection(master.host, master.port, timeout=5)
    with pytest.raises((http.client.HTTPException, ConnectionError, socket.timeout)):
        plain.request("GET", "/version")
        plain.getresponse()
    plain.close()
    # the master is unharmed: it still answers over TLS, and logged no traceback
    with urllib.request.urlopen(master.url + "/version", timeout=5,
                                context=tls.client_context()) as answer:
        assert answer.status == 200
    assert master.proc.poll() is None
    assert "Traceback" not in master.output()


@pytest.mark.parametrize("master", [True], indirect=True)
def test_client_certificates_are_enforced_when_required(master: Daemon, bundle: Bundle,
                                                        trust: tls.TlsSettings) -> None:
    # with the client certificate (trust's settings carry it): served
    with urllib.request.urlopen(master.url + "/version", timeout=5,
                                context=tls.client_context()) as answer:
        assert answer.status == 200
    # trusting the CA but presenting no certificate: the handshake is refused
    no_cert = ssl.create_default_context(cafile=str(bundle.ca))
    with (pytest.raises((ssl.SSLError, ConnectionError, urllib.error.URLError)),
          urllib.request.urlopen(master.url + "/version", timeout=5, context=no_cert) as answer):
        answer.read()
    assert master.proc.poll() is None


def test_tls_settings_are_checked_and_read_from_mesos_names(bundle: Bundle) -> None:
    with pytest.raises(tls.TlsError, match="go together"):
        tls.TlsSettings(cert=bundle.cert)
    with pytest.raises(tls.TlsError, match="needs --ssl-ca"):
        tls.TlsSettings(cert=bundle.cert, key=bundle.key, require_client_cert=True)
    with pytest.raises(tls.TlsError, match="no such file"):
        tls.TlsSettings(ca=bundle.ca.parent / "missing.pem")
    mesos = tls.TlsSettings.from_env({
        "LIBPROCESS_SSL_ENABLED": "true", "LIBPROCESS_SSL_CERT_FILE": str(bundle.cert),
        "LIBPROCESS_SSL_KEY_FILE": str(bundle.key), "LIBPROCESS_SSL_CA_FILE": str(bundle.ca),
        "LIBPROCESS_SSL_REQUIRE_CERT": "true", "LIBPROCESS_SSL_VERIFY_CERT": "false"})
    assert (mesos.cert, mesos.key, mesos.ca) == (bundle.cert, bundle.key, bundle.ca)
    assert mesos.require_client_cert and not mesos.verify and mesos.on
    assert not tls.TlsSettings.from_env({}).on
    # a round trip through the environment children inherit
    assert tls.TlsSettings.from_env(mesos.env()) == tls.TlsSettings(
        cert=bundle.cert.resolve(), key=bundle.key.resolve(), ca=bundle.ca.resolve(),
        verify=False, require_client_cert=True, enabled=True)


def test_a_daemon_given_a_bad_tls_flag_exits_with_the_reason(tmp_path: Path,
                                                            bundle: Bundle) -> None:
    daemon = Daemon(["master", "--port", "0", "--ssl-cert", str(bundle.cert)],
                    tmp_path / "master.log", {})
    try:
        assert daemon.proc.wait(20) == 2
    finally:
        daemon.stop()
    assert "--ssl-cert and --ssl-key go together" in daemon.output()


def test_the_marathon_server_serves_https_and_registers_over_tls(master: Daemon, tmp_path: Path,
                                                                bundle: Bundle,
                                                                trust: tls.TlsSettings) -> None:
    marathon = Daemon(["marathon", "--master", master.address, "--port", "0",
                       "--work-dir", str(tmp_path / "marathon")], tmp_path / "marathon.log",
                      server_env(bundle))
    try:
        marathon.wait_listening()
        assert marathon.scheme == "https"
        info = get_json(marathon.url + "/v2/info")
        assert info["name"] == "marathon"
        # it subscribed to the TLS master as a framework (its driver verified the master)
        wait_for(lambda: any(f["name"] == "marathon" for f in
                             get_json(master.url + "/master/state")["frameworks"]), 20,
                 what="marathon registered with the master")
    finally:
        marathon.stop()


def test_a_dataflow_job_shuffles_between_executors_over_tls(tmp_path: Path, bundle: Bundle,
                                                            trust: tls.TlsSettings) -> None:
    """The dataflow framework's own sockets (the driver's control socket, the executors'
    shuffle servers) speak TLS when the cluster does: a plaintext peer is refused."""
    import operator
    import socket
    import ssl

    from mesonb import Cluster

    with ProcessCluster(tmp_path, agents=2, env=server_env(bundle),
                        agent_resources="cpus:1;mem:1024;disk:1024") as processes, \
            Cluster(processes.address) as cluster:
        flow = cluster.dataflow(executors=2, cpus=0.5, mem="256MiB", progress=False)
        try:
            pool = flow.pool
            wait_for(lambda: len(pool.alive()) == 2, timeout=60,
                     what="an executor on each agent")
            pairs = flow.parallelize(range(1000), 8).map(lambda x: (x % 10, 1))
            assert dict(pairs.reduce_by_key(operator.add, 4).collect()) == {
                k: 100 for k in range(10)}  # reducers fetch map outputs from both executors
            assert pool.tls
            for address in [pool.address, *(e.address for e in pool.alive())]:
                host, port = address.rsplit(":", 1)
                with socket.create_connection((host, int(port)), timeout=10) as plain:
                    plain.sendall(b"\x00\x00\x00\x04abcd")  # a token frame, in plaintext
                    try:
                        answer = plain.recv(64)
                    except ConnectionResetError:
                        answer = b""
                    assert answer == b"" or answer.startswith(b"\x15")  # closed, or a TLS alert
                with socket.create_connection((host, int(port)), timeout=10) as raw, \
                        tls.client_context().wrap_socket(raw, server_hostname=host) as secure:
                    assert secure.version() is not None  # a TLS handshake with our CA
                    assert isinstance(secure, ssl.SSLSocket)
        finally:
            flow.close()
