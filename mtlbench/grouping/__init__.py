"""The task-grouping track (paper 001): candidate networks, Algorithm 1, ESA, HOA and the Table 4 baselines."""
from .approximations import higher_order
from .baselines import affinity, independent, pessimal, random_groupings, relative_performance, traditional
from .losses import LossFileError, LossTable, Network, read_losses, write_losses
from .methods import SELECTORS, Choice, Selector, Tables
from .selection import OBJECTIVES, Objective, Selection, best_networks, exhaustive, select_budgets

__all__ = ["OBJECTIVES", "SELECTORS", "Choice", "LossFileError", "LossTable", "Network", "Objective", "Selection",
           "Selector", "Tables", "affinity", "best_networks", "exhaustive", "higher_order", "independent",
           "pessimal", "random_groupings", "read_losses", "relative_performance", "select_budgets", "traditional",
           "write_losses"]
