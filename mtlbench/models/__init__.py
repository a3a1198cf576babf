"""Model zoo: backbones registered by name, each built from the task list."""
from ..registry import Registry

MODELS: Registry[type] = Registry("model")  # each entry a ModelSpec dataclass (protocol.py)

from . import deeplab, segnet  # noqa: E402,F401  (register "deeplab_resnet50", "segnet")
from .deeplab import DeepLabResNet50  # noqa: E402
from .protocol import ModelSpec, MultiTaskModel  # noqa: E402
from .segnet import SegNet  # noqa: E402

__all__ = ["MODELS", "DeepLabResNet50", "ModelSpec", "MultiTaskModel", "SegNet"]
