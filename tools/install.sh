#!/usr/bin/env bash
# Install mtlbench into ./.venv (idempotent: a second call with unchanged requirements does nothing).
#   bash tools/install.sh          runtime dependencies
#   bash tools/install.sh --dev    plus the test dependencies
set -euo pipefail
cd "$(dirname "$0")/.."
extras=""
[ "${1:-}" = "--dev" ] && extras="[dev]"
python=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$python" -m venv .venv
stamp=".venv/.mtlbench-installed"
want="$(cat pyproject.toml constraints.txt | sha256sum | cut -c1-16)$extras"
if [ -f "$stamp" ] && grep -qxF -- "$want" "$stamp"; then
  echo "mtlbench: .venv is up to date"
  exit 0
fi
# torch/torchvision are pinned by constraints.txt; an unpinned torch would pull a different CUDA build.
.venv/bin/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".$extras"
echo "$want" >> "$stamp"
echo "mtlbench: installed into .venv"
