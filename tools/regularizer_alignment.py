"""Whether each partial-label regularizer's gradient points where the labels it never sees would
(mtlbench/tracks/partial/alignment.py), on a suite's jobs, in validation mode:

    python tools/regularizer_alignment.py SUITE [--methods consistency,mtpsl,jtr] [--scenario onelabel]
        [--seeds 0,1] [--every 20] [--images 32] [--set KEY=VALUE ...] [--workdir DIR]

The jobs train in ``--workdir`` (default: a temporary folder; the results store is not touched), where an
interrupted run resumes from its checkpoints, probes included; prints a markdown table.
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from mtlbench.config import load_suite
from mtlbench.tracks.partial.alignment import measure_job, table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("suite")
    parser.add_argument("--methods", default="consistency,mtpsl,jtr")
    parser.add_argument("--scenario", default=None, help="a scenario label of the suite (default: its first)")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--every", type=int, default=20, help="probe every N training steps (and after the first)")
    parser.add_argument("--images", type=int, default=32, help="probe images (the first N of the training split)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--workdir", help="keep the jobs' folders here (and resume them)")
    args = parser.parse_args()
    suite = load_suite(args.suite, args.set)
    scenario = args.scenario or suite.jobs[0].scenario
    seeds = [int(s) for s in args.seeds.split(",")]
    records = {}
    with tempfile.TemporaryDirectory() as scratch:
        tmp = args.workdir or scratch
        for method in args.methods.split(","):
            jobs = [j for j in suite.jobs if j.method == method and j.scenario == scenario and j.seed in seeds]
            if not jobs:
                raise SystemExit(f"{args.suite}: no {method} job under {scenario} with seeds {args.seeds}")
            records[method] = []
            for job in jobs:
                job_dir = Path(tmp) / job.id
                job_dir.mkdir(parents=True, exist_ok=True)
                records[method].append(measure_job(job.config, job_dir, args.images, args.every))
    print(f"{suite.name}, {scenario}, seeds {args.seeds}: mean over seeds\n")
    print(table(records, suite.jobs[0].config["tasks"]))


if __name__ == "__main__":
    main()
