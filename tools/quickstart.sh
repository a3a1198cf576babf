#!/usr/bin/env bash
# Install (if needed), run the quickstart suite and render its leaderboard to results/quickstart/leaderboard/,
# which git ignores: the committed leaderboards/quickstart.* change only with
# `mtlbench leaderboard quickstart --out leaderboards/quickstart`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install.sh
# one job per core, one thread each: small convolutions scale poorly over threads (2 jobs on 2 cores finish the
# suite in 3/4 of the time one 2-thread job at a time takes; docs/benchmarks.md)
.venv/bin/mtlbench run suites/quickstart.yaml --workers "$(nproc)" "$@"
.venv/bin/mtlbench leaderboard quickstart
