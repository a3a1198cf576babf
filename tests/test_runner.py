"""The runner and results store: finished jobs stay finished, killed jobs resume, results are complete."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mtlbench.cli import main
from mtlbench.config import load_suite
from mtlbench.runner import Store
from conftest import REPO


def run(path, results, *extra):
    return main(["run", str(path), "--results", str(results), "--wandb", "disabled", *extra])


def test_suite_runs_every_job_once_and_writes_the_documented_result(write_suite, tmp_path, capsys):
    path = write_suite()
    results = tmp_path / "results"
    assert run(path, results) == 0
    suite = load_suite(path)
    store = Store(results)
    records = list(store.results("tiny"))
    assert sorted(r["job_id"] for r in records) == sorted(j.id for j in suite.jobs)
    for record in records:
        job_dir = results / "tiny" / record["job_id"]
        assert json.loads((job_dir / "config.json").read_text()) == record["config"]
        assert (job_dir / "mask.npy").exists() and not list(job_dir.glob("checkpoint-*"))
        assert len((job_dir / "metrics.jsonl").read_text().splitlines()) == len(record["history"])
        assert set(record["test"]) == {"seg", "depth", "normal"}
        assert record["primary"] == {"seg": "miou", "depth": "abs_err", "normal": "mean_angle"}
        assert record["directions"]["depth"]["delta1"] is True
        assert record["schema"] == 1 and record["scenario"] == "onelabel"

    stamps = {p: p.stat().st_mtime_ns for p in results.glob("tiny/*/result.json")}
    capsys.readouterr()
    assert run(path, results) == 0
    assert capsys.readouterr().out.count("skip") == len(suite.jobs)
    assert {p: p.stat().st_mtime_ns for p in results.glob("tiny/*/result.json")} == stamps

    assert run(path, results, "--force") == 0
    assert all(p.stat().st_mtime_ns != stamps[p] for p in stamps)


def test_a_killed_suite_resumes_without_training_any_job_twice(write_suite, tmp_path):
    path = write_suite({"train": {"epochs": 30, "batch_size": 8, "eval_batch_size": 8, "device": "cpu"}})
    results = tmp_path / "results"
    stl, supervised = load_suite(path).jobs
    command = [sys.executable, "-m", "mtlbench.cli", "run", str(path), "--results", str(results),
               "--wandb", "disabled"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    checkpoint = results / "tiny" / supervised.id / "checkpoint-mtl.pt"
    deadline = time.monotonic() + 300
    while not checkpoint.exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert checkpoint.exists(), "the supervised job never wrote a checkpoint"
    assert not (results / "tiny" / supervised.id / "result.json").exists(), "killed too late; job finished"
    finished = results / "tiny" / stl.id / "result.json"
    stamp = finished.stat().st_mtime_ns

    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert f"skip {stl.id}" in done.stdout
    assert finished.stat().st_mtime_ns == stamp
    result = json.loads((results / "tiny" / supervised.id / "result.json").read_text())
    assert result["resumed_from_epoch"]["mtl"] >= 1
    assert [r["epoch"] for r in result["history"]] == list(range(1, 31))


def test_a_failing_job_does_not_lose_the_others(write_suite, tmp_path, capsys, monkeypatch):
    from mtlbench.train.kind import Train

    path = write_suite({"scenarios": ["onelabel", "randomlabels"], "tasks": ["seg", "depth"],
                        "methods": ["supervised"]})
    results = tmp_path / "results"
    good, bad = load_suite(path).jobs
    original = Train.run

    def fail_one(self, config, job_dir, hooks, test):
        if Path(job_dir).name == bad.id:
            raise RuntimeError("this job fails on purpose")
        return original(self, config, job_dir, hooks, test)

    monkeypatch.setattr(Train, "run", fail_one)
    assert run(path, results) == 1
    assert "1 job(s) failed" in capsys.readouterr().err
    assert (results / "tiny" / good.id / "result.json").exists()
    assert "this job fails on purpose" in (results / "tiny" / bad.id / "error.txt").read_text()


def test_malformed_suite_fails_before_any_job_starts(write_suite, tmp_path, capsys):
    path = write_suite({"methods": ["supervised", "jrt"]})
    assert run(path, tmp_path / "results") == 2
    assert "unknown method 'jrt'" in capsys.readouterr().err
    assert not (tmp_path / "results").exists()


@pytest.mark.skipif(os.cpu_count() < 2, reason="needs two cores for two CPU workers")
def test_parallel_workers_run_every_job_and_report_to_the_parent(write_suite, tmp_path, capsys):
    path = write_suite({"methods": ["supervised"], "seeds": [0, 1]})
    assert run(path, tmp_path / "results", "--workers", "2") == 0
    assert len(list((tmp_path / "results" / "tiny").glob("*/result.json"))) == 2
    shown = capsys.readouterr().out  # the parent's own output: the workers send it their events
    assert shown.count("] epoch ") == 2 * 2 and shown.count("] done ") == 2 and "[2/2 done · " in shown


def test_amtl_takes_its_potentials_from_the_suites_stl_validation_results(write_suite, tmp_path):
    path = write_suite({"methods": ["stl", "amtl"], "tasks": ["seg", "normal"], "train": {"epochs": 1, "batch_size": 8, "eval_batch_size": 8,
                                                               "device": "cpu"}})
    results = tmp_path / "results"
    assert run(path, results) == 0
    records = {r["method"]: r for r in Store(results).results("tiny")}
    stl_val = records["stl"]["val"]
    expected = {"seg": stl_val["seg"]["miou"], "normal": stl_val["normal"]["within_11.25_per_image"]}
    assert records["amtl"]["potentials"] == pytest.approx(expected)
    assert records["amtl"]["config"]["method"]["weighting"]["potentials"] is None  # not part of the job id


def test_amtl_needs_the_suites_stl_jobs_and_reads_only_their_results(write_suite, tmp_path):
    from mtlbench.runner.executor import resolve_inputs
    from mtlbench.runner.store import write_json_atomic

    path = write_suite({"methods": ["stl", "amtl"], "tasks": ["seg", "normal"], "train": {"epochs": 1, "batch_size": 8, "eval_batch_size": 8,
                                                               "device": "cpu"}})
    results = tmp_path / "results"
    assert run(path, results) == 0
    store = Store(results)
    current = next(r for r in store.results("tiny") if r["method"] == "stl")
    stale = {**current, "job_id": "000000000000",
             "val": {t: {m: 0.0 for m in metrics} for t, metrics in current["val"].items()}}
    (results / "tiny" / stale["job_id"]).mkdir()
    write_json_atomic(results / "tiny" / stale["job_id"] / "result.json", stale)
    suite = load_suite(path, [])
    amtl = next(job for job in suite.jobs if job.method == "amtl")
    assert amtl.needs == tuple(job.id for job in suite.jobs if job.method == "stl")
    assert dict(amtl.inputs) == {"amtl-potentials": amtl.needs}
    potentials = resolve_inputs(amtl, store).config["method"]["weighting"]["potentials"]
    assert potentials["seg"] == pytest.approx(current["val"]["seg"]["miou"])  # the stale stl result is not read


def test_amtl_refuses_a_zero_potential_instead_of_dividing_by_it(write_suite, tmp_path):
    from mtlbench.methods.weighting import stl_potentials

    path = write_suite({"methods": ["stl", "amtl"]})
    amtl = next(job for job in load_suite(path).jobs if job.method == "amtl")
    stl = {"val": {"seg": {"miou": 0.2}, "depth": {"delta1": 0.0}, "normal": {"within_11.25_per_image": 0.1}}}
    with pytest.raises(ValueError, match=r"STL potential of depth \(delta1 = 0\) is not positive .* Eq. 3"):
        stl_potentials(amtl.config, amtl.needs, lambda job_id: stl)
    older = {"val": {"seg": {"miou": 0.2}, "depth": {"delta1": 0.5}, "normal": {"within_11.25": 0.1}}}
    with pytest.raises(ValueError, match=r"no validation .*within_11.25_per_image \(written by mtlbench < 0.2\)"):
        stl_potentials(amtl.config, amtl.needs, lambda job_id: older)


def test_amtl_without_stl_in_the_suite_is_refused_before_training(write_suite, tmp_path, capsys):
    assert run(write_suite({"methods": ["amtl"]}), tmp_path / "results") == 2
    assert "amtl takes its potentials from the suite's stl results" in capsys.readouterr().err
