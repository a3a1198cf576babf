"""Per-network loss tables: the input of network selection (Standley et al. 2020 Sec. 3).

A network is identified by the tasks it solves and its encoder size (a fraction of the standard network); its
cost is in SNT (standard network time: one full-size encoder's inference). A ``LossTable`` holds one split's
loss per (network, task), ``inf`` where the network does not solve the task (Sec. 3: L(n, t) = inf).

Two file formats are read:

- mtlbench's CSV (written by the grouping leaderboard): a header ``network,size,cost,<task>...``, one row per
  network, an empty cell where the network does not solve the task;
- Standley et al.'s release (``network_selection/results*.txt``, vendored in tests/data/reference/taskgrouping): tab
  separated, no header, columns s, d, n, k, e; the first row holds five half-size single-task networks (0.5 SNT
  each), every further row one full-size network (1 SNT) whose non-blank cells name its tasks.
"""
from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...errors import UserError

STANDLEY_TASKS = ("s", "d", "n", "k", "e")


class LossFileError(UserError, ValueError):
    """A loss file that cannot be read; the message names the file, the line and the fix."""


@dataclass(frozen=True, order=True)
class Network:
    tasks: tuple[str, ...]
    size: float = 1.0

    @property
    def name(self) -> str:
        return "+".join(self.tasks) + ("" if self.size == 1 else f"@{self.size:g}")


@dataclass(frozen=True)
class LossTable:
    tasks: tuple[str, ...]
    networks: tuple[Network, ...]
    costs: np.ndarray  # [n] in SNT
    losses: np.ndarray  # [n, K]; inf where a network does not solve a task

    def __post_init__(self) -> None:
        for network, row in zip(self.networks, self.losses):
            solved = tuple(t for t, value in zip(self.tasks, row) if math.isfinite(value))
            if solved != network.tasks:
                raise ValueError(f"network {network.name}: losses given for {solved}")

    def index(self) -> dict[Network, int]:
        return {network: i for i, network in enumerate(self.networks)}

    def select(self, keep: list[int] | np.ndarray) -> LossTable:
        keep = list(keep)
        return LossTable(self.tasks, tuple(self.networks[i] for i in keep), self.costs[keep], self.losses[keep])

    def where(self, predicate) -> LossTable:
        return self.select([i for i, network in enumerate(self.networks) if predicate(network)])

    def rows_of(self, networks: list[Network], where: str = "") -> list[int]:
        """Rows of ``networks`` in this table (selection on one split, evaluation on another)."""
        index = self.index()
        missing = [n.name for n in networks if n not in index]
        if missing:
            raise LossFileError(f"{where or 'loss table'}: no loss for network(s) {', '.join(missing)}")
        return [index[n] for n in networks]

    def task_losses(self, rows: list[int]) -> np.ndarray:
        """L(S, t) = min over the solution's networks (Sec. 3); inf for a task no network solves."""
        if not rows:
            return np.full(len(self.tasks), np.inf)
        return self.losses[rows].min(0)

    @staticmethod
    def from_rows(tasks: tuple[str, ...], rows: list[tuple[Network, float, dict[str, float]]]) -> LossTable:
        networks = tuple(network for network, _, _ in rows)
        if len(set(networks)) != len(networks):
            twice = sorted({n.name for n in networks if networks.count(n) > 1})
            raise ValueError(f"network(s) listed twice: {', '.join(twice)}")
        losses = np.array([[values.get(t, np.inf) for t in tasks] for _, _, values in rows], dtype=float)
        costs = np.array([cost for _, cost, _ in rows], dtype=float)
        return LossTable(tasks, networks, costs, losses.reshape(len(rows), len(tasks)))


def read_losses(path: str | Path) -> LossTable:
    """A loss table from mtlbench's CSV or Standley et al.'s tab-separated release (detected by content)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as error:
        raise LossFileError(f"{path}: cannot read the loss file ({error.strerror})") from None
    first = text.lstrip().split("\n", 1)[0]
    return read_mtlbench_csv(path, text) if first.startswith("network,") else read_standley(path, text)


def read_standley(path: Path, text: str) -> LossTable:
    lines = [line.rstrip("\r") for line in text.splitlines() if line.strip()]
    if not lines:
        raise LossFileError(f"{path}: empty loss file")
    rows: list[tuple[Network, float, dict[str, float]]] = []
    for number, line in enumerate(lines, start=1):
        cells = line.split("\t")
        if len(cells) > len(STANDLEY_TASKS):
            raise LossFileError(f"{path}:{number}: {len(cells)} tab-separated cells; Standley et al.'s format has "
                                f"one per task ({', '.join(STANDLEY_TASKS)}), blank where a network lacks the task")
        values = {}
        for task, cell in zip(STANDLEY_TASKS, cells):
            if cell.strip():
                try:
                    values[task] = float(cell)
                except ValueError:
                    raise LossFileError(f"{path}:{number}: column {task}: {cell!r} is not a number") from None
        if not values:
            raise LossFileError(f"{path}:{number}: a row with no loss")
        if number == 1:  # the five half-size single-task networks
            rows += [(Network((t,), 0.5), 0.5, {t: v}) for t, v in values.items()]
        else:
            rows.append((Network(tuple(t for t in STANDLEY_TASKS if t in values)), 1.0, values))
    try:
        return LossTable.from_rows(STANDLEY_TASKS, rows)
    except ValueError as error:
        raise LossFileError(f"{path}: {error}") from None


def read_mtlbench_csv(path: Path, text: str) -> LossTable:
    reader = csv.DictReader(text.splitlines())
    fields = reader.fieldnames or []
    if fields[:3] != ["network", "size", "cost"] or len(fields) < 4:
        raise LossFileError(f"{path}: header must be network,size,cost,<task>,... (got {','.join(fields)})")
    tasks = tuple(fields[3:])
    rows = []
    for number, record in enumerate(reader, start=2):
        try:
            values = {t: float(record[t]) for t in tasks if record[t] not in ("", None)}
            size, cost = float(record["size"]), float(record["cost"])
        except ValueError as error:
            raise LossFileError(f"{path}:{number}: {error}") from None
        rows.append((Network(tuple(t for t in tasks if t in values), size), cost, values))
    try:
        return LossTable.from_rows(tasks, rows)
    except ValueError as error:
        raise LossFileError(f"{path}: {error}") from None


def write_losses(table: LossTable, path: Path) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["network", "size", "cost", *table.tasks])
        for network, cost, row in zip(table.networks, table.costs, table.losses):
            writer.writerow([network.name, f"{network.size:g}", f"{cost:.6g}",
                             *["" if math.isinf(v) else f"{v:.6g}" for v in row]])
