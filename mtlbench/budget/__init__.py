"""The label-budget track (paper 000): how many new labels each task gets under a budget."""
from .dp import allocate, gathered

__all__ = ["allocate", "gathered"]
