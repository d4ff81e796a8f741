#!/usr/bin/env bash
# Set up, then run the test suite (ruff lint and format checks run inside it: test/test_lint.py).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
bash "$MIDAS_ROOT/scripts/setup.sh"
cd "$MIDAS_ROOT"
exec .venv/bin/python -m pytest "$@"
