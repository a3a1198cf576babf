"""mtlbench: a benchmark suite for label-efficient multi-task learning.

The public API is re-exported here; ``import mtlbench`` needs only torch and numpy (pydantic, pandas, wandb
and optuna are imported by the commands that use them).
"""
__version__ = "0.1.0"

from .budget import ALLOCATORS, allocate  # noqa: E402
from .data import DATASETS, SCENARIOS, label_mask  # noqa: E402
from .grouping import OBJECTIVES, SELECTORS, best_networks, read_losses  # noqa: E402
from .methods import ALLOCATIONS, GRADIENTS, METHODS, REGULARIZERS, WEIGHTINGS, Recipe  # noqa: E402
from .metrics import acc_mtl, delta_mtl, delta_t  # noqa: E402
from .models import MODELS, SegNet  # noqa: E402
from .registry import Registry, RegistryError  # noqa: E402
from .tasks import TASK_KINDS, Task  # noqa: E402
from .train import run_job  # noqa: E402

__all__ = ["ALLOCATIONS", "ALLOCATORS", "DATASETS", "GRADIENTS", "METHODS", "MODELS", "OBJECTIVES", "REGULARIZERS",
           "SCENARIOS", "SELECTORS", "TASK_KINDS", "WEIGHTINGS", "Recipe", "Registry", "RegistryError", "SegNet",
           "Task", "__version__", "acc_mtl", "allocate", "best_networks", "delta_mtl", "delta_t", "label_mask",
           "read_losses", "run_job"]
