"""Training methods as recipes of four orthogonal parts (../shared/DESIGN.md)."""
from .parts import ALLOCATIONS, GRADIENTS, REGULARIZERS, WEIGHTINGS
from .recipe import AXES, METHODS, NETWORKS, Recipe

__all__ = ["ALLOCATIONS", "AXES", "GRADIENTS", "METHODS", "NETWORKS", "REGULARIZERS", "Recipe", "WEIGHTINGS"]
