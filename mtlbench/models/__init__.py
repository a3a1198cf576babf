"""Model zoo: backbones registered by name, each built from the task list."""
from ..registry import Registry

MODELS: Registry[type] = Registry("model")

from . import segnet  # noqa: E402,F401  (registers "segnet")
from .segnet import SegNet  # noqa: E402

__all__ = ["MODELS", "SegNet"]
