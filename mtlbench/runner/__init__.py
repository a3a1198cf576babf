"""Jobs, the results store and executors."""
from .executor import RunOptions, run_suite
from .store import Store

__all__ = ["RunOptions", "Store", "run_suite"]
