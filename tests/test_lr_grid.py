"""Yun and Cho 2023 Sec. 4.1 as a suite setting: every method at every learning rate of a grid, each rate's runs
trimmed of the largest and smallest score, the best trimmed mean reported (``lr_grid``)."""
import copy
import csv
import re

import pytest
import yaml

from mtlbench.cli import main
from mtlbench.config import SuiteError, load_suite
from mtlbench.metrics import acc_mtl
from mtlbench.runner.store import write_json_atomic
from conftest import TINY_SUITE

GRID = {"rates": [1e-3, 1e-4], "trim": 1}


def grid_suite(tmp_path, **changes):
    suite = {**copy.deepcopy(TINY_SUITE), "seeds": [0, 1, 2], "methods": ["stl", "supervised", "amtl"],
             "lr_grid": GRID, **changes}
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(suite))
    return path


def test_every_method_trains_at_every_rate_and_a_rate_equal_to_the_suites_keeps_its_job_id(tmp_path):
    suite = load_suite(grid_suite(tmp_path))
    assert len(suite.jobs) == 3 * 2 * 3
    rates = {(job.method, job.config["train"]["optimizer"]["lr"]) for job in suite.jobs}
    assert rates == {(m, r) for m in ("stl", "supervised", "amtl") for r in GRID["rates"]}
    plain = load_suite(grid_suite(tmp_path, lr_grid=None))  # the suite's own lr is 1e-4, Adam's default
    at_default = {job.id for job in suite.jobs if job.config["train"]["optimizer"]["lr"] == 1e-4}
    assert at_default == {job.id for job in plain.jobs}
    for job in suite.jobs:  # AMTL's potentials come from the STL runs at its own rate
        if job.method == "amtl":
            stl = [j for j in suite.jobs if j.id in job.needs]
            assert {j.config["train"]["optimizer"]["lr"] for j in stl} == {job.config["train"]["optimizer"]["lr"]}
    assert {job.label for job in suite.jobs} == {"onelabel lr=0.001", "onelabel lr=0.0001"}


@pytest.mark.parametrize("grid, message", [
    ({"rates": [1e-3], "trim": 2}, r"lr_grid.trim: 2 runs left out at each end of 3 seeds leave none"),
    ({"rates": [1e-3], "score": "seg/nope"}, r"lr_grid.score: 'seg/nope' is neither acc_mtl nor"),
    ({"rates": [1e-3, 1e-3]}, r"distinct positive learning rates"),
])
def test_a_grid_that_cannot_decide_is_refused_naming_the_field(tmp_path, grid, message):
    with pytest.raises(SuiteError, match=message):
        load_suite(grid_suite(tmp_path, lr_grid=grid))


DIRECTIONS = {"seg": {"miou": True}, "depth": {"abs_err": False}}


def run(method, seed, lr, miou, abs_err=0.5):
    metrics = {"seg": {"miou": miou}, "depth": {"abs_err": abs_err}}
    return {"schema": 1, "job_id": f"{method}-{lr}-{seed}", "suite": "demo", "dataset": "synthrooms", "scenario": "onelabel",
            "method": method, "seed": seed, "config": {"train": {"optimizer": {"name": "adam", "lr": lr}}},
            "test": metrics, "val": metrics, "primary": {"seg": "miou", "depth": "abs_err"},
            "directions": DIRECTIONS, "device": "test CPU"}


def write_results(root, runs, index_runs=None):
    for r in runs:
        (root / "demo" / r["job_id"]).mkdir(parents=True, exist_ok=True)
        write_json_atomic(root / "demo" / r["job_id"] / "result.json", r)
    index = {r["job_id"]: [r["dataset"], r["scenario"], r["method"], r["seed"]] for r in index_runs or runs}
    write_json_atomic(root / "demo" / "suite.json", {
        "name": "demo", "path": "suites/demo.yaml", "methods": ["supervised", "mtpsl"], "scenarios": ["onelabel"],
        "jobs": list(index), "index": index, "leaderboard": {"baseline": "supervised", "acc_mtl": True},
        "lr_grid": {"rates": [1e-3, 1e-4], "trim": 1, "score": "acc_mtl", "split": "val"}})
    return root


def grid_runs():
    """mtpsl: at 1e-3 one lucky seed (0.9) lifts the plain mean above 1e-4's, but trimmed, 1e-4 wins."""
    runs = []
    for seed, (fast, slow) in enumerate([(0.20, 0.30), (0.21, 0.31), (0.22, 0.32), (0.90, 0.33)]):
        runs += [run("mtpsl", seed, 1e-3, fast), run("mtpsl", seed, 1e-4, slow),
                 run("supervised", seed, 1e-3, 0.25 + 0.01 * seed), run("supervised", seed, 1e-4, 0.2)]
    return runs


def test_the_rate_with_the_best_trimmed_mean_is_reported_over_its_kept_runs(tmp_path):
    root = write_results(tmp_path / "results", grid_runs())
    out = tmp_path / "board" / "demo"
    assert main(["leaderboard", "demo", "--results", str(root), "--out", str(out)]) == 0
    grid = {(r["method"], float(r["lr"])): r for r in csv.DictReader(out.with_name("demo-grid.csv").open())}
    score = lambda miou: acc_mtl({"seg": {"miou": miou}, "depth": {"abs_err": 0.5}}, DIRECTIONS,  # noqa: E731
                                 {"seg": ["miou"], "depth": ["abs_err"]})
    assert float(grid["mtpsl", 1e-3]["score"]) == pytest.approx((score(0.21) + score(0.22)) / 2, abs=1e-6)
    assert float(grid["mtpsl", 1e-4]["score"]) == pytest.approx((score(0.31) + score(0.32)) / 2, abs=1e-6)
    assert grid["mtpsl", 1e-4]["chosen"] == "True" and grid["supervised", 1e-3]["chosen"] == "True"
    rows = {r["method"]: r for r in csv.DictReader(out.with_suffix(".csv").open())}
    assert float(rows["mtpsl"]["seg/miou/mean"]) == pytest.approx(0.315)  # seeds 1 and 2 of 1e-4
    assert int(rows["mtpsl"]["seeds"]) == 2
    text = out.with_suffix(".md").read_text()
    assert "## Learning-rate grid" in text and re.search(r"\| mtpsl \| [0-9.]+ \| \*\*[0-9.]+\*\* \|", text)


def test_a_rate_with_a_run_missing_picks_no_rate_and_says_so(tmp_path, capsys):
    runs = grid_runs()
    done = [r for r in runs if r["job_id"] != "mtpsl-0.0001-3"]
    root = write_results(tmp_path / "results", done, index_runs=runs)
    out = tmp_path / "board" / "demo"
    assert main(["leaderboard", "demo", "--results", str(root), "--out", str(out)]) == 0
    assert "1 job(s) of the suite have no result (failed or not run), their rows are marked: mtpsl-0.0001-3" \
        in capsys.readouterr().err
    text = out.with_suffix(".md").read_text()
    assert "— (3/4 runs)" in text
    assert "mtpsl" not in {r["method"] for r in csv.DictReader(out.with_suffix(".csv").open())}
