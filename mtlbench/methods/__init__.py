"""Training methods as recipes of four orthogonal parts (docs/design.md, "A method is a recipe")."""
from .parts import GRADIENTS, REGULARIZERS, SUPERVISIONS, WEIGHTINGS, Regularizer
from . import (auto_lambda, consistency, gradients, jtr, kd_mtl, loss_balancers, mtpsl,  # noqa: F401  (register)
               stateful_gradients, supervision, teachers, torchjd_aggregators, weighting)
from .recipe import AXES, AXIS_ALIASES, METHODS, NETWORKS, PLAIN, Recipe, single_device_parts

__all__ = ["AXES", "AXIS_ALIASES", "GRADIENTS", "METHODS", "NETWORKS", "PLAIN", "REGULARIZERS", "Recipe",
           "Regularizer", "SUPERVISIONS", "WEIGHTINGS", "single_device_parts"]
