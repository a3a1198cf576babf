#!/usr/bin/env bash
# Install (if needed), run the quickstart suite and render its leaderboard to leaderboards/quickstart.md.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install.sh
.venv/bin/mtlbench run suites/quickstart.yaml "$@"
.venv/bin/mtlbench leaderboard quickstart
