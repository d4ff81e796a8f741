#!/usr/bin/env bash
# The main job: set up, then replay a simulated sensor bag with dropouts through the live node graph
# (player, adapters, staleness-aware sync, MIDAS fusion) and score the skeleton stream.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
bash "$MIDAS_ROOT/scripts/setup.sh"
cd "$MIDAS_ROOT"
exec .venv/bin/python -m midas_ros.demo "$@"
