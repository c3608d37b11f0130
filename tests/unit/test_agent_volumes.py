"""The agent's side of reservations and persistent volumes, on a real work dir: static
reservations from the flag, the checkpoint, volume directories and the sandbox links."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from mesonb.agent.volumes import SYMLINK, AgentVolumes, volume_dir
from mesonb.protocol.reservations import Reservation, Volume, flag_to_json, parse_flag
from mesonb.protocol.resources import Resources


def vol(pid: str, size: float = 10, path: str = "data") -> dict[str, Any]:
    return {"name": "disk", "type": "SCALAR", "scalar": {"value": size},
            "reservations": [{"type": "DYNAMIC", "role": "db", "principal": "ops"}],
            "disk": {"persistence": {"id": pid}, "volume": {"container_path": path,
                                                              "mode": "RW"}}}


def test_the_flag_keeps_static_reservations_apart():
    total, static = parse_flag("cpus:2;cpus(db):1;mem(db):64;mem:100;disk(*):5")
    assert total == Resources({"cpus": 3, "mem": 164, "disk": 5})
    assert static == {"db": Resources({"cpus": 1, "mem": 64})}
    items = flag_to_json("cpus:2;cpus(db):1")
    assert {(r["name"], r["role"], r["scalar"]["value"]) for r in items} == {
        ("cpus", "*", 2.0), ("cpus", "db", 1.0)}


def test_checkpoint_creates_and_destroys_volume_directories_and_survives_a_restart(tmp_path):
    volumes = AgentVolumes(tmp_path, "cpus:2;disk:100;cpus(db):1")
    volumes.checkpoint([vol("a"), vol("b")])
    where = volume_dir(tmp_path, Volume("a", Reservation("db"), 10, "data"))
    assert where.is_dir() and where == tmp_path / "volumes" / "roles" / "db" / "a"
    (where / "x").write_text("1")
    again = AgentVolumes(tmp_path, "cpus:2;disk:100;cpus(db):1")  # an agent restart
    assert set(again.checkpointed.volumes) == {"a", "b"}
    reported = again.resources_json(Resources({"cpus": 3, "disk": 100}))
    disks = [r for r in reported if r["name"] == "disk"]
    assert sorted(r.get("disk", {}).get("persistence", {}).get("id", "") for r in disks) == [
        "", "a", "b"]
    assert next(r for r in disks if not r.get("disk"))["scalar"]["value"] == 80
    assert any(r.get("reservations") == [{"type": "STATIC", "role": "db"}] for r in reported)
    state = again.state_json(Resources({"cpus": 3, "disk": 100}))
    assert state["reserved_resources"] == {"db": {"cpus": 1.0, "mem": 0.0, "disk": 20.0,
                                                  "gpus": 0.0}}
    assert state["unreserved_resources"]["disk"] == 80
    again.checkpoint([vol("a")])  # "b" destroyed
    assert not (tmp_path / "volumes" / "roles" / "db" / "b").exists()
    assert (where / "x").read_text() == "1"


def test_a_task_finds_its_volume_linked_at_its_container_path(tmp_path):
    volumes = AgentVolumes(tmp_path / "work", None)
    volumes.mode = SYMLINK  # not root (as root: bind mounts, test_agent_volume_mounts.py)
    volumes.checkpoint([vol("a", path="deep/data")])
    sandbox = tmp_path / "sandbox"
    assert volumes.invalid([vol("nope")]) == "Persistent volume 'nope' does not exist on this agent"
    assert volumes.invalid([vol("a", path="deep/data")]) is None
    volumes.mount(sandbox, [vol("a", path="deep/data")])
    link = sandbox / "deep" / "data"
    assert link.is_symlink() and (link / ".").resolve() == volume_dir(
        tmp_path / "work", Volume("a", Reservation("db"), 10, "deep/data")).resolve()
    (link / "f").write_text("hi")
    volumes.mount(sandbox, [vol("a", path="deep/data")])  # again: unchanged
    assert (link / "f").read_text() == "hi"
    import shutil
    shutil.rmtree(sandbox)  # the sandbox GC: the link goes, the data stays
    assert (tmp_path / "work" / "volumes" / "roles" / "db" / "a" / "f").read_text() == "hi"
    assert os.path.isdir(tmp_path / "work" / "volumes")
    assert not Path(sandbox).exists()


def test_a_volume_on_statically_reserved_disk_is_carved_out_of_it(tmp_path):
    volumes = AgentVolumes(tmp_path, "cpus:1;disk(db):100")
    static_vol = {**vol("s", 40), "reservations": [{"type": "STATIC", "role": "db"}]}
    volumes.checkpoint([static_vol])
    reported = volumes.resources_json(Resources({"cpus": 1, "disk": 100}))
    disks = sorted((r["scalar"]["value"], bool(r.get("disk"))) for r in reported
                   if r["name"] == "disk")
    assert disks == [(40.0, True), (60.0, False)]


def _invalid_as_split_reads_it(volumes: AgentVolumes, items: Any) -> str | None:
    """AgentVolumes.invalid as it was before its one-parse path: split() every time."""
    from mesonb.protocol.errors import BadRequest
    from mesonb.protocol.reservations import split

    try:
        wanted = split(items or [], "task.resources")[1].volumes
    except BadRequest as exc:
        return exc.message
    missing = [v for v in wanted if v not in volumes.checkpointed.volumes]
    return f"Persistent volume {missing[0]!r} does not exist on this agent" if missing else None


def test_a_plain_task_list_is_parsed_once_for_the_check_and_the_task(tmp_path):
    volumes = AgentVolumes(tmp_path, None)
    volumes.checkpoint([vol("a")])
    cpus = {"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.5}, "role": "*"}
    lists: list[Any] = [
        [cpus, {"name": "mem", "type": "SCALAR", "scalar": {"value": 64}}],
        [cpus, {"name": "ports", "type": "RANGES", "ranges": {"range": [{"begin": 1,
                                                                          "end": 9}]}}],
        [], None,
        [{"name": "cpus", "type": "SCALAR", "scalar": {"value": -1}}],  # refused
        [{"name": "cpus", "type": "SCALAR"}],  # refused
        [cpus, "not an object"],
        [cpus, vol("a")], [cpus, vol("gone")],  # volumes: split's path
        [{**cpus, "role": "db"}],
        [{**cpus, "allocation_info": {"role": "*"}}],
    ]
    for items in lists:
        assert volumes.invalid(items) == _invalid_as_split_reads_it(volumes, items), items
        parsed = volumes.take_parsed(items)
        if parsed is not None:
            assert parsed == Resources.from_json(items)  # what Task.resources would read
            assert volumes.take_parsed(items) is None  # handed out once
    same_again = [dict(cpus)]
    assert volumes.invalid(same_again) is None
    assert volumes.take_parsed([dict(cpus)]) is None  # an equal list is not this list
    assert volumes.take_parsed(same_again) == Resources({"cpus": 0.5})
