"""Model zoo: backbones registered by name, each built from the task list."""
from . import deeplab, maskrcnn, pyramid, segnet, xception  # noqa: F401  (register "deeplab_resnet50", "maskrcnn",
#   "pyramid", "segnet", "xception")
from .deeplab import DeepLabResNet50
from .protocol import ModelSpec, MultiTaskModel
from .registry import MODELS, parameter_count
from .segnet import SegNet

__all__ = ["MODELS", "DeepLabResNet50", "ModelSpec", "MultiTaskModel", "SegNet", "parameter_count"]
