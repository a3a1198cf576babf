"""The rows of Standley et al. 2020 Table 4, as registered selectors.

A selector turns one seed's loss tables (validation losses to choose on, test losses to report, ESA's early
validation losses) and an inference budget into a ``Choice``: the networks it deploys and their total test loss.
Every selector only ever chooses on validation (or early) losses; the test table is read to report.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ...registry import Registry
from .approximations import higher_order
from .baselines import independent, pessimal, random_groupings, traditional
from .losses import LossTable, Network
from .selection import Objective, best_networks

SELECTORS: Registry[type] = Registry("selector")


@dataclass(frozen=True)
class Tables:
    """One seed's losses. ``val`` and ``test`` list the same networks; ``esa`` those with early losses."""

    val: LossTable
    test: LossTable
    esa: LossTable | None = None
    selection_sizes: tuple[float, ...] = (0.5,)
    sener: LossTable | None = None  # test losses of the all-task networks trained with MGDA (the "Sener et al." row)
    # {(source, target): test loss on target} of the transfer networks (grouping.transfer; transfer.py)
    transfer: dict[tuple[str, str], float] = field(default_factory=dict)

    def c0(self, table: LossTable) -> LossTable:
        """C_0 (Sec. 4.2): every full-size network and the single-task networks of the selection sizes (half size
        in the paper); networks of other sizes serve the Traditional and Independent baselines only."""
        return table.where(lambda n: n.size == 1 or (len(n.tasks) == 1 and
                                                     any(np.isclose(n.size, self.selection_sizes))))


@dataclass(frozen=True)
class Choice:
    total: float  # Σ_t L(S, t) on the test split (for Random: the mean over its groupings)
    networks: tuple[Network, ...] = ()
    task_losses: tuple[float, ...] = ()


def report(tables: Tables, networks: list[Network]) -> Choice:
    """The test losses of the chosen networks (Sec. 4.2: "each solution chosen was evaluated on the test set")."""
    task_losses = tables.test.task_losses(tables.test.rows_of(networks, "test losses"))
    return Choice(float(task_losses.sum()), tuple(networks), tuple(float(x) for x in task_losses))


def report_rows(tables: Tables, rows: tuple[int, ...] | None) -> Choice | None:
    """A fixed set of networks (rows of the test table), or None when it was not trained."""
    return None if rows is None else report(tables, [tables.test.networks[i] for i in rows])


class Selector:
    needs_esa = False

    def choose(self, tables: Tables, budget: float, objective: Objective,
               incumbent: tuple[Network, ...] = ()) -> Choice | None:
        raise NotImplementedError


def choose_per_budget(selector: Selector, tables: Tables, budgets: list[float],
                      objective: Objective) -> dict[float, Choice | None]:
    """The selector's choice at each budget, in increasing order; each search starts from the last choice (a
    grouping that fits a smaller budget fits a larger one), which only speeds Algorithm 1 up."""
    out: dict[float, Choice | None] = {}
    previous: tuple[Network, ...] = ()
    for budget in sorted(budgets):
        out[budget] = selector.choose(tables, budget, objective, previous)
        previous = out[budget].networks if out[budget] is not None and out[budget].networks else previous
    return out


def select_on(table: LossTable, tables: Tables, budget: float, objective: Objective,
              incumbent: tuple[Network, ...]) -> Choice | None:
    index = table.index()
    start = tuple(index[n] for n in incumbent) if incumbent and all(n in index for n in incumbent) else None
    selection = best_networks(table, budget, objective, start)
    return None if selection is None else report(tables, [table.networks[i] for i in selection.rows])


@SELECTORS.register("optimal")
@dataclass(frozen=True)
class Optimal(Selector):
    """Algorithm 1 on the fully trained candidates' validation losses ("Ours Optimal")."""

    def choose(self, tables, budget, objective, incumbent=()):
        return select_on(tables.c0(tables.val), tables, budget, objective, incumbent)


@SELECTORS.register("esa")
@dataclass(frozen=True)
class ESA(Selector):
    """Algorithm 1 on the validation losses after a pass through a fraction of the data (Sec. 3.3.1)."""

    needs_esa = True

    def choose(self, tables, budget, objective, incumbent=()):
        if tables.esa is None:
            raise ValueError("esa needs the candidates' early losses (a grouping suite's esa_fraction, or --esa)")
        return select_on(tables.c0(tables.esa), tables, budget, objective, incumbent)


@SELECTORS.register("hoa")
@dataclass(frozen=True)
class HOA(Selector):
    """Algorithm 1 with every network of three or more tasks predicted from its pairs (Sec. 3.3.2)."""

    def choose(self, tables, budget, objective, incumbent=()):
        return select_on(higher_order(tables.c0(tables.val)), tables, budget, objective, incumbent)


@SELECTORS.register("traditional")
@dataclass(frozen=True)
class Traditional(Selector):
    """Traditional MTL: one all-task network of b SNT (when one of that size was trained)."""

    def choose(self, tables, budget, objective, incumbent=()):
        return report_rows(tables, traditional(tables.test, budget))


@SELECTORS.register("sener")
@dataclass(frozen=True)
class Sener(Selector):
    """The "Sener et al." row of Standley et al. 2020 Table 4: one all-task network of b SNT trained with MGDA
    (Sener and Koltun 2018) instead of the sum of the task losses (when one of that size was trained: the suite's
    ``traditional_sizes``). Simplification: the authors' code runs MGDA-UB (min-norm weights of the gradients at the
    shared representation, times √K); these networks train with mtlbench's ``mgda`` on the shared parameters."""

    def choose(self, tables, budget, objective, incumbent=()):
        if tables.sener is None:
            return None
        rows = traditional(tables.sener, budget)
        if rows is None:
            return None
        losses = tables.sener.task_losses(list(rows))
        return Choice(float(losses.sum()), tuple(tables.sener.networks[i] for i in rows),
                      tuple(float(x) for x in losses))


@SELECTORS.register("independent")
@dataclass(frozen=True)
class Independent(Selector):
    """K single-task networks of b / K SNT each (when networks of that size were trained)."""

    def choose(self, tables, budget, objective, incumbent=()):
        return report_rows(tables, independent(tables.test, budget))


@SELECTORS.register("random")
@dataclass(frozen=True)
class Random(Selector):
    """The mean test loss of ``trials`` random valid groupings of C_0 (Sec. 4.3: a thousand)."""

    trials: int = 1000
    seed: int = 0

    def choose(self, tables, budget, objective, incumbent=()):
        total = random_groupings(tables.c0(tables.test), budget, self.trials, self.seed)
        return None if total is None else Choice(total)


@SELECTORS.register("pessimal")
@dataclass(frozen=True)
class Pessimal(Selector):
    """The worst valid grouping of C_0 on the test split (Sec. 4.3)."""

    def choose(self, tables, budget, objective, incumbent=()):
        table = tables.c0(tables.test)
        found = pessimal(table, budget)
        return None if found is None else report(tables, [table.networks[i] for i in found[1]])
