"""Training methods as recipes of four orthogonal parts (docs/design.md, "A method is a recipe")."""
from .parts import GRADIENTS, REGULARIZERS, SUPERVISIONS, WEIGHTINGS, Regularizer
from . import consistency, gradients, jtr, mtpsl, supervision, weighting  # noqa: F401  (register the parts)
from .recipe import AXES, AXIS_ALIASES, METHODS, NETWORKS, PLAIN, Recipe

__all__ = ["AXES", "AXIS_ALIASES", "GRADIENTS", "METHODS", "NETWORKS", "PLAIN", "REGULARIZERS", "Recipe",
           "Regularizer", "SUPERVISIONS", "WEIGHTINGS"]
