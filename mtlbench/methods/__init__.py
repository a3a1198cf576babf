"""Training methods as recipes of four orthogonal parts (../shared/DESIGN.md)."""
from .parts import ALLOCATIONS, GRADIENTS, REGULARIZERS, WEIGHTINGS, Regularizer
from . import consistency, jtr, mtpsl  # noqa: F401  (register the partial-label regularizers)
from .recipe import AXES, METHODS, NETWORKS, Recipe

__all__ = ["ALLOCATIONS", "AXES", "GRADIENTS", "METHODS", "NETWORKS", "REGULARIZERS", "Recipe", "Regularizer",
           "WEIGHTINGS"]
