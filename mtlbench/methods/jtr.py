"""Joint-Task Regularization (JTR), Nishi et al. 2024 Eq. 4-6, supplementary Alg. 1 and the authors' released code.

Predictions of all tasks are stacked into Ŷ and labels into Y (the prediction standing in where a label is
missing, Eq. 4); a SegNet auto-encoder g = g_θ2 ∘ g_θ1 over the stacked channels has the joint-task space as
its bottleneck; L_Dist is the cosine distance there and L_Recon reconstructs Y and Ŷ with each task's loss.
Encodings of the authors' code (KentoNishi/JTR-CVPR-2024, utils/process.py): segmentation one-hot (labels;
ignored pixels all-zero) or a hard Gumbel-softmax / softmax of the prediction; depth through the CDF of
Normal(2.3618, 1.5876); normals as (n + 1) / 2; predictions multiplied by the intersection of the labelled
tasks' valid-pixel masks. The auto-encoder is the MTAN SegNet at ``width`` (None: the backbone's own width if
it is a SegNet, else 1.0, the paper's).

``gradient_flow="code"`` (default; the published numbers come from it), per image, with views 1 and 2 two
further scale-crops of view 0 (view 0 carries the supervised loss):

    L_Dist  = (1 - cos(g'_θ1(Y_1), g'_θ1(Ŷ_1))) + c_recon (1 - cos(g_θ1(⟨Y_2⟩), g_θ1(⟨Ŷ_2⟩)))
    L_Recon = Recon(g(⟨Y_2⟩), Y_2) + Recon(g(⟨Ŷ_2⟩), Ŷ_2)
    L_JTR   = (c_dist L_Dist + c_recon L_Recon) / |B|, summed over the batch

where g' is a frozen copy of the encoder (the MTL network learns from L_Dist through it; the JTR network does
not), predictions of labelled tasks are detached, and Ŷ_1 uses a hard Gumbel-softmax, Ŷ_2 a softmax.
``gradient_flow="paper"`` follows Eq. 5 and Alg. 1 on view 0 alone: c_dist Dist(g_θ1(Ŷ), g_θ1(Y)) reaches the
heads and the JTR encoder, c_recon (Recon(g(⟨Ŷ⟩), ⟨Ŷ⟩) + Recon(g(⟨Y⟩), ⟨Y⟩)) trains the auto-encoder.

Images with no label at all (Nishi et al. 2024 Sec. 4.4): the released code gives them no special treatment (Y
equals Ŷ there, so L_Dist is 0 for them), and neither does mtlbench by default. ``unlabeled_consistency: true``
is mtlbench's extension (not the authors'): their Y is built from view 0's prediction warped onto the view of Ŷ,
a consistency in the joint space across augmentations (our reading of the modified L_Dist the paper describes).

Following the code, the reconstruction target of an unlabelled segmentation in Y_2 is a fresh hard Gumbel sample
of the prediction, not the sample fed to the network (``models/nyuv2_segnet_jtr.py``: Y_2 and its target each
call ``preprocess_seg_pred(..., hard=True)``); Ŷ_2's target likewise.

Recon losses as in the code: segmentation BCE-with-logits, depth L1 after (sigmoid - 0.5)(1 - 1e-5) + 0.5
against the CDF of the target, normals 1 - Σ n̂·n; each summed over masked pixels and divided by the number of
non-zero target entries (so a perfect normal reconstruction scores 1 - 1/3: the code's normalisation, kept).
Y's targets are the raw labels (or predictions where unlabelled); Ŷ's are the encoded predictions, as in the
code (its depth target thus passes the CDF twice, and its normal target is (n + 1) / 2; kept).
Ablations (Nishi et al. 2024 supplementary): ``distance`` "l1" or "l2" replaces the cosine distance in the joint
space by the per-image mean absolute or mean squared difference of the two bottlenecks (Table 16; the paper names
the norms only, and the means are mtlbench's reading: torch's L1Loss and MSELoss on one image, as the authors'
per-image loop would give them). ``reconstruction: false`` is Table 8's "JTR w/o L_Recon": neither reconstruction
loss is computed and the decoder g_θ2 never runs (its weights are built but get no gradient); the encoder still
learns from L_Dist (in the code's flow, from view 2's distance term, which reads the encoder alone).
Not copied: the code's un-guarded division by the predicted normal's norm (NaN at zero); ours uses an epsilon.
Tasks beyond seg/depth/normal (edges, keypoints, shading) enter as their values and reconstruct with L1 of the
sigmoid output, averaged over masked pixels (mtlbench's extension). The auto-encoder's normalisation is per
sample, as the authors' per-image loop (batch size 1) makes it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..models.segnet import SegNet, per_sample_norm
from ..space import Float, Space
from ..functional import gumbel_sample, signed_to_unit
from ..tasks import DenseL1, Task
from ..data import SCENARIOS
from ..ids import spelt_as_before
from .context import StepContext
from .mtpsl import Sample, cosine_distance
from .parts import REGULARIZERS, Regularizer


ENCODED_KINDS = ("classes", "depth", "direction", "regression")  # the task values JTR stacks (Task.value_kind)


class Encoding:
    """The authors' encodings of labels and predictions into the stacked tensors Y and Ŷ, per kind of task
    values; the generic ones (one-hot labels, valid pixels) are the task's own."""

    def __init__(self, mean: float, std: float, sample: Sample = gumbel_sample) -> None:
        self.normal = torch.distributions.Normal(mean, std)
        self.sample = sample  # hard Gumbel-softmax samples of segmentation logits (StepContext.gumbel_sample)

    def cdf(self, depth: Tensor) -> Tensor:
        return self.normal.cdf(depth)

    def prediction(self, task: Task, pred: Tensor, mask: Tensor, hard: bool) -> Tensor:
        pred = pred.float()
        kind = task.value_kind
        if kind == "classes":
            probabilities = self.sample(pred) if hard else pred.softmax(1)
            return probabilities * mask
        if kind == "depth":
            return self.cdf(pred * mask)
        if kind == "direction":
            return signed_to_unit(pred * mask)
        return pred * mask  # regression (JTR.check refuses the kinds it has no encoding for)

    def label(self, task: Task, label: Tensor) -> Tensor:
        if task.value_kind == "depth":
            return self.cdf(label * task.valid_pixels(label))
        if task.value_kind == "direction":
            return signed_to_unit(label)
        return task.label_map(label)

    def recon_target(self, task: Task, value: Tensor, is_label: Tensor, from_pred: Tensor) -> Tensor:
        """Reconstruction target: the raw label or prediction (classes: one-hot / hard Gumbel)."""
        if task.value_kind == "classes":
            return torch.where(is_label, self.label(task, value), from_pred)
        return value.nan_to_num()

    def recon_loss(self, task: Task, output: Tensor, target: Tensor, mask: Tensor) -> Tensor:
        target = target.detach().float()
        output = output.float()
        nonzero = (target != 0).flatten(1).sum(1).clamp_min(1)
        if task.value_kind == "classes":
            loss = F.binary_cross_entropy_with_logits(output, target, reduction="none") * mask
        elif task.value_kind == "depth":
            squashed = (torch.sigmoid(output) - 0.5) * (1 - 1e-5) + 0.5
            loss = (squashed - self.cdf(target)).abs() * mask
        elif task.value_kind == "direction":
            return 1 - (F.normalize(output, dim=1) * target * mask).flatten(1).sum(1) / nonzero
        else:
            return ((torch.sigmoid(output) - target).abs() * mask).flatten(1).sum(1) / \
                (mask.expand_as(target).flatten(1).sum(1).clamp_min(1))
        return loss.flatten(1).sum(1) / nonzero


@REGULARIZERS.register("jtr")
@dataclass(frozen=True)
class JTR(Regularizer):
    single_device: ClassVar[str] = ""  # per-image terms over the global batch; Gumbel noise drawn for it (gumbel_sample)
    space: ClassVar[dict[str, Space]] = {"c_dist": Float(1.0, 16.0, log=True), "c_recon": Float(0.5, 8.0, log=True)}
    c_dist: float = 4.0
    c_recon: float = 2.0
    gradient_flow: Literal["code", "paper"] = "code"
    unlabeled_consistency: bool = False
    depth_mean: float = 2.3618
    depth_std: float = 1.5876
    width: float | None = None
    distance: Literal["cosine", "l1", "l2"] = "cosine"
    reconstruction: bool = True

    @property
    def extra_views(self) -> int:
        return 2 if self.gradient_flow == "code" else int(self.unlabeled_consistency)

    def check(self, tasks: dict[str, Task]) -> None:
        not_dense = [f"{t} ({task.output})" for t, task in tasks.items() if not task.dense]
        if not_dense:
            raise ValueError(f"jtr stacks dense maps; tasks whose outputs are not maps are not supported: {', '.join(not_dense)}")
        unknown = [f"{t} ({task.value_kind})" for t, task in tasks.items() if task.value_kind not in ENCODED_KINDS]
        if unknown:
            raise ValueError(f"jtr has no encoding for the values of {', '.join(unknown)}; it stacks "
                             f"{', '.join(ENCODED_KINDS)} (give the task type a value_kind, or the method an encoding)")

    def build(self, tasks: dict[str, Task], model: nn.Module) -> nn.Module:
        self.check(tasks)
        channels = sum(task.channels for task in tasks.values())
        width = self.width if self.width is not None else getattr(model, "width", 1.0)
        return SegNet({"joint": DenseL1("joint", channels)}, width, in_channels=channels, norm=per_sample_norm)

    # ------------------------------------------------------------------------------------------ tensors
    def encoding(self, ctx: StepContext) -> Encoding:
        return Encoding(self.depth_mean, self.depth_std, ctx.gumbel_sample)

    def stacks(self, ctx: StepContext, view_index: int, hard_prediction: bool, detach_labelled: bool,
               from_view0: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor, dict[str, Tensor]]:
        """Ŷ, Y, the valid-pixel mask [B,1,H,W] and the per-task raw recon targets of Y, for one view.

        ``from_view0`` marks images whose Y is view 0's prediction warped onto this view (Sec. 4.4)."""
        view, encoding = ctx.views[view_index], self.encoding(ctx)
        labelled = ctx.device_mask().bool()
        mask = torch.ones_like(view.images[:, :1])
        for j, (name, task) in enumerate(ctx.tasks.items()):
            mask = mask * torch.where(labelled[:, j, None, None, None], task.valid_pixels(view.targets[name]), 1.0)
        y_hat, y, raw = [], [], {}
        for j, (name, task) in enumerate(ctx.tasks.items()):
            is_label = labelled[:, j, None, None, None]
            pred = view.preds[name]
            if detach_labelled:
                pred = torch.where(is_label, pred.detach(), pred)
            y_hat.append(encoding.prediction(task, pred, mask, hard_prediction))
            stand_in = pred
            if from_view0 is not None:
                warped = task.warped(ctx.views[0].preds[name], view.warp, mode="bilinear")
                stand_in = torch.where(from_view0[:, None, None, None], warped, pred)
            as_pred = encoding.prediction(task, stand_in, mask, hard=True)
            y.append(torch.where(is_label, encoding.label(task, view.targets[name]), as_pred))
            target = view.targets[name] if task.value_kind == "classes" else \
                torch.where(is_label, view.targets[name].float(), pred.detach().float())
            fresh = encoding.prediction(task, stand_in, mask, hard=True) if task.value_kind == "classes" else as_pred
            raw[name] = encoding.recon_target(task, target, is_label, fresh)
        return torch.cat(y_hat, 1), torch.cat(y, 1), mask, raw

    def encoded_predictions(self, ctx: StepContext, view_index: int, mask: Tensor) -> dict[str, Tensor]:
        """Ŷ's reconstruction targets in the code: the *encoded* predictions (hard Gumbel for segmentation),
        so depth passes the CDF twice (once here, once in the loss) and normals are compared as (n + 1) / 2."""
        encoding = self.encoding(ctx)
        return {name: encoding.prediction(task, ctx.views[view_index].preds[name].detach(), mask, hard=True)
                for name, task in ctx.tasks.items()}

    def recon(self, net: nn.Module, ctx: StepContext, inputs: Tensor, targets: dict[str, Tensor],
              mask: Tensor) -> tuple[Tensor, Tensor]:
        """(bottleneck, per-image reconstruction loss) of g on detached ``inputs``."""
        preds, feature = net(inputs.detach(), return_feature=True)
        outputs = preds["joint"].split([task.channels for task in ctx.tasks.values()], 1)
        encoding = self.encoding(ctx)
        loss = sum(encoding.recon_loss(task, out, targets[name], mask)
                   for (name, task), out in zip(ctx.tasks.items(), outputs))
        return feature, loss

    def dist(self, a: Tensor, b: Tensor) -> Tensor:
        """Per image: L_Dist between two bottlenecks (cosine distance, or Table 16's L1 / L2)."""
        if self.distance == "cosine":
            return cosine_distance(a, b)
        difference = a.float() - b.float()
        return (difference.abs() if self.distance == "l1" else difference.pow(2)).flatten(1).mean(1)

    # ------------------------------------------------------------------------------------------ losses
    def loss(self, ctx: StepContext, net: nn.Module | None) -> Tensor:
        # decided on the global mask: a device draws view 1's samples (paper_loss) whenever any device needs them
        unlabelled = None
        if self.unlabeled_consistency and (ctx.mask.sum(1) == 0).any():
            unlabelled = ctx.device_mask().sum(1) == 0
        per_image = self.code_loss(ctx, net, unlabelled) if self.gradient_flow == "code" \
            else self.paper_loss(ctx, net, unlabelled)
        return per_image.sum() / ctx.batch_size

    def code_loss(self, ctx: StepContext, net: nn.Module, unlabelled: Tensor | None) -> Tensor:
        y_hat_1, y_1, _, _ = self.stacks(ctx, 1, hard_prediction=True, detach_labelled=True, from_view0=unlabelled)
        frozen = {name: p.detach() for name, p in net.named_parameters()}
        encode = lambda x: torch.func.functional_call(net, frozen, (x,), {"feature_only": True})  # noqa: E731
        distance_1 = self.dist(encode(y_1), encode(y_hat_1))
        y_hat_2, y_2, mask_2, raw_2 = self.stacks(ctx, 2, hard_prediction=False, detach_labelled=True)
        if not self.reconstruction:
            feature_y, feature_hat = (net(x.detach(), feature_only=True) for x in (y_2, y_hat_2))
            return self.c_dist * (distance_1 + self.c_recon * self.dist(feature_y, feature_hat))
        feature_y, recon_y = self.recon(net, ctx, y_2, raw_2, mask_2)
        feature_hat, recon_hat = self.recon(net, ctx, y_hat_2, self.encoded_predictions(ctx, 2, mask_2), mask_2)
        distance = distance_1 + self.c_recon * self.dist(feature_y, feature_hat)
        return self.c_dist * distance + self.c_recon * (recon_y + recon_hat)

    def paper_loss(self, ctx: StepContext, net: nn.Module, unlabelled: Tensor | None) -> Tensor:
        y_hat, y, mask, raw = self.stacks(ctx, 0, hard_prediction=True, detach_labelled=False)
        if unlabelled is not None:
            y_hat_u, y_u, _, _ = self.stacks(ctx, 1, hard_prediction=True, detach_labelled=False,
                                             from_view0=unlabelled)
            y_hat = torch.where(unlabelled[:, None, None, None], y_hat_u, y_hat)
            y = torch.where(unlabelled[:, None, None, None], y_u, y)
        encode = lambda x: net(x, feature_only=True)  # noqa: E731
        distance = self.dist(encode(y), encode(y_hat))
        if not self.reconstruction:
            return self.c_dist * distance
        _, recon_y = self.recon(net, ctx, y, raw, mask)
        _, recon_hat = self.recon(net, ctx, y_hat, self.encoded_predictions(ctx, 0, mask), mask)
        return self.c_dist * distance + self.c_recon * (recon_y + recon_hat)


@spelt_as_before
def jtr_unlabeled_consistency_default(config: dict) -> dict:
    """``unlabeled_consistency`` defaulted to true before 0.2: it changes nothing where every training image has
    a label, so such jobs are hashed with their old value and keep their ids."""
    regularizer = config.get("method", {}).get("regularizer", {})
    if regularizer.get("name") == "jtr" and regularizer.get("unlabeled_consistency") is False:
        low, _ = SCENARIOS.get(config["scenario"]["name"]).label_range(config["scenario"], config["tasks"])
        if low >= 1:
            regularizer["unlabeled_consistency"] = True
    return config


@spelt_as_before
def jtr_ablation_defaults(config: dict) -> dict:
    """``distance`` and ``reconstruction`` came with 0.3: at their defaults (cosine, with L_Recon) JTR trains as
    before and is hashed without them."""
    regularizer = config.get("method", {}).get("regularizer", {})
    if regularizer.get("name") == "jtr":
        if regularizer.get("distance") == JTR.distance:
            del regularizer["distance"]
        if regularizer.get("reconstruction") is JTR.reconstruction:
            del regularizer["reconstruction"]
    return config
