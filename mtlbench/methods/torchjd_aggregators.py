"""Gradient aggregators taken from torchjd (Quinton and Rey 2024; property-tested there), adapted to the gradients
axis: the aggregator sees the Jacobian of the tasks present in the batch (one row per task with a label), so a
task without labels takes no part in the step. torchjd is imported when a part is built, never by the trainer.

The aggregators mtlbench already had (MGDA, CAGrad, PCGrad, IMTL-G) stay in gradients.py:
tests/test_aggregators.py compares them with torchjd's on random Jacobians.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any, ClassVar, Literal

from torch import Tensor, nn

from ..space import Float, Space
from .gradients import Combiner
from .parts import GRADIENTS


class TorchJDAggregator(Combiner):
    """A stateless torchjd aggregator applied to the present tasks' rows."""

    def aggregator(self) -> Any:
        raise NotImplementedError

    @cached_property
    def _aggregator(self) -> Any:
        return self.aggregator()

    def combine(self, grads: Tensor, present: list[int], net: nn.Module | None, losses: Tensor) -> Tensor:
        return self._aggregator(grads)


@GRADIENTS.register("upgrad")
@dataclass(frozen=True)
class UPGrad(TorchJDAggregator):
    """UPGrad (Quinton and Rey 2024, Jacobian Descent, Eq. 5): each task gradient projected onto the dual cone of
    all rows (no update conflicts with any present task), the projections averaged; torchjd's quadprog solver."""

    def aggregator(self) -> Any:
        from torchjd.aggregation import UPGrad as Aggregator

        return Aggregator()


@GRADIENTS.register("dualproj")
@dataclass(frozen=True)
class DualProj(TorchJDAggregator):
    """DualProj (Quinton and Rey 2024, after GEM, Lopez-Paz and Ranzato 2017, Eq. 11): the mean gradient projected
    onto the dual cone of the task gradients."""

    def aggregator(self) -> Any:
        from torchjd.aggregation import DualProj as Aggregator

        return Aggregator()


@GRADIENTS.register("config_grad")  # "config" would read as the suite config
@dataclass(frozen=True)
class ConFIG(TorchJDAggregator):
    """ConFIG (Liu et al., ICLR 2025, Eq. 2): the direction with equal cosine to every unit task gradient,
    g = (Σ_t g_t·ĝ) ĝ with ĝ the normalised pseudo-inverse solution U^+ 1 of the unit gradients U."""

    def aggregator(self) -> Any:
        from torchjd.aggregation import ConFIG as Aggregator

        return Aggregator()


@GRADIENTS.register("graddrop")
@dataclass(frozen=True)
class GradDrop(TorchJDAggregator):
    """GradDrop (Chen et al., NeurIPS 2020, Alg. 1 lines 10-15): per coordinate, the positive sign purity
    P = ½(1 + Σ g / Σ |g|) decides, against one uniform draw, whether positive or negative components pass;
    ``leak`` lets that share of every gradient through. Simplification (named in docs/methods.md): applied to the
    shared parameters' gradients, as torchjd does, where the paper masks the gradients at the shared activations."""

    space: ClassVar[dict[str, Space]] = {"leak": Float(0.0, 1.0)}
    leak: float = 0.0

    def aggregator(self) -> Any:
        from torchjd.aggregation import GradDrop as Aggregator

        return Aggregator()

    def combine(self, grads: Tensor, present: list[int], net: nn.Module | None, losses: Tensor) -> Tensor:
        if not self.leak:
            return self._aggregator(grads)
        from torchjd.aggregation import GradDrop as Aggregator

        return Aggregator(leak=grads.new_full((len(grads),), self.leak))(grads)


@GRADIENTS.register("aligned_mtl")
@dataclass(frozen=True)
class AlignedMTL(TorchJDAggregator):
    """Aligned-MTL (Senushkin et al., CVPR 2023, Alg. 1): the task gradients made orthogonal and of equal norm by
    the balance transformation B = √σ_scale V Σ^{-1/2} V^T of their Gram matrix, then averaged; ``scale`` picks
    σ_scale (the smallest eigenvalue in the paper; ``rmse`` the mean, as the authors' code). A closed form: the
    eigendecomposition has no iterate that could fail, only a rank, and directions outside the gradients' span
    are dropped (torchjd)."""

    scale: Literal["min", "median", "rmse"] = "min"

    def aggregator(self) -> Any:
        from torchjd.aggregation import AlignedMTL as Aggregator

        return Aggregator(scale_mode=self.scale)


@GRADIENTS.register("rgw")
@dataclass(frozen=True)
class RGW(TorchJDAggregator):
    """Random Gradient Weighting (Lin et al., TMLR 2022, Sec. 3): every step, g = Σ_t w_t g_t with
    w = softmax(z), z ~ N(0, I) over the present tasks (RLW's weights applied to the gradients)."""

    def aggregator(self) -> Any:
        from torchjd.aggregation import Random as Aggregator

        return Aggregator()
