import subprocess
import sys

import pytest

from mtlbench.cli import main
from conftest import REPO


def test_list_shows_every_registry(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in ("synthrooms", "onelabel", "randomlabels", "halflabels", "mask_file", "supervised", "stl",
                 "segnet", "uniform", "full", "budget", "equal_budget", "single_task"):
        assert name in out
    assert "taba (same_images=False, relatedness='eq5', beta=None)" in out
    assert "sta_gap4: networks=shared, supervision=sta_gap(gap=4)," in out  # a preset's non-default settings


def test_import_and_trainer_need_only_torch_and_numpy():
    code = ("import sys, mtlbench, mtlbench.train, mtlbench.tracks.budget.probe, mtlbench.tracks.budget.reduction, "
            "mtlbench.tracks.budget.estimates; "
            "heavy = {'wandb', 'optuna', 'pydantic', 'pandas', 'yaml', 'scipy', 'matplotlib', 'torchvision', 'PIL'} "
            "& set(sys.modules); "
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def test_sync_uploads_every_offline_run_of_the_suite(tmp_path, monkeypatch, capsys):
    runs = [tmp_path / "r" / "demo" / job / "wandb" / f"offline-run-20260101_000000-{job}" for job in ("a1", "b2")]
    for run in runs:
        run.mkdir(parents=True)
    (tmp_path / "r" / "other" / "c3" / "wandb" / "offline-run-x").mkdir(parents=True)
    (tmp_path / "r" / "demo" / "suite.json").write_text("{}")
    calls = []
    monkeypatch.setattr(subprocess, "run", lambda args, **_: calls.append(args) or subprocess.CompletedProcess(args, 0))
    assert main(["sync", "demo", "--results", str(tmp_path / "r")]) == 0
    assert [call[-1] for call in calls] == [str(run) for run in runs]
    assert all(call[1:4] == ["-m", "wandb", "sync"] for call in calls)
    assert "syncing 2 offline W&B run(s)" in capsys.readouterr().out


# ------------------------------------------------------------------------ bad input: one line, exit code 2
def outcome(argv: list[str], capsys) -> tuple[int, str]:
    """(exit code, stderr) of a command, whether main returns or argparse exits."""
    try:
        code = main(argv)
    except SystemExit as stop:  # argparse's usage errors
        code = stop.code
    return code, capsys.readouterr().err


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A suite file, ``tiny``, and a results folder where it finished."""
    import copy

    import yaml
    from conftest import TINY_SUITE

    root = tmp_path_factory.mktemp("finished")
    suite = root / "tiny.yaml"
    suite.write_text(yaml.safe_dump({**copy.deepcopy(TINY_SUITE), "methods": ["supervised"]}))
    assert main(["run", str(suite), "--results", str(root / "results"), "--wandb", "disabled"]) == 0
    return suite, root / "results"


@pytest.mark.parametrize("argv, expected", [
    (["data", "check", "nyu", "/x"], "unknown dataset 'nyu'. Did you mean 'nyuv2'?"),
    (["bench", "--methods", "supervisd"], "unknown method 'supervisd'. Did you mean 'supervised'?"),
    (["bench", "--tasks", "segg"], "unknown task 'segg'. Did you mean 'seg'?"),
    (["bench", "--scenario", "onelabell"], "unknown scenario 'onelabell'. Did you mean 'onelabel'?"),
    (["bench", "--device", "gpu0"], "'gpu0' is not a device torch knows"),
    (["bench", "--dataset", "{name: union"], "--dataset: not a JSON mapping"),
    (["bench", "--dataset", "pascal_voc_detection"], "unknown task 'seg'. Valid choices: detection"),
    (["bench", "--dataset", '{"name": "union", "parts": []}', "--tasks", "depth"], "parts = []: at least two parts"),
    (["status", "SUITE", "--set", "methods=[a"], "the value is not valid YAML"),
    (["status", "SUITE", "--set", "train.epochs.x=3"], "'train.epochs.x' names no field"),
    (["status", "SUITE", "--set", "scenarios.first=3"], "a list takes an index"),
    (["sync", "tiyn", "--results", "RESULTS"], "unknown suite 'tiyn'. Did you mean 'tiny'?"),
    (["leaderboard", "tiyn", "--results", "RESULTS"], "unknown suite 'tiyn'. Did you mean 'tiny'?"),
    (["leaderboard", "tiny.yaml", "--results", "RESULTS", "--baseline", "stll"], "--baseline 'stll' is not a method"),
])
def test_a_mistake_is_one_line_naming_it_and_exit_code_2(argv, expected, finished, capsys):
    suite, results = finished
    argv = [str(suite) if a == "SUITE" else str(results) if a == "RESULTS" else a for a in argv]
    code, err = outcome(argv, capsys)
    assert code == 2 and expected in err and len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize("argv, expected", [
    (["run", "SUITE", "--workers", "0"], "argument --workers: '0' is not a positive integer"),
    (["run", "SUITE", "--claim-timeout", "-5"], "argument --claim-timeout: '-5' is not a positive number"),
    (["select", "--val", "v", "--test", "t", "--budgets", "1:5:0"], "needs STEP > 0 and STOP >= START"),
    (["select", "--val", "v", "--test", "t", "--budgets", "5:1:1"], "needs STEP > 0 and STOP >= START"),
    (["select", "--val", "v", "--test", "t", "--budgets", "0,1"], "budgets are positive numbers"),
    (["select", "--val", "v", "--test", "t", "--budgets", "a:b"], "expected START:STOP:STEP"),
    (["allocate", "--costs", "a,b", "--budget", "10", "--informativeness", "1,1", "--beta", "0.9,0.9"],
     "argument --costs: 'a,b': expected comma-separated ints"),
    (["allocate", "--costs", "1,2", "--budget", "0", "--informativeness", "1,1", "--beta", "0.9,0.9"],
     "argument --budget: '0' is not a positive integer"),
    (["bench", "--steps", "0"], "argument --steps: '0' is not a positive integer"),
    (["bench", "--warmup", "-1"], "argument --warmup: '-1' is not a non-negative integer"),
    (["tune", "SUITE", "--trials", "0"], "argument --trials: '0' is not a positive integer"),
])
def test_an_argument_out_of_range_is_refused_by_the_parser(argv, expected, finished, capsys):
    argv = [str(finished[0]) if a == "SUITE" else a for a in argv]
    code, err = outcome(argv, capsys)
    assert code == 2 and expected in err.strip().splitlines()[-1], err


def test_a_yaml_syntax_error_names_the_file_line_and_column(tmp_path, capsys):
    path = tmp_path / "broken.yaml"
    path.write_text("name: broken\nmethods: [supervised\n")
    code, err = outcome(["status", str(path)], capsys)
    assert code == 2 and err.startswith(f"error: {path}:3:1: not valid YAML: expected ',' or ']'"), err
    assert "<unicode string>" not in err and len(err.strip().splitlines()) == 1


def test_a_reader_that_stops_early_gets_no_traceback():
    done = subprocess.run(f"{sys.executable} -m mtlbench.cli list --markdown | head -c 1", shell=True, cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.stdout == "#" and done.stderr == ""


def test_list_names_a_required_parameter_without_a_default(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "  single_task (same_images=False, task, derived=())" in out and "MISSING" not in out


def test_each_figure_format_is_written_only_when_asked_for_and_cd_rank_is_always_a_column(finished, tmp_path, capsys):
    _, results = finished
    for formats, kept in [("md,csv,pdf", {".pdf"}), ("md,csv,png", {".png"}), ("md,csv,html", set())]:
        out = tmp_path / formats.replace(",", "_") / "tiny"
        assert main(["leaderboard", "tiny", "--results", str(results), "--out", str(out), "--format", formats]) == 0
        figures = {p.suffix for p in out.parent.glob("tiny-*") if p.suffix in (".png", ".pdf")}
        assert figures == kept, formats  # html inlines png figures and leaves none behind
    header = (out.parent / "tiny-summary.csv").read_text().splitlines()[0].split(",")
    assert header[-3:] == ["iman_davenport_p", "critical_difference", "cd_rank"]  # empty: one dataset


def test_costs_prints_the_shared_network_and_stls_per_task_networks_measured(write_suite, capsys):
    from mtlbench.data.synthrooms import SynthRooms
    from mtlbench.models.costs import model_cost

    assert main(["costs", str(write_suite())]) == 0
    rows = {line.split(" | ")[3]: line.split(" | ") for line in capsys.readouterr().out.splitlines()[2:]}
    tasks = {t: SynthRooms().tasks()[t] for t in ("seg", "depth", "normal")}
    spec = {"name": "segnet", "width": 0.0625}
    shared = model_cost(spec, tasks, 32, 64)
    singles = [model_cost(spec, {t: task}, 32, 64) for t, task in tasks.items()]
    assert rows["shared"][1] == "32x64" and float(rows["shared"][4]) == round(shared.parameters / 1e6, 2)
    assert float(rows["per_task"][4]) == round(sum(c.parameters for c in singles) / 1e6, 2)
    assert shared.macs > 0 and sum(c.macs for c in singles) > shared.macs
