"""MTPSL (Li et al. 2022b): cross-task consistency in pair-wise mapping spaces, Nishi et al. 2024 Eq. 3.

As the authors' code (VICO-UoE/MTPSL, model/mapfns.py and nyu_mtl_xtc.py) does it:

- For every image of the second augmented view and every ordered pair (s, t) with s unlabelled and t
  labelled (and, for an image labelled for every task, every ordered pair s != t: the code's
  ``--ssl-type full``, model/mapfns.py ``Mapfns.forward``; ``full_labels: none`` leaves such images out, as
  mtlbench did before 0.2), the source *prediction* of s and the target *label* of t are mapped by one shared
  encoder, conditioned on the pair by FiLM (a gamma and beta per ordered pair and channel after every normalisation),
  each entering through an input layer of its own task (conv3x3 + norm + ReLU to 64·width channels).
- Inputs: segmentation predictions through a hard Gumbel-softmax (straight-through), labels one-hot (ignored
  pixels all-zero); depth divided by its per-image maximum; normals mapped to (n + 1) / 2.
- Per (image, pair): (1 - cos(m_s, m_t)) + reg_weight [(1 - cos(m_s, f)) + (1 - cos(m_t, f))], cosine over
  channels averaged over positions, f the model's bottleneck feature of that image, detached; summed over
  pairs and images, times ``weight`` (2.0 on NYUv2), divided by the batch size. No 1/|U_x| (Eq. 3 writes one;
  the code has none).
- The encoder's convolutions train with the main optimiser; the FiLM parameters with their own Adam
  (lr 1e-3, StepLR(30, 0.5)).

On DeepLab (Nishi et al. 2024 Table 15, MTPSL on DeepLabV3+ with ResNet-50) neither paper nor code gives the
mapping network; mtlbench follows what Nishi et al. say of its cost ("MTPSL's use of layer-wise FiLM
transformations ... requires more VRAM for more complex network architectures", Sec. 5): the mapping network is
the model's own backbone architecture (freshly initialised, xavier as the authors' mapping), every BatchNorm
replaced by per-sample normalisation and the pair's FiLM, and the stem's input convolution by one per task, so its
output has the shape of the model's feature (ResNet-50: 2048 x H/8 x W/8) that the regularisation term compares
with. This is mtlbench's reading, named in docs/methods.md.

The authors loop over images and pairs with batch size 1, so every normalisation sees one sample; here the
batch is grouped by task pair and run through the encoder at once, with per-sample normalisation
(GroupNorm with one group per channel, exactly batch-1 BatchNorm in training mode) and per-sample FiLM
parameters, which gives the same numbers without the loops.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from itertools import permutations
from typing import Callable, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data import SCENARIOS
from ..ids import spelt_as_before
from ..models.init import xavier_init
from ..models.segnet import CONVS, conv_norm_relu, per_sample_norm
from ..space import Float, Space
from ..functional import gumbel_sample, signed_to_unit
from ..tasks import Task
from .context import StepContext
from .parts import REGULARIZERS, Regularizer


class FiLMConv(nn.Module):
    """conv3x3 -> per-sample norm -> gamma * x + beta (per sample's task pair) -> ReLU (mapfns.conv_task)."""

    def __init__(self, c_in: int, c_out: int, pairs: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.norm = per_sample_norm(c_out)
        self.gamma = nn.Parameter(torch.ones(c_out, pairs))
        self.beta = nn.Parameter(torch.zeros(c_out, pairs))

    def forward(self, x: Tensor, pair: Tensor) -> Tensor:
        x = self.norm(self.conv(x))
        gamma, beta = self.gamma.t()[pair], self.beta.t()[pair]  # [N, C]
        return torch.relu(x * gamma[..., None, None] + beta[..., None, None])


class MappingNetwork(nn.Module):
    """Task-specific input layers and the SegNet encoder shared by all task pairs (mapfns.SegNet_enc)."""

    def __init__(self, tasks: dict[str, Task], filters: list[int]) -> None:
        super().__init__()
        names = list(tasks)
        self.pairs = {pair: i for i, pair in enumerate(permutations(names, 2))}
        self.inputs = nn.ModuleDict({t: conv_norm_relu(task.channels, filters[0], per_sample_norm)
                                     for t, task in tasks.items()})
        self.stages = nn.ModuleList()
        for c_in, c_out, convs in zip([filters[0], *filters[:-1]], filters, CONVS):
            self.stages.append(nn.ModuleList([FiLMConv(c_in, c_out, len(self.pairs))] +
                                             [FiLMConv(c_out, c_out, len(self.pairs)) for _ in range(convs - 1)]))
        xavier_init(self)

    def encode(self, x: Tensor, pair: Tensor) -> Tensor:
        for stage in self.stages:
            for conv in stage:
                x = conv(x, pair)
            x = F.max_pool2d(x, 2, 2)
        return x


class FiLMNorm(nn.Module):
    """A backbone BatchNorm in the mapping network: per-sample normalisation, then the task pair's FiLM."""

    def __init__(self, channels: int, pairs: int) -> None:
        super().__init__()
        self.norm = per_sample_norm(channels)
        self.gamma = nn.Parameter(torch.ones(channels, pairs))
        self.beta = nn.Parameter(torch.zeros(channels, pairs))
        self.pair: Tensor | None = None  # set by BackboneMapping.encode before each pass

    def forward(self, x: Tensor) -> Tensor:
        gamma, beta = self.gamma.t()[self.pair], self.beta.t()[self.pair]
        return self.norm(x) * gamma[..., None, None] + beta[..., None, None]


def with_film(module: nn.Module, pairs: int) -> None:
    """Every BatchNorm2d under ``module`` replaced by a FiLMNorm of its width."""
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            setattr(module, name, FiLMNorm(child.num_features, pairs))
        else:
            with_film(child, pairs)


class BackboneMapping(nn.Module):
    """The mapping network for a model with a backbone of a stem and stages (DeepLab): the backbone's architecture
    with layer-wise FiLM, each task entering through its own copy of the stem's input convolution."""

    def __init__(self, tasks: dict[str, Task], model: nn.Module) -> None:
        import copy

        super().__init__()
        self.pairs = {pair: i for i, pair in enumerate(permutations(list(tasks), 2))}
        self.body = copy.deepcopy(nn.Sequential(model.stem, *model.stages))
        first = self.body[0][0]
        self.inputs = nn.ModuleDict({t: nn.Conv2d(task.channels, first.out_channels, first.kernel_size, first.stride,
                                                  first.padding, bias=False) for t, task in tasks.items()})
        self.body[0][0] = nn.Identity()
        with_film(self.body, len(self.pairs))
        self.films = [m for m in self.body.modules() if isinstance(m, FiLMNorm)]
        xavier_init(self)

    def encode(self, x: Tensor, pair: Tensor) -> Tensor:
        for film in self.films:
            film.pair = pair
        return self.body(x)


Sample = Callable[[Tensor], Tensor]  # logits [N, C, H, W] -> a hard Gumbel-softmax sample (StepContext.gumbel_sample)

VALUE_INPUT: dict[str, Callable[[Tensor], Tensor]] = {  # the authors' input of each kind of task values but classes
    "depth": lambda pred: pred / (pred.flatten(1).amax(1).view(-1, 1, 1, 1) + 1e-12),
    "direction": signed_to_unit,
    "regression": lambda pred: pred,
}
MAPPED_KINDS = ("classes", *VALUE_INPUT)  # classes enter as hard Gumbel-softmax samples (predictions), one-hot (labels)


def source_input(task: Task, pred: Tensor, sample: Sample = gumbel_sample) -> Tensor:
    if task.value_kind == "classes":
        return sample(pred.float())
    return VALUE_INPUT[task.value_kind](pred)


def target_input(task: Task, label: Tensor) -> Tensor:
    if task.value_kind == "classes":
        return task.label_map(label)
    return VALUE_INPUT[task.value_kind](label.nan_to_num())  # a masked pixel (NaN, see tasks.DenseL1) maps as 0


def cosine_distance(a: Tensor, b: Tensor) -> Tensor:
    """Per sample: 1 - cosine similarity over channels, averaged over positions."""
    return 1 - F.cosine_similarity(a.float(), b.float(), dim=1, eps=1e-12).flatten(1).mean(1)


@REGULARIZERS.register("mtpsl")
@dataclass(frozen=True)
class MTPSL(Regularizer):
    """Its mapping network is the SegNet encoder on SegNet and the backbone's architecture with FiLM on DeepLab (its
    feature term compares with the model's feature), so it is defined for those two (``models``)."""

    single_device: ClassVar[str] = ""  # per-image terms over the global batch; Gumbel noise drawn for it (gumbel_sample)
    models: ClassVar[tuple[str, ...] | None] = ("segnet", "deeplab_resnet50")
    space: ClassVar[dict[str, Space]] = {"weight": Float(0.25, 8.0, log=True), "reg_weight": Float(0.1, 2.0, log=True)}
    weight: float = 2.0  # --con-weight of nyu_mtl_xtc.py
    reg_weight: float = 0.5  # --reg-weight
    film_lr: float = 1e-3
    film_step: int = 30
    film_gamma: float = 0.5
    full_labels: Literal["all_pairs", "none"] = "all_pairs"

    @property
    def extra_views(self) -> int:
        return 1

    def check(self, tasks: dict[str, Task]) -> None:
        not_dense = [f"{t} ({task.output})" for t, task in tasks.items() if not task.dense]
        if not_dense:
            raise ValueError(f"mtpsl maps dense predictions; tasks whose outputs are not maps are not supported: {', '.join(not_dense)}")
        unmapped = [f"{t} ({task.value_kind})" for t, task in tasks.items() if task.value_kind not in MAPPED_KINDS]
        if unmapped:
            raise ValueError(f"mtpsl has no input encoding for the values of {', '.join(unmapped)}; it maps "
                             f"{', '.join(MAPPED_KINDS)} (give the task type a value_kind, or the method an encoding)")
        if len(tasks) < 2:
            raise ValueError("mtpsl needs at least two tasks (it maps task pairs)")

    def build(self, tasks: dict[str, Task], model: nn.Module) -> nn.Module:
        self.check(tasks)
        if hasattr(model, "filters"):  # SegNet
            return MappingNetwork(tasks, model.filters)
        if getattr(model, "task_norm", False):
            raise ValueError("mtpsl maps through the backbone's architecture with FiLM; a backbone with task-specific "
                             "BatchNorms (task_norm) has none to give it")
        return BackboneMapping(tasks, model)

    def main_parameters(self, net: nn.Module) -> list[nn.Parameter]:
        return [p for name, p in net.named_parameters() if not name.endswith(("gamma", "beta"))]

    def own_optimizers(self, net: nn.Module) -> list[tuple[torch.optim.Optimizer, object]]:
        film = [p for name, p in net.named_parameters() if name.endswith(("gamma", "beta"))]
        optimizer = torch.optim.Adam(film, lr=self.film_lr)
        return [(optimizer, torch.optim.lr_scheduler.StepLR(optimizer, self.film_step, self.film_gamma))]

    def loss(self, ctx: StepContext, net: nn.Module | None) -> Tensor | None:
        """Which (image, pair) entries exist is decided on the global mask, so that every device maps the same pairs
        (a device without images of a pair maps an empty batch) and draws the pair's Gumbel noise for all of its
        images; each device sums its own images' entries."""
        view = ctx.views[1]
        names = list(ctx.tasks)
        device = view.images.device
        full = ctx.mask.sum(1) == len(names) if self.full_labels == "all_pairs" else ctx.mask[:, 0] != ctx.mask[:, 0]
        sources, targets, pairs, images = [], [], [], []
        for s, t in permutations(names, 2):
            partly = (ctx.mask[:, names.index(s)] == 0) & (ctx.mask[:, names.index(t)] == 1)
            positions = (partly | full).nonzero().squeeze(1)
            if not len(positions):
                continue
            rows = ctx.own_rows(positions).to(device, non_blocking=True)
            sample = partial(ctx.gumbel_sample, positions=positions)
            sources.append(net.inputs[s](source_input(ctx.tasks[s], view.preds[s][rows], sample)))
            targets.append(net.inputs[t](target_input(ctx.tasks[t], view.targets[t][rows])))
            pairs.append(torch.full((len(rows),), net.pairs[(s, t)], device=device))
            images.append(rows)
        if not pairs:
            return None
        pair = torch.cat(pairs)
        n = len(pair)
        mapped = net.encode(torch.cat(sources + targets), torch.cat([pair, pair]))
        m_s, m_t = mapped[:n], mapped[n:]
        feature = view.feature[torch.cat(images)].detach()
        per_entry = cosine_distance(m_s, m_t) + self.reg_weight * (cosine_distance(m_s, feature)
                                                                   + cosine_distance(m_t, feature))
        return self.weight * per_entry.sum() / ctx.batch_size


@spelt_as_before
def mtpsl_full_labels_default(config: dict) -> dict:
    """``full_labels`` came with 0.2; ``none`` is the earlier behaviour, and ``all_pairs`` trains the same where
    no image is labelled for every task: both are hashed as before, so those jobs keep their ids."""
    regularizer = config.get("method", {}).get("regularizer", {})
    if regularizer.get("name") == "mtpsl" and "full_labels" in regularizer:
        _, high = SCENARIOS.get(config["scenario"]["name"]).label_range(config["scenario"], config["tasks"])
        if regularizer["full_labels"] == "none" or high < len(config["tasks"]):
            del regularizer["full_labels"]
    return config
