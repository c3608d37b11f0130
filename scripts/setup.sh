#!/usr/bin/env bash
# Set up a development environment in .venv: Python packages (and, with --test, what the
# test suite needs: pymesos for the compatibility tests). Safe to run again.
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
else
    .venv/bin/python -m pip install -q --disable-pip-version-check -e .
fi
