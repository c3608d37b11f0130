"""A worker reads its pipe's frames a chunk at a time: the bodies written are the bodies
read, however the bytes arrive (one frame at a time, many in one write, a frame larger
than the pipe's buffer cut anywhere)."""

from __future__ import annotations

import os
import random
import threading

import pytest

from mesonb.frameworks.functions.worker_child import FRAME_LEN, FrameReader, write_frame


@pytest.mark.parametrize("seed", range(8))
def test_frames_read_are_the_frames_written(seed: int) -> None:
    rng = random.Random(seed)
    bodies = [rng.randbytes(rng.choice([1, 3, 100, 5000, 200_000])) for _ in range(12)]
    stream = b"".join(FRAME_LEN.pack(len(b)) + b for b in bodies)
    rfd, wfd = os.pipe()

    def writer() -> None:
        try:
            if seed % 2:  # as the parent writes: one frame a write
                for body in bodies:
                    write_frame(wfd, body)
            else:  # cut anywhere
                pos = 0
                while pos < len(stream):
                    step = rng.randint(1, 70_000)
                    view = memoryview(stream)[pos:pos + step]
                    while view:
                        view = view[os.write(wfd, view):]
                    pos += step
        finally:
            os.close(wfd)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        frames = FrameReader(rfd)
        assert [frames.next() for _ in bodies] == bodies
        assert not frames.buffered()
        with pytest.raises(EOFError):
            frames.next()
    finally:
        thread.join(10)
        os.close(rfd)


def test_frames_sent_together_are_read_at_once() -> None:
    rfd, wfd = os.pipe()
    try:
        for body in (b"one", b"two"):
            write_frame(wfd, body)
        frames = FrameReader(rfd)
        assert frames.next() == b"one"
        assert frames.buffered()  # the second came with the first: no wait on the pipe
        assert frames.next() == b"two"
        assert not frames.buffered()
    finally:
        os.close(rfd)
        os.close(wfd)
