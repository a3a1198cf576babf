"""mtlbench: a benchmark suite for label-efficient multi-task learning.

The public API is re-exported here; ``import mtlbench`` needs only torch and numpy (pydantic, pandas, wandb
and optuna are imported by the commands that use them). Importing it registers every track.
"""
__version__ = "0.2.0"

from .data import DATASETS, SCENARIOS, label_mask  # noqa: E402
from .jobs import KINDS, RESOLVERS, Job, job_id  # noqa: E402
from .methods import GRADIENTS, METHODS, REGULARIZERS, SUPERVISIONS, WEIGHTINGS, Recipe  # noqa: E402
from .metrics import acc_mtl, delta_mtl, delta_t  # noqa: E402
from .models import MODELS, SegNet  # noqa: E402
from .registry import Registry, RegistryError  # noqa: E402
from .tasks import TASK_KINDS, Task  # noqa: E402
from .track import TRACKS, Track  # noqa: E402
from .tracks import budget, grouping, partial  # noqa: E402,F401  (register the tracks)
from .tracks.budget import ALLOCATORS, allocate  # noqa: E402
from .tracks.grouping import OBJECTIVES, SELECTORS, best_networks, read_losses  # noqa: E402
from .train import run_job  # noqa: E402

__all__ = ["ALLOCATORS", "DATASETS", "GRADIENTS", "KINDS", "METHODS", "MODELS", "OBJECTIVES", "REGULARIZERS",
           "RESOLVERS", "SCENARIOS", "SELECTORS", "SUPERVISIONS", "TASK_KINDS", "TRACKS", "WEIGHTINGS", "Job", "Recipe",
           "Registry", "RegistryError", "SegNet", "Task", "Track", "__version__", "acc_mtl", "allocate",
           "best_networks", "delta_mtl", "delta_t", "job_id", "label_mask", "read_losses", "run_job"]
