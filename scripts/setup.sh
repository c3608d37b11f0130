#!/usr/bin/env bash
# Set up a development environment in .venv: Python packages (and, with --test, what the
# test suite needs: pymesos for the compatibility tests, and a real ZooKeeper server, the
# Debian package `zookeeper`, for the high-availability tests). Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "mesonb needs Python 3.11 or newer (found: $("$PYTHON" --version 2>&1))" >&2
    exit 1
fi
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null
if [ "${1:-}" = "--test" ]; then
    .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'
    .venv/bin/python tests/compat/install_pymesos.py
    # ZooKeeper (mesonb.testing.zookeeper runs its jar with java directly).
    if [ ! -f /usr/share/java/zookeeper.jar ] && [ -z "${ZOOKEEPER_JAR:-}" ] \
            && command -v apt-get >/dev/null; then
        SUDO=""
        if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null; then SUDO="sudo"; fi
        $SUDO apt-get install -y -q zookeeper >/dev/null \
            || { $SUDO apt-get update -q >/dev/null && $SUDO apt-get install -y -q zookeeper >/dev/null; } \
            || echo "could not install zookeeper; the ZooKeeper tests will be skipped" >&2
    fi
else
    .venv/bin/python -m pip install -q --disable-pip-version-check -e .
fi
