#!/usr/bin/env bash
# Set everything up and run the whole test suite (fast and slow tiers), then lint.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
.venv/bin/python -m pytest -q "$@"
.venv/bin/ruff check mesonb tests bench
.venv/bin/mypy mesonb  # the type checker (config: pyproject.toml [tool.mypy])
