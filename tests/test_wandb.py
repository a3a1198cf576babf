"""W&B: every job is an offline run whose config, history and summary read back with `wandb leet inspect`."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mtlbench.cli import main
from mtlbench.config import load_suite

WANDB = shutil.which("wandb") or str(Path(sys.executable).parent / "wandb")


def inspect(run_dir: Path, *flags: str) -> str:
    return subprocess.run([WANDB, "leet", "inspect", "--json", *flags, str(run_dir)], capture_output=True,
                          text=True, check=True, timeout=120).stdout


@pytest.mark.skipif(not Path(WANDB).exists(), reason="wandb command-line tool not installed")
def test_job_is_logged_as_an_offline_run(write_suite, tmp_path):
    path = write_suite({"methods": ["supervised"]})
    results = tmp_path / "results"
    assert main(["run", str(path), "--results", str(results), "--wandb", "offline"]) == 0
    job = load_suite(path).jobs[0]
    result = json.loads((results / "tiny" / job.id / "result.json").read_text())
    (run_dir,) = (results / "tiny" / job.id / "wandb").glob("offline-run-*")

    records = [json.loads(line) for line in inspect(run_dir).splitlines()]
    run = next(r["run"] for r in records if r["type"] == "run")
    assert run["run_id"] == job.id and run["job_type"] == "supervised"
    assert run["run_group"] == "tiny/synthrooms/onelabel"
    history = [r["history"]["item"] for r in records if r["type"] == "history"]
    assert [h["epoch"] for h in history] == [1, 2]
    assert history[-1]["val/seg/miou"] == pytest.approx(result["history"][-1]["val"]["seg"]["miou"])

    summary = json.loads(inspect(run_dir, "--summary"))
    assert summary["state"] == "finished"
    config = {k: v for k, v in summary["config"].items() if not k.startswith("_")}
    assert config == json.loads(json.dumps({"suite": "tiny", **job.config}))
    for task, metrics in result["test"].items():
        for metric, value in metrics.items():
            assert summary["summary"][f"test/{task}/{metric}"] == pytest.approx(value)


@pytest.mark.skipif(not Path(WANDB).exists(), reason="wandb command-line tool not installed")
def test_each_tuning_trial_is_a_run_in_its_studys_group(write_suite, tmp_path):
    from mtlbench.tuning import plan_studies

    path = write_suite({"methods": ["supervised", "dwa"], "tune": {"trials": 1}})
    results = tmp_path / "results"
    assert main(["tune", str(path), "--method", "dwa", "--results", str(results), "--wandb", "offline"]) == 0
    (study,) = plan_studies(load_suite(path), ["dwa"])
    trial_job = study.trial_job(study.jobs[0], study.first)  # trial 0: the suite's values
    (run_dir,) = (results / "tiny" / "tuning" / trial_job.id / "wandb").glob("offline-run-*")
    records = [json.loads(line) for line in inspect(run_dir).splitlines()]
    run = next(r["run"] for r in records if r["type"] == "run")
    assert run["run_group"] == study.name
    history = [r["history"]["item"] for r in records if r["type"] == "history"]
    assert [h["epoch"] for h in history] == [1, 2] and all("tune/objective" in h for h in history)
    summary = json.loads(inspect(run_dir, "--summary"))
    config = summary["config"]
    assert config["study"] == study.name and config["trial"] == 0 and config["params"] == study.first
    assert not any(key.startswith("test/") for key in summary["summary"])  # validation only
