"""The regularizer-alignment probe (mtlbench/tracks/partial/alignment.py): it measures what it says, and it leaves
training untouched."""
from __future__ import annotations

import copy
import math

import pytest

from conftest import TINY_JOB, preset
from mtlbench.methods.parts import Regularizer
from mtlbench.tracks.partial.alignment import GradientAlignment, measure_job, mean_over_rows
from mtlbench.train import run_job
from mtlbench.train.trainer import Observed


def job(method: str) -> dict:
    config = copy.deepcopy(TINY_JOB)
    config["method"] = preset(method)
    config["scenario"] = {**config["scenario"], "name": "randomlabels"}
    config["train"]["epochs"] = 1
    return config


@pytest.mark.parametrize("method", ["mtpsl", "jtr"])
def test_the_probe_changes_nothing_in_training(method, tmp_path):
    (tmp_path / "plain").mkdir()
    (tmp_path / "probed").mkdir()
    plain = run_job(job(method), tmp_path / "plain", test=False)
    probed = run_job(job(method), tmp_path / "probed", test=False, observers=[GradientAlignment.factory(16, 1)])
    assert len(probed["observed"][0]) == 3  # after steps 1, 2 and 3 of the 24 images' epoch
    assert probed["val"] == plain["val"]
    assert probed["history"][-1]["train/regularizer"] == plain["history"][-1]["train/regularizer"]


class Oracle(Regularizer):
    """A regularizer whose loss is the supervised loss of the labels the mask hides (or of those it shows)."""

    def __init__(self, rows: int) -> None:
        self.rows = rows

    def loss(self, ctx, net):
        view = ctx.views[0]
        return mean_over_rows(ctx.tasks, view.preds, view.targets, ctx.mask == self.rows)


@pytest.mark.parametrize("shown, key", [(0, "cos_hidden"), (1, "cos_labelled")])
def test_a_regularizer_that_is_the_hidden_or_the_shown_loss_aligns_exactly(shown, key, tmp_path, monkeypatch):
    records = []

    def probe(seen: Observed) -> GradientAlignment:
        seen.recipe.regularizer = Oracle(shown)
        observer = GradientAlignment(seen, 16, 1)
        records.append(observer)
        return observer

    run_job(job("supervised"), tmp_path, test=False, observers=[probe])
    first = records[0].records[0]
    for region in ("shared", "seg", "depth", "normal"):
        assert first[region][key] == pytest.approx(1.0, abs=1e-5), region
    if shown:
        assert first["shared"]["norm_ratio"] == pytest.approx(1.0, rel=1e-5)
    else:  # the hidden and the shown labels are different images: their gradients are not the same
        assert first["shared"]["cos_labelled"] < 0.999


def test_measure_job_reads_no_test_split(tmp_path, monkeypatch):
    from mtlbench.data.synthrooms import SynthRooms

    load = SynthRooms.load

    def guarded(self, split):
        assert split != "test"
        return load(self, split)

    monkeypatch.setattr(SynthRooms, "load", guarded)
    records = measure_job(job("consistency"), tmp_path, images=8, every=2)
    assert [r["step"] for r in records] == [1, 2]
    assert all(math.isfinite(r["shared"]["norm_ratio"]) for r in records)
