"""`mtlbench run --executor slurm` against a real one-node SLURM cluster (tools/slurm.sh starts it; .ci/run does)."""
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from mtlbench.config import load_suite
from mtlbench.files import read_json
from conftest import REPO

pytestmark = pytest.mark.skipif(shutil.which("sbatch") is None,
                                reason="no SLURM here (sbatch not found): `bash tools/slurm.sh start` sets one up")
ENV = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "WANDB_SILENT": "true"}
SUITE = {"name": "sl", "dataset": {"name": "synthrooms", "height": 32, "width": 64, "train": 24, "val": 8, "test": 8,
                                    "seed": 0},
         "tasks": ["seg", "normal"], "scenarios": ["onelabel"], "methods": ["stl", "amtl"], "seeds": [0],
         "model": {"name": "segnet", "width": 0.0625},
         "train": {"epochs": 2, "batch_size": 8, "eval_batch_size": 8, "device": "cpu"},
         "executor": {"name": "slurm", "time_min": 10, "poll": 0.5}}


@pytest.fixture(autouse=True)
def no_job_left_behind():
    yield
    subprocess.run(["scancel", "--name=mtlbench-sl"], check=False)


def write(tmp_path, **changes):
    suite = {**SUITE, **changes}
    path = tmp_path / "sl.yaml"
    path.write_text(yaml.safe_dump(suite))
    return path


def mtlbench(*args, timeout=600, env=ENV):
    return subprocess.run([sys.executable, "-m", "mtlbench.cli", *map(str, args)], env=env, capture_output=True,
                          text=True, timeout=timeout)


FAILING_PART = """from dataclasses import dataclass
from mtlbench import WEIGHTINGS
from mtlbench.methods.parts import Weighting


@WEIGHTINGS.register("fails_when_built")
@dataclass(frozen=True)
class FailsWhenBuilt(Weighting):
    def build(self, tasks, model):
        raise RuntimeError("this part fails where its job trains")
"""


def status(path, results):
    return status_with(path, results, ENV)


def status_with(path, results, env):
    done = mtlbench("status", path, "--results", results, "--json", env=env)
    assert done.returncode == 0, done.stderr
    return {row["id"]: row for row in json.loads(done.stdout)["jobs"]}


def queued(results):
    ids = read_json(Path(results) / "sl" / "slurm" / "submissions.json")
    out = subprocess.run(["squeue", "-h", "-j", ",".join(sorted({i.split("_")[0] for i in ids.values()})), "-o", "%i"],
                         capture_output=True, text=True).stdout.split()
    return out


def test_a_suite_with_a_need_runs_on_slurm_exactly_as_locally(tmp_path):
    path = write(tmp_path)
    slurm, local = tmp_path / "slurm", tmp_path / "local"
    done = mtlbench("run", path, "--results", slurm, "--wandb", "disabled")
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"submitted 2 job\(s\) of suite sl to SLURM as array\(s\) \d+, \d+", done.stdout)
    assert mtlbench("run", path, "--results", local, "--wandb", "disabled", "--executor", "local").returncode == 0
    for job in load_suite(path).jobs:
        on_slurm = read_json(slurm / "sl" / job.id / "result.json")
        here = read_json(local / "sl" / job.id / "result.json")
        assert (on_slurm["test"], on_slurm["val"], on_slurm.get("potentials")) == \
               (here["test"], here["val"], here.get("potentials"))  # one thread: bit for bit
        assert on_slurm["slurm"]["requeues"] == 0 and on_slurm["slurm"]["job_id"]
    rows = status(path, slurm)
    assert {row["state"] for row in rows.values()} == {"done"} and all("slurm" in row for row in rows.values())


def test_jobs_per_task_trains_a_levels_jobs_side_by_side_in_one_task_as_locally(tmp_path):
    """``executor.jobs_per_task: 2`` (``run --jobs-per-device 2``): the level's two jobs are one SLURM task, trained
    in a process each, to the results a local run gets."""
    path = write(tmp_path, methods=["stl", "supervised"])
    slurm, local = tmp_path / "slurm", tmp_path / "local"
    done = mtlbench("run", path, "--results", slurm, "--wandb", "disabled", "--jobs-per-device", "2")
    assert done.returncode == 0, done.stdout + done.stderr
    submitted = read_json(slurm / "sl" / "slurm" / "submissions.json")
    assert len(submitted) == 2 and len(set(submitted.values())) == 1  # one task
    assert mtlbench("run", path, "--results", local, "--wandb", "disabled", "--executor", "local").returncode == 0
    for job in load_suite(path).jobs:
        on_slurm = read_json(slurm / "sl" / job.id / "result.json")
        assert on_slurm["test"] == read_json(local / "sl" / job.id / "result.json")["test"]


def test_a_job_on_two_devices_is_one_task_with_both_and_trains_as_locally(tmp_path):
    """``train.devices: 2``: one SLURM task with a CPU per rank, its two gloo ranks on that task's node."""
    path = write(tmp_path, methods=["supervised"], train={**SUITE["train"], "devices": 2})
    slurm, local = tmp_path / "slurm", tmp_path / "local"
    done = mtlbench("run", path, "--results", slurm, "--wandb", "disabled")
    assert done.returncode == 0, done.stdout + done.stderr
    assert mtlbench("run", path, "--results", local, "--wandb", "disabled", "--executor", "local").returncode == 0
    (job,) = load_suite(path).jobs
    (script,) = (slurm / "sl" / "slurm").glob("*_submission.sh")
    assert "#SBATCH --cpus-per-task=2" in script.read_text()
    on_slurm = read_json(slurm / "sl" / job.id / "result.json")
    assert on_slurm["devices"] == 2 and on_slurm["test"] == read_json(local / "sl" / job.id / "result.json")["test"]


def test_a_requeued_job_resumes_from_its_checkpoint_and_trains_every_epoch_once(tmp_path):
    path = write(tmp_path, methods=["supervised"], train={**SUITE["train"], "epochs": 150})
    results = tmp_path / "results"
    assert mtlbench("run", path, "--results", results, "--wandb", "disabled", "--detach").returncode == 0
    (job,) = load_suite(path).jobs
    records = results / "sl" / job.id / "metrics.jsonl"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and (not records.exists() or len(records.read_text().splitlines()) < 3):
        time.sleep(0.2)
    (slurm_id,) = read_json(results / "sl" / "slurm" / "submissions.json").values()
    subprocess.run(["scontrol", "requeue", slurm_id], check=True)
    deadline = time.monotonic() + 60  # a requeued job waits ~2 min before it may start again: lift that
    while time.monotonic() < deadline and subprocess.run(["squeue", "-h", "-j", slurm_id, "-o", "%T"],
                                                         capture_output=True, text=True).stdout.strip() != "RUNNING":
        subprocess.run(["scontrol", "update", f"JobId={slurm_id}", "StartTime=now"], capture_output=True)
        time.sleep(0.5)  # refused while the job completes, and undone once SLURM sets the delay: until it runs
    again = mtlbench("run", path, "--results", results, "--wandb", "disabled")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "nothing to submit" in again.stdout  # the requeued job was still the suite's: only waited for
    result = read_json(results / "sl" / job.id / "result.json")
    assert result["slurm"]["requeues"] == 1 and result["resumed_from_epoch"]["mtl"] >= 3
    assert [r["epoch"] for r in result["history"]] == list(range(1, 151))  # no epoch trained twice
    assert status(path, results)[job.id]["slurm"]["requeues"] == 1


def test_detach_status_cancel_and_a_failing_job_reported_with_its_error(tmp_path):
    """A part that fails only where its job trains (a user's plugin, which the nodes import from the environment
    sbatch passes on): everything a suite gets wrong on its own is refused before anything is submitted. The
    plugin is imported by the mtlbench processes only, not by this one (whose registries other tests read)."""
    (tmp_path / "failing_part.py").write_text(FAILING_PART)
    env = {**ENV, "MTLBENCH_PLUGINS": str(tmp_path / "failing_part.py")}
    path = write(tmp_path, methods=["supervised", {"name": "broken", "weighting": "fails_when_built"}],
                 seeds=[0, 1], tasks=["seg"], train={**SUITE["train"], "epochs": 2000})
    results = tmp_path / "results"
    done = mtlbench("run", path, "--results", results, "--wandb", "disabled", "--detach", env=env)
    assert done.returncode == 0 and "detached" in done.stdout, done.stderr
    jobs = list(status_with(path, results, env).values())
    failing = [job["id"] for job in jobs if job["method"] == "broken"]
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not all((results / "sl" / j / "error.txt").exists() for j in failing):
        time.sleep(0.5)
    rows = status_with(path, results, env)
    for job in failing:
        assert rows[job]["state"] == "failed" and "fails where its job trains" in rows[job]["error"]
    assert any(rows[job["id"]]["state"] in ("running", "queued") for job in jobs if job["id"] not in failing)
    before = read_json(results / "sl" / "slurm" / "submissions.json")
    second = mtlbench("run", path, "--results", results, "--wandb", "disabled", "--detach", env=env)
    assert f"submitted {len(failing)} job(s)" in second.stdout  # only the failed ones are tried again
    after = read_json(results / "sl" / "slurm" / "submissions.json")
    assert all(after[job["id"]] == before[job["id"]] for job in jobs if job["id"] not in failing)  # untouched
    cancelled = mtlbench("cancel", path, "--results", results, env=env)
    assert cancelled.returncode == 0 and "cancelled" in cancelled.stdout
    deadline = time.monotonic() + 60
    while queued(results) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert queued(results) == []
