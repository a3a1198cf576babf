"""Contracts every registered entry keeps, in the style of torchjd's property testers: parametrised over each
registry's entries (not only the presets), so a newly registered part, model, dataset, scenario, allocator,
selector, pruner or track is checked the moment it is registered."""
import io
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from mtlbench.config import plugin
from mtlbench.schema import SuiteFile
from mtlbench.data import DATASETS, SCENARIOS, DatasetError
from mtlbench.data.synthrooms import SynthRooms
from mtlbench.jobs import KINDS, RESOLVERS
from mtlbench.methods import AXES, METHODS, Recipe
from mtlbench.models import MODELS, MultiTaskModel
from mtlbench.registry import build, parameters
from mtlbench.space import search_space
from mtlbench.track import DEFAULT_TRACK, TRACKS
from mtlbench.tracks.budget import ALLOCATORS, Estimates
from mtlbench.tracks.grouping import OBJECTIVES, SELECTORS, Tables, read_losses
from mtlbench.train.observers import OBSERVERS
from mtlbench.train.optim import OPTIMIZERS, SCHEDULERS
from mtlbench.tuning import PRUNERS
from conftest import REFERENCE

TASKS = {k: v for k, v in SynthRooms().tasks().items() if k in ("seg", "depth", "normal")}
POTENTIALS = {"seg": 0.5, "depth": 0.8, "normal": 0.3}
VALIDATION = {"seg": {"miou": 0.3}, "depth": {"delta1": 0.6},
              "normal": {"within_11.25": 0.2, "within_11.25_per_image": 0.25}}
REGISTRIES = {**{f"{axis} part": registry for axis, registry in AXES.items()}, "model": MODELS, "dataset": DATASETS,
              "scenario": SCENARIOS, "allocator": ALLOCATORS, "selector": SELECTORS, "objective": OBJECTIVES,
              "pruner": PRUNERS, "optimizer": OPTIMIZERS, "scheduler": SCHEDULERS}
REQUIRED = {("allocator", "single_task"): {"task": "seg"},  # parameters without a default (or a usable one)
            ("allocator", "share"): {"shares": {"seg": 0.5, "depth": 0.25}},
            ("model", "pyramid"): {"backbone": "mobilenet_v2", "height": 32, "width": 32},
            ("dataset", "union"): {"parts": [{"name": "synthrooms", "train": 4, "val": 1, "test": 1, "tasks": ["seg"]},
                                             {"name": "synthrooms", "train": 4, "val": 1, "test": 1, "seed": 1,
                                              "tasks": ["depth"]}]}}


def entries(*kinds):
    return [pytest.param(kind, name, id=f"{kind}:{name}") for kind in kinds for name in REGISTRIES[kind].list()]


def part_spec(axis, name):
    """A recipe part with the settings it cannot do without (AMTL's potentials and the teachers of MuST, Noisy Student
    and KD-MTL come from STL jobs in a suite)."""
    standalone = AXES[axis].get(name).standalone(list(TASKS))  # teachers: untrained copies of the student
    return {"name": name, **({"potentials": POTENTIALS} if name == "amtl" else standalone)}


# ----------------------------------------------------------------------------------------- every registry
@pytest.mark.parametrize("kind, name", entries(*REGISTRIES))
def test_defaults_round_trip_through_the_suite_schema(kind, name):
    registry = REGISTRIES[kind]
    resolved = plugin(registry, {"name": name, **REQUIRED.get((kind, name), {})}, kind, Path("contract.yaml"))
    assert resolved == plugin(registry, resolved, kind, Path("contract.yaml"))  # resolving twice changes nothing
    assert json.loads(json.dumps(resolved)) == resolved  # the hash sees what the config holds
    assert set(resolved) - {"name"} == set(parameters(registry.get(name)))
    build(registry, resolved)


@pytest.mark.parametrize("kind, name", entries(*REGISTRIES))
def test_search_space_keys_are_fields_and_defaults_lie_inside(kind, name):
    plugin_class = REGISTRIES[kind].get(name)
    declared = parameters(plugin_class)
    for key, space in search_space(plugin_class).items():
        assert key in declared, f"{kind} {name}: space names {key!r}, which is no parameter"
        assert space.contains(declared[key]), f"{kind} {name}: default {key}={declared[key]!r} outside {space}"


# -------------------------------------------------------------------------------------------- recipe parts
def recipe_with(axis, name, model=None):
    method = {**METHODS.get("supervised"), axis: part_spec(axis, name)}
    torch.manual_seed(0)
    model = model or MODELS.get("segnet")(width=0.0625).build(TASKS)
    return Recipe(method, TASKS, model), model


def tiny_batch(n=4):
    split = SynthRooms(height=32, width=64, train=n, val=1, test=1).load("train").select(list(TASKS))
    return split.batch(torch.arange(n), TASKS)


RECIPE_PARTS = [pytest.param(axis, name, id=f"{axis}:{name}") for axis, registry in AXES.items()
                for name in registry.list()]


@pytest.mark.parametrize("axis, name", RECIPE_PARTS)
def test_every_part_trains_a_finite_step_and_respects_the_mask(axis, name):
    recipe, model = recipe_with(axis, name)
    images, targets = tiny_batch()
    mask = torch.tensor([[1, 0, 0], [0, 1, 0], [1, 1, 0], [0, 0, 0]], dtype=torch.float32)  # normal unlabelled
    before = {k: v.clone() for k, v in model.state_dict().items()}
    logs = recipe.train_step(torch.optim.Adam(recipe.parameters(), 1e-3), images, targets, mask)
    assert logs and all(torch.isfinite(torch.as_tensor(v)).all() for v in logs.values())
    assert "loss/normal" not in logs  # no supervised loss without a label
    assert any(not torch.equal(v, before[k]) for k, v in model.state_dict().items() if k.startswith("encoder"))
    if axis != "regularizer":  # a regularizer exists to teach unlabelled tasks; the others never reach them
        assert all(torch.equal(p, before[f"heads.normal.{k}"]) for k, p in model.heads["normal"].named_parameters())


@pytest.mark.parametrize("name", AXES["supervision"].list())
def test_supervision_steps_only_use_labelled_pairs(name):
    part = build(AXES["supervision"], part_spec("supervision", name))
    mask = (torch.rand(16, 3, generator=torch.Generator().manual_seed(0)) < 0.6).float()
    steps = part.steps(mask)
    assert steps and all(step.shape == mask.shape and bool((step <= mask).all()) for step in steps)


@pytest.mark.parametrize("axis, name", RECIPE_PARTS)
def test_part_state_round_trips_through_a_checkpoint(axis, name):
    recipe, _ = recipe_with(axis, name)
    images, targets = tiny_batch()
    recipe.train_step(torch.optim.Adam(recipe.parameters(), 1e-3), images, targets, torch.ones(4, 3))
    recipe.end_epoch({"seg": 1.5, "depth": 0.7, "normal": 0.4})
    recipe.after_validation(VALIDATION)
    buffer = io.BytesIO()
    torch.save(recipe.state_dict(), buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)  # checkpoints never unpickle arbitrary objects
    fresh, _ = recipe_with(axis, name)
    fresh.load_state_dict(saved)
    for key, value in recipe.state_dict()["nets"].items():  # NaN marks "not seen yet" in some states
        torch.testing.assert_close(fresh.state_dict()["nets"][key], value, rtol=0, atol=0, equal_nan=True, msg=key)


STATEFUL_PARTS = [pytest.param(axis, name, id=f"{axis}:{name}") for axis in ("weighting", "gradients")
                  for name in AXES[axis].list()]


@pytest.mark.parametrize("axis, name", STATEFUL_PARTS)
def test_a_task_absent_from_a_batch_keeps_its_state(axis, name):
    """docs/methods.md, "Absent tasks": a step without labels for a task is finite and moves none of that task's
    state (buffers: EMAs, logits, nadirs, counts, pairwise targets). Parameters trained by the main optimiser
    (uncertainty's log σ², IMTL-L's scales) get no gradient from the absent task, though Adam's momentum moves them."""
    recipe, _ = recipe_with(axis, name)
    images, targets = tiny_batch()
    optimizer = torch.optim.Adam(recipe.parameters(), 1e-3)
    recipe.train_step(optimizer, images, targets, torch.ones(4, 3))
    net = recipe.net(axis)
    before = {key: value.clone() for key, value in net.named_buffers()} if net is not None else {}
    absent = list(TASKS).index("normal")
    logs = recipe.train_step(optimizer, images, targets, torch.tensor([[1, 0, 0], [0, 1, 0], [1, 1, 0], [1, 0, 0.]]))
    assert all(torch.isfinite(torch.as_tensor(v)).all() for v in logs.values())
    for key, value in (net.named_buffers() if net is not None else []):
        if value.dim() and value.shape[0] == len(TASKS):
            torch.testing.assert_close(value[absent], before[key][absent], rtol=0, atol=0, equal_nan=True, msg=key)
        if value.dim() == 2 and value.shape == (len(TASKS), len(TASKS)):
            torch.testing.assert_close(value[:, absent], before[key][:, absent], rtol=0, atol=0, equal_nan=True, msg=key)


class TwoLayers(nn.Module):
    """The smallest model that keeps the protocol combiners rely on: shared layer, one head per task."""

    def __init__(self, tasks):
        super().__init__()
        torch.manual_seed(0)
        self.shared = nn.Linear(4, 4)
        self.heads = nn.ModuleDict({t: nn.Linear(4, 1) for t in tasks})

    def shared_parameters(self):
        return list(self.shared.parameters())

    def last_shared_layer(self):
        return self.shared.weight

    def forward(self, x):
        return {t: head(torch.tanh(self.shared(x))) for t, head in self.heads.items()}


def combined_gradients(name, scale, tasks=("seg", "depth", "normal")):
    model = TwoLayers(tasks)
    part = build(AXES["gradients"], part_spec("gradients", name))
    net = part.build({t: TASKS[t] for t in tasks}, model)
    x = torch.randn(8, 4, generator=torch.Generator().manual_seed(1))
    preds = model(x)
    terms = {t: scale * (preds[t] - i).pow(2).mean() for i, t in enumerate(tasks)}
    part.backward(terms, None, model, net)
    return model, terms


@pytest.mark.parametrize("name", AXES["gradients"].list())
@pytest.mark.parametrize("scale", [0.0, 1e-10, 1e10])
def test_combiners_stay_finite_on_zero_tiny_and_huge_gradients(name, scale):
    model, _ = combined_gradients(name, scale)
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.shared_parameters())


# CAGrad's update with one task is (g + c g) / (1 + c^2): its authors' rescaling (rescale=1), same direction
SINGLE_TASK_SCALE = {"cagrad": lambda part: (1 + part.c) / (1 + part.c ** 2)}
# these rescale even a lone gradient, by design: Nash-MTL to α g with α |g|² = 1, FairGrad to w g with
# w |g|² = w^(-1/α), MoCo and DB-MTL to their tracked estimate's first step (a fraction of g); same direction
RESCALING = {"nash_mtl", "fairgrad", "moco", "db_mtl"}


@pytest.mark.parametrize("name", AXES["gradients"].list())
def test_combiners_leave_a_single_tasks_gradient_unchanged(name):
    model, _ = combined_gradients(name, 1.0, tasks=("depth",))
    reference = TwoLayers(("depth",))
    plain = (reference(torch.randn(8, 4, generator=torch.Generator().manual_seed(1)))["depth"] - 0).pow(2).mean()
    expected = torch.autograd.grad(plain, reference.shared_parameters())
    part = build(AXES["gradients"], part_spec("gradients", name))
    scale = SINGLE_TASK_SCALE.get(name, lambda part: 1.0)(part)
    got = torch.cat([p.grad.flatten() for p in model.shared_parameters()])
    want = scale * torch.cat([g.flatten() for g in expected])
    if name in RESCALING:
        assert torch.nn.functional.cosine_similarity(got, want, dim=0) > 1 - 1e-5
    else:
        assert torch.allclose(got, want, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("name", AXES["weighting"].list())
def test_weightings_give_one_finite_term_per_present_task(name):
    part = build(AXES["weighting"], part_spec("weighting", name))
    model = TwoLayers(TASKS)
    net = part.build(TASKS, model)
    params = nn.Parameter(torch.tensor([0.7, 1.3, 0.2]))
    for present in (["seg", "depth", "normal"], ["seg", "normal"], ["depth"]):
        losses = {t: params[i] for i, t in enumerate(TASKS) if t in present}
        terms = part.terms(losses, net)
        assert list(terms) == present
        assert all(torch.isfinite(term) for term in terms.values())
    part.end_epoch(net, {"seg": 1.0, "depth": 0.5, "normal": 0.3})
    part.after_validation(net, VALIDATION)
    assert all(torch.isfinite(term) for term in part.terms({"depth": params[1]}, net).values())


# ------------------------------------------------------------------------------------------------- tasks
def task_model(tasks):
    """The model a task set trains on in the contracts: SegNet, or Mask R-CNN (ResNet-18) for tasks whose loss only
    their model can compute."""
    if any(task.loss_from_model for task in tasks.values()):
        return MODELS.get("maskrcnn")(backbone="resnet18", anchor_sizes=(8, 16, 32, 64, 128), proposals_per_image=64,
                                      representation_size=128).build(tasks)
    return MODELS.get("segnet")(width=0.0625).build(tasks)


@pytest.mark.parametrize("name", sorted({name for name in SynthRooms().tasks()}))
def test_every_task_trains_a_finite_step_only_where_it_has_labels_and_evaluates(name):
    """Each task type through the supervised recipe (on SegNet, or on Mask R-CNN beside the detection task for the
    instance task): a finite step; with no label in the batch its head learns nothing; with labels it does; its meter
    scores a batch, and its loss is one finite value per image."""
    from mtlbench.train.evaluation import evaluate, losses_per_image

    dataset = SynthRooms(height=32, width=64, train=4, val=1, test=4)
    partner = "detection" if dataset.tasks()[name].loss_from_model else "seg"
    tasks = {t: dataset.tasks()[t] for t in dict.fromkeys([partner, name])}
    split = dataset.load("train").select(list(tasks))
    images, targets = split.batch(torch.arange(4), tasks)
    torch.manual_seed(0)
    model = task_model(tasks)
    recipe = Recipe(METHODS.get("supervised"), tasks, model)
    head = {k: v.clone() for k, v in model.heads[name].named_parameters()}  # (BatchNorm statistics move anyway)
    unlabelled = torch.tensor([[1.0, 0.0]] * 4) if name != partner else torch.zeros(4, 1)
    logs = recipe.train_step(torch.optim.Adam(recipe.parameters(), 1e-3), images, targets, unlabelled)
    assert all(torch.isfinite(torch.as_tensor(v)).all() for v in logs.values())
    assert all(torch.equal(v, head[k]) for k, v in model.heads[name].named_parameters())
    recipe.train_step(torch.optim.Adam(recipe.parameters(), 1e-3), images, targets, torch.ones(4, len(tasks)))
    assert any(not torch.equal(v, head[k]) for k, v in model.heads[name].named_parameters())
    model.eval()
    with torch.no_grad():
        loss = losses_per_image(model, images, targets, model(images), tasks)[name]
    assert loss.shape == (4,) and torch.isfinite(loss).all()
    scores = evaluate(model, dataset.load("test").select(list(tasks)), tasks, 2, torch.no_grad)[name]
    assert set(scores) == set(tasks[name].directions) and all(math.isfinite(v) for v in scores.values())


@pytest.mark.parametrize("name", sorted({name for name in SynthRooms().tasks()}))
def test_every_tasks_meter_scores_two_shards_merged_as_the_whole(name):
    """What a job on several devices relies on (each rank scores its batches, the meters merge): the meter of the
    first three images merged with a pickled meter of the last three scores what one meter of all six scores."""
    dataset = SynthRooms(height=32, width=64, train=6, val=1, test=1)
    partner = "detection" if dataset.tasks()[name].loss_from_model else "seg"
    tasks = {t: dataset.tasks()[t] for t in dict.fromkeys([partner, name])}
    images, targets = dataset.load("train").select(list(tasks)).batch(torch.arange(6), tasks)
    torch.manual_seed(0)
    model = task_model(tasks).eval()
    with torch.no_grad():
        pred = model(images)[name]
    if name == "detection":  # an untrained head finds nothing (mAP 0 whatever is merged): jittered true boxes
        target = targets[name]
        boxes = target[..., :4] + 2 * torch.randn(target[..., :4].shape, generator=torch.Generator().manual_seed(0))
        pred = torch.cat([boxes, torch.rand(boxes.shape[:-1] + (1,)), target[..., 4:5]], -1)
    merged = merged_scores(tasks[name], pred, targets[name], slice(0, 3), slice(3, 6))
    assert merged == pytest.approx(merged_scores(tasks[name], pred, targets[name], slice(0, 6)), rel=1e-12, abs=1e-12)
    assert merged != pytest.approx(merged_scores(tasks[name], pred, targets[name], slice(3, 6)), rel=1e-6)


def merged_scores(task, pred, target, *shards: slice) -> dict:
    """The scores of one meter per shard of the rows, the later ones pickled (as a rank sends them) and merged into
    the first (detection: ``pred`` are detections)."""
    import pickle

    meters = [task.meter() for _ in shards]
    for meter, rows in zip(meters, shards):
        (meter.update_detections if task.name == "detection" else meter.update)(pred[rows], target[rows])
    first, *others = meters
    for other in others:
        first.merge(pickle.loads(pickle.dumps(other)))
    return first.compute()


def test_a_task_type_declaring_dense_as_before_is_told_to_declare_its_output():
    from dataclasses import dataclass
    from typing import ClassVar

    from mtlbench.tasks import MultiLabel

    with pytest.raises(TypeError, match="declare output = 'map' | 'image' | 'anchors' instead of dense"):
        @dataclass(frozen=True)
        class OldStyle(MultiLabel):
            dense: ClassVar[bool] = False


# ------------------------------------------------------------------------------------------------ models
@pytest.mark.parametrize("name", MODELS.list())
def test_models_keep_the_protocol_the_parts_rely_on(name):
    spec = build(MODELS, plugin(MODELS, {"name": name, **REQUIRED.get(("model", name), {})}, "model",
                                Path("contract.yaml")))
    side = 32 * spec.input_multiple // math.gcd(32, spec.input_multiple)
    outputs = getattr(spec, "outputs", ("map", "image"))  # the heads it builds; a set-valued model: its own tasks
    tasks = TASKS if {task.output for task in TASKS.values()} <= set(outputs) else {
        t: task for t, task in SynthRooms(height=side, width=side).tasks().items() if task.output in outputs}
    model = spec.build(tasks)
    assert isinstance(model, MultiTaskModel) and spec.input_multiple >= 1
    images = torch.rand(getattr(spec, "min_batch", 1) + 1, 3, side, side)
    model.eval()
    preds, feature = model(images, return_feature=True)
    assert list(preds) == list(tasks) and feature.shape[0] == len(images)
    for task_name, task in tasks.items():
        assert preds[task_name].shape[:2] == (len(images), task.channels) if task.output in ("map", "image") \
            else preds[task_name].shape[0] == len(images)
    assert torch.equal(model(images, feature_only=True), feature)
    shared = {id(p) for p in model.shared_parameters()}
    assert shared and shared < {id(p) for p in model.parameters()}  # heads are not shared
    assert id(model.last_shared_layer()) in shared


# ------------------------------------------------------------------------------------- data and scenarios
@pytest.mark.parametrize("name", DATASETS.list())
def test_datasets_declare_their_tasks_and_say_where_files_are_missing(name, tmp_path):
    dataset_class = DATASETS.get(name)
    required = REQUIRED.get(("dataset", name), {})
    tasks = dataset_class(**required).tasks()
    assert tasks and all(task.primary in task.directions for task in tasks.values())
    if hasattr(dataset_class, "require"):  # read from disk, or assembled from parts one of which is (parts[1])
        missing = re.escape(str(tmp_path))
        if "root" in parameters(dataset_class):
            settings = {"root": str(tmp_path)}
        else:
            part = {"name": "nyu_depth", "root": str(tmp_path), "tasks": ["depth"]}
            settings, missing = {**required, "parts": [required["parts"][0], part]}, r"parts\[1\].*" + missing
        with pytest.raises(DatasetError, match=missing):
            dataset_class(**settings).require()
    else:
        small = {k: v for k, v in dict(height=32, width=64, train=4, val=2, test=2).items()
                 if k in parameters(dataset_class)}
        dataset = dataset_class(**required, **small)
        split = dataset.load("val")
        assert len(split) == dataset.split_size("val") and set(split.targets) >= set(tasks)


SCENARIO_SETTINGS = {
    "mask_file": ({"path": str(REFERENCE / "partial_label_masks/nyuv2/onelabel.pth")}, 795),
    "canonical": ({}, 795),
    "budget": ({"seed_labels": 5, "new_labels": {"seg": 10, "depth": 3, "normal": 0}}, 60),
}


@pytest.mark.parametrize("name", SCENARIOS.list())
def test_scenario_masks_are_binary_and_a_function_of_the_mask_seed(name):
    params, n = SCENARIO_SETTINGS.get(name, ({}, 60))
    scenario = SCENARIOS.get(name)(**params)
    tasks = list(TASKS)
    plan = scenario.plan(n, tasks, 3, 20 if scenario.pool else 0)
    mask = plan.mask
    assert mask.shape == (n + (20 if scenario.pool else 0), len(tasks)) and mask.dtype == np.float32
    assert set(np.unique(mask)) <= {0.0, 1.0}
    assert np.array_equal(mask, scenario.plan(n, tasks, 3, 20 if scenario.pool else 0).mask)
    assert SCENARIOS.get(name).label_of(plugin(SCENARIOS, {"name": name, **params}, "scenario", Path("c.yaml")))


# ------------------------------------------------------------------------------------- the tracks' plugins
@pytest.mark.parametrize("name", ALLOCATORS.list())
def test_allocators_spend_at_most_the_budget_in_whole_labels(name):
    allocator = build(ALLOCATORS, plugin(ALLOCATORS, {"name": name, **REQUIRED.get(("allocator", name), {})},
                                         "allocator", Path("contract.yaml")))
    costs = {"seg": 3, "depth": 1, "normal": 2}
    estimates = Estimates({"seg": 1.4, "depth": 1.1, "normal": 1.2}, {"seg": 1.2, "depth": 1.0, "normal": 1.3},
                          {"seg": 0.99, "depth": 0.98, "normal": 0.995})
    counts = allocator.allocate(costs, 60, estimates)
    assert set(counts) == set(costs) and all(isinstance(n, int) and n >= 0 for n in counts.values())
    assert allocator.spent(costs, counts) <= 60 and allocator.label()
    assert allocator.spent(costs, counts) == sum(n * costs[t] for t, n in counts.items())  # no free label by default


@pytest.mark.parametrize("name", SELECTORS.list())
def test_selectors_choose_within_the_budget(name):
    tables = Tables(*(read_losses(REFERENCE / "taskgrouping" / f) for f in
                      ("results.txt", "results_test.txt", "results_20.txt")))
    selector = build(SELECTORS, plugin(SELECTORS, name, "selector", Path("contract.yaml")))
    objective = build(OBJECTIVES, {"name": "lowest_total"})
    costs = dict(zip(tables.test.networks, tables.test.costs))
    for budget in (1.0, 2.5):
        choice = selector.choose(tables, budget, objective)
        if choice is not None:
            assert math.isfinite(choice.total)
            assert sum(costs[n] for n in choice.networks) <= budget + 1e-9


@pytest.mark.parametrize("name", PRUNERS.list())
def test_pruners_build_an_optuna_pruner(name):
    import optuna

    assert isinstance(build(PRUNERS, {"name": name}).build(), optuna.pruners.BasePruner)


def test_tracks_kinds_and_resolvers_are_complete():
    from pydantic import BaseModel

    assert DEFAULT_TRACK in TRACKS and TRACKS.get(DEFAULT_TRACK)().section() is None
    for name in TRACKS.list():
        section = TRACKS.get(name)().section()
        assert name not in SuiteFile.model_fields  # a section is named like its track
        assert section is None or issubclass(section, BaseModel)
    assert all(callable(getattr(KINDS.get(kind)(), "run", None)) for kind in KINDS.list())
    assert all(callable(RESOLVERS.get(name)) for name in RESOLVERS.list())


TASK_VALUES = {"classes", "depth", "direction", "regression", "presence"}


@pytest.mark.parametrize("name", ["seg", "depth", "normal", "edge", "keypoint", "shading", "albedo"])
def test_a_dense_task_encodes_its_own_labels_and_valid_pixels(name):
    """What the regularizers stack or map comes from the task: a random label of its range, its valid pixels
    (where a label exists) and its label map (unlabelled pixels zero), with no branch of a method deciding."""
    task = SynthRooms().tasks()[name]
    assert task.value_kind in TASK_VALUES
    label = task.random_target(2, 4, 6, torch.Generator().manual_seed(0))
    label[0, ..., 0] = -1 if task.value_kind == "classes" else math.nan if task.value_kind == "regression" else 0
    valid = task.valid_pixels(label)
    assert valid.shape == (2, 1, 4, 6) and valid[0, 0, :, 0].sum() == 0 and valid[1].all()
    mapped = task.label_map(label)
    assert mapped.shape[:2] == (2, task.channels) and mapped.isfinite().all()
    assert (mapped[0, :, :, 0] == 0).all()
    if task.value_kind == "classes":
        assert torch.equal(mapped[1].argmax(0), label[1]) and (mapped[1].sum(0) == 1).all()


@pytest.mark.parametrize("method", ["mtpsl", "jtr"])
def test_a_regularizer_refuses_task_values_it_has_no_encoding_for_by_name(method):
    from dataclasses import dataclass
    from typing import ClassVar

    from mtlbench.tasks import DenseL1

    @dataclass(frozen=True)
    class SetValued(DenseL1):  # a task type whose values no encoding of the method covers
        value_kind: ClassVar[str] = "set"

    tasks = {**{t: SynthRooms().tasks()[t] for t in ("seg", "depth")}, "boxes": SetValued("boxes", 4)}
    regularizer = build(AXES["regularizer"], {"name": method})
    with pytest.raises(ValueError, match=rf"{method} has no .*encoding for the values of boxes \(set\)"):
        regularizer.check(tasks)


# ------------------------------------------------------------------------------------------------ observers
@pytest.mark.parametrize("name", OBSERVERS.list())
def test_every_observer_changes_no_step_logs_finite_numbers_and_round_trips(name):
    """A registered step observer, watching two updates of a recipe: the weights it leaves are those of the same
    updates without it, its epoch log is finite numbers, its state restores it and its report is strict JSON."""
    from types import SimpleNamespace

    images, targets = tiny_batch()
    mask = torch.tensor([[1.0, 1, 0], [1, 0, 1], [0, 1, 1], [1, 1, 1]])

    def two_updates(observed):
        recipe, model = recipe_with("gradients", "sum")
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        seen = SimpleNamespace(model=model, recipe=recipe, stage=SimpleNamespace(tasks=TASKS),
                               device=torch.device("cpu"))
        observer = OBSERVERS.get(name)(seen) if observed else None
        for step in (1, 2):
            recipe.train_step(optimizer, images, targets, mask)
            if observer:
                observer.after_step(step)
        return model, observer

    plain, _ = two_updates(False)
    watched, observer = two_updates(True)
    assert all(torch.equal(a, b) for a, b in zip(plain.state_dict().values(), watched.state_dict().values()))
    log = observer.epoch_log()
    assert all(isinstance(v, float) and math.isfinite(v) for v in log.values())
    fresh = two_updates(True)[1]
    fresh.restore(json.loads(json.dumps(observer.state())))
    assert json.dumps(fresh.report(), allow_nan=False) == json.dumps(observer.report(), allow_nan=False)
