"""Teacher-student baselines (methods/teachers.py, methods/kd_mtl.py): MuST, Noisy Student and KD-MTL learn from the
suite's STL jobs, which train once, keep their weights and block only their students when they fail."""
import json

import pytest
import torch

from mtlbench.config import load_suite
from mtlbench.data.synthrooms import SynthRooms
from mtlbench.methods import METHODS, Recipe
from mtlbench.methods.context import StepContext, View
from mtlbench.methods.kd_mtl import KDMTL, normalised
from mtlbench.methods.teachers import UNTRAINED, MuST, NoisyStudent
from mtlbench.models import MODELS
from mtlbench.runner import RunOptions, Store, run_suite
from mtlbench.train.kind import Train
from mtlbench.train.trainer import autocast_for
from test_graph import FAST, Recorder

STUDENTS = ["must", "noisy_student", "kd_mtl"]
TASKS = {k: v for k, v in SynthRooms().tasks().items() if k in ("seg", "depth", "normal")}


def counted_runs(monkeypatch):
    """The method of every job the trainer runs, in order."""
    runs, original = [], Train.run

    def counting(self, config, job_dir, hooks, test):
        runs.append(config["method"]["name"])
        return original(self, config, job_dir, hooks, test)

    monkeypatch.setattr(Train, "run", counting)
    return runs


def test_students_share_one_teacher_job_that_trains_once_and_keeps_its_weights(write_suite, tmp_path, monkeypatch):
    suite = load_suite(write_suite({"methods": ["supervised", *STUDENTS, "stl"], "train": FAST}))
    supervised, *students, stl = suite.jobs
    assert all(job.needs == (stl.id,) for job in students) and not supervised.needs
    assert stl.keeps_weights and not any(job.keeps_weights for job in [supervised, *students])
    runs = counted_runs(monkeypatch)
    assert run_suite(suite, RunOptions(str(tmp_path), wandb="disabled"), Recorder(suite.jobs)) == []
    assert sorted(runs) == sorted(["supervised", *STUDENTS, "stl"]) and runs.index("stl") < runs.index("must")
    folder = tmp_path / "tiny" / stl.id
    assert sorted(p.name for p in folder.glob("*.pt")) == ["weights-depth.pt", "weights-normal.pt", "weights-seg.pt"]
    assert not list((tmp_path / "tiny" / supervised.id).glob("*.pt"))  # others keep no weights
    mask = torch.from_numpy(__import__("numpy").load(tmp_path / "tiny" / students[0].id / "mask.npy"))
    for job in students:
        result = json.loads((tmp_path / "tiny" / job.id / "result.json").read_text())
        assert result["teacher"]["job_id"] == stl.id
        assert result["config"]["method"] == job.config["method"]  # the hashed config, without the teachers' files
        assert result["labels_per_task"] == dict(zip(TASKS, mask.sum(0).int().tolist()))  # the real labels
        if job.method != "kd_mtl":
            pseudo = {t: r["images"] for t, r in result["pseudo_labels"].items()}
            assert pseudo == pytest.approx(dict(zip(TASKS, (1 - mask.mean(0)).tolist())))
    runs.clear()
    assert run_suite(suite, RunOptions(str(tmp_path), wandb="disabled"), Recorder(suite.jobs)) == []
    assert runs == []  # everything finished: nothing trains again


def test_a_teacher_from_another_suite_is_copied_not_trained_again(write_suite, tmp_path, monkeypatch):
    first = load_suite(write_suite({"name": "first", "methods": ["must", "stl"], "train": FAST}, "first.yaml"))
    second = load_suite(write_suite({"name": "second", "methods": ["kd_mtl", "stl"], "train": FAST}, "second.yaml"))
    runs = counted_runs(monkeypatch)
    assert run_suite(first, RunOptions(str(tmp_path), wandb="disabled"), Recorder(first.jobs)) == []
    assert run_suite(second, RunOptions(str(tmp_path), wandb="disabled"), Recorder(second.jobs)) == []
    assert runs == ["stl", "must", "kd_mtl"]
    teacher = second.jobs[1]
    copied = json.loads((tmp_path / "second" / teacher.id / "result.json").read_text())
    assert (copied["suite"], copied["copied_from"]) == ("second", "first")
    assert (tmp_path / "second" / teacher.id / "weights-seg.pt").exists()


def test_a_teacher_finished_without_weights_trains_again_once(write_suite, tmp_path, monkeypatch):
    alone = load_suite(write_suite({"methods": ["stl"], "train": FAST}))
    assert run_suite(alone, RunOptions(str(tmp_path), wandb="disabled"), Recorder(alone.jobs)) == []
    assert not list((tmp_path / "tiny" / alone.jobs[0].id).glob("weights-*"))  # no student needed them
    suite = load_suite(write_suite({"methods": ["stl", "kd_mtl"], "train": FAST}))
    runs = counted_runs(monkeypatch)
    assert run_suite(suite, RunOptions(str(tmp_path), wandb="disabled"), Recorder(suite.jobs)) == []
    assert runs == ["stl", "kd_mtl"]
    runs.clear()
    assert run_suite(suite, RunOptions(str(tmp_path), wandb="disabled"), Recorder(suite.jobs)) == []
    assert runs == []


def test_a_failed_teacher_blocks_only_its_students_each_named(write_suite, tmp_path, monkeypatch):
    suite = load_suite(write_suite({"methods": ["stl", "must", "kd_mtl", "supervised"], "train": FAST}))
    stl, must, kd, supervised = suite.jobs
    original = Train.run

    def failing_stl(self, config, job_dir, hooks, test):
        if config["method"]["networks"] == "per_task":
            raise RuntimeError("teacher diverged on purpose")
        return original(self, config, job_dir, hooks, test)

    monkeypatch.setattr(Train, "run", failing_stl)
    progress = Recorder(suite.jobs)
    stopped = run_suite(suite, RunOptions(str(tmp_path), wandb="disabled"), progress)
    assert {j.id for j in stopped} == {stl.id, must.id, kd.id}
    assert progress.blocks == {must.id: (stl.id, "RuntimeError: teacher diverged on purpose"),
                               kd.id: (stl.id, "RuntimeError: teacher diverged on purpose")}
    assert Store(tmp_path).is_done(supervised)


def test_a_student_without_stl_in_its_suite_is_refused_before_training(write_suite):
    with pytest.raises(Exception, match="stl job of seed 0 .add stl to methods"):
        load_suite(write_suite({"methods": ["supervised", "must"], "train": FAST}))


# ------------------------------------------------------------------------------------------------ pseudo-labels
def split_and_mask(n=6):
    split = SynthRooms(height=32, width=64, train=n, val=1, test=1).load("train").select(list(TASKS))
    mask = torch.tensor([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [0, 0, 0], [1, 1, 1]], dtype=torch.float32)[:n]
    return split, mask


def relabelled(part, split, mask, model):
    return part.relabel(TASKS, model, split, mask, 4, autocast_for(torch.device("cpu")))


def student():
    torch.manual_seed(0)
    return MODELS.get("segnet")(width=0.0625).build(TASKS)


@pytest.mark.parametrize("part", [MuST(teachers={t: UNTRAINED for t in TASKS}),
                                  NoisyStudent(teachers={t: UNTRAINED for t in TASKS})], ids=["must", "noisy_student"])
def test_teachers_fill_exactly_the_missing_labels_without_reading_them(part):
    split, mask = split_and_mask()
    model = student()
    filled, train_mask, report = relabelled(part, split, mask, model)
    assert torch.equal(train_mask, torch.ones_like(mask))
    hidden = {t: v.clone() for t, v in split.targets.items()}  # the true targets of unlabelled pairs: garbage
    for j, t in enumerate(TASKS):
        rows = mask[:, j] == 0
        hidden[t][rows] = (-1 if not hidden[t].is_floating_point() else float("nan"))
    again, _, _ = relabelled(part, type(split)(split.images, hidden), mask, model)
    for j, t in enumerate(TASKS):
        torch.testing.assert_close(again.targets[t], filled.targets[t], equal_nan=False)  # never read
        labelled = mask[:, j] == 1
        kept = filled.targets[t][labelled]
        original = split.targets[t][labelled]
        if part.labels == "soft" and t == "seg":
            assert torch.equal(kept.argmax(1), original.long().clamp_min(0))  # one-hot of the label
            probabilities = filled.targets[t][~labelled].float().sum(1)
            torch.testing.assert_close(probabilities, torch.ones_like(probabilities), atol=2e-3, rtol=0)
        else:
            assert torch.equal(kept, original)
        assert report[t]["images"] == pytest.approx(1 - mask[:, j].mean().item())


def test_must_ignores_segmentation_pixels_below_its_confidence_threshold():
    split, mask = split_and_mask()
    model = student()
    sure, _, report = relabelled(MuST(teachers={t: UNTRAINED for t in TASKS}, threshold=0.99), split, mask, model)
    seg = sure.targets["seg"][mask[:, 0] == 0]
    assert bool((seg == -1).all()) and report["seg"]["pixels"] == 0  # an untrained teacher is never that sure
    unsure, _, _ = relabelled(MuST(teachers={t: UNTRAINED for t in TASKS}, threshold=0.0), split, mask, model)
    assert bool((unsure.targets["seg"][mask[:, 0] == 0] >= 0).all())


def test_a_one_hot_soft_target_gives_the_cross_entropy_of_its_label():
    seg = TASKS["seg"]
    label = torch.randint(-1, seg.channels, (2, 8, 8), generator=torch.Generator().manual_seed(0))
    pred = torch.randn(2, seg.channels, 8, 8)
    soft = seg.label_map(label)
    torch.testing.assert_close(seg.loss_per_image(pred, soft), seg.loss_per_image(pred, label))


def test_a_student_trains_finite_steps_on_relabelled_batches():
    split, mask = split_and_mask()
    method = {**METHODS.get("noisy_student"), "supervision": {"name": "noisy_student", "per_image": "mean",
                                                             "teachers": {t: UNTRAINED for t in TASKS},
                                                             "teacher_model": None}}
    model = student()
    recipe = Recipe(method, TASKS, model)
    filled, train_mask, _ = recipe.relabel(split, mask, 4)
    images, targets = filled.batch(torch.arange(6), TASKS)
    logs = recipe.train_step(torch.optim.Adam(recipe.parameters(), 1e-3), images, targets, train_mask)
    assert {f"loss/{t}" for t in TASKS} <= set(logs) and all(torch.isfinite(v) for v in logs.values())


# ------------------------------------------------------------------------------------------------------ KD-MTL
def shared_maps(net, images, levels):
    """The encoder's output and (levels 2) the decoder's last map, computed without KD-MTL's hooks."""
    feature, indices, _ = net.encode(images)
    return [feature] + ([net.decode(feature, indices)] if levels == 2 else [])


@pytest.mark.parametrize("levels", [1, 2])
def test_kd_mtl_loss_is_the_codes_normalised_squared_distance_with_normals_weighted_twice(levels):
    """At both of the code's levels (model_segnet_kdmtl.py: dist_0 + dist_1 per task), or the first alone."""
    model = student()
    part = KDMTL(teachers={t: UNTRAINED for t in TASKS}, levels=levels)
    net = part.build(TASKS, model)
    images = torch.rand(2, 3, 32, 64)
    _, feature = model(images, return_feature=True)  # the views' forward, whose decoded map the hook keeps
    ctx = StepContext(TASKS, torch.ones(2, len(TASKS)), [View(images, {}, {}, feature)])

    adaptors = [net.adaptors] + ([net.decoded_adaptors] if levels == 2 else [])
    expected = 0
    for t, weight in (("seg", 1.0), ("depth", 1.0), ("normal", 2.0)):
        with torch.no_grad():
            targets = shared_maps(net.teachers[t], images, levels)  # a copy of the student, in eval mode
        for student_map, target, level in zip(shared_maps(model, images, levels), targets, adaptors):
            adapted = level[t](student_map)
            a = adapted / torch.sqrt((adapted ** 2).sum(1, keepdim=True) + 1e-6)
            b = target / torch.sqrt((target ** 2).sum(1, keepdim=True) + 1e-6)
            expected = expected + weight * ((a - b) ** 2).sum(1).mean()
    loss = part.loss(ctx, net)
    torch.testing.assert_close(loss, expected)
    # identity adaptors and the teachers' own maps (each a copy of the initial student): nothing to learn
    model.load_state_dict(net.teachers["seg"].state_dict())  # the BatchNorm statistics the forward above moved
    _, ctx.views[0].feature = model.eval()(images, return_feature=True)
    for adaptor in (conv for level in adaptors for conv in level.values()):
        adaptor.weight.data.copy_(torch.eye(adaptor.weight.shape[0])[:, :, None, None])
    torch.testing.assert_close(part.loss(ctx, net), torch.tensor(0.0), atol=1e-5, rtol=0)
    assert all(not p.requires_grad for teacher in net.teachers.values() for p in teacher.parameters())
    torch.testing.assert_close(normalised(torch.ones(1, 4, 1, 1), 0.0).norm(dim=1), torch.ones(1, 1, 1))


def test_kd_mtl_at_the_decoders_level_needs_a_model_that_names_its_decoded_map():
    class NoDecoded(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 4, 1)

        def forward(self, x, return_feature=False, feature_only=False):
            return ({}, self.conv(x)) if return_feature else {}

    with pytest.raises(ValueError, match="names none \\(decoded_layer\\); use levels: 1"):
        KDMTL(teachers={t: UNTRAINED for t in TASKS}).build(TASKS, NoDecoded())


def test_kd_mtl_adaptors_learn_with_their_own_optimiser_and_the_teachers_stay_out_of_the_checkpoint():
    method = {**METHODS.get("kd_mtl"), "regularizer": {"name": "kd_mtl", **KDMTL.standalone(list(TASKS))}}
    recipe = Recipe(method, TASKS, student())
    net = recipe.net("regularizer")
    assert [type(o).__name__ for o, _ in recipe.own] == ["Adam"] and recipe.own[0][0].defaults["lr"] == 0.1
    assert recipe.own[0][0].defaults["weight_decay"] == 5e-4
    assert not any(p is q for p in recipe.parameters() for q in net.adaptors.parameters())
    assert {key.split(".")[1] for key in recipe.state_dict()["nets"]} == {"adaptors", "decoded_adaptors"}


@pytest.mark.parametrize("decoded_lr", [None, 0.0])
def test_kd_mtl_trains_the_adaptors_of_both_levels_unless_the_decoders_rate_is_zero(decoded_lr):
    """The code's one Adam holds every adaptor (``transformers.parameters()``); 0 leaves the decoder level's at their
    initialisation, as the two-level jobs first trained did."""
    regularizer = {"name": "kd_mtl", **KDMTL.standalone(list(TASKS)), "decoded_adaptor_lr": decoded_lr}
    recipe = Recipe({**METHODS.get("kd_mtl"), "regularizer": regularizer}, TASKS, student())
    net = recipe.net("regularizer")
    held = {id(p) for group in recipe.own[0][0].param_groups for p in group["params"]}
    assert held == {id(p) for p in [*net.adaptors.parameters(), *net.decoded_adaptors.parameters()]}
    before = {k: v.clone() for k, v in net.state_dict().items() if "adaptors" in k}
    split = SynthRooms(height=32, width=64, train=4, val=1, test=1).load("train").select(list(TASKS))
    images, targets = split.batch(torch.arange(4), TASKS)
    recipe.train_step(torch.optim.Adam(recipe.parameters(), 1e-3), images, targets, torch.ones(4, 3))
    moved = {k for k, v in net.state_dict().items() if k in before and not torch.equal(v, before[k])}
    encoder, decoded = {k for k in before if k.startswith("adaptors")}, {k for k in before if k.startswith("decoded")}
    assert moved == (encoder if decoded_lr == 0 else encoder | decoded)
