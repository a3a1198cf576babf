"""Behaviour unchanged, bit for bit: train a tiny suite at a git ref and at the working tree (one thread each, so
that CPU kernels are deterministic) and compare every job's result.json, less what measures time or names the
run. Exit 0 when every number is identical.

    python tools/same_results.py REF [--suite tools/same_results.yaml] [--keep DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CIRCUMSTANTIAL = {"train_seconds", "eval_seconds", "data_seconds", "wall_seconds", "seconds", "images_per_second",
                  "finished_at", "runner", "commit", "mtlbench", "claim", "epoch_seconds", "evaluation_seconds",
                  "samples_per_second", "peak_memory_bytes", "data_wait_seconds", "data_wait_share", "data_source"}


def behaviour(value):
    """``value`` without the fields that differ between two runs of identical training."""
    if isinstance(value, dict):
        return {k: behaviour(v) for k, v in value.items() if k not in CIRCUMSTANTIAL}
    if isinstance(value, list):
        return [behaviour(v) for v in value]
    return value


def train(source: Path, suite: Path, results: Path) -> dict[str, dict]:
    env = {**os.environ, "PYTHONPATH": str(source), "OMP_NUM_THREADS": "1", "WANDB_SILENT": "true"}
    subprocess.run([sys.executable, "-m", "mtlbench.cli", "run", str(suite), "--results", str(results),
                    "--wandb", "disabled", "--workers", "1"], env=env, cwd=source, check=True,
                   stdout=subprocess.DEVNULL)
    return {path.parent.name: behaviour(json.loads(path.read_text()))
            for path in sorted(results.glob("*/*/result.json"))}


def differences(before: dict[str, dict], after: dict[str, dict]) -> list[str]:
    found = [f"{job}: only {'before' if job in before else 'after'}" for job in sorted(set(before) ^ set(after))]
    for job in sorted(set(before) & set(after)):
        keys = set(before[job]) | set(after[job])
        found += [f"{job}: {key}" for key in sorted(keys) if before[job].get(key) != after[job].get(key)]
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("ref")
    parser.add_argument("--suite", default=str(REPO / "tools" / "same_results.yaml"))
    parser.add_argument("--keep", help="train into this folder and keep it (default: a temporary one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(args.keep or scratch)
        worktree = root / "ref"
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", "-q", str(worktree), args.ref],
                       check=True)
        try:
            suite = Path(args.suite).resolve()
            before = train(worktree, suite, root / "before")
            after = train(REPO, suite, root / "after")
        finally:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(worktree)], check=True)
    found = differences(before, after)
    print(f"{len(before)} jobs at {args.ref}, {len(after)} in the working tree: "
          + ("every result identical" if not found else f"{len(found)} difference(s):\n  " + "\n  ".join(found)))
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
