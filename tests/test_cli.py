import subprocess
import sys

from mtlbench.cli import main
from conftest import REPO


def test_list_shows_every_registry(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in ("synthrooms", "onelabel", "randomlabels", "halflabels", "mask_file", "supervised", "stl",
                 "segnet", "uniform", "full"):
        assert name in out


def test_import_and_trainer_need_only_torch_and_numpy():
    code = ("import sys, mtlbench, mtlbench.train; "
            "heavy = {'wandb', 'optuna', 'pydantic', 'pandas', 'yaml', 'scipy', 'matplotlib'} & set(sys.modules); "
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)
