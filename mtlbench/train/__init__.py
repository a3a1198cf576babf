"""The trainer, evaluation and checkpoints."""
from .trainer import derive_seed, run_job

__all__ = ["derive_seed", "run_job"]
