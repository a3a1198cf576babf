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
    assert run["run_id"] == f"{job.id}-{(results / 'tiny' / '.wandb-location').read_text()}"
    assert run["job_type"] == "supervised"
    assert run["run_group"] == "tiny/synthrooms/onelabel"
    history = [r["history"]["item"] for r in records if r["type"] == "history"]
    assert [h["epoch"] for h in history] == [1, 2]
    assert history[-1]["val/seg/miou"] == pytest.approx(result["history"][-1]["val"]["seg"]["miou"])

    summary = json.loads(inspect(run_dir, "--summary"))
    assert summary["state"] == "finished"
    config = {k: v for k, v in summary["config"].items() if not k.startswith("_") and k != "mtlbench"}
    costs = result["costs"]
    sizes = {k: costs[k] for k in ("parameters", "method_parameters", "step_flops")}
    assert config == json.loads(json.dumps({"suite": "tiny", **job.config, "device": result["device"],
                                            "costs": sizes}))
    for task, metrics in result["test"].items():
        for metric, value in metrics.items():
            assert summary["summary"][f"test/{task}/{metric}"] == pytest.approx(value)
    for name, value in costs.items():  # the job's measured costs, in its summary too
        assert summary["summary"][f"costs/{name}"] == (pytest.approx(value) if isinstance(value, float) else value)


@pytest.mark.skipif(not Path(WANDB).exists(), reason="wandb command-line tool not installed")
def test_a_student_of_teachers_logs_which_share_of_its_targets_were_pseudo(write_suite, tmp_path):
    path = write_suite({"methods": ["stl", "must"], "leaderboard": {"baseline": "stl"},
                        "train": {"epochs": 1, "batch_size": 8, "eval_batch_size": 8, "device": "cpu"}})
    results = tmp_path / "results"
    assert main(["run", str(path), "--results", str(results), "--wandb", "offline"]) == 0
    student = load_suite(path).jobs[1]
    result = json.loads((results / "tiny" / student.id / "result.json").read_text())
    (run_dir,) = (results / "tiny" / student.id / "wandb").glob("offline-run-*")
    summary = json.loads(inspect(run_dir, "--summary"))["summary"]
    for task, share in result["pseudo_labels"].items():
        assert share["images"] > 0
        assert summary[f"pseudo_labels/{task}/images"] == pytest.approx(share["images"])
        assert summary[f"pseudo_labels/{task}/pixels"] == pytest.approx(share["pixels"])


def only_run_id(job_dir: Path) -> str:
    (run_dir,) = (job_dir / "wandb").glob("offline-run-*")
    return run_dir.name.split("-", 3)[-1]


@pytest.mark.skipif(not Path(WANDB).exists(), reason="wandb command-line tool not installed")
def test_each_tuning_trial_is_a_run_in_its_studys_group(write_suite, tmp_path):
    from mtlbench.tuning import plan_studies

    path = write_suite({"methods": ["supervised", "dwa"], "seeds": [0], "tune": {"trials": 1}})
    results = tmp_path / "results"
    assert main(["run", str(path), "--results", str(results), "--wandb", "offline"]) == 0
    assert main(["tune", str(path), "--method", "dwa", "--results", str(results), "--wandb", "offline"]) == 0
    (study,) = plan_studies(load_suite(path), ["dwa"])
    (reference,) = [job for job in study.references if job.method == "supervised"]
    main_job = next(job for job in load_suite(path).jobs if job.method == "supervised")
    assert reference.id == main_job.id  # one config trained in two folders: the suite's and its tuning's
    ids = [only_run_id(results / "tiny" / main_job.id), only_run_id(results / "tiny" / "tuning" / reference.id)]
    assert ids[0] != ids[1] and all(run_id.startswith(f"{main_job.id}-") for run_id in ids)
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

    import wandb_workspaces.reports.v2 as wr

    from mtlbench.report import read_spec

    out = tmp_path / "report.json"  # the report gets the study's parameters against its objective
    assert main(["report", str(path), "--results", str(results), "--out", str(out)]) == 0
    report, _ = read_spec(out)
    (plot,) = [p for b in report.blocks if isinstance(b, wr.PanelGrid) for p in b.panels
               if isinstance(p, wr.ParallelCoordinatesPlot)]
    *params, objective = [column.metric for column in plot.columns]
    assert [c.name.removeprefix("params.") for c in params] == list(study.space) and set(study.space) == set(
        config["params"])  # each parameter the trials logged
    assert objective.name == "tune/objective" and "tune/objective" in summary["summary"]


class RecordingRun:
    """What ``wandb.init`` returns, as far as mtlbench uses it; ``summary`` is what the continued run holds."""

    def __init__(self, summary):
        self.summary, self.logged = summary, []

    def define_metric(self, *args, **kwargs):
        pass

    def log(self, row):
        self.logged.append(row)


@pytest.mark.parametrize("mode, summary, expected", [
    ("online", {"stage": "mtl", "epoch": 2}, [3, 4]),  # the run holds epochs 1-2; 3 was cut off before its log
    ("online", {"stage": "mtl", "epoch": 3}, [4]),
    ("online", {}, [1, 2, 3, 4]),  # the earlier attempt logged nothing
    ("offline", {"stage": "mtl", "epoch": 2}, [1, 2, 3, 4]),  # a new run folder: every epoch again
])
def test_a_resumed_run_logs_every_epoch_it_lacks_once(write_suite, tmp_path, monkeypatch, mode, summary, expected):
    import types

    from mtlbench.tracking import open_run

    run = RecordingRun(summary)
    monkeypatch.setitem(sys.modules, "wandb", types.SimpleNamespace(init=lambda **kwargs: run,
                                                                    Settings=lambda **kwargs: None))
    job = load_suite(write_suite({"methods": ["supervised"]})).jobs[0]
    logger = open_run(mode, "p", None, job, tmp_path / "results" / job.id)  # the token stays under tmp_path
    for epoch in (1, 2, 3):  # what the trainer replays from the epoch-3 checkpoint
        logger.log_resumed({"stage": "mtl", "epoch": epoch})
    logger.log({"stage": "mtl", "epoch": 4})
    assert [row["epoch"] for row in run.logged] == expected


# ------------------------------------------------------------------ comparison dashboards (offline, no server)
@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    """A two-method, two-seed suite run offline: its store, its suite, and every run read back by leet."""
    import copy

    import yaml
    from conftest import TINY_SUITE

    if not Path(WANDB).exists():
        pytest.skip("wandb command-line tool not installed")
    root = tmp_path_factory.mktemp("logged")
    suite = copy.deepcopy(TINY_SUITE)
    suite.update(methods=["supervised", "dwa"], seeds=[0, 1])
    suite["train"] = {**suite["train"], "test_every_epoch": True}  # so that a best_val leaderboard can be built
    path = root / "tiny.yaml"
    path.write_text(yaml.safe_dump(suite))
    results = root / "results"
    assert main(["run", str(path), "--results", str(results), "--wandb", "offline"]) == 0
    from mtlbench.tracking import offline_runs

    runs = {}
    for run_dir in offline_runs(results):
        records = [json.loads(line) for line in inspect(run_dir).splitlines()]
        summary = json.loads(inspect(run_dir, "--summary"))
        meta = summary["config"]["mtlbench"]
        runs[meta.get("job_id", meta["kind"])] = {"summary": summary, "history": [r["history"]["item"] for r in records
                                                                   if r["type"] == "history"]}
    return path, results, load_suite(path), runs


def test_job_runs_carry_tags_method_config_best_validation_and_delta_mtl(logged):
    from mtlbench.metrics import delta_mtl

    path, results, suite, runs = logged
    by_id = {job.id: json.loads((results / "tiny" / job.id / "result.json").read_text()) for job in suite.jobs}
    baseline = [r for r in by_id.values() if r["method"] == "supervised"]
    for job in suite.jobs:
        run, result = runs[job.id]["summary"], by_id[job.id]
        assert run["tags"] == ["suite:tiny", "dataset:synthrooms", "scenario:onelabel", f"method:{job.method}",
                               f"seed:{job.seed}", "paper"]
        meta = run["config"]["mtlbench"]
        assert (meta["method"], meta["scenario"], meta["job_id"]) == (job.method, "onelabel", job.id)
        assert meta["directions"] == result["directions"] and meta["primary"] == result["primary"]
        for task, metrics in result["directions"].items():  # the summary keeps the best epoch by direction
            for metric, higher in metrics.items():
                values = [h["val"][task][metric] for h in result["history"]]
                best = {"max": max(values)} if higher else {"min": min(values)}
                assert run["summary"][f"val/{task}/{metric}"] == pytest.approx(best)
    # jobs run supervised seeds 0, 1 then dwa: ΔMTL from the moment every baseline seed has finished
    order = [job.id for job in suite.jobs]
    assert "delta_mtl" not in runs[order[0]]["summary"]["summary"]
    chosen = {t: [m] for t, m in baseline[0]["primary"].items()}
    reference = {t: {m: sum(r["test"][t][m] for r in baseline) / 2 for m in ms} for t, ms in chosen.items()}
    for job_id in order[1:]:
        expected = delta_mtl(by_id[job_id]["test"], reference, by_id[job_id]["directions"], chosen)
        assert runs[job_id]["summary"]["summary"]["delta_mtl"] == pytest.approx(expected)


def test_the_suite_level_run_holds_the_leaderboard_tables_and_the_suites_summary(logged):
    path, results, suite, runs = logged
    run = runs["leaderboard"]["summary"]
    assert run["run_id"] == f"tiny-leaderboard-{(results / 'tiny' / '.wandb-location').read_text()}"
    assert json.loads(run["config"]["mtlbench"]["summary"]) == json.loads((results / "tiny" / "suite.json").read_text())
    assert run["summary"]["leaderboard/tables"]["_type"] == "table-file"
    assert run["summary"]["leaderboard/tables"]["nrows"] == 3  # one row per method, and the constant prediction
    assert run["summary"]["leaderboard/summary"]["_type"] == "table-file"
    assert run["summary"]["figures/delta"]["_type"] == "image-file"


def test_the_report_spec_round_trips_and_every_panel_reads_keys_the_runs_logged(logged, tmp_path):
    from wandb_workspaces import expr
    import wandb_workspaces.reports.v2 as wr

    from mtlbench.report import read_spec, to_spec

    path, results, suite, runs = logged
    out = tmp_path / "report.json"
    assert main(["report", str(path), "--results", str(results), "--out", str(out), "--entity", "team"]) == 0
    report, workspace = read_spec(out)  # rebuilt through wandb-workspaces' own classes
    spec = json.loads(out.read_text())
    assert to_spec(report) == spec["report"] and to_spec(workspace) == spec["workspace"]
    jobs = [runs[job.id] for job in suite.jobs]
    summary_keys = set.intersection(*(set(r["summary"]["summary"]) for r in jobs[1:]))
    history_keys = set.intersection(*(set(h) for r in jobs for h in r["history"]))
    grids = [b for b in report.blocks if isinstance(b, wr.PanelGrid)]
    assert len(grids) == 1 and any(isinstance(b, wr.MarkdownBlock) and "ΔMTL" in b.text for b in report.blocks)
    panels = grids[0].panels + [p for s in workspace.sections for p in s.panels]
    for panel in panels:
        if isinstance(panel, wr.BarPlot):
            assert {m.name for m in panel.metrics} <= summary_keys
        if isinstance(panel, wr.LinePlot):
            assert panel.x in history_keys and set(panel.y) <= history_keys
    assert any(isinstance(p, wr.RunComparer) for p in grids[0].panels)
    runset = grids[0].runsets[0]
    assert runset.entity == "team" and runset.groupby == ["config.mtlbench.method"]
    assert expr.groupby_str_to_key(runset.groupby[0]).section == "config"
    parsed = json.dumps(expr.expr_to_filters(runset.filters).model_dump())  # W&B's own filter parser
    config = jobs[0]["summary"]["config"]
    for key, value in (("suite", "tiny"), ("mtlbench.dataset", "synthrooms"), ("mtlbench.scenario", "onelabel")):
        assert key.split(".")[0] in parsed and value in parsed
        node = config
        for part in key.split("."):
            node = node[part]
        assert node == value  # the filter's config path exists in the runs with that value
    assert [g.name for g in workspace.runset_settings.groupby] == ["mtlbench.method"]


@pytest.mark.parametrize("select", ["last", "best_val"])
def test_a_leaderboard_from_wandb_runs_equals_the_one_from_the_results_store(logged, tmp_path, select):
    import pandas as pd

    from mtlbench.leaderboard import render, render_suite
    from mtlbench.leaderboard.from_wandb import RunRecord, needs_history, suite_from_runs
    from mtlbench.runner import Store

    path, results, suite, runs = logged
    with_history = select == "best_val"
    records = [RunRecord({k: v for k, v in r["summary"]["config"].items() if not k.startswith("_")},
                         r["summary"]["summary"], tuple(r["summary"]["tags"]), r["summary"]["state"],
                         tuple(r["history"]) if with_history else ())
               for r in runs.values()]  # the shape the public API returns: config, summary, tags, state, rows
    summary, from_runs = suite_from_runs(records, "tiny")
    assert needs_history(summary, select) == with_history
    ours = render(summary, from_runs, tmp_path / "w" / "tiny", formats=("md", "csv"), select=select)
    store = render_suite(Store(results), "tiny", tmp_path / "s" / "tiny", formats=("md", "csv"), select=select)
    assert pd.read_csv(ours[1]).equals(pd.read_csv(store[1]))
    assert f"epoch: {select}" in ours[0].read_text()


def test_a_best_val_leaderboard_from_runs_without_their_history_is_refused(logged, tmp_path):
    from mtlbench.leaderboard import LeaderboardError, render
    from mtlbench.leaderboard.from_wandb import RunRecord, suite_from_runs

    path, results, suite, runs = logged
    records = [RunRecord(r["summary"]["config"], r["summary"]["summary"], tuple(r["summary"]["tags"]),
                         r["summary"]["state"]) for r in runs.values()]
    summary, from_runs = suite_from_runs(records, "tiny")
    with pytest.raises(LeaderboardError, match="best_val needs the test metrics of every epoch"):
        render(summary, from_runs, tmp_path / "tiny", formats=("md",), select="best_val")


def test_commands_not_about_wandb_run_without_it(write_suite, tmp_path, monkeypatch):
    for module in ("wandb", "wandb_workspaces"):
        monkeypatch.setitem(sys.modules, module, None)  # import wandb now raises ImportError
    path = write_suite({"methods": ["supervised"]})
    results = tmp_path / "results"
    assert main(["run", str(path), "--results", str(results), "--wandb", "disabled"]) == 0
    assert main(["leaderboard", "tiny", "--results", str(results), "--out", str(tmp_path / "b")]) == 0
    assert main(["status", str(path), "--results", str(results)]) == 0


def test_a_results_folder_keeps_one_location_token_which_moves_with_it(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    from mtlbench.tracking import location_token

    with ThreadPoolExecutor(8) as pool:  # runners that log their first run at once agree on one token
        tokens = set(pool.map(lambda _: location_token(tmp_path / "a"), range(32)))
    (token,) = tokens
    assert location_token(tmp_path / "b") != token  # another folder: the same job is another run
    (tmp_path / "a").rename(tmp_path / "moved")
    assert location_token(tmp_path / "moved") == token  # a resumed job continues its run
    assert [p.name for p in (tmp_path / "moved").iterdir()] == [".wandb-location"]


def test_sync_keeps_the_newest_attempt_of_each_run_whose_id_has_dashes(tmp_path):
    from mtlbench.tracking import offline_runs

    names = ["offline-run-20260101_000000-a1b2-t0k3n", "offline-run-20260102_000000-a1b2-t0k3n",
             "offline-run-20260101_000000-demo-leaderboard-t0k3n", "offline-run-20260101_000000-x-leaderboard-t0k3n"]
    for name in names:
        (tmp_path / "wandb" / name).mkdir(parents=True)
    assert [run.name for run in offline_runs(tmp_path)] == sorted(names[1:])


def test_a_report_without_leaderboard_tables_says_why(write_suite, tmp_path):
    pytest.importorskip("wandb_workspaces")
    out = tmp_path / "report.json"
    with pytest.warns(UserWarning, match="tiny: no results under .*the report has no leaderboard tables"):
        assert main(["report", str(write_suite()), "--results", str(tmp_path / "empty"), "--out", str(out)]) == 0
    assert out.exists()


def test_a_leaderboard_that_cannot_be_rendered_leaves_the_report_without_tables_and_says_why(tmp_path):
    """The other way a report loses its tables: the suite's folder exists, but no job of it has finished."""
    from mtlbench.leaderboard import markdown_tables
    from mtlbench.runner import Store

    suite = load_suite(Path(__file__).resolve().parents[1] / "suites" / "quickstart.yaml")
    store = Store(tmp_path)
    store.write_suite(suite.name, suite.summary())
    with pytest.warns(UserWarning, match="quickstart: the report has no leaderboard tables \\(no finished jobs"):
        assert markdown_tables(store, suite.name) is None
