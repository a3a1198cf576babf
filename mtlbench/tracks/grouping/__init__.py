"""The task-grouping track (Standley et al. 2020): candidate networks, Algorithm 1, ESA, HOA and the Table 4
baselines."""
from .approximations import higher_order
from .baselines import affinity, independent, pessimal, random_groupings, relative_performance, traditional
from .losses import LossFileError, LossTable, Network, read_losses, write_losses
from .methods import SELECTORS, Choice, Selector, Tables, choose_per_budget
from .selection import OBJECTIVES, Objective, Selection, best_networks, exhaustive
from . import track  # noqa: F401  (registers the track, its job kinds and resolvers)

__all__ = ["OBJECTIVES", "SELECTORS", "Choice", "LossFileError", "LossTable", "Network", "Objective", "Selection",
           "Selector", "Tables", "affinity", "best_networks", "choose_per_budget", "exhaustive", "higher_order",
           "independent", "pessimal", "random_groupings", "read_losses", "relative_performance", "traditional",
           "write_losses"]
