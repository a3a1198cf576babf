"""Single-task teachers a multi-task student learns from: the pseudo-labels of MuST (Ghiasi et al., ICCV 2021) and
Noisy Student (Xie et al., CVPR 2020) as Yun and Cho 2023 Table 8 and Nishi et al. 2024 Table 9 run them, and the
teachers KD-MTL (Li and Bilen 2020, ``kd_mtl.py``) distils from.

A teacher is the suite's STL job (``networks: per_task``: one network per task, trained on that task's labelled
images) of the student's dataset, scenario, tasks and seed, the one trained with the student's ``train`` settings
where a suite has several. It is an ordinary job: the student ``needs`` it (resolver ``teachers``), so it trains
first, once, however many students read it, and a failed teacher blocks only its students. A job whose weights a
student reads keeps them when it finishes (``weights-<task>.pt``; runner/store.py); the resolver fills the
student's part in with their files and the teacher's model section, and records the teacher in result.json.

MuST and Noisy Student label the training split once, when a stage is built (``relabel``): each task's teacher
predicts, in eval mode and without augmentation, on the training images that lack the task's label, and its
prediction becomes their target. The student then trains on every (image, task) pair, labelled or pseudo-labelled,
with the job's augmentation warping pseudo-labels as it warps labels; the label mask still says which targets are
real (result.json's ``labels_per_task``) and ``pseudo_labels`` records, per task, the fraction of training images
whose target is the teacher's and the fraction of their pixels it labelled. Labelling once is what both papers
do (MuST labels its dataset offline; Noisy Student's teacher labels un-augmented images) and costs one teacher
forward per image, where labelling in the training loop would cost one per image and epoch (docs/methods.md,
"Teacher-student baselines").
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar, Optional

import torch
from torch import Tensor, nn

from ..data.base import Split
from ..files import load_tensors
from ..jobs import Job, Resolution, ResultLookup, reads_weights
from ..registry import build
from ..tasks import Task
from .parts import SUPERVISIONS, FullSupervision
from .weighting import is_stl_of

TEACHERS = "teachers"  # the resolver
UNTRAINED = "untrained"  # a teacher path for ``mtlbench bench``: a fresh copy of the student (the same step cost)
PSEUDO_KINDS = ("classes", "depth", "direction", "regression")  # the dense task values a teacher's map can label


def teacher_inputs(job: Job, jobs: list[Job]) -> dict[str, list[str]]:
    """The suite's STL job that teaches ``job``: same dataset, scenario, tasks and seed; the one with the student's
    train and model sections where the suite has several (a learning-rate grid)."""
    stl = [other for other in jobs if other.kind == "train" and is_stl_of(other.config, job.config)
           and other.seed == job.seed]
    alike = [other for other in stl if all(other.config[key] == job.config[key] for key in ("train", "model"))]
    chosen = alike or stl
    if not chosen:
        raise ValueError(f"{job.method} learns from single-task teachers: the suite's stl job of seed {job.seed} "
                         f"(add stl to methods)")
    return {TEACHERS: [chosen[0].id]}


@reads_weights(TEACHERS)
def teacher_weights(config: dict[str, Any], needs: tuple[str, ...], lookup: ResultLookup) -> Resolution:
    """Each task's teacher network: the weights file its STL job kept, and that job's model section, filled into
    every recipe part that has ``teachers``; result.json records the teacher's id and validation metrics."""
    (teacher,) = needs
    result = lookup(teacher)
    if result is None:
        raise RuntimeError(f"the teacher job {teacher} has not finished")
    folder = lookup.folder(teacher)
    files = {task: folder / f"weights-{task}.pt" for task in config["tasks"]}
    missing = [str(path) for path in files.values() if not path.exists()]
    if missing:
        raise RuntimeError(f"the teacher job {teacher} kept no weights ({', '.join(missing)} missing): run the suite "
                           f"again, and it trains the teacher again to keep them")
    filled = {"teachers": {task: str(path) for task, path in files.items()}, "teacher_model": result["config"]["model"]}
    method = {axis: {**part, **filled} if isinstance(part, dict) and "teachers" in part else part
              for axis, part in config["method"].items()}
    return Resolution({**config, "method": method}, {"teacher": {"job_id": teacher, "val": result["val"]}})


def load_teacher(path: str, model_config: Optional[dict[str, Any]], name: str, task: Task,
                 student: nn.Module) -> nn.Module:
    """Task ``name``'s teacher, frozen in eval mode on the student's device. Its weights are read with
    ``weights_only`` (a teacher's folder may be a colleague's)."""
    device = next(student.parameters()).device
    if path == UNTRAINED:
        net = copy.deepcopy(student)
    else:
        from ..models import MODELS

        if model_config is None:
            raise ValueError("a teacher's weights need its model section (teacher_model)")
        net = build(MODELS, model_config).build({name: task})
        net.load_state_dict(load_tensors(Path(path), "teacher's weights")["model"])
    return net.to(device).eval().requires_grad_(False)


def check_teachers(method: str, teachers: Optional[dict[str, str]], tasks: dict[str, Task]) -> dict[str, str]:
    if teachers is None:
        raise ValueError(f"{method} needs its single-task teachers (run the suite's stl jobs first, or set "
                         f"teachers: {{task: weights file}} and teacher_model)")
    missing = [t for t in tasks if t not in teachers]
    if missing:
        raise ValueError(f"{method}: no teacher for task(s) {', '.join(missing)}")
    return teachers


def teacher_predictions(teacher: nn.Module, images: Tensor, name: str, batch_size: int,
                        autocast: Callable[[], Any]) -> Tensor:
    """The teacher's predictions of task ``name`` on stored images (uint8), ``batch_size`` at a time."""
    out = []
    with torch.no_grad():
        for chunk in images.split(batch_size):
            with autocast():
                out.append(teacher(chunk.float().div(255))[name].float())
    return torch.cat(out)


@dataclass(frozen=True)
class PseudoLabels(FullSupervision):
    """Every (image, task) pair supervises every step, the teacher's prediction standing in for a missing label
    (``relabel`` fills the targets in and marks them in the mask the stage trains with; module docstring); how
    per-image losses average is ``full``'s (Nishi et al. 2024 Eq. 1), so that with every
    pair labelled it is the plain multi-task objective the students of both papers train with. ``teachers``
    ({task: weights file}) and ``teacher_model`` (their model section) are filled in from the teacher job."""

    labels: ClassVar[str] = "hard"
    teachers: Optional[dict[str, str]] = None
    teacher_model: Optional[dict[str, Any]] = None

    def check(self, tasks: dict[str, Task]) -> None:
        wrong = [t for t, task in tasks.items() if not task.dense or task.value_kind not in PSEUDO_KINDS]
        if wrong:
            raise ValueError(f"a teacher's map labels dense tasks ({', '.join(PSEUDO_KINDS)}); not {', '.join(wrong)}")

    def inputs(self, job: Job, jobs: list[Job]) -> dict[str, list[str]]:
        return {} if self.teachers is not None else teacher_inputs(job, jobs)

    @classmethod
    def standalone(cls, tasks: list[str]) -> dict[str, Any]:
        return {"teachers": {task: UNTRAINED for task in tasks}}

    def relabel(self, tasks: dict[str, Task], model: nn.Module, train: Split, mask: Tensor, batch_size: int,
                autocast: Callable[[], Any]) -> tuple[Split, Tensor, dict[str, Any]]:
        self.check(tasks)
        if not isinstance(train, Split):
            raise ValueError(f"{type(self).__name__} labels the training split in memory, and this job streams it "
                             f"from a prepared folder (its data is above the streaming threshold): run it with "
                             f"a higher MTLBENCH_STREAM_ABOVE_GB (mtlbench run --stream-above) or without --prepared")
        teachers = check_teachers(type(self).__name__, self.teachers, tasks)
        targets, report = dict(train.targets), {}
        for j, (name, task) in enumerate(tasks.items()):
            rows = (mask[:, j] == 0).nonzero().squeeze(1).to(train.images.device)
            teacher = load_teacher(teachers[name], self.teacher_model, name, task, model)
            pseudo = self.pseudo_target(task, teacher_predictions(teacher, train.images[rows], name, batch_size,
                                                                  autocast))
            targets[name] = self.merged(task, train.targets[name], rows, pseudo)
            del teacher  # freed before the next task's teacher loads: one teacher on the device at a time
            report[name] = {"images": len(rows) / max(len(train), 1), "pixels": self.labelled_share(task, pseudo)}
        return Split(train.images, targets), torch.ones_like(mask), report

    def labelled_share(self, task: Task, pseudo: Tensor) -> float:
        """The share of the pseudo-labelled pixels the teacher labelled (hard labels leave unsure pixels out)."""
        if not len(pseudo):
            return 0.0
        return task.valid_pixels(task.prepare(pseudo)).mean().item() if self.labels == "hard" else 1.0

    def pseudo_target(self, task: Task, pred: Tensor) -> Tensor:
        raise NotImplementedError

    def merged(self, task: Task, stored: Tensor, rows: Tensor, pseudo: Tensor) -> Tensor:
        """The stored targets with ``rows`` replaced by the pseudo-labels (in the stored dtype)."""
        out = stored.clone()
        out[rows] = pseudo.to(stored.dtype)
        return out



@SUPERVISIONS.register("must")
@dataclass(frozen=True)
class MuST(PseudoLabels):
    """MuST (Ghiasi et al., ICCV 2021; Yun and Cho 2023 Table 8, Nishi et al. 2024 Table 9): single-task teachers
    trained on the labelled images give hard pseudo-labels for every missing (image, task) pair, and the multi-task
    student trains on labels and pseudo-labels alike. Segmentation: the teacher's most probable class where its
    probability reaches ``threshold`` (0.5, Ghiasi et al. Sec. 3.1), ignored elsewhere; depth, surface normals and
    other maps: the teacher's prediction as it is."""

    threshold: float = 0.5

    def __post_init__(self) -> None:
        if not 0 <= self.threshold < 1:
            raise ValueError(f"threshold: {self.threshold} must lie in [0, 1) (a class probability)")

    def pseudo_target(self, task: Task, pred: Tensor) -> Tensor:
        if task.value_kind != "classes":
            return pred
        confidence, label = pred.softmax(1).max(1)
        return torch.where(confidence >= self.threshold, label, torch.full_like(label, -1))


@SUPERVISIONS.register("noisy_student")
@dataclass(frozen=True)
class NoisyStudent(PseudoLabels):
    """Noisy Student (Xie et al., CVPR 2020) as Yun and Cho 2023 Sec. 5 and Table 8 run it: the teacher predicts on
    images without augmentation, and the student, noised, learns to give the same predictions on augmented images;
    soft pseudo-labels (segmentation: the teacher's class probabilities, learnt with cross-entropy against them;
    depth and normals: its prediction). The student's noise is the job's augmentation (scale-crop and flip, and
    RandAugment with ``train.augment.photometric_ops``); Xie et al.'s dropout and stochastic depth are not added
    (SegNet has neither), and the student is not made a teacher for a further round (Yun and Cho describe one)."""

    labels: ClassVar[str] = "soft"

    def pseudo_target(self, task: Task, pred: Tensor) -> Tensor:
        return pred.softmax(1) if task.value_kind == "classes" else pred

    def merged(self, task: Task, stored: Tensor, rows: Tensor, pseudo: Tensor) -> Tensor:
        """Segmentation targets become class probabilities (a label as its one-hot, an ignored pixel all zero),
        kept in half precision."""
        if task.value_kind != "classes":
            return super().merged(task, stored, rows, pseudo)
        soft = task.label_map(stored.long()).to(torch.float16)
        soft[rows] = pseudo.to(torch.float16)
        return soft
