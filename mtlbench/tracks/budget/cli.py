"""The label-budget track's command, ``mtlbench allocate``: TABA's allocation from a user's own estimates."""
from __future__ import annotations

import argparse
import json
import sys

from ...arguments import number_list, positive_int


def add_commands(sub: argparse._SubParsersAction) -> None:
    allocate = sub.add_parser("allocate", help="TABA's label allocation (Sun et al. 2023 Eq. 2, 4) from your estimates")
    allocate.add_argument("--costs", required=True, type=number_list(int), help="integer label cost per task, e.g. 1,20")
    allocate.add_argument("--budget", required=True, type=positive_int, help="integer label budget B")
    allocate.add_argument("--informativeness", required=True, type=number_list(float),
                          help="I_i per task (Eq. 3), e.g. 1.13,2.03")
    allocate.add_argument("--beta", required=True, type=number_list(float),
                          help="reduction rate beta_i per task (Eq. 4), e.g. 0.999,0.997")
    allocate.add_argument("--json", action="store_true", help="print {counts, spent, budget, gathered} as JSON")
    allocate.set_defaults(func=cmd_allocate)


def cmd_allocate(args: argparse.Namespace) -> int:
    from .dp import allocate, gathered

    costs, informativeness, beta = args.costs, args.informativeness, args.beta
    try:
        counts = allocate(informativeness, beta, costs, args.budget)
    except ValueError as error:
        print(f"allocate: {error}", file=sys.stderr)
        return 2
    spent = sum(c * n for c, n in zip(costs, counts))
    value = sum(float(gathered(i, b, n)) for i, b, n in zip(informativeness, beta, counts))
    if args.json:
        print(json.dumps({"counts": list(counts), "spent": spent, "budget": args.budget, "gathered": value}))
        return 0
    print("| task | cost | informativeness | beta | new labels | budget spent |\n|---|---|---|---|---|---|")
    for k, (c, i, b, n) in enumerate(zip(costs, informativeness, beta, counts), 1):
        print(f"| T{k} | {c} | {i:g} | {b:g} | {n} | {c * n} |")
    print(f"spent {spent} of {args.budget}; gathered informativeness (Eq. 2) {value:.4g}")
    return 0
