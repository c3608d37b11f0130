"""Clean cells and readable output: no library logs unless asked, a killed task's logs
are its own output, re-running ``Cluster.local()`` is safe, reprs a person reads, remote
tracebacks as short as Dask's."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import traceback
import warnings

import pytest

from mesonb import Cluster
from mesonb.client import CommandResult, Logs

pytestmark = pytest.mark.slow

SCRIPT = textwrap.dedent("""
    import time, urllib.error, urllib.request
    import mesonb
    from mesonb import Cluster
    {configure}
    c = Cluster.local()
    assert c.submit(abs, -2).result(30) == 2
    f = c.run("echo started; sleep 30")
    deadline = time.monotonic() + 60
    while "started" not in f.logs().stdout and time.monotonic() < deadline:
        time.sleep(0.05)  # the command runs: it printed its first line
    f.cancel()
    logs = f.logs()
    print("STDOUT", repr(logs.stdout))
    print("STDERR", repr(logs.stderr))
    try:  # the master URL a dashboard shows, opened at its root
        urllib.request.urlopen(f"http://{{c.address}}/nothing-here")
    except urllib.error.HTTPError as e:
        print("HTTP", e.code)
    c.close()
""")


def run_script(configure: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", SCRIPT.format(configure=configure)],
                          capture_output=True, text=True, timeout=120)


def test_no_library_logs_reach_the_users_stderr_unless_asked():
    quiet = run_script()
    assert quiet.returncode == 0, quiet.stderr
    assert "HTTP 404" in quiet.stdout
    assert quiet.stderr == ""  # nothing red in the cell: no tornado, no mesonb records
    assert "STDOUT 'started\\n'" in quiet.stdout  # the killed task's own output
    assert "STDERR ''" in quiet.stdout  # not the daemon's
    # a root handler, as a kernel often has (any logging.warning() call installs one):
    # the embedded daemons' answers to bad requests still print nothing
    rooted = run_script('import logging; logging.warning("the user\'s own")')
    assert rooted.returncode == 0, rooted.stderr
    assert rooted.stderr == "WARNING:root:the user's own\n", rooted.stderr
    loud = run_script('mesonb.config(log_level="INFO")')
    assert loud.returncode == 0, loud.stderr
    assert " INFO mesonb." in loud.stderr  # asked for: shown


@pytest.fixture(scope="module")
def cluster():
    c = Cluster.local()
    try:
        yield c
    finally:
        c.close()


def test_a_second_local_cluster_warns_and_reuse_returns_the_first(cluster):
    assert Cluster.local(reuse=True) is cluster
    with pytest.warns(RuntimeWarning, match="already running in this process") as record:
        second = Cluster.local()
    try:
        assert repr(cluster) in str(record[0].message)  # names the first
        assert second is not cluster
    finally:
        second.close()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert Cluster.local(reuse=True) is cluster  # the first is still open


def test_reprs_a_person_reads(cluster):
    result = CommandResult(0, "total 12\ndrwx a\n", "")
    assert repr(result).splitlines() == [
        "CommandResult(returncode=0): stdout 16 B, stderr 0 B", "--- stdout ---",
        "total 12", "drwx a"]
    html = result._repr_html_()
    assert "<pre" in html and "total 12\ndrwx a" in html and "exit 0" in html
    logs = Logs("hello\n", "oops\n")
    assert repr(logs).splitlines()[0] == "Logs: stdout 6 B, stderr 5 B"
    assert "oops" in logs._repr_html_()
    text = repr(cluster)
    assert text.startswith("<mesonb.Cluster local 127.0.0.1:") and "1 agent (cpus " in text
    assert "GiB" in text or "MiB" in text
    fut = cluster.submit(abs, -1)
    fut.result(30)
    assert repr(fut) == f"<mesonb.Future abs {fut.key} finished>"
    agents = cluster.agents()
    name = f"{agents.hostname.iloc[0]}:{agents.port.iloc[0]}"
    slow = cluster.submit(__import__("time").sleep, 5)
    try:
        from client_support import wait_for

        wait_for(lambda: slow.status().startswith("running"), "the call to run")
        assert slow.status().startswith(f"running on {name} for ")  # hostname:port
    finally:
        slow.cancel()


def boom(x):
    return {"a": 1}[x]


def shown_lines(exc: BaseException) -> int:
    return len("".join(traceback.format_exception(exc)).splitlines())


def test_a_remote_traceback_is_no_longer_than_dasks(cluster):
    distributed = pytest.importorskip("distributed")
    fut = cluster.submit(boom, "b")
    with pytest.raises(KeyError) as mine:
        fut.result(30)
    text = "".join(traceback.format_exception(mine.value))
    assert "in boom" in text and "return {\"a\": 1}[x]" in text  # the user's frame
    assert "mesonb/frameworks" not in text and "concurrent/futures" not in text
    with distributed.Client(n_workers=1, threads_per_worker=1, processes=False,
                            dashboard_address=None) as client, pytest.raises(KeyError) as theirs:
        client.submit(boom, "b").result(30)
    assert shown_lines(mine.value) <= shown_lines(theirs.value), (text, "".join(
        traceback.format_exception(theirs.value)))
