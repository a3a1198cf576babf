import subprocess
import sys

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
    calls = []
    monkeypatch.setattr(subprocess, "run", lambda args, **_: calls.append(args) or subprocess.CompletedProcess(args, 0))
    assert main(["sync", "demo", "--results", str(tmp_path / "r")]) == 0
    assert [call[-1] for call in calls] == [str(run) for run in runs]
    assert all(call[1:4] == ["-m", "wandb", "sync"] for call in calls)
    assert "syncing 2 offline W&B run(s)" in capsys.readouterr().out
