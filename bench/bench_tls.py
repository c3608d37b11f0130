"""What TLS costs a no-op call: the operator's GET_HEALTH against a real master process,
plaintext and TLS side by side in one run.

Two master processes, one plain and one serving HTTPS with a certificate from a CA made
for the run. The client is mesonb's own (:class:`mesonb.http.client.Connection`, what
the drivers and ``Cluster`` use), verifying the master against the CA. Each mode sends
``--calls`` calls on one keep-alive connection (what a framework's driver does), the
modes interleaved in rounds so that load on the machine hits both alike; a second figure
opens a new connection per call, which pays the TLS handshake every time. Goal: a no-op
call with TLS costs <= 1.3x the plaintext one.

    python bench/bench_tls.py [--calls 2000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mesonb import tls
from mesonb.http.client import Connection
from mesonb.security.certs import make_bundle
from mesonb.testing.processes import Daemon

CALL = b'{"type":"GET_HEALTH"}'
HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}


async def keep_alive(url: str, calls: int) -> list[float]:
    conn = Connection.to(url)
    try:
        await conn.request("POST", "/api/v1", CALL, HEADERS)  # connect (and handshake)
        out = []
        for _ in range(calls):
            start = time.perf_counter()
            answer = await conn.request("POST", "/api/v1", CALL, HEADERS)
            out.append(time.perf_counter() - start)
            assert answer.status == 200, answer.body
        return out
    finally:
        conn.close()


async def new_connections(url: str, calls: int) -> list[float]:
    out = []
    for _ in range(calls):
        conn = Connection.to(url)
        start = time.perf_counter()
        answer = await conn.request("POST", "/api/v1", CALL, HEADERS)
        out.append(time.perf_counter() - start)
        conn.close()
        assert answer.status == 200, answer.body
    return out


def median_us(samples: list[float]) -> float:
    return statistics.median(samples) * 1e6


async def measure(plain: str, secure: str, calls: int, rounds: int) -> None:
    results: dict[str, list[float]] = {k: [] for k in ("plain", "tls", "plain-new", "tls-new")}
    for _ in range(rounds):
        results["plain"] += await keep_alive(plain, calls)
        results["tls"] += await keep_alive(secure, calls)
        results["plain-new"] += await new_connections(plain, max(1, calls // 10))
        results["tls-new"] += await new_connections(secure, max(1, calls // 10))
    ka = median_us(results["tls"]) / median_us(results["plain"])
    new = median_us(results["tls-new"]) / median_us(results["plain-new"])
    print(f"no-op call (GET_HEALTH), median of {calls * rounds} on a keep-alive connection:")
    print(f"  plaintext {median_us(results['plain']):8.0f} us   TLS "
          f"{median_us(results['tls']):8.0f} us   ratio {ka:.2f}x  (goal <= 1.3x)")
    print(f"with a new connection per call, median of {len(results['tls-new'])}:")
    print(f"  plaintext {median_us(results['plain-new']):8.0f} us   TLS "
          f"{median_us(results['tls-new']):8.0f} us   ratio {new:.2f}x  (the handshake)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-tls-") as tmp:
        folder = Path(tmp)
        bundle = make_bundle(folder / "tls")
        on = tls.TlsSettings(cert=bundle.cert, key=bundle.key, ca=bundle.ca)
        daemons = [Daemon(["master", "--port", "0", "--work-dir", str(folder / name),
                           "--log-level", "WARNING"], folder / f"{name}.log", env)
                   for name, env in (("plain", {}), ("tls", on.env()))]
        try:
            for daemon in daemons:
                daemon.wait_listening()
            tls.configure(tls.TlsSettings(ca=bundle.ca), export=False)
            asyncio.run(measure(f"http://{daemons[0].address}", f"https://{daemons[1].address}",
                                args.calls, args.rounds))
        finally:
            for daemon in daemons:
                daemon.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
