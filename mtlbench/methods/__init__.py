"""Training methods as recipes of four orthogonal parts (../shared/DESIGN.md)."""
from .parts import ALLOCATIONS, GRADIENTS, REGULARIZERS, WEIGHTINGS, Regularizer
from . import allocation, consistency, gradients, jtr, mtpsl, weighting  # noqa: F401  (register the parts)
from .recipe import AXES, METHODS, NETWORKS, Recipe

__all__ = ["ALLOCATIONS", "AXES", "GRADIENTS", "METHODS", "NETWORKS", "REGULARIZERS", "Recipe", "Regularizer",
           "WEIGHTINGS"]
