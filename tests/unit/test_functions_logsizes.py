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
