"""The label-budget track (Sun et al. 2023): purchases, per-task batching, allocators, TABA's probes (Eq. 5, TAG) and
reduction-rate fit (Eq. 7), suite expansion and a budget suite end to end with its Δ_T leaderboard."""
import json

import numpy as np
import pytest
import torch
from torch import nn

from conftest import write_track_suite
from mtlbench.tracks.budget import ALLOCATORS, Estimates
from mtlbench.tracks.budget.allocators import AllocationError
from mtlbench.tracks.budget.probe import Probe, ProbeSettings, summarise
from mtlbench.tracks.budget.reduction import fit_reduction
from mtlbench.cli import main
from mtlbench.config import SuiteError, load_suite
from mtlbench.data import Split, scenario
from mtlbench.data.augment import Augment
from mtlbench.registry import build
from mtlbench.tasks import DenseL1
from mtlbench.train.trainer import Stage

TASKS = ["cls", "seg", "depth"]


def purchase(new_labels, same_images=False, draw=0, seed_labels=5):
    spec = {"name": "budget", "seed_labels": seed_labels, "new_labels": new_labels, "same_images": same_images,
            "draw": draw, "mask_seed": 0}
    return scenario(spec).plan(100, TASKS, 0)


def seed_rows(mask):
    return [set(np.flatnonzero(mask[:, j]).tolist()) for j in range(mask.shape[1])]


# ------------------------------------------------------------------------------------------ purchases
def test_seed_sets_are_disjoint_and_shared_by_every_allocation_and_draw():
    base = seed_rows(purchase(dict.fromkeys(TASKS, 0)).mask)
    assert all(len(rows) == 5 for rows in base) and len(set.union(*base)) == 15
    for plan in (purchase({"cls": 30, "seg": 2, "depth": 0}, draw=3), purchase({"cls": 9}, same_images=True)):
        assert all(b <= rows for b, rows in zip(base, seed_rows(plan.mask)))


def test_purchases_are_exact_new_images_different_per_task_by_default_and_the_same_with_same_images():
    seeds = set.union(*seed_rows(purchase(dict.fromkeys(TASKS, 0)).mask))
    bought = [rows - seeds for rows in seed_rows(purchase({"cls": 30, "seg": 10, "depth": 4}).mask)]
    assert [len(b) for b in bought] == [30, 10, 4]
    assert not (bought[0] & bought[1]) and not (bought[1] & bought[2]) and not (bought[0] & bought[2])
    same = [rows - seeds for rows in seed_rows(purchase({"cls": 30, "seg": 10, "depth": 4}, same_images=True).mask)]
    assert same[2] <= same[1] <= same[0] and [len(b) for b in same] == [30, 10, 4]
    other_draw = [rows - seeds for rows in seed_rows(purchase({"cls": 30, "seg": 10, "depth": 4}, draw=1).mask)]
    assert other_draw[0] != bought[0]


def test_a_purchase_larger_than_the_pool_names_the_fix():
    with pytest.raises(ValueError, match="enlarge the dataset's train split or lower the budget"):
        purchase({"cls": 80, "seg": 10})


def test_per_task_batches_supervise_one_task_per_block_from_its_labelled_images():
    plan = purchase({"cls": 30, "seg": 2, "depth": 0})
    stage = Stage("mtl", {}, type("S", (), {"__len__": lambda self: 100})(), torch.from_numpy(plan.mask),
                  per_task=plan.per_task)
    batches = stage.batches(4, torch.Generator().manual_seed(0))
    assert len(batches) == -(-(35 + 7 + 5) // (3 * 4))  # an epoch draws as many labels as there are
    for index, mask in batches:
        assert index.shape == (12,) and mask.sum(1).eq(1).all()
        for j in range(3):
            rows = index[mask[:, j] == 1]
            assert len(rows) == 4 and plan.mask[rows.numpy(), j].all()
    fixed = Stage("mtl", {}, stage.train, stage.mask, per_task=True, steps=7)
    assert len(fixed.batches(4, torch.Generator().manual_seed(0))) == 7  # steps_per_epoch, whatever the labels


# ----------------------------------------------------------------------------------------- allocators
COSTS = {"cls": 1, "seg": 20}


def allocator(spec):
    return build(ALLOCATORS, spec if isinstance(spec, dict) else {"name": spec})


def test_heuristic_allocators_follow_sec_5_2():
    budget = 300 * 21
    assert allocator("equal_new_images").allocate(COSTS, budget) == {"cls": 300, "seg": 300}
    assert allocator("equal_budget").allocate(COSTS, budget) == {"cls": 3150, "seg": 157}
    assert allocator({"name": "single_task", "task": "seg"}).allocate(COSTS, budget) == {"cls": 0, "seg": 315}
    with pytest.raises(AllocationError, match="not one of"):
        allocator({"name": "single_task", "task": "depth"}).allocate(COSTS, budget)


def test_a_fixed_share_spends_that_share_of_the_budget_on_each_task():
    budget = 6300  # Sun et al. 2023 Fig. 2: 300 seeds per task, c = 1:20, 6,300 units between cls and seg
    assert allocator({"name": "share", "shares": {"cls": 0.3, "seg": 0.7}}).allocate(COSTS, budget) == \
        {"cls": 1890, "seg": 220}
    assert allocator({"name": "share", "shares": {"seg": 1.0}}).allocate(COSTS, budget) == \
        allocator({"name": "single_task", "task": "seg"}).allocate(COSTS, budget)
    assert allocator({"name": "share", "shares": {"cls": 0.5, "seg": 0.5}}).allocate(COSTS, budget) == \
        allocator("equal_budget").allocate(COSTS, budget)
    assert allocator({"name": "share", "shares": {"cls": 0.1, "seg": 0.9}}).label() == "10% cls / 90% seg"
    with pytest.raises(AllocationError, match="sum to 1.2"):
        allocator({"name": "share", "shares": {"cls": 0.6, "seg": 0.6}})


def test_100_percent_seg_star_gives_the_same_images_their_derived_cls_labels_for_free():
    budget = 9300  # Sun et al. 2023 Table 1
    star = allocator({"name": "single_task", "task": "seg", "same_images": True, "derived": ["cls"]})
    counts = star.allocate(COSTS, budget)
    assert counts == {"cls": 465, "seg": 465} and star.spent(COSTS, counts) == 9300 and star.label() == "100% seg*"
    with pytest.raises(AllocationError, match="same_images: true"):
        allocator({"name": "single_task", "task": "seg", "derived": ["cls"]})
    from mtlbench.tracks.budget.scenario import Budget
    mask = Budget(seed_labels=2, new_labels=counts, same_images=True).mask(1000, ["cls", "seg"], 0)
    assert (mask.sum(0) - 2).tolist() == [465, 465]  # beyond the seed sets (disjoint: no seed image has both)
    assert int((mask.sum(1) == 2).sum()) == 465  # every bought seg image comes with its cls label


def test_taba_uses_the_estimates_its_ablation_names():
    estimates = Estimates({"cls": 1.13, "seg": 2.03}, {"cls": 3.0, "seg": 0.1}, {"cls": 0.999, "seg": 0.997})
    taba = allocator("taba").allocate(COSTS, 6300, estimates)
    assert taba == {"cls": 2920, "seg": 169}  # Sun et al. 2023's VOC estimates (Sec. 5.3)
    assert allocator({"name": "taba", "beta": 1.0}).allocate(COSTS, 6300, estimates) == {"cls": 6300, "seg": 0}
    assert allocator({"name": "taba", "relatedness": "tag"}).allocate(COSTS, 6300, estimates)["cls"] > taba["cls"]
    no_relatedness = allocator({"name": "taba", "relatedness": "none"})
    assert no_relatedness.needs == ("reduction",) and allocator({"name": "taba", "beta": 0.99}).needs == ("probe",)
    assert no_relatedness.allocate(COSTS, 6300, estimates) != taba
    with pytest.raises(AllocationError, match="not finite"):
        allocator("taba").allocate(COSTS, 6300, Estimates({"cls": 1.0, "seg": float("nan")}, {}, estimates.beta))


# ------------------------------------------------------------------------------------- reduction rate
@pytest.mark.parametrize("beta,delta_s", [(0.99, 0.02), (0.999, 0.5), (0.9, -0.01)])
def test_beta_fit_recovers_a_known_beta_from_an_eq_7_curve(beta, delta_s):
    a = np.array([10, 20, 40, 80, 160])
    gains = (1 - beta ** a) / (1 - beta) * delta_s
    fitted, fitted_delta, error = fit_reduction(a, gains)
    assert fitted == pytest.approx(beta, abs=2e-4) and fitted_delta == pytest.approx(delta_s, rel=1e-2)
    assert error < 1e-3 * abs(gains).max()


# --------------------------------------------------------------------------------------------- probes
class Toy(nn.Module):
    """pred_t = a_t (w * x): a shared 1x1 convolution w, a scalar head a_t per task."""

    def __init__(self, tasks):
        super().__init__()
        self.shared = nn.Conv2d(3, 1, 1, bias=False)
        nn.init.constant_(self.shared.weight, 0.0)
        self.heads = nn.ParameterDict({t: nn.Parameter(torch.ones(())) for t in tasks})

    def shared_parameters(self):
        return list(self.shared.parameters())

    def forward(self, x):
        feature = self.shared(x)
        return {t: a * feature for t, a in self.heads.items()}


def toy_probe():
    """Task ``target`` regresses w* . x; ``helper`` regresses the same, ``hurter`` its negative."""
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (64, 3, 4, 4), generator=generator, dtype=torch.uint8)
    signal = torch.einsum("c,nchw->nhw", torch.tensor([1.0, -2.0, 0.5]), images.float() / 255)[:, None]
    targets = {"target": signal, "helper": signal, "hurter": -signal}
    tasks = {t: DenseL1(t, 1) for t in targets}
    train, val = Split(images[:48], {t: v[:48] for t, v in targets.items()}), \
        Split(images[48:], {t: v[48:] for t, v in targets.items()})
    model = Toy(tasks)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    stage = Stage("mtl", tasks, train, torch.ones(48, 3))
    probe = Probe(ProbeSettings(every=10, steps=2), stage, model, optimizer, val, 8, 16,
                  Augment(scale_crop=False, flip=False), 0, torch.device("cpu"))
    return probe, model


def test_eq_5_and_tag_see_help_as_positive_and_harm_as_negative_and_the_probe_leaves_training_untouched():
    probe, model = toy_probe()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    for step in range(1, 31):
        probe.after_step(step)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    report = probe.report()
    assert report["probes"] == 3
    assert report["relatedness"]["helper"]["target"] > 0.5 and report["relatedness"]["hurter"]["target"] < 0
    assert report["tag_relatedness"]["helper"]["target"] > 0 and report["tag_relatedness"]["hurter"]["target"] < 0
    assert report["informativeness"]["hurter"] < report["informativeness"]["helper"]
    relatedness = report["relatedness"]
    assert report["informativeness"]["helper"] == pytest.approx(1 + relatedness["helper"]["target"]
                                                                + relatedness["helper"]["hurter"])


ROUND_OFF = (0.1 + 0.2) - 0.3  # 5.6e-17: two equal sums, added in another order, left this apart


def round_off_records():
    """Three probe steps of tasks (a, b); at the second, b's two scores are equal up to float round-off."""
    def step(numerator_ab, denominator_b, alone_b):
        return {"numerator": [[0.0, numerator_ab], [0.02, 0.0]], "denominator": [0.04, denominator_b],
                "alone": [0.5, alone_b], "tag": [[1.0, 0.5], [0.5, 1.0]]}

    return [step(0.01, 0.02, 0.6), step(0.01, ROUND_OFF, 0.6), step(0.03, 0.02, 0.6)]


def test_eq_5_leaves_out_a_step_whose_denominator_moved_by_round_off_only():
    records = round_off_records()
    kept = summarise(records, ["a", "b"], tolerance=1e-9)
    assert kept["relatedness"]["a"]["b"] == pytest.approx((0.01 / 0.02 + 0.03 / 0.02) / 2)  # step 2 left out
    assert kept["relatedness"]["b"]["a"] == pytest.approx(0.02 / 0.04)
    assert kept["informativeness"]["a"] == pytest.approx(1 + 1.0) and kept["skipped"] == 1
    exact = summarise(records, ["a", "b"], tolerance=0.0)  # the paper's Eq. 5 as written: the ratio explodes
    assert exact["relatedness"]["a"]["b"] > 1e13 and exact["skipped"] == 0


def test_eq_5_on_average_terms_is_undefined_only_where_the_mean_denominator_did_not_move():
    records = round_off_records()
    terms = summarise(records, ["a", "b"], average="terms", tolerance=1e-9)
    assert terms["relatedness"]["a"]["b"] == pytest.approx((0.05 / 3) / ((0.04 + ROUND_OFF) / 3))
    still = [{**r, "denominator": [0.04, 0.0]} for r in records]
    assert summarise(still, ["a", "b"], average="terms", tolerance=1e-9)["relatedness"]["a"]["b"] is None


# ---------------------------------------------------------------------------------------------- suites
BUDGET_SUITE = {
    "name": "budget_tiny",
    "dataset": {"name": "synthrooms", "height": 32, "width": 32, "train": 120, "val": 16, "test": 16},
    "tasks": ["cls", "seg"],
    "seeds": [0, 1],
    "model": {"name": "segnet", "width": 0.0625},
    "train": {"epochs": 2, "batch_size": 4, "eval_batch_size": 16, "device": "cpu"},
    "budget": {"seed_labels": 6, "costs": {"1:3": {"cls": 1, "seg": 3}, "1:5": {"cls": 1, "seg": 5}},
               "allocators": ["equal_new_images", "equal_budget", {"name": "taba", "relatedness": "tag"}],
               "probe": {"every": 1}, "reduction": {"ensemble": 2, "pseudo_labels": [1, 2], "fit_steps": 50}},
}


def write_budget_suite(tmp_path, **changes):
    return write_track_suite(tmp_path / "budget.yaml", BUDGET_SUITE, "budget", changes)


def test_budget_suite_expands_estimates_first_and_shares_identical_retrainings(tmp_path):
    suite = load_suite(write_budget_suite(tmp_path))
    methods = [job.method for job in suite.jobs]
    assert methods[:3] == ["taba-probe", "taba-reduction-cls", "taba-reduction-seg"]
    assert [job.kind for job in suite.jobs[:3]] == ["taba-probe", "taba-reduction", "taba-reduction"]
    estimates = {job.id for job in suite.jobs[:3]}
    taba_jobs = [job for job in suite.jobs if job.needs]
    assert taba_jobs and all(set(job.needs) == estimates for job in taba_jobs)  # TABA reads every estimate
    assert all(job.kind == "train" for job in suite.jobs[3:])
    table = suite.details["tables"][0]
    rows = {s["label"]: {r["allocator"]: r for r in s["rows"]} for s in table["settings"]}
    # B = n (c_cls + c_seg): Equal New Images buys n labels per task in both settings, so one job per seed
    assert rows["1:3"]["Equal New Images"]["jobs"] == rows["1:5"]["Equal New Images"]["jobs"]
    assert rows["1:5"]["Equal Budget"]["new_labels"] == {"cls": 18, "seg": 3}
    taba = next(j for j in suite.jobs if j.id == rows["1:5"]["TABA (TAG relatedness)"]["jobs"][0])
    assert taba.config["scenario"]["new_labels"] is None
    assert taba.config["purchase"]["estimates"] == table["estimates"]  # TAG's I and the Eq. 7 betas
    assert set(taba.inputs) == {"budget-purchase"} and set(taba.inputs["budget-purchase"]) == estimates
    assert set(table["estimates"]) == {"probe", "reduction"}
    assert len(suite.jobs) == 3 + 2 + 2 * (1 + 2 + 2)  # estimates, seed sets, per seed: shared ENI + 2 x (EB, TABA)


@pytest.mark.parametrize("changes,message", [
    ({"costs": {"1:3": {"cls": 1}}}, "one cost per task"),
    ({"seed_labels": 70}, "seed sets of 70"),
    ({"costs": {"1:100": {"cls": 1, "seg": 100}}}, "enlarge its train split or lower the budget"),
    ({"allocators": [{"name": "taba", "relatedness": "loss"}]}, "relatedness must be one of"),
    ({"probe": {"evry": 3}}, "unknown field evry"),
])
def test_a_bad_budget_section_is_refused_before_training(tmp_path, changes, message):
    with pytest.raises(SuiteError, match=message):
        load_suite(write_budget_suite(tmp_path, **changes))


def test_the_budget_scenario_belongs_to_the_budget_section(write_suite):
    with pytest.raises(SuiteError, match="made by a suite's budget section"):
        load_suite(write_suite({"scenarios": [{"name": "budget", "seed_labels": 2}]}))


def test_budget_suite_runs_end_to_end_without_reading_the_test_split_for_estimates(tmp_path, monkeypatch):
    from mtlbench.data.synthrooms import SynthRooms

    reads = []
    original = SynthRooms.load
    monkeypatch.setattr(SynthRooms, "load", lambda self, split: reads.append(split) or original(self, split))
    path, results = write_budget_suite(tmp_path), tmp_path / "results"
    assert main(["run", str(path), "--results", str(results), "--wandb", "disabled"]) == 0
    suite = load_suite(path)
    by_method = {}
    for job in suite.jobs:
        by_method.setdefault(job.method, []).append(json.loads((results / "budget_tiny" / job.id / "result.json")
                                                               .read_text()))
    assert reads[:6] == ["train", "val"] * 3  # the three estimate jobs ran first and never read "test"
    probe = by_method["taba-probe"][0]["estimate"]
    assert probe["probes"] > 0 and set(probe["tag_informativeness"]) == {"cls", "seg"}
    for task in ("cls", "seg"):
        fit = by_method[f"taba-reduction-{task}"][0]["estimate"]
        assert 0 <= fit["beta"] <= 1 and [p["pseudo_labels"] for p in fit["curve"]] == [6, 12]
        costs = by_method[f"taba-reduction-{task}"][0]["costs"]  # its 2 ensemble and 2 pseudo-label trainings
        assert costs["step_flops"] > 0 and costs["parameters"] > 0 and costs["epoch_seconds"] > 0
    table = suite.details["tables"][0]
    taba_jobs = [r for s in table["settings"] for r in s["rows"] if r["allocator"].startswith("TABA")]
    for row in taba_jobs:
        result = json.loads((results / "budget_tiny" / row["jobs"][0] / "result.json").read_text())
        setting = next(s for s in table["settings"] if row in s["rows"])
        spent = sum(n * setting["costs"][t] for t, n in result["new_labels"].items())
        assert spent <= setting["budget"] and result["purchase"]["tag_informativeness"] == pytest.approx(
            probe["tag_informativeness"])
        assert result["labels_per_task"] == {t: 6 + n for t, n in result["new_labels"].items()}

    summary_path = results / "budget_tiny" / "suite.json"  # a paper's numbers, as a suite would declare them
    summary = json.loads(summary_path.read_text())
    summary["leaderboard"]["published"] = [{"source": "Sun et al. 2023", "table": "Table 3", "scenario": "1:3",
                                            "rows": {"Equal New Images": {"delta_T": 15.1, "cls/jaccard": 0.7}}}]
    summary_path.write_text(json.dumps(summary))
    assert main(["leaderboard", "budget_tiny", "--results", str(results), "--out", str(tmp_path / "lb")]) == 0
    text = (tmp_path / "lb.md").read_text()
    assert "c cls : seg = 1 : 5, B = 36" in text and "Initial seed set" in text and "TABA's compute" in text
    assert text.count("Beside Sun et al. 2023, Table 3") == 1  # under the 1:3 table only
    assert "with 2 repeats no paired comparison here can be significant" in text and "**" not in text
    published = __import__("pandas").read_csv(tmp_path / "lb-published.csv").set_index("value")
    assert published.loc["delta_T", "difference"] == pytest.approx(published.loc["delta_T", "ours"] - 15.1, abs=1e-4)
    assert (tmp_path / "lb.tex").read_text().count(r"\begin{tabular}") == 1
    assert "data:image" not in (tmp_path / "lb.html").read_text() and "Beside the papers" in (tmp_path / "lb.html"
                                                                                             ).read_text()
    frame = __import__("pandas").read_csv(tmp_path / "lb.csv")
    eni = frame[(frame.costs == "1:3") & (frame.allocator == "Equal New Images")].iloc[0]
    seed = [json.loads((results / "budget_tiny" / i / "result.json").read_text()) for i in table["seed_jobs"]]
    reference = {t: np.mean([r["test"][t][r["primary"][t]] for r in seed]) for t in ("cls", "seg")}
    repeats = [json.loads((results / "budget_tiny" / i / "result.json").read_text())
               for i in table["settings"][0]["rows"][0]["jobs"]]
    expected = np.mean([np.mean([100 * (r["test"][t][r["primary"][t]] - reference[t]) / reference[t]
                                 for t in ("cls", "seg")]) for r in repeats])  # Eq. 9, both metrics higher-better
    assert eni["delta_T"] == pytest.approx(expected, rel=1e-5) and eni["repeats"] == 2
