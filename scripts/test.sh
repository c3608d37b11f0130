#!/usr/bin/env bash
# Set everything up and run the whole test suite (fast and slow tiers), then lint.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
.venv/bin/python -m pytest -q "$@"
.venv/bin/ruff check mesonb tests bench
# The type checker over mesonb/ (config in pyproject.toml [tool.mypy]); enabled by the lead
# after merging, once every engineer's files pass:
# .venv/bin/mypy mesonb
