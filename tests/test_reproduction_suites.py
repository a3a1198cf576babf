"""The paper-reproduction suites are set as the authors' released scripts (Nishi et al. 2024 Tables 1-2)."""
import pytest

from mtlbench.config import load_suite
from conftest import REPO

PAPER_004 = ("supervised", "consistency", "mtpsl", "jtr")


@pytest.mark.parametrize("suite, batch, flip, mtpsl_weight", [("nyu_partial", 4, False, 2.0),
                                                              ("cityscapes_partial", 16, True, 1.0)])
def test_the_reproduction_suites_train_as_the_released_scripts(suite, batch, flip, mtpsl_weight,
                                                               without_dataset_files, monkeypatch):  # noqa: F811
    monkeypatch.chdir(REPO)
    jobs = load_suite(REPO / "suites" / f"{suite}.yaml").jobs
    for job in jobs:
        train = job.config["train"]
        assert train["precision"] == "fp32" and train["batch_size"] == batch and train["epochs"] == 300
        assert train["optimizer"] == {"name": "adam", "lr": 1e-4, "weight_decay": 0.0}
        assert train["scheduler"] == {"name": "step", "step_size": 200, "gamma": 0.5}
        assert train["augment"] == {"scale_crop": True, "flip": flip, "align_corners": True, "photometric_ops": 2,
                                    "photometric_magnitude": 6}
        method = job.config["method"]
        if job.method in PAPER_004:  # the scripts sum each image's labelled task losses
            assert method["supervision"] == {"name": "full", "per_image": "sum"}
        if job.method == "mtpsl":
            assert method["regularizer"]["weight"] == mtpsl_weight
    assert {job.method for job in jobs} >= {"stl", *PAPER_004}
