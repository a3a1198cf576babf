"""The label-budget track (paper 000): how many new labels each task gets under a budget, and TABA's estimates."""
from .allocators import ALLOCATORS, AllocationError, Allocator, Estimates
from .dp import allocate, gathered

__all__ = ["ALLOCATORS", "AllocationError", "Allocator", "Estimates", "allocate", "gathered"]
