"""Install pymesos 0.3.15 for the compatibility tests (test-only dependency).

pymesos needs ``http-parser``, whose C extension does not build on Python 3.11; its
pure-Python parser works. So: fetch http-parser's sdist, install only its Python files,
then install pymesos and its other dependencies without letting pip build http-parser.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
from pathlib import Path

HTTP_PARSER = "http-parser==0.9.0"
PYMESOS = "pymesos==0.3.15"


def pip(*args: str) -> None:
    subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", *args])


def install_http_parser() -> None:
    if importlib.util.find_spec("http_parser") is not None:
        return
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.check_call([sys.executable, "-m", "pip", "download", "-q", "--no-deps",
                               "--no-binary", ":all:", HTTP_PARSER, "-d", tmp])
        (sdist,) = Path(tmp).glob("http-parser-*.tar.gz")
        with tarfile.open(sdist) as tar:
            tar.extractall(tmp, filter="data")
        (package,) = Path(tmp).glob("http-parser-*/http_parser")
        target = Path(sysconfig.get_paths()["purelib"]) / "http_parser"
        target.mkdir(exist_ok=True)
        for source in package.glob("*.py"):
            shutil.copy(source, target / source.name)


def main() -> None:
    install_http_parser()
    if importlib.util.find_spec("pymesos") is None:
        pip("six", "addict", "kazoo")
        pip("--no-deps", PYMESOS)
    import pymesos
    from http_parser.http import HttpParser  # noqa: F401  - the pure-Python parser loads

    print("pymesos ready:", pymesos.__file__)


if __name__ == "__main__":
    main()
