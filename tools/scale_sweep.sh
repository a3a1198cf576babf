#!/usr/bin/env bash
# The scale sweep of docs/committed.md ("Where the papers' effects appear"): suites/synthrooms_scale.yaml at each
# point, one factor changed at a time, one job per CPU core, then the figure, table and per-seed CSV under
# leaderboards/. RESULTS=DIR sets the results folder (default: results); finished points are skipped on a rerun.
set -euo pipefail
cd "$(dirname "$0")/.."
RESULTS=${RESULTS:-results}
point() { .venv/bin/mtlbench run suites/synthrooms_scale.yaml --workers "$(nproc)" --results "$RESULTS" "$@"; }
point                                                             # 160 images, 20 epochs: the epochs axis
point --set name=synthrooms_scale-images480 --set dataset.train=480 --set train.epochs=7   # 3x the images
point --set name=synthrooms_scale-width025 --set model.width=0.25 --set train.epochs=10     # 2x the width
point --set name=synthrooms_scale-96x128 --set dataset.height=96 --set dataset.width=128 --set train.epochs=10  # 2x the pixels
.venv/bin/python tools/scale_figure.py "$RESULTS" leaderboards/synthrooms_scale
