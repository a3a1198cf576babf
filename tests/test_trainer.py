"""The trainer and the harness's two methods: contracts, masks, exact resume, STL's per-task networks."""

import numpy as np
import pytest
import torch

from mtlbench.data.synthrooms import SynthRooms
from mtlbench.methods import METHODS, Recipe
from conftest import preset
from mtlbench.models import DeepLabResNet50, SegNet
from mtlbench.tracking import flatten
from mtlbench.jobs import Hooks
from mtlbench.train import checkpoint, run_job

TASKS = {k: v for k, v in SynthRooms().tasks().items() if k in ("seg", "depth", "normal")}


def batch(n=4):
    split = SynthRooms(height=32, width=64, train=n, val=1, test=1).load("train")
    return split.select(list(TASKS)).batch(torch.arange(n), TASKS)


def step(mask, targets=None, method="supervised", model=None):
    torch.manual_seed(0)
    model = model or SegNet(TASKS, 0.0625)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    images, default_targets = batch(len(mask))
    recipe = Recipe(preset(method), TASKS, model)
    optimizer = torch.optim.Adam(recipe.parameters(), 1e-3)
    logs = recipe.train_step(optimizer, images, targets or default_targets, torch.tensor(mask, dtype=torch.float32))
    return model, before, logs


@pytest.mark.parametrize("method", METHODS.list())
def test_every_recipe_gives_finite_losses_and_changes_parameters(method):
    model, before, logs = step([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 1]], method=method)
    assert logs and all(torch.isfinite(v) for v in logs.values())
    changed = [k for k, v in model.state_dict().items() if not torch.equal(v, before[k]) and v.is_floating_point()]
    assert any(k.startswith("encoder") for k in changed)


@pytest.mark.parametrize("method", ["supervised", "consistency", "jtr", "ista", "gradnorm", "mgda", "amtl+cagrad"])
def test_recipes_train_the_deeplab_backbone(method):
    """Every axis reaches DeepLab's backbone: regularizers, allocations, GradNorm's last shared layer, combiners
    over its shared parameters (MTPSL is defined for SegNet only, checked at suite validation)."""
    model, before, logs = step([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 1]], method=method,
                               model=DeepLabResNet50(TASKS))
    assert logs and all(torch.isfinite(v) for v in logs.values())
    assert not torch.equal(model.stages[3][2].conv3.weight, before["stages.3.2.conv3.weight"])


def test_no_gradient_reaches_the_head_of_a_task_without_labels_in_the_batch():
    model, before, logs = step([[1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 0]])
    assert "loss/normal" not in logs
    for name, p in model.heads["normal"].named_parameters():
        assert p.grad is None
        assert torch.equal(p, before[f"heads.normal.{name}"])
    assert all(p.grad is not None for p in model.heads["seg"].parameters())


def test_unlabelled_targets_are_never_read():
    mask = [[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0, 0]]
    _, clean_targets = batch()
    poisoned = {k: v.clone() for k, v in clean_targets.items()}
    poisoned["depth"][[0, 2, 3]] = float("nan")
    poisoned["normal"][[0, 1, 3]] = float("nan")
    poisoned["seg"][[1, 2, 3]] = 10 ** 6
    _, _, clean = step(mask, clean_targets)
    _, _, dirty = step(mask, poisoned)
    assert clean.keys() == dirty.keys() and all(torch.equal(clean[k], dirty[k]) for k in clean)


def test_supervised_loss_is_paper_004_eq_1():
    """Per image, the mean of its labelled tasks' losses; then the mean over the batch."""
    mask = torch.tensor([[1.0, 0, 0], [1, 1, 0], [0, 1, 1], [0, 0, 0]])
    images, targets = batch()
    torch.manual_seed(0)
    model = SegNet(TASKS, 0.0625)
    preds = model(images)
    per_image = torch.stack([TASKS[t].loss_per_image(preds[t], targets[t]) for t in TASKS], 1)
    expected = ((per_image * mask).sum(1) / mask.sum(1).clamp_min(1)).mean()
    recipe = Recipe(METHODS.get("supervised"), TASKS, model)
    rows = {t: mask[:, j].nonzero().squeeze(1) for j, t in enumerate(TASKS)}
    task_losses = recipe.supervision.task_losses({t: per_image[rows[t], j] for j, t in enumerate(TASKS)}, rows, mask)
    assert sum(recipe.weighting.terms(task_losses, None).values()).item() == pytest.approx(expected.item(), rel=1e-6)


def straight_and_resumed(job, folder, stop_at: int):
    """The job run through in ``folder/a``, and in ``folder/b`` stopped after epoch ``stop_at``, then resumed."""
    (folder / "a").mkdir(), (folder / "b").mkdir()
    straight = run_job(job, folder / "a")

    class Stop(Exception):
        pass

    def stop(record):
        if record["epoch"] == stop_at:
            raise Stop

    with pytest.raises(Stop):
        run_job(job, folder / "b", Hooks(epoch=stop))
    return straight, run_job(job, folder / "b")


def test_a_job_resumed_from_its_checkpoint_matches_an_uninterrupted_one(tiny_job, tmp_path, one_thread):
    tiny_job["train"]["epochs"] = 3
    straight, resumed = straight_and_resumed(tiny_job, tmp_path, stop_at=2)
    assert resumed["resumed_from_epoch"] == {"mtl": 2}
    assert resumed["first_step_loss"] == straight["first_step_loss"]  # kept by the checkpoint, not re-measured
    weights = [torch.load(tmp_path / run / "checkpoint-mtl.pt")["model"] for run in "ab"]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])  # bit for bit
    # evaluation of identical weights still varies in the last float32 bits (kernel choice by alignment)
    assert flatten(resumed["test"]) == pytest.approx(flatten(straight["test"]), rel=1e-6)
    for a, b in zip(resumed["history"], straight["history"], strict=True):
        assert flatten(a["val"]) == pytest.approx(flatten(b["val"]), rel=1e-6)


def test_a_checkpoint_of_another_format_is_refused_by_name_and_kept(tiny_job, tmp_path):
    tiny_job["train"]["epochs"] = 1
    run_job(tiny_job, tmp_path)
    path = tmp_path / "checkpoint-mtl.pt"
    state = torch.load(path, weights_only=False)
    del state["format"]  # as written before checkpoints carried their format
    torch.save(state, path)
    with pytest.raises(checkpoint.StaleCheckpoint, match=r"checkpoint-mtl.pt: field 'format' is 1.*delete"):
        run_job(tiny_job, tmp_path)
    assert "format" not in torch.load(path, weights_only=False)


def test_stl_trains_one_network_per_task_on_its_labelled_images_only(tiny_job, tmp_path):
    tiny_job["method"] = METHODS.get("stl")
    result = run_job(tiny_job, tmp_path)
    mask = np.load(tmp_path / "mask.npy")
    assert [r["stage"] for r in result["history"]] == ["seg", "seg", "depth", "depth", "normal", "normal"]
    seconds = {r["stage"]: r["images_per_second"] * r["seconds"] for r in result["history"]}
    assert seconds == pytest.approx({t: mask[:, j].sum() for j, t in enumerate(tiny_job["tasks"])})
    assert set(result["test"]) == {"seg", "depth", "normal"}
    assert result["labels_per_task"] == {"seg": 8, "depth": 8, "normal": 8}


def test_training_seed_changes_the_run_but_not_the_mask(tiny_job, tmp_path):
    (tmp_path / "0").mkdir(), (tmp_path / "1").mkdir()
    a = run_job(tiny_job, tmp_path / "0")
    b = run_job({**tiny_job, "seed": 1}, tmp_path / "1")
    assert np.array_equal(np.load(tmp_path / "0" / "mask.npy"), np.load(tmp_path / "1" / "mask.npy"))
    assert a["test"] != b["test"]


def test_precision_is_a_setting_of_the_job(write_suite):
    from mtlbench.config import load_suite
    from mtlbench.train.trainer import autocast_for

    cpu = torch.device("cpu")
    with autocast_for(cpu, "bf16")():
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16
    for precision in ("auto", "fp32", "tf32"):  # no CUDA here: float32 throughout
        with autocast_for(cpu, precision)():
            assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32
    with pytest.raises(ValueError, match="train.precision 'fp16'"):
        autocast_for(cpu, "fp16")
    default = load_suite(write_suite()).jobs[0]
    fp32 = load_suite(write_suite({"train": {"epochs": 2, "batch_size": 8, "eval_batch_size": 8, "device": "cpu",
                                             "precision": "fp32"}})).jobs[0]
    assert default.config["train"]["precision"] == "auto" and fp32.config["train"]["precision"] == "fp32"
    assert default.id != fp32.id  # auto hashes as the jobs before the setting existed (tests/test_job_ids.py)


def test_testing_after_every_epoch_records_each_epochs_test_and_trains_nothing_differently(tiny_job, tmp_path,
                                                                                          one_thread):
    tiny_job["train"]["epochs"] = 2
    (tmp_path / "last").mkdir(), (tmp_path / "every").mkdir()
    last = run_job(tiny_job, tmp_path / "last")
    every = run_job({**tiny_job, "train": {**tiny_job["train"], "test_every_epoch": True}}, tmp_path / "every")
    assert all("test" not in record for record in last["history"])
    assert [set(record["test"]) for record in every["history"]] == [{"seg", "depth", "normal"}] * 2
    assert every["history"][-1]["test"] == every["test"]
    weights = [torch.load(tmp_path / run / "checkpoint-mtl.pt")["model"] for run in ("last", "every")]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])  # the same training, bit for bit
    assert flatten(every["test"]) == pytest.approx(flatten(last["test"]), rel=1e-6)


def test_best_val_needs_jobs_tested_after_every_epoch_and_the_setting_keeps_ids(write_suite):
    from mtlbench.config import SuiteError, load_suite

    train = {"epochs": 2, "batch_size": 8, "eval_batch_size": 8, "device": "cpu"}
    with pytest.raises(SuiteError, match="set train.test_every_epoch: true"):
        load_suite(write_suite({"leaderboard": {"select": "best_val"}}))
    default = load_suite(write_suite({"train": train})).jobs[0]
    off = load_suite(write_suite({"train": {**train, "test_every_epoch": False}})).jobs[0]
    on = load_suite(write_suite({"train": {**train, "test_every_epoch": True},
                                 "leaderboard": {"select": "best_val"}})).jobs[0]
    assert default.id == off.id != on.id  # off hashes as the jobs before the setting existed


def test_a_run_that_diverges_without_nan_is_recorded_and_a_normal_one_is_not(tiny_job, tmp_path):
    """Adam at lr 1e6 keeps every number finite (depth abs err ~1e28, normals at 90 degrees), but the training
    loss ends far above the untrained network's first step: those tasks are recorded as diverged."""
    normal = run_job(tiny_job, tmp_path)
    assert normal["diverged"] == [] and set(normal["first_step_loss"]) == {"seg", "depth", "normal"}
    tiny_job["train"]["optimizer"]["lr"] = 1e6
    (tmp_path / "blown").mkdir()
    blown = run_job(tiny_job, tmp_path / "blown")
    assert "depth" in blown["diverged"] and "normal" not in blown["diverged"]  # 1 - cos is bounded: never 10x
    assert all(np.isfinite(v) for v in flatten(blown["test"]).values())
    assert blown["first_step_loss"] == pytest.approx(normal["first_step_loss"])  # the same untrained network
    assert blown["history"][-1]["train/loss/depth"] > 10 * blown["first_step_loss"]["depth"]


def test_the_constant_reference_predicts_the_labelled_training_mean(tiny_job, tmp_path):
    """Depth: the mean of the valid depths of the images labelled for depth, scored on the test split by hand;
    segmentation: the majority class everywhere."""
    from mtlbench.train.settings import JobSpec
    from mtlbench.train.trainer import load_job_data

    tiny_job["train"]["epochs"] = 1
    outcome = run_job(tiny_job, tmp_path)
    data = load_job_data(JobSpec.of(tiny_job), torch.device("cpu"))
    labelled = torch.from_numpy(data.plan.mask[:, 1]).nonzero().squeeze(1)
    depth = data.splits["train"].targets["depth"][labelled].float()
    mean = depth[depth > 0].mean()
    test = data.splits["test"].targets["depth"].float()
    assert outcome["constant"]["depth"]["abs_err"] == pytest.approx((test[test > 0] - mean).abs().mean().item(),
                                                                    rel=1e-5)
    seg = data.splits["train"].targets["seg"][torch.from_numpy(data.plan.mask[:, 0]).nonzero().squeeze(1)].long()
    majority = torch.bincount(seg[seg >= 0].flatten()).argmax()
    truth = data.splits["test"].targets["seg"].long()
    valid = truth >= 0
    accuracy = (truth[valid] == majority).float().mean().item()
    assert outcome["constant"]["seg"]["pixel_acc"] == pytest.approx(accuracy)
    assert set(outcome["constant"]) == {"seg", "depth", "normal"}


@pytest.mark.parametrize("n, batch_size, per_batch, appended", [(24, 8, 0, 0), (25, 8, 0, 0), (30, 7, 1, 9),
                                                                 (17, 4, 2, 5)])
def test_batch_sizes_are_what_an_epoch_draws(n, batch_size, per_batch, appended):
    """A schedule stepped per batch is built before any batch is drawn: the sizes must be the epoch's own."""
    from mtlbench.data import Split
    from mtlbench.train.trainer import Stage

    split = Split(torch.zeros(n, 3, 1, 1, dtype=torch.uint8))
    mask = torch.ones(n, 2)
    stage = Stage("mtl", {}, split, mask, torch.arange(n - appended, n), per_batch)
    drawn = [len(index) for index, _ in stage.batches(batch_size, torch.Generator().manual_seed(0))]
    assert stage.batch_sizes(batch_size) == drawn
    per_task = Stage("mtl", {}, split, torch.tensor([[1.0, 0.0]] * (n // 2) + [[0.0, 1.0]] * (n - n // 2)),
                     per_task=True)
    assert per_task.batch_sizes(batch_size) == [len(index) for index, _ in
                                                per_task.batches(batch_size, torch.Generator().manual_seed(0))]


def test_the_poly_schedule_decays_per_batch_as_amtls_code(tiny_job, tmp_path, one_thread):
    """Yun and Cho 2023's PolyDecay, stepped after every batch with the fractional epoch t: lr = base (1 - t / E)^0.9.
    24 images at batch 8 are 3 batches an epoch; a resumed run continues the schedule exactly."""
    tiny_job["train"].update(epochs=3, scheduler={"name": "poly", "power": 0.9})
    straight, resumed = straight_and_resumed(tiny_job, tmp_path, stop_at=1)
    expected = [1e-3 * (1 - epoch / 3) ** 0.9 for epoch in (1, 2, 3)]  # t = epoch + 3/3 batches after each epoch
    assert [r["lr"] for r in straight["history"]] == pytest.approx(expected)
    assert [r["lr"] for r in resumed["history"]] == pytest.approx(expected)
    assert flatten(resumed["test"]) == pytest.approx(flatten(straight["test"]), rel=1e-6)


def test_label_smoothing_is_the_segmentation_cross_entropy_of_the_job(tiny_job):
    from mtlbench.train.settings import JobSpec
    from mtlbench.train.trainer import load_job_data

    tiny_job["train"]["label_smoothing"] = 0.1
    seg = load_job_data(JobSpec.of(tiny_job), torch.device("cpu")).tasks["seg"]
    pred, target = torch.randn(2, 7, 4, 4), torch.randint(-1, 7, (2, 4, 4))
    valid = target >= 0
    reference = torch.nn.functional.cross_entropy(pred, target, ignore_index=-1, label_smoothing=0.1,
                                                  reduction="none")
    expected = torch.stack([reference[i][valid[i]].mean() for i in range(2)])
    assert seg.loss_per_image(pred, target) == pytest.approx(expected.tolist(), rel=1e-5)
    assert load_job_data(JobSpec.of({**tiny_job, "train": {**tiny_job["train"], "label_smoothing": 0.0}}),
                         torch.device("cpu")).tasks["seg"].label_smoothing == 0.0


def test_a_last_batch_too_short_for_the_model_is_left_out_with_a_warning_and_a_record(tiny_job, tmp_path,
                                                                                       monkeypatch):
    """24 images in batches of 11 end with a batch of 2; a model that needs 3 (as DeepLab's ASPP needs 2) trains
    on 22 images an epoch, and says so rather than dropping them silently."""
    from mtlbench.models.segnet import SegNetSpec

    monkeypatch.setattr(SegNetSpec, "min_batch", 3, raising=False)
    tiny_job["train"]["batch_size"] = 11
    with pytest.warns(UserWarning, match=r"stage mtl: the last batch of each epoch \(2 image\(s\)\) is left out"):
        outcome = run_job(tiny_job, tmp_path)
    assert outcome["images_left_out_per_epoch"] == {"mtl": 2}
    assert [r["images_per_second"] * r["seconds"] for r in outcome["history"]] == pytest.approx([22, 22])
    monkeypatch.setattr(SegNetSpec, "min_batch", 1, raising=False)
    (tmp_path / "all").mkdir()
    assert "images_left_out_per_epoch" not in run_job(tiny_job, tmp_path / "all")


def test_a_job_config_that_lacks_or_adds_a_setting_is_refused_by_name(tiny_job):
    """The schema holds the defaults: the trainer completes nothing, it names what a config lacks or has extra."""
    from mtlbench.train.settings import JobSpec

    spec = JobSpec.of(tiny_job)
    assert spec.train.batch_size == tiny_job["train"]["batch_size"] and spec.tasks == tuple(tiny_job["tasks"])
    with pytest.raises(ValueError, match="lacks precision"):
        JobSpec.of({**tiny_job, "train": {k: v for k, v in tiny_job["train"].items() if k != "precision"}})
    with pytest.raises(ValueError, match="has unknown lr"):
        JobSpec.of({**tiny_job, "train": {**tiny_job["train"], "lr": 0.1}})
    with pytest.raises(ValueError, match="lacks scenario"):
        JobSpec.of({k: v for k, v in tiny_job.items() if k != "scenario"})


def test_the_multistep_schedule_warms_up_then_decays_at_its_milestones_as_detectron2():
    """detectron2's WarmupMultiStepLR: linear warm-up from factor x base over the warm-up batches, x gamma from each
    milestone on (fractions of all batches)."""
    from mtlbench.train.optim import SCHEDULERS

    weight = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([weight], lr=0.02)
    schedule = SCHEDULERS.get("multistep")(milestones=(0.5, 0.75), warmup_steps=10, warmup_factor=0.1)
    scheduler = schedule.build(optimizer, epochs=10, steps_per_epoch=10)
    rates = []
    for _ in range(100):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert schedule.per_step
    assert rates[0] == pytest.approx(0.002) and rates[5] == pytest.approx(0.02 * 0.55)
    assert rates[10] == rates[49] == pytest.approx(0.02)
    assert rates[50] == rates[74] == pytest.approx(0.002) and rates[75] == rates[99] == pytest.approx(0.0002)


def test_adamw_decays_the_weights_apart_from_the_gradient():
    """Decoupled decay: with a zero gradient AdamW still shrinks a weight by lr x decay, where Adam's L2 term would
    pass through the moment estimates."""
    from mtlbench.train.optim import OPTIMIZERS

    weight = torch.nn.Parameter(torch.ones(1))
    optimizer = OPTIMIZERS.get("adamw")(lr=0.1, weight_decay=0.5).build([weight])
    weight.grad = torch.zeros(1)
    optimizer.step()
    torch.testing.assert_close(weight.detach(), torch.tensor([1 - 0.1 * 0.5]))


def test_head_lr_trains_the_heads_at_their_own_rate_and_names_the_groups(tiny_job, tmp_path):
    """Sun et al. 2023 Sec. 5.2's two learning rates (``train.optimizer.head_lr``): the network's shared parameters
    at ``lr``, every other parameter of it at ``head_lr``; without it, one group as before."""
    from mtlbench.models import MODELS
    from mtlbench.train.optim import SGD, parameter_groups

    model = MODELS.get("segnet")(width=0.0625).build({k: v for k, v in SynthRooms().tasks().items() if k in ("seg", "depth")})
    params = list(model.parameters())
    assert parameter_groups(model, params, None) is params
    groups = parameter_groups(model, params, 0.01)
    assert [g["name"] for g in groups] == ["backbone", "heads"]
    assert sorted(id(p) for g in groups for p in g["params"]) == sorted(map(id, params))  # each parameter once
    assert {id(p) for p in groups[0]["params"]} == {id(p) for p in model.shared_parameters()}
    optimizer = SGD(lr=1e-3, momentum=0.0, head_lr=1e-2).build(groups)
    for p in params:
        p.grad = torch.ones_like(p)
    before = [p.detach().clone() for p in params]
    optimizer.step()
    heads = {id(p) for p in groups[1]["params"]}
    for p, old in zip(params, before):
        torch.testing.assert_close(old - p.detach(), torch.full_like(p, 1e-2 if id(p) in heads else 1e-3))
    config = {**tiny_job, "train": {**tiny_job["train"], "epochs": 1,
                                    "optimizer": {**tiny_job["train"]["optimizer"], "head_lr": 5e-3}}}
    outcome = run_job(config, tmp_path)
    assert {name: g["lr"] for name, g in outcome["optimizer_groups"].items()} == \
        {"backbone": tiny_job["train"]["optimizer"]["lr"], "heads": 5e-3}
    (tmp_path / "plain").mkdir()
    assert "optimizer_groups" not in run_job(tiny_job, tmp_path / "plain")


def test_an_initialiser_sets_each_stages_new_network_before_it_trains(tiny_job, tmp_path):
    """``run_job(initialise=...)`` (a track's initial weights) gets every stage's freshly built network once, before
    the first step: weights it sets are the ones the first step starts from."""
    tiny_job["method"] = preset("stl")
    tiny_job["train"]["epochs"] = 1
    seen = []

    def initialise(stage, model):
        seen.append(stage.name)
        with torch.no_grad():
            for parameter in model.parameters():
                parameter.zero_()  # a network of zeros predicts constants: every task's first loss is that of 0

    result = run_job(tiny_job, tmp_path, initialise=initialise)
    assert seen == ["seg", "depth", "normal"]
    seg_classes = SynthRooms().tasks()["seg"].channels
    assert result["first_step_loss"]["seg"] == pytest.approx(np.log(seg_classes), rel=1e-5)  # uniform logits
