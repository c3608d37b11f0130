"""The executor's RecordReader gives the records (and errors) recordio.Decoder gives, however
the stream is cut into chunks."""

from __future__ import annotations

import random

import pytest

from mesonb.executor.records import RecordReader
from mesonb.protocol.errors import BadRequest
from mesonb.protocol.recordio import Decoder, encode


def cuts(data: bytes, rng: random.Random) -> list[bytes]:
    points = sorted(rng.sample(range(1, len(data)), rng.randint(0, min(12, len(data) - 1))))
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


def run(reader, chunks: list[bytes]) -> list[bytes]:
    out: list[bytes] = []
    try:
        for chunk in chunks:
            for record in reader.feed(chunk):
                out.append(record)
    except BadRequest as exc:
        return [*out, f"error: {exc}".encode()]  # (the records before it, then the error)
    return out


@pytest.mark.parametrize("seed", range(40))
def test_records_match_the_decoder(seed: int) -> None:
    rng = random.Random(seed)
    records = [rng.randbytes(rng.choice([0, 1, 9, 10, 200, 3000])) + b"\n"[:rng.randint(0, 1)]
               for _ in range(rng.randint(1, 8))]
    data = b"".join(encode(r) for r in records)
    if seed % 5 == 4:  # a bad header somewhere
        data += rng.choice([b"12x\n", b"1" * 30, b"-1\n"])
    chunks = cuts(data, rng)
    expected = run(Decoder(), chunks)
    assert run(RecordReader(), chunks) == expected
    if not expected or not expected[-1].startswith(b"error: "):
        assert expected == records


def test_a_record_too_large_is_refused_as_the_decoder_refuses_it() -> None:
    data = b"%d\n" % (Decoder.MAX_RECORD + 1)
    assert run(RecordReader(), [data]) == run(Decoder(), [data])
