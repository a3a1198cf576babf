"""What recipe parts and tracks rely on in a model: the contract every registered backbone keeps
(tests/test_contracts.py checks it for each entry of MODELS).

- ``shared_parameters()``: the parameters every task's loss reaches (gradient combiners replace their
  gradient; TAG's look-ahead steps them);
- ``last_shared_layer()``: one of them, the weight where GradNorm measures task gradients;
- ``forward(x)``: ``{task: prediction}`` in the task order; ``return_feature=True`` also returns the shared
  feature (regularizers read it), ``feature_only=True`` returns the feature alone;
- optionally ``losses_per_image(x, targets, rows)``: each task's loss on the images ``rows[task]``, computed by the
  model itself where its heads learn from samples drawn against the ground truth (Mask R-CNN's proposals); the recipe
  and the evaluation then call it instead of ``Task.loss_per_image``, and no regularizer reads predictions;
- optionally ``decoded_layer()``: the module whose output is the shared map the task heads read (SegNet: the
  decoder's last block), which KD-MTL distils as its second level;
- the spec's ``input_multiple``: height and width must be multiples of it (suites are checked against it),
  and optionally ``min_batch``, the smallest training batch it accepts.
"""
from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from torch import Tensor, nn

from ..tasks import Task


@runtime_checkable
class MultiTaskModel(Protocol):
    def shared_parameters(self) -> list[nn.Parameter]: ...

    def last_shared_layer(self) -> nn.Parameter: ...

    def __call__(self, x: Tensor, return_feature: bool = False, feature_only: bool = False) -> Any: ...


class ModelSpec(Protocol):
    input_multiple: int  # a class constant, or a property of the spec's parameters (DeepLab's backbone)

    def build(self, tasks: dict[str, Task]) -> MultiTaskModel: ...


def computes_losses(model: nn.Module) -> bool:
    """Whether the model computes its tasks' losses itself (``losses_per_image``, a two-stage detector)."""
    return callable(getattr(model, "losses_per_image", None))
