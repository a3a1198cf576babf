"""The job graph: kinds and needs, dependency order, blocked jobs, validation of needs, and `mtlbench status`."""
import json

import pytest

from mtlbench.cli import main
from mtlbench.config import SuiteError, load_suite
from mtlbench.jobs import GraphError, check_graph, levels, new_job
from mtlbench.train.kind import Train
from mtlbench.methods.weighting import AMTL
from mtlbench.runner import RunOptions, Store, run_suite
from mtlbench.runner.progress import Progress

FAST = {"epochs": 1, "batch_size": 8, "eval_batch_size": 8, "device": "cpu"}


def job(name, needs=(), seed=0):
    config = {"dataset": {"name": "synthrooms"}, "scenario": {"name": "full"}, "method": {"name": name},
              "seed": seed}
    return new_job("graph", config, inputs={"amtl-potentials": needs} if needs else None)


class Recorder(Progress):
    """Progress that remembers the order jobs started in and the jobs reported blocked."""

    def __init__(self, jobs):
        super().__init__(jobs, live=False)
        self.order, self.blocks = [], {}

    def started(self, job):
        self.order.append(job.id)
        super().started(job)

    def blocked(self, job, need, error):
        self.blocks[job.id] = (need, error)
        super().blocked(job, need, error)


def test_levels_put_every_job_after_its_needs_and_keep_the_suite_order_otherwise():
    a, b = job("a"), job("b")
    c = job("c", needs=[a.id, b.id])
    d = job("d", needs=[c.id])
    e = job("e")
    ordered = levels([d, c, e, b, a])
    assert [[j.method for j in level] for level in ordered] == [["e", "b", "a"], ["c"], ["d"]]
    assert levels([a, b, e]) == [[a, b, e]]  # no needs: one level, the suite's order


def test_a_need_outside_the_suite_a_cycle_and_an_unknown_kind_are_refused():
    a = job("a")
    with pytest.raises(GraphError, match=f"needs {a.id}, which the suite does not have"):
        check_graph([job("b", needs=[a.id])])
    first = job("x", needs=["000000000002"])
    second = new_job("graph", {**first.config, "method": {"name": "y"}}, inputs={"amtl-potentials": [first.id]})
    looped = [dataclass_with_needs(first, [second.id]), second]
    with pytest.raises(GraphError, match="needs itself"):
        check_graph(looped)
    with pytest.raises(GraphError, match="unknown job kind 'teleport'"):
        check_graph([new_job("graph", a.config, kind="teleport")])
    with pytest.raises(GraphError, match="unknown resolver 'oracle'"):
        check_graph([new_job("graph", a.config, inputs={"oracle": [a.id]}), a])


def dataclass_with_needs(base, needs):
    import dataclasses

    return dataclasses.replace(base, inputs={"amtl-potentials": tuple(needs)})


def test_a_suite_whose_job_needs_a_missing_job_fails_validation_before_training(write_suite, monkeypatch):
    monkeypatch.setattr(AMTL, "inputs", lambda self, job, jobs: {"amtl-potentials": ["0123456789ab"]})
    with pytest.raises(SuiteError, match=r"tiny.yaml: job \w{12} \(.*/amtl/seed0\) needs 0123456789ab, which the "
                                         r"suite does not have"):
        load_suite(write_suite({"methods": ["stl", "amtl"]}))


def test_jobs_run_in_dependency_order_whatever_order_the_suite_lists_them(write_suite, tmp_path):
    suite = load_suite(write_suite({"methods": ["amtl", "stl"], "tasks": ["seg", "normal"], "train": FAST}))
    amtl, stl = suite.jobs
    assert (amtl.method, stl.method) == ("amtl", "stl") and amtl.needs == (stl.id,)
    progress = Recorder(suite.jobs)
    assert run_suite(suite, RunOptions(str(tmp_path), wandb="disabled"), progress) == []
    assert progress.order == [stl.id, amtl.id]


def test_a_job_whose_need_failed_is_blocked_not_run_and_shown_by_status(write_suite, tmp_path, monkeypatch, capsys):
    path = write_suite({"methods": ["stl", "amtl", "supervised"], "tasks": ["seg", "normal"], "train": FAST})
    suite = load_suite(path)
    stl, amtl, supervised = suite.jobs
    original = Train.run

    def failing_stl(self, config, job_dir, hooks, test):
        if config["method"]["networks"] == "per_task":
            raise RuntimeError("out of memory on purpose\nsecond line")
        return original(self, config, job_dir, hooks, test)

    monkeypatch.setattr(Train, "run", failing_stl)
    progress = Recorder(suite.jobs)
    stopped = run_suite(suite, RunOptions(str(tmp_path), wandb="disabled"), progress)
    assert [j.id for j in stopped] == [stl.id, amtl.id]
    assert progress.order == [stl.id, supervised.id]  # amtl never started
    assert progress.blocks == {amtl.id: (stl.id, "RuntimeError: out of memory on purpose")}
    store = Store(tmp_path)
    assert store.is_done(supervised) and not store.is_done(amtl) and not (tmp_path / "tiny" / amtl.id).exists()

    capsys.readouterr()
    assert main(["status", str(path), "--results", str(tmp_path), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    rows = {row["id"]: row for row in status["jobs"]}
    assert [row["id"] for row in status["jobs"]] == [stl.id, amtl.id, supervised.id]
    assert rows[stl.id]["state"] == "failed" and rows[stl.id]["error"] == "RuntimeError: out of memory on purpose"
    assert (rows[amtl.id]["state"], rows[amtl.id]["blocked_by"], rows[amtl.id]["needs"]) == ("blocked", stl.id,
                                                                                             [stl.id])
    assert rows[supervised.id]["state"] == "done" and rows[supervised.id]["kind"] == "train"
    assert status["counts"] == {"done": 1, "running": 0, "queued": 0, "pending": 0, "blocked": 1, "failed": 1}

    monkeypatch.setattr(Train, "run", original)  # the cause is fixed: a rerun trains exactly the two left
    progress = Recorder(suite.jobs)
    assert run_suite(suite, RunOptions(str(tmp_path), wandb="disabled"), progress) == []
    assert progress.order == [stl.id, amtl.id]
    capsys.readouterr()
    assert main(["status", str(path), "--results", str(tmp_path)]) == 0
    assert capsys.readouterr().out.strip().endswith("3 done, 0 running, 0 queued, 0 pending, 0 blocked, 0 failed of 3 jobs")


def test_status_is_a_dry_run_before_anything_ran(write_suite, tmp_path, capsys):
    path = write_suite({"methods": ["stl", "amtl"], "seeds": [0, 1]})
    assert main(["status", str(path), "--results", str(tmp_path / "nothing"), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert not (tmp_path / "nothing").exists()  # status writes nothing
    stl_ids = [row["id"] for row in status["jobs"] if row["method"] == "stl"]
    for row in status["jobs"]:
        assert set(row) >= {"id", "kind", "needs", "dataset", "scenario", "method", "seed", "state"}
        assert row["state"] == "pending" and row["dataset"] == "synthrooms" and row["scenario"] == "onelabel"
        assert row["needs"] == (stl_ids if row["method"] == "amtl" else [])
    assert status["counts"] == {"done": 0, "running": 0, "queued": 0, "pending": 4, "blocked": 0, "failed": 0} and status["track"] == "partial"


def test_status_names_the_kind_and_needs_of_a_budget_suites_jobs(tmp_path, capsys):
    from test_budget_track import write_budget_suite

    assert main(["status", str(write_budget_suite(tmp_path)), "--results", str(tmp_path), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["jobs"]
    estimates = [row["id"] for row in rows if row["kind"] != "train"]
    assert [row["kind"] for row in rows[:3]] == ["taba-probe", "taba-reduction", "taba-reduction"]
    assert all(sorted(row["needs"]) == sorted(estimates) for row in rows if row["method"] == "supervised"
               and row["needs"])
    assert any(row["needs"] for row in rows) and any(not row["needs"] for row in rows[3:])
