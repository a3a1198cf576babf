"""A suite's ``sweep``: every scenario at each value of one of its parameters, and the leaderboard's curves."""
import csv

import pytest

from mtlbench.cli import main
from mtlbench.config import SuiteError, load_suite

FAST = {"epochs": 1, "batch_size": 8, "eval_batch_size": 8, "device": "cpu"}


def test_a_sweep_trains_each_value_keeps_the_listed_ids_and_draws_the_curves(write_suite, tmp_path):
    plain = load_suite(write_suite({"methods": ["stl", "supervised"], "seeds": [0, 1], "train": FAST}, "plain.yaml"))
    path = write_suite({"methods": ["stl", "supervised"], "seeds": [0, 1], "train": FAST,
                        "sweep": {"parameter": "unlabeled", "values": [0.0, 0.5]}, "leaderboard": {"baseline": "stl"}})
    suite = load_suite(path)
    assert sorted({job.scenario for job in suite.jobs}) == ["onelabel", "onelabel+50%unlabeled"]
    assert len(suite.jobs) == 8
    at_zero = {job.id for job in suite.jobs if job.scenario == "onelabel"}
    assert at_zero == {job.id for job in plain.jobs}  # the value the listed scenario has: the same jobs
    assert suite.summary()["sweep"]["at"]["onelabel+50%unlabeled"] == {"curve": "onelabel", "value": 0.5}

    results, out = tmp_path / "results", tmp_path / "board" / "tiny"
    assert main(["run", str(path), "--results", str(results), "--wandb", "disabled"]) == 0
    assert main(["leaderboard", "tiny", "--results", str(results), "--out", str(out)]) == 0
    assert (out.parent / "tiny-sweep.png").exists()
    points = list(csv.DictReader((out.parent / "tiny-sweep.csv").open()))
    rows = {row["method"]: row for row in csv.DictReader(out.with_suffix(".csv").open())
            if row["scenario"] == "onelabel+50%unlabeled"}
    delta = next(p for p in points if p["method"] == "supervised" and p["value"] == "0.5"
                 and p["quantity"] == "ΔMTL % vs stl")
    assert float(delta["mean"]) == pytest.approx(float(rows["supervised"]["delta_mean"]))  # the table's own number
    assert {p["quantity"] for p in points} == {"ΔMTL % vs stl", "seg miou", "depth abs_err", "normal mean_angle"}
    assert "## Label-efficiency curves" in out.with_suffix(".md").read_text()


def test_a_sweep_of_a_parameter_the_scenario_lacks_names_the_field(write_suite):
    with pytest.raises(SuiteError, match=r"sweep.parameter: 'fraction' is not a parameter of scenarios\[0\] "
                                         r"\(onelabel: unlabeled, unlabeled_per_batch\)"):
        load_suite(write_suite({"sweep": {"parameter": "fraction", "values": [0.1, 0.2]}}))
