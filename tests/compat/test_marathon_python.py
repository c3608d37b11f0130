"""The unchanged PyPI client marathon-python 0.13.0 against ``mesonb marathon``.

A real master and agent (processes) run the framework's tasks; every one of the
client's 36 public methods is called and its parsed answer checked. The client's models
are strict (an unknown field raises TypeError in ``from_json``), so parsing at all is
half of each check.

One shim, for the interpreter and not the server: marathon-python 0.13.0's JSON encoders
use ``collections.Iterable``, gone since Python 3.10, so nested models (constraints,
health checks) could not be sent at all; the alias is restored before the client loads.
"""

from __future__ import annotations

import collections
import collections.abc
import threading
import time
from pathlib import Path

import pytest

from mesonb.testing.processes import Daemon, ProcessCluster, wait_for

if not hasattr(collections, "Iterable"):
    collections.Iterable = collections.abc.Iterable  # type: ignore[attr-defined]

marathon = pytest.importorskip("marathon")
from marathon import MarathonClient  # noqa: E402
from marathon.exceptions import ConflictError, NotFoundError  # noqa: E402
from marathon.models import (  # noqa: E402
    MarathonApp,
    MarathonConstraint,
    MarathonDeployment,
    MarathonGroup,
    MarathonInfo,
    MarathonQueueItem,
    MarathonTask,
)
from marathon.models.app import MarathonUpgradeStrategy  # noqa: E402
from marathon.models.events import MarathonDeploymentSuccess  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.compat]
SMALL = {"cpus": 0.01, "mem": 8}


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory):
    directory: Path = tmp_path_factory.mktemp("marathon-python")
    with ProcessCluster(directory, agents=1, agent_resources="cpus:8;mem:8192;disk:4096",
                        master_args=["--allocation-interval", "0.1"]) as cluster:
        daemon = Daemon(["marathon", "--master", cluster.address, "--port", "0",
                         "--work-dir", str(directory / "marathon")],
                        directory / "marathon.log")
        try:
            daemon.wait_listening()
            yield daemon
        finally:
            daemon.stop()


@pytest.fixture(scope="module")
def client(service: Daemon) -> MarathonClient:
    return MarathonClient(service.url, timeout=10)


def settled(client: MarathonClient, timeout: float = 20.0) -> None:
    wait_for(lambda: client.list_deployments() == [], timeout, what="deployments to finish")


def running(client: MarathonClient, app_id: str, count: int) -> list[MarathonTask]:
    def check() -> list[MarathonTask] | None:
        tasks = [t for t in client.list_tasks(app_id) if t.state == "TASK_RUNNING"]
        return tasks if len(tasks) == count else None

    return wait_for(check, 20, what=f"{count} running tasks of {app_id}")


def test_apps_versions_and_tasks(client: MarathonClient) -> None:
    app = MarathonApp(cmd="sleep 600", instances=2, **SMALL,
                      constraints=[MarathonConstraint("hostname", "MAX_PER", "5")],
                      upgrade_strategy=MarathonUpgradeStrategy(minimum_health_capacity=0.5,
                                                               maximum_over_capacity=0.5),
                      labels={"team": "a"})
    created = client.create_app("/compat/web", app)                     # create_app
    assert created.id == "/compat/web" and created.instances == 2
    assert created.constraints[0].operator == "MAX_PER"
    with pytest.raises(ConflictError):
        client.create_app("/compat/web", MarathonApp(cmd="sleep 1", **SMALL))
    settled(client)
    tasks = running(client, "/compat/web", 2)                            # list_tasks
    assert {t.app_id for t in tasks} == {"/compat/web"}
    listed = client.list_apps(embed_tasks=True, embed_counts=True,       # list_apps
                              embed_deployments=True, embed_readiness=True,
                              embed_last_task_failure=True, embed_failures=True,
                              embed_task_stats=True, label="team==a")
    assert [a.id for a in listed] == ["/compat/web"] and len(listed[0].tasks) == 2
    got = client.get_app("/compat/web", embed_tasks=True,               # get_app
                         embed_task_stats=True)
    assert got.tasks_running == 2 and got.task_stats is not None
    assert client.get_app(got.id).id == "/compat/web"  # "//compat/web": slashes collapse
    endpoints = client.list_endpoints()                                  # list_endpoints
    assert {e.app_id for e in endpoints} == {"/compat/web"}
    assert all(t.state == "TASK_RUNNING" for t in client.list_tasks())

    first_version = got.version
    update = client.update_app("/compat/web", MarathonApp(cmd="sleep 700", instances=2,
                                                          **SMALL))     # update_app
    assert update["deploymentId"] and update["version"] > first_version
    settled(client)
    assert client.get_app("/compat/web").cmd == "sleep 700"
    versions = client.list_versions("/compat/web")                      # list_versions
    assert first_version in versions and len(versions) >= 2
    old = client.get_version("/compat/web", first_version)              # get_version
    assert old.cmd == "sleep 600"
    rollback = client.rollback_app("/compat/web", first_version)        # rollback_app
    assert rollback["deploymentId"]
    settled(client)
    assert client.get_app("/compat/web").cmd == "sleep 600"

    scaled = client.scale_app("/compat/web", instances=3)               # scale_app
    assert scaled["deploymentId"]
    settled(client)
    tasks = running(client, "/compat/web", 3)
    restart = client.restart_app("/compat/web")                         # restart_app
    assert restart["deploymentId"]
    settled(client)
    after = running(client, "/compat/web", 3)
    assert not {t.id for t in after} & {t.id for t in tasks}

    killed = client.kill_task("/compat/web", after[0].id, scale=True)   # kill_task
    assert isinstance(killed, dict) and killed["deploymentId"]
    settled(client)
    assert client.get_app("/compat/web").instances == 2
    victim = running(client, "/compat/web", 2)[0]
    one = client.kill_task("/compat/web", victim.id)
    assert isinstance(one, MarathonTask) and one.id == victim.id
    replaced = running(client, "/compat/web", 2)
    assert client.kill_given_tasks([replaced[0].id], scale=True)        # kill_given_tasks
    settled(client)
    assert client.get_app("/compat/web").instances == 1
    gone = client.kill_tasks("/compat/web")                             # kill_tasks
    assert len(gone) == 1 and isinstance(gone[0], MarathonTask)
    running(client, "/compat/web", 1)

    multi = client.update_apps([MarathonApp(id="/compat/web", instances=1, **SMALL,
                                            cmd="sleep 600"),
                                MarathonApp(id="/compat/db", instances=1, **SMALL,
                                            cmd="sleep 600")])         # update_apps
    assert "deploymentId" in multi
    settled(client)
    assert {a.id for a in client.list_apps()} == {"/compat/web", "/compat/db"}
    assert client.delete_app("/compat/db")["deploymentId"]              # delete_app
    assert client.delete_app("/compat/web", force=True)["deploymentId"]
    settled(client)
    with pytest.raises(NotFoundError):
        client.get_app("/compat/web")


def test_groups(client: MarathonClient) -> None:
    group = MarathonGroup(id="/shop", apps=[MarathonApp(id="/shop/db", cmd="sleep 600",
                                                        instances=1, **SMALL)],
                          groups=[MarathonGroup(id="/shop/front", apps=[
                              MarathonApp(id="/shop/front/web", cmd="sleep 600", instances=1,
                                          dependencies=["/shop/db"], **SMALL)])])
    created = client.create_group(group)                                # create_group
    assert created["version"] and created["deploymentId"]
    settled(client)
    groups = client.list_groups()                                       # list_groups
    assert [g.id for g in groups] == ["/shop"]
    shop = client.get_group("/shop")                                    # get_group
    assert [a.id for a in shop.apps] == ["/shop/db"]
    assert shop.groups[0].apps[0].dependencies == ["/shop/db"]
    first = shop.version
    scaled = client.scale_group("/shop", 2)                             # scale_group
    assert scaled["deploymentId"]
    settled(client)
    assert client.get_app("/shop/db").instances == 2
    shop = client.get_group("/shop")
    shop.apps[0].instances = 1
    updated = client.update_group("/shop", shop)                        # update_group
    assert updated["deploymentId"]
    settled(client)
    assert client.get_app("/shop/db").instances == 1
    back = client.rollback_group("/shop", first)                        # rollback_group
    assert back["deploymentId"]
    settled(client)
    deleted = client.delete_group("/shop", force=True)                  # delete_group
    assert deleted["version"]
    settled(client)
    assert client.list_apps() == []


def test_deployments_queue_and_delay(client: MarathonClient) -> None:
    # an app the cluster cannot hold stays queued, its deployment running
    client.create_app("/huge", MarathonApp(cmd="sleep 600", instances=1, cpus=64, mem=8))
    deployments = client.list_deployments()                             # list_deployments
    assert len(deployments) == 1 and isinstance(deployments[0], MarathonDeployment)
    assert deployments[0].affected_apps == ["/huge"]

    def queued() -> list[MarathonQueueItem] | None:
        items = client.list_queue(embed_last_unused_offers=True)        # list_queue
        return items if items and items[0].processed_offers_summary[
            "processedOffersCount"] else None

    item = wait_for(queued, 20)[0]
    assert item.app.id == "/huge" and item.count == 1
    reasons = {r["reason"]: r["declined"] for r in
               item.processed_offers_summary["rejectSummaryLastOffers"]}
    assert reasons["InsufficientCpus"] >= 1
    client.reset_delay("/huge")                                         # reset_delay
    cancelled = client.delete_deployment(deployments[0].id)             # delete_deployment
    assert cancelled["deploymentId"]  # a rollback: the new app goes away
    settled(client)
    with pytest.raises(NotFoundError):
        client.get_app("/huge")
    client.create_app("/huge", MarathonApp(cmd="sleep 600", instances=1, cpus=64, mem=8))
    dep = client.list_deployments()[0]
    assert client.delete_deployment(dep.id, force=True) == {}
    wait_for(lambda: client.list_deployments() == [], 10)
    client.delete_app("/huge", force=True)
    settled(client)


def test_info_leader_ping_metrics_subscriptions(client: MarathonClient,
                                                service: Daemon) -> None:
    info = client.get_info()                                            # get_info
    assert isinstance(info, MarathonInfo) and info.elected
    assert info.marathon_config.failover_timeout == 604800
    assert info.marathon_config.checkpoint is True
    assert info.http_config.http_port == service.port
    assert client.get_leader() == {"leader": service.address}           # get_leader
    assert client.ping() == b"pong"                                     # ping
    metrics = client.get_metrics()                                      # get_metrics
    assert "gauges" in metrics and "counters" in metrics
    url = "http://127.0.0.1:9/callback"
    client.create_event_subscription(url)                               # create_event_sub.
    assert client.list_event_subscriptions() == [url]                   # list_event_sub.
    client.delete_event_subscription(url)                               # delete_event_sub.
    assert client.list_event_subscriptions() == []
    answer = client.delete_leader()                                     # delete_leader
    assert "abdicated" in answer["message"].lower()
    wait_for(lambda: client.get_info().elected, 20)


def test_event_stream(client: MarathonClient) -> None:
    seen: list[object] = []

    def listen() -> None:
        for event in client.event_stream(event_types=["deployment_success"]):  # event_stream
            seen.append(event)
            return

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    time.sleep(0.3)  # not synchronisation of the result: the stream must be open first
    client.create_app("/events", MarathonApp(cmd="sleep 600", instances=1, **SMALL))
    thread.join(20)
    assert seen and isinstance(seen[0], MarathonDeploymentSuccess)
    client.delete_app("/events", force=True)
    settled(client)
