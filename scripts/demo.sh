#!/usr/bin/env bash
# Set everything up and run the main job: a local cluster (a master and two agents)
# running real tasks, then stop it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/mesonb demo "$@"
