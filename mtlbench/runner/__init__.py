"""Jobs, the results store and executors (``local``, ``slurm``: registered in ``EXECUTORS``)."""
from . import slurm  # noqa: F401  (registers the slurm executor; submitit is imported only to submit)
from .executor import RunOptions, run_suite
from .executors import EXECUTORS, Launch
from .store import Store

__all__ = ["EXECUTORS", "Launch", "RunOptions", "Store", "run_suite"]
