#!/usr/bin/env bash
# Install (if needed) and run the test suite: the command README.md gives and CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install.sh --dev
exec .venv/bin/python -m pytest -q "$@"
