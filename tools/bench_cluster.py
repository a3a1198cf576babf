"""Cluster-scale timings (issue 19's targets): submitting a 1,000-job suite to SLURM, and `mtlbench status` and
`mtlbench leaderboard` on a results folder of 5,000 finished jobs.

    python tools/bench_cluster.py OUTDIR [--submit]      (--submit needs SLURM: bash tools/slurm.sh start)

The finished jobs are synthetic result.json files of the documented schema (10 epochs of history each), written
under OUTDIR: no training. Prints one line per measurement.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import yaml

METHODS = ["stl", "supervised", "consistency", "sta", "ista"]


def suite_file(folder: Path, name: str, seeds: int) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump({
        "name": name, "dataset": {"name": "synthrooms", "height": 32, "width": 64, "train": 24, "val": 8, "test": 8},
        "tasks": ["seg", "depth", "normal"], "scenarios": ["onelabel"], "methods": METHODS,
        "seeds": list(range(seeds)), "model": {"name": "segnet", "width": 0.0625},
        "train": {"epochs": 10, "batch_size": 8, "eval_batch_size": 8, "device": "cpu"},
        "executor": {"name": "slurm", "time_min": 5}}))
    return path


def fake_results(path: Path, results: Path) -> int:
    """A finished result.json for every job of the suite."""
    from mtlbench.config import load_suite
    from mtlbench.runner import Store
    from mtlbench.runner.store import write_json_atomic

    suite = load_suite(path)
    store = Store(results)
    store.write_suite(suite.name, suite.summary())
    metrics = {"seg": {"miou": 0.3, "pixel_acc": 0.6, "loss": 1.2},
               "depth": {"abs_err": 0.8, "rel_err": 0.3, "rmse": 1.0, "delta1": 0.5, "loss": 0.8},
               "normal": {"mean_angle": 40.0, "median_angle": 35.0, "within_11.25": 0.2, "within_22.5": 0.4,
                          "within_30": 0.5, "within_11.25_per_image": 0.21, "loss": 0.3}}
    directions = {"seg": {"miou": True, "pixel_acc": True, "loss": False},
                  "depth": {"abs_err": False, "rel_err": False, "rmse": False, "delta1": True, "loss": False},
                  "normal": {"mean_angle": False, "median_angle": False, "within_11.25": True, "within_22.5": True,
                             "within_30": True, "within_11.25_per_image": True, "loss": False}}
    for job in suite.jobs:
        folder = store.job_dir(job)
        folder.mkdir(parents=True, exist_ok=True)
        jitter = {t: {m: v * (1 + 0.01 * (job.seed % 7)) for m, v in ms.items()} for t, ms in metrics.items()}
        write_json_atomic(folder / "result.json", {
            "schema": 1, "job_id": job.id, "suite": suite.name, "dataset": job.dataset, "scenario": job.scenario,
            "method": job.method, "seed": job.seed, "tasks": job.config["tasks"], "test": jitter, "val": jitter,
            "primary": {"seg": "miou", "depth": "abs_err", "normal": "mean_angle"}, "directions": directions,
            "history": [{"stage": "mtl", "epoch": e, "lr": 1e-4, "seconds": 1.0, "images_per_second": 100.0,
                         "val": jitter} for e in range(1, 11)],
            "labels_per_task": {"seg": 8, "depth": 8, "normal": 8}, "resumed_from_epoch": {"mtl": 0},
            "train_seconds": 10.0, "device": "synthetic", "torch": "-", "mtlbench": "-", "metrics_version": 2,
            "finished_at": "-", "config": job.config})
    return len(suite.jobs)


def timed(command: list[str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr}")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--submit", action="store_true", help="also time submitting 1,000 jobs to SLURM")
    args = parser.parse_args()
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    cli = [sys.executable, "-m", "mtlbench.cli"]

    big = suite_file(out, "store5k", 1000)
    results = out / "results"
    start = time.perf_counter()
    n = fake_results(big, results)
    print(f"wrote {n} finished results in {time.perf_counter() - start:.1f} s")
    print(f"status on {n} finished jobs: {timed([*cli, 'status', str(big), '--results', str(results)]):.2f} s")
    board = timed([*cli, "leaderboard", "store5k", "--results", str(results), "--out", str(out / "board")])
    print(f"leaderboard on {n} finished jobs: {board:.2f} s")
    if args.submit:
        submit = suite_file(out, "submit1k", 200)
        seconds = timed([*cli, "run", str(submit), "--results", str(out / "submitted"), "--detach", "--wandb",
                         "disabled"])
        print(f"submitting a 1000-job suite (run --executor slurm --detach): {seconds:.2f} s")
        subprocess.run([*cli, "cancel", str(submit), "--results", str(out / "submitted")], capture_output=True)


if __name__ == "__main__":
    main()
