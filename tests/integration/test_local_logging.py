"""An embedded cluster quiets its own daemons' request logging only: a user's tornado
application in the same process (a notebook serving something of its own) keeps its
``tornado.access`` / ``tornado.general`` records at the levels the user chose."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.slow

SCRIPT = textwrap.dedent("""
    import asyncio, logging, threading, urllib.error, urllib.request
    import tornado.httpserver, tornado.netutil, tornado.web
    from mesonb import Cluster

    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s")  # the user's

    class Teapot(tornado.web.RequestHandler):
        def get(self):
            raise tornado.web.HTTPError(418, "the user's app refused %s", "tea")

    def serve(ready):
        async def main():
            server = tornado.httpserver.HTTPServer(tornado.web.Application([(r"/", Teapot)]))
            sockets = tornado.netutil.bind_sockets(0, "127.0.0.1")
            server.add_sockets(sockets)
            ready.append(sockets[0].getsockname()[1])
            await asyncio.Event().wait()
        asyncio.run(main())

    ready = []
    threading.Thread(target=serve, args=(ready,), daemon=True).start()
    c = Cluster.local()
    levels = [logging.getLogger(n).level for n in ("tornado.access", "tornado.general")]
    print("LEVELS", levels)
    for url in (f"http://127.0.0.1:{ready[0]}/", f"http://{c.address}/nothing-here"):
        try:
            urllib.request.urlopen(url)
        except urllib.error.HTTPError as e:
            print("HTTP", e.code)
    c.close()
""")


def test_the_users_tornado_loggers_keep_their_records_and_levels():
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert "LEVELS [0, 0]" in out.stdout  # tornado's loggers untouched (NOTSET)
    assert "HTTP 418" in out.stdout and "HTTP 404" in out.stdout
    lines = out.stderr.splitlines()
    # the user's app: its access line and its HTTPError's message, as tornado logs them
    assert any(line.startswith("WARNING tornado.access: 418 GET /") for line in lines), lines
    assert any(line.startswith("WARNING tornado.general: 418 GET /")
               and "the user's app refused tea" in line for line in lines), lines
    # the embedded master's 404 to the same process: nothing in the user's output
    assert not any("nothing-here" in line for line in lines), lines
