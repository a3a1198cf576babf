"""mtlbench tune: studies on the validation split only, pruning, resuming, shared storage, best parameters."""
from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import yaml

from mtlbench.cli import main
from mtlbench.config import SuiteError, load_suite
from mtlbench.data.synthrooms import SynthRooms
from mtlbench.runner.store import Store
from mtlbench.tuning import apply_params, plan_studies, read_params
from mtlbench.tuning.backend import PaperFirstTPE, open_storage, redacted
from mtlbench.metrics import acc_mtl
from mtlbench.tuning.objective import counts, is_surplus

from conftest import TINY_SUITE

TUNE_SUITE = {**copy.deepcopy(TINY_SUITE), "name": "tunable", "methods": ["supervised", "dwa"],
              "train": {**TINY_SUITE["train"], "epochs": 3},
              "tune": {"trials": 4, "pruner": "none"}}


@pytest.fixture
def tune_suite(tmp_path: Path):
    def write(**tune) -> Path:
        suite = copy.deepcopy(TUNE_SUITE)
        suite["tune"].update(tune)
        path = tmp_path / "tunable.yaml"
        path.write_text(yaml.safe_dump(suite))
        return path

    return write


def load_study(results: Path, storage: str | None = None) -> optuna.Study:
    url = storage or f"sqlite:///{results / 'tunable' / 'tuning' / 'optuna.db'}"
    (summary,) = [s for s in optuna.get_all_study_summaries(open_storage(url)) if "/dwa-" in s.study_name]
    return optuna.load_study(study_name=summary.study_name, storage=open_storage(url))


def test_search_spaces_are_declared_by_the_parts_and_checked_against_the_suite(tune_suite, tmp_path):
    (study,) = plan_studies(load_suite(tune_suite()), ["dwa"])
    assert set(study.space) == {"train.optimizer.lr", "train.optimizer.weight_decay", "method.weighting.temperature"}
    assert study.first == {"train.optimizer.lr": 1e-4, "train.optimizer.weight_decay": 0.0,
                           "method.weighting.temperature": 2.0}  # the paper's values are the first trial
    assert [j.method for j in study.references] == ["supervised"]  # ΔMTL's reference, trained first
    narrowed = plan_studies(load_suite(tune_suite(space={"method.weighting.temperature": None,
                                                         "train.optimizer.lr": {"low": 5e-5, "high": 2e-4}})),
                            ["dwa"])[0]
    assert "method.weighting.temperature" not in narrowed.space
    assert (narrowed.space["train.optimizer.lr"].low, narrowed.space["train.optimizer.lr"].high) == (5e-5, 2e-4)
    assert narrowed.name != study.name  # another search is another study
    # a declared range that misses the suite's value is centred on it, as wide (a decade of lr on the log scale)
    (moved,) = plan_studies(load_suite(tune_suite(), ["train.optimizer={name: adam, lr: 0.01}"]), ["dwa"])
    lr = moved.space["train.optimizer.lr"]
    assert lr.log and (lr.low, lr.high) == pytest.approx((0.01 / 10 ** 0.5, 0.01 * 10 ** 0.5))
    assert moved.first["train.optimizer.lr"] == 0.01
    with pytest.raises(SuiteError, match=r"train.optimizer.lr = 0.01 lies outside .*tune.space.train.optimizer.lr"):
        plan_studies(load_suite(tune_suite(space={"train.optimizer.lr": {"low": 5e-5, "high": 2e-4}}),
                                ["train.optimizer={name: adam, lr: 0.01}"]))  # a range the suite sets stays
    with pytest.raises(SuiteError, match=r"tune.objective: 'seg/nope' is neither"):
        plan_studies(load_suite(tune_suite(objective="seg/nope")))
    with pytest.raises(SuiteError, match=r"tune.space: method.regularizer.c_dist is no tunable parameter"):
        plan_studies(load_suite(tune_suite(space={"method.regularizer.c_dist": None})))
    with pytest.raises(SuiteError, match=r"tune.baseline: .*'stl'"):
        plan_studies(load_suite(tune_suite(baseline="stl")))


def test_acc_mtl_is_an_objective_maximised_without_a_reference(tune_suite):
    (study,) = plan_studies(load_suite(tune_suite(objective="acc_mtl")), ["dwa"])
    assert study.baseline is None and study.references == () and study.score.maximize
    metrics = {"seg": {"miou": 0.25}, "depth": {"abs_err": 0.5}, "normal": {"mean_angle": 20.0}}
    chosen = {t: [m] for t, ms in metrics.items() for m in ms if t in study.score.chosen}
    expected = acc_mtl({t: metrics[t] for t in chosen}, study.score.directions, chosen)
    assert study.score({t: metrics[t] for t in chosen}, None) == pytest.approx(expected)


def test_processes_sharing_a_study_take_the_budgets_places_in_trial_order():
    study = optuna.create_study()
    first, second, third = study.ask(), study.ask(), study.ask()  # three processes asking at once, budget 2
    assert not is_surplus(study, first.number, 2) and not is_surplus(study, second.number, 2)
    assert is_surplus(study, third.number, 2)
    study.tell(first, 1.0)
    study.tell(third, state=optuna.trial.TrialState.FAIL)  # gave way
    study.enqueue_trial({"x": 1.0})  # an interrupted trial's parameters, queued again, keep their place
    late = study.ask()
    assert late.number == 3 and is_surplus(study, late.number, 2)
    assert not is_surplus(study, 3, 3)


def test_sampler_starts_from_the_papers_values_and_is_reproducible():
    def sampled(seed: int) -> list[float]:
        study = optuna.create_study(sampler=PaperFirstTPE({"x": 0.3}, seed, startup_trials=3))
        study.optimize(lambda trial: (trial.suggest_float("x", 0.0, 1.0) - 0.7) ** 2, n_trials=8)
        return [t.params["x"] for t in study.trials]

    runs = sampled(0)
    assert runs[0] == 0.3 and runs == sampled(0) and runs != sampled(1) and len(set(runs)) == 8


def test_storage_urls_and_password_redaction(tmp_path):
    assert isinstance(open_storage(f"journal:{tmp_path / 'j.log'}"), optuna.storages.JournalStorage)
    assert isinstance(open_storage(f"sqlite:///{tmp_path / 's.db'}"), optuna.storages.RDBStorage)
    with pytest.raises(ValueError, match="expected sqlite:///FILE.db, journal:FILE"):
        open_storage(str(tmp_path / "s.db"))
    assert redacted("postgresql://me:secret@db.lab/optuna") == "postgresql://me:***@db.lab/optuna"


def test_tuning_never_reads_the_test_split(tune_suite, tmp_path, monkeypatch):
    read = []
    load = SynthRooms.load
    monkeypatch.setattr(SynthRooms, "load", lambda self, split: read.append(split) or load(self, split))
    results = tmp_path / "results"
    assert main(["tune", str(tune_suite(trials=2)), "--method", "dwa", "--results", str(results),
                 "--wandb", "disabled"]) == 0
    assert read and set(read) == {"train", "val"}
    outcomes = list(Path(results, "tunable", "tuning").glob("*/result.json"))
    assert len(outcomes) == 3  # the reference and two trials, none with test metrics
    assert all(json.loads(p.read_text())["test"] == {} for p in outcomes)


def test_study_prunes_resumes_after_an_interruption_and_its_best_parameters_run(tune_suite, tmp_path, monkeypatch,
                                                                                  capsys):
    from mtlbench.runner import executor

    # lr 1e-9 barely trains: such trials score below the first (paper) trial from their first epoch on
    path = tune_suite(trials=5, pruner={"name": "median", "n_startup_trials": 1},
                      space={"train.optimizer.weight_decay": None, "method.weighting.temperature": None,
                             "train.optimizer.lr": {"values": [1e-4, 3e-4, 1e-9]}})
    results = tmp_path / "results"
    execute = executor.execute

    def interrupted(job, *args):  # Ctrl-C after the first epoch of the first trial with lr 3e-4
        if job.config["train"]["optimizer"]["lr"] != 3e-4:
            return execute(job, *args)

        def stop(record):
            raise KeyboardInterrupt

        return execute(job, *args[:-1], executor.Validation(args[-1].group, args[-1].config, stop))

    monkeypatch.setattr("mtlbench.tuning.objective.execute", interrupted)
    command = ["tune", str(path), "--method", "dwa", "--results", str(results), "--wandb", "disabled"]
    assert main(command) == 130
    study = load_study(results)
    (stopped,) = [t for t in study.trials if t.user_attrs.get("interrupted")]
    (queued,) = [t for t in study.trials if t.state.name == "WAITING"]
    assert queued.user_attrs["resumes"] == stopped.number

    monkeypatch.setattr("mtlbench.tuning.objective.execute", execute)
    assert main(command) == 0
    study = load_study(results)
    tally = counts(study)
    assert tally.get("COMPLETE", 0) + tally.get("PRUNED", 0) == 5 and tally["FAIL"] == 1
    assert study.trials[0].params["train.optimizer.lr"] == 1e-4
    resumed = next(t for t in study.trials if t.user_attrs.get("resumes") == stopped.number)
    assert resumed.params == stopped.params and resumed.state.name == "COMPLETE"
    assert sorted(resumed.intermediate_values) == [1, 2, 3]  # epoch 1 reported again from the stopped run
    (spec,) = plan_studies(load_suite(path), ["dwa"])
    job = spec.trial_job(spec.jobs[0], resumed.params)
    assert Store(results).result(job.suite, job.id)["resumed_from_epoch"] == {"mtl": 1}  # from its checkpoint
    for trial in study.trials:
        if trial.params.get("train.optimizer.lr") == 1e-9 and trial.state.name != "FAIL":
            assert trial.state.name == "PRUNED"
    assert any(t.state.name == "PRUNED" for t in study.trials)

    params = results / "tunable" / "tuning" / "params.yaml"
    (entry,) = read_params(params)
    assert entry["best_trial"] == study.best_trial.number and entry["params"] == study.best_trial.params
    assert main(["run", str(path), "--params", str(params), "--results", str(results), "--wandb", "disabled"]) == 0
    tuned = apply_params(load_suite(path), params)
    (dwa,) = [j for j in tuned.jobs if j.method == "dwa"]
    result = json.loads((results / "tunable" / dwa.id / "result.json").read_text())
    assert result["config"]["train"]["optimizer"]["lr"] == entry["params"]["train.optimizer.lr"]
    assert result["config"]["tuned"] == entry["study"] and result["test"]
    board = tmp_path / "board"
    assert main(["leaderboard", "tunable", "--results", str(results), "--out", str(board)]) == 0
    text = board.with_suffix(".md").read_text()
    assert "| supervised |" in text and text.split("| supervised |")[1].split("\n")[0].endswith("| paper |")
    assert text.split("| dwa (tuned) |")[1].split("\n")[0].endswith("| tuned |")
    assert "| dwa |" not in text

    # the suite's values beside the tuned ones: two rows of one seed each, not one of two seeds
    assert main(["run", str(path), "--params", str(params), "--beside-paper", "--results", str(results),
                 "--wandb", "disabled"]) == 0
    assert main(["leaderboard", "tunable", "--results", str(results), "--out", str(board)]) == 0
    lines = board.with_suffix(".md").read_text().split("## Across tables")[0].split("\n")
    rows = [line for line in lines if line.startswith(("| dwa |", "| dwa (tuned) |"))]
    assert [r.split(" |")[0] for r in rows] == ["| dwa", "| dwa (tuned)"]  # the tuned row after the paper row
    assert rows[0].endswith("| paper |") and rows[1].endswith("| tuned |")


def test_two_processes_on_one_journal_share_the_trials_without_duplicates(tune_suite, tmp_path):
    path = tune_suite(trials=6, pruner={"name": "median", "n_startup_trials": 2})
    storage = f"journal:{tmp_path / 'study.log'}"
    command = [sys.executable, "-m", "mtlbench.cli", "tune", str(path), "--method", "dwa", "--storage", storage,
               "--results", str(tmp_path / "results"), "--wandb", "disabled"]
    processes = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                 for _ in range(2)]
    outputs = [p.communicate(timeout=600)[0] for p in processes]
    assert [p.returncode for p in processes] == [0, 0], outputs
    study = load_study(tmp_path / "results", storage)
    finished = [t for t in study.trials if t.state.name in ("COMPLETE", "PRUNED")]
    assert len(finished) == 6
    assert len({json.dumps(t.params, sort_keys=True) for t in finished}) == 6
    assert all(any(f"trial {t.number}:" in out for out in outputs) for t in finished)
    assert all("surplus" in t.user_attrs for t in study.trials if t.state.name == "FAIL")


def test_params_file_errors_name_the_file_and_the_fix(tune_suite, tmp_path):
    suite = load_suite(tune_suite())
    with pytest.raises(SuiteError, match="file not found"):
        apply_params(suite, tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    entry = {"dataset": "synthrooms", "scenario": "onelabel", "method": "dwa", "study": "s",
             "params": {"method.weighting.nope": 1.0}}
    bad.write_text(yaml.safe_dump({"studies": [entry]}))
    with pytest.raises(SuiteError, match=r"bad.yaml: study s: parameter 'method.weighting.nope' is not in the config"):
        apply_params(suite, bad)
    bad.write_text(yaml.safe_dump({"studies": [{**entry, "method": "mtpsl"}]}))
    with pytest.raises(SuiteError, match=r"no entry matches .* entries: synthrooms/onelabel/mtpsl"):
        apply_params(suite, bad)


def test_tune_refuses_other_tracks_and_an_empty_budget(tune_suite, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["tune", str(tune_suite()), "--trials", "0"])
    assert "'0' is not a positive integer" in capsys.readouterr().err
    grouping = yaml.safe_load((Path(__file__).parents[1] / "suites" / "synthrooms_grouping.yaml").read_text())
    path = tmp_path / "grouping.yaml"
    path.write_text(yaml.safe_dump(grouping))
    assert main(["tune", str(path), "--results", str(tmp_path / "r")]) == 2
    assert "tuning compares the methods of a suite of scenarios x methods; a grouping suite" in capsys.readouterr().err


def test_every_shipped_tunable_suite_plans_its_studies(without_dataset_files, monkeypatch):
    """Search spaces work for every suite mtlbench ships (the quickstart's lr 1e-3 lies outside the papers')."""
    from conftest import REPO
    from mtlbench.track import TRACKS

    monkeypatch.chdir(REPO)
    planned = 0
    for path in sorted((REPO / "suites").glob("*.yaml")):
        suite = load_suite(path)
        if suite.raw.lr_grid:  # a suite with Yun and Cho's learning-rate grid states its own protocol
            with pytest.raises(SuiteError, match="--set lr_grid=null"):
                plan_studies(suite)
            suite = load_suite(path, ["lr_grid=null"])
        if TRACKS.get(suite.track).tunable:
            studies = plan_studies(suite)
            assert studies and all(s.space for s in studies), path.name
            for study in studies:  # an ablation's weight switched off is not searched
                if study.method == "mtpsl_no_reg":
                    assert "method.regularizer.reg_weight" not in study.space
            planned += 1
    assert planned >= 6


def test_a_teacher_student_method_is_tuned_with_its_teachers_trained_once_and_kept(tune_suite, tmp_path):
    """MuST's trials read the suite's stl jobs (seeded into the tuning folder) as teachers: each teacher trains
    once before the trials, keeps its weights, and every trial records the teacher it learnt from."""
    suite = copy.deepcopy(TUNE_SUITE)
    suite.update(methods=["stl", "must"], tune={"trials": 2, "pruner": "none", "baseline": "stl",
                                                 "space": {"train.optimizer.weight_decay": None}})
    path = tmp_path / "teachers.yaml"
    path.write_text(yaml.safe_dump(suite))
    results = tmp_path / "results"
    assert main(["tune", str(path), "--method", "must", "--results", str(results), "--wandb", "disabled"]) == 0
    outcomes = [json.loads(p.read_text()) for p in Path(results, "tunable", "tuning").glob("*/result.json")]
    teachers = [o for o in outcomes if o["method"] == "stl"]
    students = [o for o in outcomes if o["method"] == "must"]
    assert len(teachers) == 1 and len(students) == 2
    folder = Path(results, "tunable", "tuning", teachers[0]["job_id"])
    assert sorted(p.name for p in folder.glob("weights-*.pt")) == ["weights-depth.pt", "weights-normal.pt",
                                                                    "weights-seg.pt"]
    assert all(s["teacher"]["job_id"] == teachers[0]["job_id"] and s["pseudo_labels"] for s in students)
