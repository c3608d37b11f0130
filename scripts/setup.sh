#!/usr/bin/env bash
# Set up a development environment in .venv: Python packages (and, with --test, what the
# test suite needs: pymesos for the compatibility tests, and a real ZooKeeper server, the
# Debian package `zookeeper`, for the high-availability tests). Safe to run again.
#
#   scripts/setup.sh              the package
#   scripts/setup.sh --test       the package, test dependencies and ZooKeeper
#   scripts/setup.sh --zookeeper  ZooKeeper only (after a first setup)
#
# Without ZooKeeper every high-availability test is skipped, so --test fails (exit 1) when
# it cannot be installed; set MESONB_SKIP_ZOOKEEPER=1 to go on without it deliberately.
set -euo pipefail
cd "$(dirname "$0")/.."

# ZooKeeper as the tests find it (mesonb.testing.zookeeper: java, and the jar of the Debian
# package or $ZOOKEEPER_JAR).
have_zookeeper() {
    .venv/bin/python -c 'import sys
from mesonb.testing.zookeeper import zookeeper_jar
sys.exit(zookeeper_jar() is None)' 2>/dev/null
}

ensure_zookeeper() {
    if have_zookeeper; then
        return 0
    fi
    if [ "${MESONB_SKIP_ZOOKEEPER:-}" = 1 ]; then
        echo "MESONB_SKIP_ZOOKEEPER=1: no ZooKeeper; the high-availability tests will be" \
             "skipped" >&2
        return 0
    fi
    local log
    log=$(mktemp)
    if command -v apt-get >/dev/null; then
        local sudo=()
        if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null; then sudo=(sudo -n); fi
        local apt=("${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get)
        { "${apt[@]}" install -y -q zookeeper \
            || { "${apt[@]}" update -q && "${apt[@]}" install -y -q zookeeper; }; } \
            >"$log" 2>&1 || true
    else
        echo "apt-get not found" >"$log"
    fi
    if ! have_zookeeper; then
        {
            echo "error: ZooKeeper could not be installed, and without it every"
            echo "high-availability test would be skipped. Install the Debian package"
            echo "'zookeeper' (it brings java), or set ZOOKEEPER_JAR to the server jar"
            echo "(java on PATH), or set MESONB_SKIP_ZOOKEEPER=1 to go on without it."
            echo "--- the installation said:"
            tail -n 20 "$log"
        } >&2
        rm -f "$log"
        exit 1
    fi
    rm -f "$log"
}

# Debian's chromium, which the web UI tests drive through Playwright (`playwright install`
# cannot download browsers here). Without it those tests are skipped, with a warning.
ensure_chromium() {
    if [ -x /usr/bin/chromium ] || command -v chromium >/dev/null; then
        return 0
    fi
    if command -v apt-get >/dev/null; then
        local sudo=()
        if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null; then sudo=(sudo -n); fi
        local apt=("${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get)
        { "${apt[@]}" install -y -q chromium \
            || { "${apt[@]}" update -q && "${apt[@]}" install -y -q chromium; }; } \
            >/dev/null 2>&1 || true
    fi
    if ! { [ -x /usr/bin/chromium ] || command -v chromium >/dev/null; }; then
        echo "warning: Debian's chromium could not be installed; the web UI tests" \
             "(tests/ui) will be skipped" >&2
    fi
}

if [ "${1:-}" = "--zookeeper" ]; then
    ensure_zookeeper
    exit 0
fi

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
    ensure_zookeeper
    ensure_chromium
else
    .venv/bin/python -m pip install -q --disable-pip-version-check -e .
fi
