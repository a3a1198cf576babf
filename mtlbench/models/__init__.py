"""Model zoo: backbones registered by name, each built from the task list."""
from ..registry import Registry

MODELS: Registry[type] = Registry("model")  # each entry a ModelSpec dataclass (protocol.py)



def parameter_count(spec: dict, tasks: dict) -> int:
    """The parameters of the model ``spec`` builds for ``tasks``, built on torch's meta device: nothing is
    allocated, so a model too large for any machine is counted in milliseconds (and a spec that cannot be
    built raises as it would when a job starts)."""
    import warnings

    import torch

    from ..registry import build

    with torch.device("meta"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a weights file loaded into meta tensors warns that it is a no-op
        return sum(p.numel() for p in build(MODELS, spec).build(tasks).parameters())


from . import deeplab, segnet  # noqa: E402,F401  (register "deeplab_resnet50", "segnet")
from .deeplab import DeepLabResNet50  # noqa: E402
from .protocol import ModelSpec, MultiTaskModel  # noqa: E402
from .segnet import SegNet  # noqa: E402

__all__ = ["MODELS", "DeepLabResNet50", "ModelSpec", "MultiTaskModel", "SegNet", "parameter_count"]
