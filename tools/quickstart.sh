#!/usr/bin/env bash
# Install (if needed), run the quickstart suite and render its leaderboard to results/quickstart/leaderboard/,
# which git ignores: the committed leaderboards/quickstart.* change only with
# `mtlbench leaderboard quickstart --out leaderboards/quickstart`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install.sh
.venv/bin/mtlbench run suites/quickstart.yaml "$@"
.venv/bin/mtlbench leaderboard quickstart
