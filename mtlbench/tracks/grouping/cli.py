"""The task-grouping track's command, ``mtlbench select``: Standley et al. 2020's network selection per inference
budget from per-network loss files (mtlbench's CSV or the authors' release)."""
from __future__ import annotations

import argparse
import json
import sys
import time

from ...arguments import positive_float, positive_int


def add_commands(sub: argparse._SubParsersAction) -> None:
    select = sub.add_parser("select", help="task grouping (Standley et al. 2020): choose networks per inference "
                                           "budget from per-network losses (mtlbench's CSV or Standley et al.'s "
                                           "release)")
    select.add_argument("--val", required=True, help="losses to choose on (validation)")
    select.add_argument("--test", required=True, help="losses to report (test)")
    select.add_argument("--esa", help="early-stopped validation losses (for --method esa)")
    select.add_argument("--method", default="optimal",
                        help="comma-separated: optimal, esa, hoa, random, pessimal, traditional, independent")
    select.add_argument("--budgets", type=budget_range, default="1:5:0.5",
                        help="SNT, START:STOP:STEP or a list (default 1:5:0.5)")
    select.add_argument("--limit", action="append", default=[], metavar="TASK=LOSS",
                        help="a hard per-task loss limit (BETTER: objective task_limits); repeatable")
    select.add_argument("--selection-sizes", type=positive_float, nargs="+", default=[0.5],
                        help="sizes of single-task networks that join C_0 (default 0.5)")
    select.add_argument("--trials", type=positive_int, default=1000,
                        help="random groupings per budget (--method random)")
    select.add_argument("--evaluate", action="store_true",
                        help="also say how well ESA (with --esa) and HOA predict the trained networks' losses "
                             "(Sec. 3.3, 5: Pearson r, HOA's max ratio error and overestimate)")
    select.add_argument("--json", action="store_true")
    select.set_defaults(func=cmd_select)


def budget_range(text: str) -> list[float]:
    """``1:5:0.5`` (start:stop:step, stop included) or a comma-separated list, of positive budgets."""
    try:
        numbers = [float(x) for x in text.split(":" if ":" in text else ",")]
    except ValueError:
        numbers = []
    if ":" in text and len(numbers) == 3:
        start, stop, step = numbers
        if not (step > 0 and stop >= start):
            raise argparse.ArgumentTypeError(f"{text!r}: START:STOP:STEP needs STEP > 0 and STOP >= START")
        numbers = [round(start + i * step, 10) for i in range(int(round((stop - start) / step)) + 1)]
    elif ":" in text or not numbers:
        raise argparse.ArgumentTypeError(f"{text!r}: expected START:STOP:STEP (e.g. 1:5:0.5) or a list (1,2,3)")
    if not all(0 < b < float("inf") for b in numbers):
        raise argparse.ArgumentTypeError(f"{text!r}: budgets are positive numbers of single-task networks")
    return numbers


def approximation_agreement(tables) -> dict[str, dict[str, float]]:
    """ESA's agreement (early validation against final test losses) where early losses are given, and HOA's (on the
    validation losses it chooses from)."""
    from .approximations import esa_agreement, hoa_agreement

    out = {"hoa": hoa_agreement(tables.c0(tables.val)).as_dict()}  # HOA predicts within C_0, as it selects
    if tables.esa is not None:
        out = {"esa": esa_agreement(tables.esa, tables.test).as_dict(), **out}
    return out


def cmd_select(args: argparse.Namespace) -> int:
    from ...registry import build
    from .losses import LossFileError, read_losses
    from .methods import SELECTORS, Tables, choose_per_budget
    from .selection import OBJECTIVES

    methods = args.method.split(",")
    unknown = [m for m in methods if m not in SELECTORS]
    if unknown:
        print(f"select: --method: {', '.join(unknown)}; choose from {', '.join(SELECTORS.list())}", file=sys.stderr)
        return 2
    limits = {}
    for item in args.limit:
        task, _, value = item.partition("=")
        try:
            limits[task] = float(value)
        except ValueError:
            print(f"select: --limit {item!r}: expected TASK=LOSS", file=sys.stderr)
            return 2
    try:
        tables = Tables(read_losses(args.val), read_losses(args.test), read_losses(args.esa) if args.esa else None,
                        tuple(args.selection_sizes))
        objective = build(OBJECTIVES, {"name": "task_limits", "limits": limits} if limits else {"name": "lowest_total"})
        out = {}
        for method in methods:
            spec = {"name": method, **({"trials": args.trials} if method == "random" else {})}
            start = time.perf_counter()
            chosen = choose_per_budget(build(SELECTORS, spec), tables, args.budgets, objective)
            rows = [{"budget": budget, "total": None if choice is None else choice.total,
                     "networks": [] if choice is None else [n.name for n in choice.networks],
                     "task_losses": [] if choice is None else list(choice.task_losses)}
                    for budget, choice in chosen.items()]
            out[method] = {"seconds": time.perf_counter() - start, "budgets": rows}
        agreement = approximation_agreement(tables) if args.evaluate else {}
    except (LossFileError, ValueError) as error:
        print(f"select: {error}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({**out, **({"agreement": agreement} if args.evaluate else {})}, indent=1))
        return 0
    for name, found in agreement.items():
        extra = (f", max ratio error {found['max_ratio_error']:.1%}, overestimates performance by "
                 f"{found['overestimate']:.1%}" if name == "hoa" else "")
        print(f"{name}: Pearson r {found['pearson_r']:.3f} over {found['pairs']} (network, task) losses{extra}")
    for method, found in out.items():
        print(f"{method} ({found['seconds']:.3f} s; total test loss, chosen networks)")
        for row in found["budgets"]:
            total = "no valid grouping" if row["total"] is None else f"{row['total']:.4f}"
            print(f"  {row['budget']:g} SNT: {total}  {' + '.join(row['networks'])}")
    return 0
