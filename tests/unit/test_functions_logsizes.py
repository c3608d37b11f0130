"""logsizes.file_size reads what os.stat reads, through descriptors kept open."""

from __future__ import annotations

import os
from pathlib import Path

from mesonb.frameworks.functions import logsizes
from mesonb.frameworks.functions.logsizes import file_size


def test_sizes_follow_the_files_as_they_grow(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(logsizes, "KEPT_OPEN", 3)
    for path in list(logsizes._open_files):  # what earlier tests left open
        logsizes.forget(path)
    paths = [str(tmp_path / f"worker-{i}.stdout") for i in range(5)]
    assert file_size(paths[0]) == 0  # not there yet
    written = dict.fromkeys(paths, 0)
    for round_ in range(4):
        for i, path in enumerate(paths):
            with open(path, "ab") as f:  # appended to, as a worker's fd 1 is
                f.write(b"x" * (i + round_ + 1))
            written[path] += i + round_ + 1
            assert file_size(path) == written[path] == os.stat(path).st_size
            assert len(logsizes._open_files) <= 3  # the oldest are closed
    for path in paths:
        assert file_size(path) == os.stat(path).st_size
        logsizes.forget(path)
    assert not any(p in logsizes._open_files for p in paths)


def test_a_descriptor_closed_or_reused_by_a_call_is_opened_again(tmp_path: Path) -> None:
    # a worker measures its own log files: the call it ran may have closed any descriptor
    path, other = str(tmp_path / "worker-1.stdout"), str(tmp_path / "other")
    Path(path).write_bytes(b"12345")
    Path(other).write_bytes(b"x" * 100)
    assert file_size(path) == 5
    fd = logsizes._open_files[path][0]
    os.close(fd)
    assert file_size(path) == 5 == os.stat(path).st_size  # closed: opened again
    fd = logsizes._open_files[path][0]
    os.close(fd)
    reused = os.open(other, os.O_RDONLY)  # the lowest free number: the one just closed
    try:
        assert reused == fd
        assert file_size(path) == 5  # not the size of the file now behind that number
        os.fstat(reused)  # and that file, the call's, is left open
    finally:
        os.close(reused)
        logsizes.forget(path)
