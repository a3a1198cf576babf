"""The label-budget track (Sun et al. 2023): how many new labels each task gets under a budget, and TABA's estimates."""
from .allocators import ALLOCATORS, AllocationError, Allocator, Estimates
from .dp import allocate, gathered
from . import track  # noqa: F401  (registers the track, its job kinds and resolvers)

__all__ = ["ALLOCATORS", "AllocationError", "Allocator", "Estimates", "allocate", "gathered"]
