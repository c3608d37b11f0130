"""The files API's path checks: only files inside executor run directories are served."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mesonb.agent.files import SandboxPaths
from mesonb.http.files import file_entry, parse_range, read_range
from mesonb.protocol.errors import BadRequest, Forbidden, NotFound


@pytest.fixture
def layout(tmp_path: Path) -> tuple[SandboxPaths, Path]:
    run = tmp_path / "slaves/a1/frameworks/fw/executors/ex/runs/c1"
    run.mkdir(parents=True)
    (run / "stdout").write_text("hello world\n")
    (run / "sub").mkdir()
    (run.parent / "latest").symlink_to("c1")
    (tmp_path / "meta").mkdir()
    (tmp_path / "meta/secret").write_text("no")
    (tmp_path / "slaves/a1/frameworks/fw/framework-level").write_text("no")
    return SandboxPaths(tmp_path), run


def test_paths_inside_a_sandbox_resolve(layout: tuple[SandboxPaths, Path]) -> None:
    files, run = layout
    assert files.resolve(str(run / "stdout")) == run.resolve() / "stdout"
    assert files.resolve(str(run)) == run.resolve()
    assert files.resolve(str(run.parent / "latest" / "stdout")) == run.resolve() / "stdout"
    virtual = {"/frameworks/fw/executors/ex/runs/latest": run}
    assert files.resolve("/frameworks/fw/executors/ex/runs/latest/stdout", virtual) == (
        run.resolve() / "stdout")
    assert files.resolve("/frameworks/fw/executors/ex/runs/latest", virtual) == run.resolve()


@pytest.mark.parametrize("bad", [
    "/etc/passwd",
    "{run}/../../../../../../../meta/secret",
    "{run}/../c1/stdout",
    "{root}/meta/secret",
    "{root}/slaves/a1/frameworks/fw/framework-level",
    "{root}/slaves",
    "{root}/slaves/a1/frameworks/fw/executors/ex/runs",
])
def test_everything_else_is_forbidden(layout: tuple[SandboxPaths, Path], bad: str) -> None:
    files, run = layout
    root = run.parents[6]
    with pytest.raises(Forbidden):
        files.resolve(bad.format(run=run, root=root))


def test_symlinks_out_of_a_sandbox_are_forbidden(layout: tuple[SandboxPaths, Path]) -> None:
    files, run = layout
    os.symlink("/etc", run / "escape")
    with pytest.raises(Forbidden):
        files.resolve(str(run / "escape" / "passwd"))


def test_bad_and_missing_paths(layout: tuple[SandboxPaths, Path]) -> None:
    files, run = layout
    with pytest.raises(BadRequest):
        files.resolve(None)
    with pytest.raises(BadRequest):
        files.resolve("")
    with pytest.raises(BadRequest):
        files.resolve(f"{run}/std\0out")
    with pytest.raises(NotFound):
        files.resolve(str(run / "nope"))
    with pytest.raises(NotFound):
        files.resolve("relative/path")


def test_read_range_follows_mesos(layout: tuple[SandboxPaths, Path]) -> None:
    _, run = layout
    f = run / "stdout"
    assert read_range(f, -1, -1) == {"data": "", "offset": 12}
    assert read_range(f, 0, -1) == {"data": "hello world\n", "offset": 0}
    assert read_range(f, 6, 5) == {"data": "world", "offset": 6}
    assert read_range(f, 50, 5) == {"data": "", "offset": 12}
    with pytest.raises(BadRequest):
        read_range(f, -2, 1)
    with pytest.raises(BadRequest):
        read_range(f, 0, -5)
    with pytest.raises(BadRequest):
        read_range(run, 0, 1)


def test_file_entry_looks_like_ls(layout: tuple[SandboxPaths, Path]) -> None:
    _, run = layout
    entry = file_entry("/x/stdout", run / "stdout")
    assert entry["path"] == "/x/stdout"
    assert entry["size"] == 12
    assert entry["mode"].startswith("-rw")
    assert entry["nlink"] == 1
    assert isinstance(entry["uid"], str) and isinstance(entry["gid"], str)
    assert file_entry("/x/sub", run / "sub")["mode"].startswith("d")


def test_download_ranges() -> None:
    assert parse_range("bytes=2-5", 10) == (2, 5)
    assert parse_range("bytes=7-", 10) == (7, 9)
    assert parse_range("bytes=-3", 10) == (7, 9)
    assert parse_range("bytes=5-100", 10) == (5, 9)  # clipped to the file
    for unsatisfiable in ("bytes=10-", "bytes=5-4", "bytes=-0", "lines=1-2", "bytes=1-2,4-5",
                          "bytes=a-b"):
        assert parse_range(unsatisfiable, 10) is None, unsatisfiable
    assert parse_range("bytes=0-", 0) is None  # an empty file has no byte to send
