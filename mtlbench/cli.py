"""The ``mtlbench`` command: parse, call, print."""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import shlex
import sys
import warnings
from pathlib import Path
from typing import Iterator

from .arguments import non_negative_int, positive_float, positive_int
from .errors import UserError
from .interrupts import exit_code_of, sigterm_as_interrupt
from .kernels import pin_instruction_sets


def add_results(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--results", default="results", help="results folder (default: ./results)")


def cmd_run(args: argparse.Namespace) -> int:
    import uuid

    from .config import load_suite
    from .runner import Launch, RunOptions, Store

    if args.prepared:  # read by every job, in this process, its workers and the SLURM jobs it submits
        from .data.prepared import VARIABLE

        os.environ[VARIABLE] = os.pathsep.join(str(Path(p).resolve()) for p in args.prepared)
    if args.stream_above is not None:
        from .data.prepared import STREAM_VARIABLE

        os.environ[STREAM_VARIABLE] = str(args.stream_above)
    suite = load_suite(args.suite, args.set)
    if args.params:
        from .tuning import apply_params

        suite = apply_params(suite, args.params, args.beside_paper)
    elif args.beside_paper:
        print("run: --beside-paper goes with --params FILE (the tuned jobs to train beside the suite's own)",
              file=sys.stderr)
        return 2
    executor = chosen_executor(suite, args.executor)
    if args.detach and not executor.detachable:
        print(f"run: --detach needs an executor that runs elsewhere (slurm), not {args.executor or 'local'}",
              file=sys.stderr)
        return 2
    if args.jobs_per_device is not None:
        if args.workers is not None:
            print("run: give --workers or --jobs-per-device, not both", file=sys.stderr)
            return 2
        if executor.detachable:  # a SLURM task packs that many jobs onto its devices
            executor = dataclasses.replace(executor, jobs_per_task=args.jobs_per_device)
    workers = args.workers if args.workers is not None else default_workers() * (args.jobs_per_device or 1)
    runner = uuid.uuid4().hex  # this invocation, recorded in the results it trains or submits
    options = RunOptions(args.results, args.force, args.wandb, workers, stale_after=args.claim_timeout,
                         record={"runner": runner})
    launch = Launch(str(Path(args.suite).resolve()), tuple(args.set),
                    str(Path(args.params).resolve()) if args.params else None, str(Path(args.results).resolve()),
                    args.wandb, args.claim_timeout, runner)
    try:
        failed = executor.run(suite, options, launch, args.detach)
    except KeyboardInterrupt as stop:
        return interrupted(stop, suite, args)
    if args.detach:
        return 0
    if failed:
        print(f"{len(failed)} job(s) failed or were blocked by a failed need; see error.txt in their folders under "
              f"{args.results}/{suite.name}/ and `mtlbench status {args.suite}`. Finished jobs are kept: run the same "
              f"command again to retry only the others.", file=sys.stderr)
        return 1
    print(f"suite {suite.name}: {len(suite.jobs)} jobs finished; results in {args.results}/{suite.name}/")
    if args.wandb == "disabled":
        return 0
    last = Store(args.results).last_finished(suite.name, [job.id for job in suite.jobs])
    if last is None or last.get("runner") != runner:  # several runners share the suite: one logs its board
        print(f"the W&B leaderboard run of {suite.name} is logged by the run that finished its last job "
              f"(`mtlbench leaderboard {suite.name} --wandb {args.wandb}` logs it again)")
        return 0
    return leaderboard_run(args.results, suite.name, args.wandb)


def leaderboard_from_wandb(args: argparse.Namespace, formats: tuple[str, ...]) -> int:
    """`mtlbench leaderboard --from-wandb ENTITY/PROJECT [--suite S]`: the tables from a W&B project's runs."""
    from .files import check_name
    from .leaderboard import LeaderboardError, default_out, render
    from .leaderboard.from_wandb import fetch, needs_history, suite_from_runs

    try:
        chosen = args.select == "best_val"
        summary, results = suite_from_runs(fetch(args.from_wandb, args.suite, chosen), args.suite)
        if not chosen and needs_history(summary, args.select):  # the suite's own leaderboard.select, known now
            summary, results = suite_from_runs(fetch(args.from_wandb, args.suite, True), args.suite)
        out = Path(args.out) if args.out else default_out(Path(args.results), check_name(summary["name"]))
        paths = render(summary, results, out, args.baseline, formats, args.select,
                       args.columns.split(",") if args.columns else None)
    except (LeaderboardError, ValueError) as error:
        print(f"leaderboard: {error}", file=sys.stderr)
        return 2
    for path in paths:
        print(f"wrote {path}")
    return 0


def leaderboard_run(results: str, suite: str, mode: str, warned: bool = False) -> int:
    """Log the suite's leaderboard as its suite-level W&B run (its tables and figures). Its warnings reach the
    user, except where ``warned``: the same leaderboard was just rendered and its warnings printed."""
    from .files import CorruptFile
    from .leaderboard import LeaderboardError, log_to_wandb
    from .runner import Store

    try:
        with warnings.catch_warnings():
            if warned:
                warnings.simplefilter("ignore")
            run_id = log_to_wandb(Store(results), suite, mode)
    except (LeaderboardError, CorruptFile, LookupError, ValueError) as error:
        print(f"the W&B leaderboard run of {suite} was not logged ({error}); every job is finished: "
              f"`mtlbench leaderboard {suite} --wandb {mode}` logs it once the cause is fixed", file=sys.stderr)
        return 1
    print(f"logged the leaderboard of {suite} to W&B ({mode}) as run {run_id}")
    return 0


def chosen_executor(suite, name: str | None):
    """The suite's ``executor:`` section (``--set executor.KEY=VALUE`` included), or ``--executor NAME`` with
    those of the section's settings that executor has (``--executor local`` on a SLURM suite runs it here)."""
    from .config import SuiteError, plugin
    from .registry import RegistryError, build, parameters
    from .runner import EXECUTORS

    spec = suite.raw.executor
    spec = {"name": spec} if isinstance(spec, str) else {"name": "local", **spec}
    if name and name != spec["name"]:
        try:
            declared = parameters(EXECUTORS.get(name))
        except RegistryError as error:
            raise SuiteError(f"--executor: {error}") from None
        spec = {"name": name, **{k: v for k, v in spec.items() if k in declared}}
    return build(EXECUTORS, plugin(EXECUTORS, spec, "executor", suite.path))


def cmd_cancel(args: argparse.Namespace) -> int:
    from .config import load_suite
    from .runner.slurm import cancel

    suite = load_suite(args.suite, args.set)
    cancelled = cancel(suite, args.results)
    print(f"cancelled {len(cancelled)} SLURM job(s) of suite {suite.name}" + (f": {', '.join(cancelled)}" if cancelled
                                                                               else ""))
    return 0


def interrupted(stop: KeyboardInterrupt, suite, args: argparse.Namespace) -> int:
    """One line on what an interrupted run leaves, and the exit code of the signal (130 Ctrl-C, 143 SIGTERM)."""
    from .runner import Store

    store = Store(args.results)
    done = sum(store.is_done(job) for job in suite.jobs)
    print(f"interrupted: {done} of {len(suite.jobs)} jobs finished; an unfinished job keeps its last epoch checkpoint "
          f"and resumes from it: run `{resume_command(args.argv)}` again", file=sys.stderr)
    return exit_code_of(stop)


def resume_command(argv: list[str]) -> str:
    """The command as given (its --results, --set, --params, ...), less --force, which would train again the jobs
    that finished before the interrupt."""
    return shlex.join(["mtlbench", *(arg for arg in argv if arg != "--force")])


def cmd_tune(args: argparse.Namespace) -> int:
    from .config import load_suite
    from .tuning import TuneOptions, plan_studies, tune_suite

    suite = load_suite(args.suite, args.set)
    studies = plan_studies(suite, args.method.split(",") if args.method else None)
    options = TuneOptions(args.results, args.trials, args.storage, args.out, args.wandb, args.reclaim)
    try:
        tune_suite(suite, studies, options)
    except KeyboardInterrupt as stop:
        print("interrupted: run the same command to resume (the stopped trial's parameters are queued again and "
              "its job goes on from its checkpoint)", file=sys.stderr)
        return exit_code_of(stop)
    except ValueError as error:
        print(f"tune: {error}", file=sys.stderr)
        return 2
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    import json

    from .config import load_suite
    from .runner import Store
    from .runner.status import counts, job_states, status_table

    suite = load_suite(args.suite, args.set)
    rows = job_states(suite, Store(args.results))
    if args.json:
        print(json.dumps({"suite": suite.name, "results": str(Path(args.results) / suite.name), "track": suite.track,
                          "jobs": rows, "counts": counts(rows)}, indent=1))
    else:
        print(status_table(rows))
    return 0


def cmd_costs(args: argparse.Namespace) -> int:
    from .config import load_suite
    from .models.costs import costs_table

    print(costs_table(load_suite(args.suite, args.set), args.size))
    return 0


def default_workers() -> int:
    import torch

    return max(1, torch.cuda.device_count())


def cmd_leaderboard(args: argparse.Namespace) -> int:
    from .files import CorruptFile, check_name
    from .leaderboard import LeaderboardError, render_suite
    from .leaderboard.formats import FORMATS
    from .runner import Store

    formats = tuple(args.format.split(","))
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        print(f"leaderboard: --format {', '.join(unknown)}: choose from {', '.join(FORMATS)}", file=sys.stderr)
        return 2
    args.suite = args.suite or args.suite_option
    if args.columns:
        from .schema import LEADERBOARD_COLUMNS

        unknown = [c for c in args.columns.split(",") if c not in LEADERBOARD_COLUMNS]
        if unknown:
            print(f"leaderboard: --columns {', '.join(unknown)}: choose from {','.join(LEADERBOARD_COLUMNS)}",
                  file=sys.stderr)
            return 2
    if args.from_wandb:
        return leaderboard_from_wandb(args, formats)
    store = Store(args.results)
    suites = [args.suite] if args.suite else store.suites()
    if not suites:
        print(f"no suite results under {args.results}/ (run `mtlbench run SUITE.yaml` first)", file=sys.stderr)
        return 1
    if args.out and len(suites) > 1:
        print("--out needs a single SUITE", file=sys.stderr)
        return 1
    for suite in suites:
        name = check_name(Path(suite).stem if suite.endswith((".yaml", ".yml")) else suite)
        if name not in store.suites():
            return no_such_suite("leaderboard", name, args.results)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                paths = render_suite(store, name, Path(args.out) if args.out else None, args.baseline,
                                     formats, args.select, args.columns.split(",") if args.columns else None)
            except (LeaderboardError, CorruptFile, ValueError) as error:
                print(f"leaderboard: {error}", file=sys.stderr)
                return 2
            finally:
                for warning in caught:
                    print(f"warning: {warning.message}", file=sys.stderr)
        for path in paths:
            print(f"wrote {path}")
        if args.wandb != "disabled" and leaderboard_run(args.results, name, args.wandb, warned=True):
            return 1
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from . import reference

    if args.markdown:
        print(reference.markdown(), end="")
    else:
        print("\n".join(reference.terminal()))
    return 0


def cmd_data_prepare(args: argparse.Namespace) -> int:
    from .config import SuiteError, apply_override, plugin
    from .data import DATASETS, DatasetError, prepared
    from .runner.progress import ProgressBar

    spec: dict = {"name": args.name} if args.source == "-" else {"name": args.name, "root": args.source}
    try:
        for override in args.set:
            apply_override(spec, override, Path("data prepare"))
        config = plugin(DATASETS, spec, "dataset", Path("data prepare"))
        with ProgressBar("prepare") as bar:
            manifest = prepared.prepare(config, args.source, Path(args.dest), bar.update)
    except (SuiteError, DatasetError, prepared.PreparedDataError) as error:
        print(f"data prepare: {error}", file=sys.stderr)
        return 2
    counts = ", ".join(f"{split} {entry['count']}" for split, entry in manifest["splits"].items())
    print(f"{args.name} prepared in {args.dest} ({counts} images); mtlbench data check {args.name} {args.dest} "
          f"verifies it")
    return 0


def cmd_data_check(args: argparse.Namespace) -> int:
    from .config import SuiteError, apply_override
    from .data import DATASETS, DatasetError, prepared

    if (Path(args.path) / prepared.MANIFEST).exists():
        problems = prepared.check(Path(args.path))
        for problem in problems:
            print(problem)
        if problems:
            print(f"{args.path}: {len(problems)} problem(s)", file=sys.stderr)
            return 1
        print(f"{args.path}: a complete preparation of {args.name}; every file has its recorded size and checksum")
        return 0
    dataset = DATASETS.get(args.name)
    if not hasattr(dataset, "check"):
        print(f"{args.name} has no files to check (it is generated)", file=sys.stderr)
        return 1
    params: dict = {"root": args.path}
    try:
        for override in args.set:
            apply_override(params, override, Path("data check"))
        instance = dataset(**params)
        problems = instance.check()
    except (SuiteError, TypeError) as error:
        print(f"data check: {error}", file=sys.stderr)
        return 2
    except DatasetError as error:
        problems = [str(error)]
    for problem in problems:
        print(problem)
    if problems:
        print(f"{args.name} at {args.path}: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    sizes = ", ".join(f"{split} {instance.split_size(split)}" for split in ("train", "val", "test"))
    print(f"{args.name} at {args.path}: every file is well-formed ({sizes} images)")
    return 0


def no_such_suite(command: str, name: str, results: str) -> int:
    """A suite with no results: one line naming the suites that have some, and exit code 2."""
    from .registry import unknown_message
    from .runner import Store

    print(f"{command}: {unknown_message('suite', name, Store(results).suites())} (the suites with results under "
          f"{results}/; `mtlbench run SUITE.yaml` makes them)", file=sys.stderr)
    return 2


def cmd_sync(args: argparse.Namespace) -> int:
    from .files import check_name
    from .report import SPEC_FILE
    from .tracking import offline_runs, sync

    root = Path(args.results) / (check_name(args.suite) if args.suite else "")
    if args.suite and not (root / "suite.json").exists():
        return no_such_suite("sync", args.suite, args.results)
    runs = offline_runs(root)
    print(f"syncing {len(runs)} offline W&B run(s) under {root}/")
    if sync(root):
        return 1
    specs = [root / SPEC_FILE] if args.suite else sorted(root.glob(f"*/{SPEC_FILE}"))
    return max([save_report(spec) for spec in specs if spec.exists()], default=0)


def save_report(spec: Path) -> int:
    from .report import save

    try:
        urls = save(spec)
    except Exception as error:  # the server's and wandb's errors are many; the spec stays for the next try
        print(f"report {spec}: not saved ({type(error).__name__}: {error}); the spec is kept, `mtlbench sync` "
              f"tries again", file=sys.stderr)
        return 1
    print(f"saved the report and the workspace of {spec}: {', '.join(urls)}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from .config import load_suite
    from .leaderboard import markdown_tables
    from .report import SPEC_FILE, build_report, build_workspace, write_spec
    from .runner import Store

    suite = load_suite(args.suite, args.set)
    store = Store(args.results)
    project = args.project or suite.raw.wandb.project
    entity = args.entity or suite.raw.wandb.entity or ""
    report = build_report(suite, entity, project, markdown_tables(store, suite.name), tuning_studies(store, suite))
    out = Path(args.out) if args.out else store.suite_dir(suite.name) / SPEC_FILE
    write_spec(out, report, build_workspace(suite, entity, project))
    print(f"wrote the report spec {out} ({len(report.blocks)} blocks); `mtlbench sync` uploads the runs and saves it")
    return save_report(out) if args.save else 0


def tuning_studies(store, suite) -> list:
    """The suite's tuning studies that `mtlbench tune` ran (in its default storage)."""
    from .track import TRACKS
    from .tuning import plan_studies
    from .tuning.studies import TUNING

    database = store.suite_dir(suite.name) / TUNING / "optuna.db"
    if not TRACKS.get(suite.track).tunable or not database.exists():
        return []
    import optuna

    ran = set(optuna.get_all_study_names(f"sqlite:///{database}"))
    return [study for study in plan_studies(suite) if study.name in ran]


def cmd_bench(args: argparse.Namespace) -> int:
    from .bench import SHAPES, config_of, header, measure, part_recipes, sweep, table
    from .track import TRACKS

    for track in TRACKS.list():
        report = TRACKS.get(track)().bench(args)
        if report is not None:
            print(report)
            return 0
    lists = {axis: tuple(getattr(args, axis).split(",")) for axis in ("methods", "tasks") if getattr(args, axis)}
    given = {**vars(args), **lists}
    if args.shape:
        given["height"], given["width"] = SHAPES[args.shape]
    config = config_of(given)
    print(header(config))
    if args.sweep:
        print(sweep(config))
    else:
        print(table(config, measure(config, part_recipes(config) if args.parts else None)))
    return 0


def parser() -> argparse.ArgumentParser:
    from .track import TRACKS

    main = argparse.ArgumentParser(prog="mtlbench", description="Benchmark suite for label-efficient MTL")
    sub = main.add_subparsers(dest="command", required=True)
    add_run_command(sub)
    add_status_command(sub)
    add_costs_command(sub)
    add_cancel_command(sub)
    add_tune_command(sub)
    add_leaderboard_command(sub)
    add_report_command(sub)
    add_list_command(sub)
    for track in TRACKS.list():  # a track's own commands (budget: allocate; grouping: select)
        TRACKS.get(track)().add_commands(sub)
    add_bench_command(sub)
    add_data_command(sub)
    add_sync_command(sub)
    return main


def add_run_command(sub: argparse._SubParsersAction) -> None:
    from .tracking import MODES  # offline, online, disabled

    run = sub.add_parser("run", help="run a suite (skips finished jobs, resumes interrupted ones)")
    run.add_argument("suite", help="suite YAML file")
    run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                     help="override a suite field, e.g. --set train.epochs=2 (repeatable)")
    run.add_argument("--force", action="store_true", help="rerun finished jobs too")
    run.add_argument("--wandb", default="offline", choices=MODES)
    run.add_argument("--workers", type=positive_int, default=None, help="parallel jobs (default: one per GPU, else 1)")
    run.add_argument("--jobs-per-device", type=positive_int, default=None, metavar="N",
                     help="N jobs side by side on each GPU (or on the CPU), each its own process and seed; on SLURM, "
                          "N jobs per task (docs/cluster.md)")
    run.add_argument("--params", metavar="FILE", help="train with the best parameters `mtlbench tune` wrote")
    run.add_argument("--prepared", action="append", default=[], metavar="DIR",
                     help="read each dataset from its folder `mtlbench data prepare` wrote, here or in DIR's "
                          "subfolders (same data, same job ids; repeatable)")
    run.add_argument("--stream-above", type=float, default=None, metavar="GB",
                     help="with --prepared: stream a job's data from disk when its splits exceed GB (default: half "
                          "the machine's memory); below it they are read into memory")
    run.add_argument("--beside-paper", action="store_true",
                     help="with --params: the suite's own values too, so its leaderboard shows a paper and a tuned "
                          "row of each tuned method")
    run.add_argument("--executor", help="local (default) or slurm; overrides the suite's executor section")
    run.add_argument("--detach", action="store_true",
                     help="return once the jobs are submitted (slurm), printing the array ids")
    run.add_argument("--claim-timeout", type=positive_float, default=300.0, metavar="SECONDS",
                     help="take over a job whose runner's heartbeat is older than this (default 300; a runner on "
                          "this host that is gone is taken over at once)")
    add_results(run)
    run.set_defaults(func=cmd_run)


def add_status_command(sub: argparse._SubParsersAction) -> None:
    status = sub.add_parser("status", help="every job of a suite with its kind, needs and state (reads the store only)")
    status.add_argument("suite", help="suite YAML file")
    status.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a suite field")
    status.add_argument("--json", action="store_true", help="print {suite, track, jobs: [...], counts} as JSON")
    add_results(status)
    status.set_defaults(func=cmd_status)


def add_costs_command(sub: argparse._SubParsersAction) -> None:
    costs = sub.add_parser("costs", help="the suite's model: parameters and GMACs of one image's forward pass, "
                                         "measured with torch's FLOP counter (shared network and STL's per-task ones)")
    costs.add_argument("suite", help="suite YAML file")
    costs.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a suite field")
    costs.add_argument("--size", nargs=2, type=int, metavar=("HEIGHT", "WIDTH"),
                       help="image size (default: the dataset's setting, or its standard size)")
    costs.set_defaults(func=cmd_costs)


def add_cancel_command(sub: argparse._SubParsersAction) -> None:
    cancel = sub.add_parser("cancel", help="cancel the suite's queued and running SLURM jobs")
    cancel.add_argument("suite", help="suite YAML file")
    cancel.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a suite field")
    add_results(cancel)
    cancel.set_defaults(func=cmd_cancel)


def add_tune_command(sub: argparse._SubParsersAction) -> None:
    from .tracking import MODES  # offline, online, disabled

    tune = sub.add_parser("tune", help="Optuna search per (dataset, scenario, method), validation split only")
    tune.add_argument("suite", help="suite YAML file (its tune section sets trials, seeds, objective, pruner)")
    tune.add_argument("--method", help="comma-separated: tune only these methods of the suite")
    tune.add_argument("--trials", type=positive_int,
                      help="finished trials per study (default: the suite's tune.trials)")
    tune.add_argument("--storage", help="sqlite:///FILE.db (default: RESULTS/SUITE/tuning/optuna.db), "
                                        "journal:FILE (shared filesystem) or postgresql://USER:PASSWORD@HOST/DB")
    tune.add_argument("--out", help="best-parameters YAML (default: RESULTS/SUITE/tuning/params.yaml)")
    tune.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a suite field")
    tune.add_argument("--wandb", default="offline", choices=MODES)
    tune.add_argument("--reclaim", action="store_true",
                      help="re-queue trials left running by dead processes (only when no other tune process runs)")
    add_results(tune)
    tune.set_defaults(func=cmd_tune)


def add_leaderboard_command(sub: argparse._SubParsersAction) -> None:
    from .tracking import MODES  # offline, online, disabled

    board = sub.add_parser("leaderboard", help="render RESULTS/SUITE/leaderboard/SUITE.md, .csv, ... from the results")
    board.add_argument("suite", nargs="?", help="suite name (default: every suite in the results folder)")
    board.add_argument("--from-wandb", metavar="ENTITY/PROJECT",
                       help="build the tables from the finished runs of a W&B project instead of the results folder")
    board.add_argument("--suite", dest="suite_option", metavar="S", help="with --from-wandb: the suite (needed when "
                                                                         "the project holds several)")
    board.add_argument("--out", help="output path, suffixes set per format (default: RESULTS/SUITE/leaderboard/SUITE; "
                                     "the committed pages: --out leaderboards/SUITE)")
    board.add_argument("--baseline", help="method ΔMTL is computed against (default: the suite's, else supervised)")
    board.add_argument("--columns", help="the column groups shown, comma-separated, from "
                       "metrics,delta,acc,time,memory,flops,seeds,params (default: the suite's leaderboard.columns, "
                       "else all that apply), e.g. --columns delta,time,memory")
    board.add_argument("--select", choices=("last", "best_val"),
                       help="the epoch reported (default: the suite's leaderboard.select, else last); best_val needs "
                            "jobs run with train.test_every_epoch")
    board.add_argument("--wandb", default="disabled", choices=MODES,
                       help="also log the tables and figures as the suite's W&B run (job type leaderboard)")
    board.add_argument("--format", default="md,csv,tex,html,png,pdf",
                       help="comma-separated outputs: md and csv are always written; tex, html, and the figures as png "
                            "and pdf (per-table suites) when listed (default: all)")
    add_results(board)
    board.set_defaults(func=cmd_leaderboard)


def add_report_command(sub: argparse._SubParsersAction) -> None:
    report = sub.add_parser("report", help="a W&B report and workspace comparing the suite's methods (a spec file "
                                           "offline; `mtlbench sync` or --save saves it)")
    report.add_argument("suite", help="suite YAML file")
    report.add_argument("--entity", help="W&B entity (default: the suite's wandb.entity, else the login's)")
    report.add_argument("--project", help="W&B project (default: the suite's wandb.project)")
    report.add_argument("--out", help="spec file (default: results/<suite>/wandb-report.json)")
    report.add_argument("--save", action="store_true", help="save the report and workspace now (needs a login)")
    report.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a suite field")
    add_results(report)
    report.set_defaults(func=cmd_report)


def add_list_command(sub: argparse._SubParsersAction) -> None:
    lst = sub.add_parser("list", help="registered datasets, scenarios, methods, recipe parts, models, allocators, "
                                     "selectors and objectives")
    lst.add_argument("--markdown", action="store_true", help="the documentation's reference page (docs/reference.md)")
    lst.set_defaults(func=cmd_list)


def add_bench_command(sub: argparse._SubParsersAction) -> None:
    from .track import TRACKS

    bench = sub.add_parser("bench", help="training images/s of each method on random tensors (torch only)")
    # no defaults here: BenchConfig holds them (`mtlbench bench` with no option measures its defaults)
    bench.add_argument("--methods", help="comma-separated; the first is the reference (default: supervised and "
                                         "every preset with a regularizer)")
    bench.add_argument("--tasks", help="comma-separated (default: seg,depth,normal)")
    bench.add_argument("--shape", choices=["synthrooms", "nyuv2", "cityscapes"], help="height x width of a dataset "
                                                                                     "(default: synthrooms)")
    bench.add_argument("--height", type=positive_int)
    bench.add_argument("--width", type=positive_int)
    bench.add_argument("--model-width", type=positive_float, help="SegNet width multiplier (1.0 = papers)")
    bench.add_argument("--model", help="a registered model, built with its defaults (default: segnet at "
                                       "--model-width); e.g. maskrcnn with --tasks detection,instance")
    bench.add_argument("--dataset", help="whose tasks are trained: a registered dataset, or its settings as JSON "
                                         "(no files needed; default: synthrooms)")
    bench.add_argument("--batch-size", type=positive_int)
    bench.add_argument("--scenario")
    bench.add_argument("--steps", type=positive_int)
    bench.add_argument("--warmup", type=non_negative_int)
    bench.add_argument("--device")
    mode = bench.add_mutually_exclusive_group()
    mode.add_argument("--sweep", action="store_true", help="cost against the number of dense tasks, 2 to 7")
    mode.add_argument("--parts", action="store_true",
                      help="each supervision, weighting and gradients part swapped into supervised, vs uniform+sum")
    for track in TRACKS.list():  # a track's own benchmarks (grouping: --selection K)
        TRACKS.get(track)().add_bench_options(mode)
    bench.set_defaults(func=cmd_bench)


def add_data_command(sub: argparse._SubParsersAction) -> None:
    data = sub.add_parser("data", help="dataset utilities").add_subparsers(dest="action", required=True)
    check = data.add_parser("check", help="validate a dataset folder: counts, shapes, dtypes, value ranges")
    check.add_argument("name", help="dataset name (nyuv2, cityscapes, taskonomy, pascal_voc)")
    check.add_argument("path", help="the dataset folder (its root), or a folder mtlbench data prepare wrote")
    check.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="a dataset parameter, e.g. --set classes=19 (cityscapes), --set split_file=F (taskonomy)")
    check.set_defaults(func=cmd_data_check)
    prepare = data.add_parser("prepare", help="convert a dataset once into memory-mapped arrays at its training "
                                              "resolution, with a checksummed manifest (docs/datasets.md)")
    prepare.add_argument("name", help="dataset name (synthrooms, nyuv2, cityscapes, taskonomy, pascal_voc, coco, ...)")
    prepare.add_argument("source", help="the dataset's folder (its root; '-' for a generated dataset)")
    prepare.add_argument("dest", help="the folder to write (an interrupted prepare into it continues)")
    prepare.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                         help="a dataset parameter as the suite gives it, e.g. --set height=256 --set width=256")
    prepare.set_defaults(func=cmd_data_prepare)


def add_sync_command(sub: argparse._SubParsersAction) -> None:
    sync = sub.add_parser("sync", help="upload offline W&B runs")
    sync.add_argument("suite", nargs="?", help="only this suite's runs")
    add_results(sync)
    sync.set_defaults(func=cmd_sync)


@contextlib.contextmanager
def one_line_warnings() -> Iterator[None]:
    """Warnings printed as ``warning: MESSAGE``, one line each: what they say is for the user (a corrupt file
    moved aside), not the source line that warned. Restored afterwards (``main`` may run inside another program)."""
    original = warnings.formatwarning
    warnings.formatwarning = lambda message, category, filename, lineno, line=None: f"warning: {message}\n"
    try:
        yield
    finally:
        warnings.formatwarning = original


def main(argv: list[str] | None = None) -> int:
    """The command line. Everything mtlbench imports happens in here (``import mtlbench`` itself imports nothing
    heavy), so that a Ctrl-C from the first moment on ends with one line and exit code 130, never a traceback."""
    try:
        pin_instruction_sets()  # before torch is imported: oneDNN and MKL read them when first called
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        with one_line_warnings():
            return command(argv)
    except BrokenPipeError:  # the reader stopped early (`mtlbench list | head`): nothing of ours went wrong
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so that flushing at exit finds no pipe
        return 141  # the shell's code for a writer whose reader left (128 + SIGPIPE)
    except KeyboardInterrupt as stop:  # a command with no interrupt handling of its own: one line, no traceback
        print(f"interrupted ({'SIGTERM' if exit_code_of(stop) == 143 else 'Ctrl-C'})", file=sys.stderr)
        return exit_code_of(stop)


def command(argv: list[str] | None) -> int:
    """Parse and run one command; an error whose message is all a user needs (``UserError``: a suite, a name,
    a file, the disk) is one line on stderr and exit code 2."""
    from .plugins import load_plugins

    try:
        load_plugins()
        argv = sys.argv[1:] if argv is None else list(argv)
        args = parser().parse_args(argv)
        args.argv = argv
        with sigterm_as_interrupt():  # SIGTERM stops a command as cleanly as Ctrl-C
            return args.func(args)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
