"""A worker's descendants from the kernel's children lists are those the full /proc scan
finds (the executor's memory watch uses the first where the kernel has it)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from mesonb.frameworks.functions import proctree
from mesonb.testing.processes import wait_for

# a process with two children, one of which has a child of its own and a thread that
# starts one more (a child of a thread other than the main one)
TREE = """
import subprocess, sys, threading, time
kids = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])]
kids.append(subprocess.Popen([sys.executable, "-c",
    "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', "
    "'import time; time.sleep(60)']); time.sleep(60)"]))
threading.Thread(target=lambda: kids.append(subprocess.Popen(["sleep", "60"]))).start()
print("up", flush=True)
time.sleep(60)
"""


@pytest.mark.skipif(not proctree.available(), reason="no /proc/<pid>/task/<tid>/children")
def test_descendants_match_the_full_scan() -> None:
    root = subprocess.Popen([sys.executable, "-c", TREE], stdout=subprocess.PIPE,
                            start_new_session=True)
    try:
        assert root.stdout is not None and root.stdout.readline() == b"up\n"
        wait_for(lambda: len(proctree.descendants_in(root.pid, proctree.all_children())) == 4, 20)
        fast = proctree.descendants(root.pid)
        assert sorted(fast) == sorted(proctree.descendants_in(root.pid, proctree.all_children()))
        assert len(fast) == 4 and root.pid not in fast
        assert proctree.descendants(os.getpid())  # this test's own children: root's tree
        assert proctree.children(2**22 + 1) == []  # no such process
    finally:
        os.killpg(root.pid, 9)
        root.wait()
    wait_for(lambda: not proctree.descendants(root.pid), 10)
