"""The ``biocircuits`` command (also ``python -m biocircuits``): run, compare, sweep, report, validate, layers, plot,
check-pathway, shard.

Exit codes: 0 done, 2 bad config or input (file, key path, expected, given, suggestion), 1 failure during the run,
130 interrupted by Ctrl-C. Errors print one message; ``--debug`` (anywhere on the line) shows the traceback."""

from __future__ import annotations

import argparse
import sys
import traceback
from pathlib import Path
from typing import Any

from biocircuits import __version__
from biocircuits.config.constraints import Constraints
from biocircuits.config.experiment import Experiment
from biocircuits.config.loading import load_with_includes, parse_set
from biocircuits.errors import BiocircuitsError, CheckpointError, ConfigError, TrainingDiverged
from biocircuits.train import distributed
from biocircuits.train.trainer import run_experiment

from .arguments import Parser, add_common_options, positive, positive_list, seed_list
from .check_pathway import CheckRequest, check_run
from .compare import compare
from .layers import add_layers_command, inspect_model
from .plots import PlotRun, plot_runs
from .shard import add_shard_command
from .sweep.session import sweep_arguments

EXPERIMENT_KEYS = {"name", "data", "model", "optim", "schedule", "train", "output", "constraints", "description"}


def cmd_run(args: argparse.Namespace) -> int:
    exp = Experiment.from_yaml(args.experiment, parse_set(args.set))
    run_dir = Path(args.output) if args.output else Path(exp.output) / exp.name
    summary = run_experiment(
        exp, run_dir, resume=args.resume, overwrite=args.overwrite, callbacks=[PlotRun()] if exp.train.plots else []
    )
    if not summary.get("interrupted") and distributed.current().is_main:
        print(
            f"{exp.name}: val_acc1 {summary['val_acc1']:.2f}%  val_loss {summary['val_loss']:.4f}  "
            f"steps {summary['steps']}  {summary['wall_s']:.1f} s  -> {run_dir}"
        )
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    if not args.rules and not args.constraints:
        raise ConfigError(
            "compare needs --rules or --constraints", key="--rules", suggestion="e.g. --rules bp,sign_symmetry,fa"
        )
    rules = [r.strip() for r in args.rules.split(",") if r.strip()] if args.rules else None
    if args.rules and not rules:
        raise ConfigError(
            "--rules names no rule",
            key="--rules",
            expected="comma-separated rule names",
            given=args.rules,
            suggestion="e.g. --rules bp,sign_symmetry,fa",
        )
    compare(
        args.experiment,
        rules=rules,
        constraints=args.constraints,
        overrides=parse_set(args.set),
        output=args.output,
        resume=args.resume,
        overwrite=args.overwrite,
        seeds=args.seeds,
    )
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from .sweep import run_sweep, session

    try:
        only = [v.strip() for v in args.variants.split(",") if v.strip()] if args.variants else None
        code, folder = run_sweep(
            args.sweep,
            output=args.output,
            address=args.address,
            max_concurrent=args.max_concurrent,
            sets=parse_set(args.set),
            only=only,
        )
    finally:  # a Ray started early for the sweep (before its validation) is down before the command exits
        session.release()
    print(f"results: {folder.path / 'results.csv'}; summary: {folder.path / 'summary.md'}")
    if code == 130:
        print("sweep stopped; rerun the same command to continue", file=sys.stderr)
    return code


def cmd_report(args: argparse.Namespace) -> int:
    from .sweep.report import report

    out, summary = report(args.folders, output=args.output, metric=args.metric, baseline=args.baseline)
    print((out / "summary.md").read_text(), end="")
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    failed = False
    try:
        sets = parse_set(args.set)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for path in args.files:
        try:
            data = load_with_includes(path, "constraints")
            if EXPERIMENT_KEYS & set(data) and not {"feedback", "dale", "phases", "plasticity"} & set(data):
                kind = "experiment" + built(Experiment.from_yaml(path, sets))
            else:
                Constraints.from_yaml(path)
                kind = "constraint spec"
            print(f"{path}: valid {kind}")
        except ConfigError as err:  # every file is checked; each bad one is reported
            print(f"error: {err.with_file(str(path))}", file=sys.stderr)
            failed = True
    return 2 if failed else 0


def built(exp: Experiment) -> str:
    """Build the experiment's model (meta device) and convert it, so that every layer glob, override, exemption,
    plasticity match, ``model.kwargs`` and ``model.checkpoint`` is checked; returns a note for the "valid" line.
    Data that is not on this machine (``data.root``) leaves the model unbuilt, with a note."""
    try:
        inspect_model(exp, "meta")
    except ConfigError as err:
        if err.key != "data.root":
            raise
        return f" (model not built: {err.message})"
    return ", model built"


def cmd_plot(args: argparse.Namespace) -> int:
    for path in plot_runs(args.runs, args.output):
        print(path)
    return 0


def cmd_check_pathway(args: argparse.Namespace) -> int:
    print(check_run(CheckRequest.from_args(args)).summary())
    return 0


def add_sweep_commands(sub: argparse._SubParsersAction) -> None:
    """``sweep`` and ``report``."""
    swp = sub.add_parser("sweep", help="a grid of an experiment x seeds on Ray Tune, then results and a summary")
    sweep_arguments(swp)  # shared with the early read of the command line (before the heavy imports)
    swp.set_defaults(func=cmd_sweep)

    rep = sub.add_parser("report", help="rebuild results and summary from sweep, compare or run folders")
    rep.add_argument("folders", nargs="+", metavar="FOLDER")
    rep.add_argument("--output", help="where to write (default: the folder, or the run folders' parent)")
    rep.add_argument("--metric", default=None, help="val_acc1 (default), val_acc5, val_loss, best_val_acc1, ...")
    rep.add_argument("--baseline", default=None, help="the variant paired differences are taken against")
    rep.add_argument("--debug", action="store_true", default=argparse.SUPPRESS)
    rep.set_defaults(func=cmd_report)


def add_check_pathway(sub: Any) -> None:
    """The ``check-pathway`` parser: each option's default is None (not given), so a check can refuse it."""
    chk = sub.add_parser("check-pathway", help="simulate a layer's feedback pathway in Brian2")
    chk.add_argument("run_dir")
    chk.add_argument("--layer", required=True)
    chk.add_argument("--mode", choices=["rate", "spiking"], default=None, help="default spiking")
    chk.add_argument("--dale", action="store_true", help="route negative weights through inhibitory relays")
    chk.add_argument(
        "--patterns", type=positive(int), default=None, help="validation errors used (default 4; recorded 32)"
    )
    chk.add_argument(
        "--duration",
        type=positive(float),
        default=None,
        help="seconds of simulated time: per held pattern, of a step or ou stream, of a sine's fit",
    )
    chk.add_argument("--waveform", default=None, help="error stream: patterns (default), recorded, step, sine, ou")
    chk.add_argument("--frequency", type=positive_list, default=None, help="sine: Hz, comma-separated (F1,F2,...)")
    chk.add_argument("--tau-corr", type=positive(float), default=None, help="ou: correlation time (s)")
    chk.add_argument("--hold", type=positive(float), default=None, help="recorded: seconds per error sample")
    chk.add_argument(
        "--chain",
        type=lambda t: [n for n in t.split(",") if n],
        default=None,
        help="lower layers, top first, gated by f'(a): the multi-layer check",
    )
    chk.add_argument(
        "--calibrate",
        default=None,
        metavar="SPEC.yaml",
        help="write the run's spec with the phases noise of a spiking pathway (--rate, --window)",
    )
    chk.add_argument(
        "--rate", type=positive(float), default=None, help="calibration: baseline rate r0 (Hz, default 200)"
    )
    chk.add_argument(
        "--window", type=positive(float), default=None, help="calibration: averaging window (s, default 0.05)"
    )
    chk.add_argument("--debug", action="store_true", default=argparse.SUPPRESS)
    chk.set_defaults(func=cmd_check_pathway)


def add_run_commands(sub: argparse._SubParsersAction) -> None:
    """``run`` and ``compare``."""
    run = sub.add_parser("run", help="train one experiment")
    run.add_argument("experiment")
    run.add_argument("--output", help="run directory (default OUTPUT/NAME)")
    run.add_argument(
        "--resume",
        action="store_true",
        help="continue from the run directory's checkpoint (only "
        "epochs, steps, intervals, progress, plots and tensorboard may change)",
    )
    run.add_argument(
        "--overwrite",
        action="store_true",
        help="move a run already in the folder aside to <folder>.old-N (nothing is deleted) and start afresh",
    )
    add_common_options(run)
    run.set_defaults(func=cmd_run)

    cmp = sub.add_parser("compare", help="one run per rule or per constraint spec, then a table and plots")
    cmp.add_argument("experiment")
    cmp.add_argument("--rules", help="comma-separated feedback rules, e.g. bp,sign_symmetry,fa")
    cmp.add_argument("--constraints", nargs="+", help="constraint spec files, one run each")
    cmp.add_argument("--output", help="directory for the runs and the table (default OUTPUT/NAME-compare)")
    cmp.add_argument(
        "--seeds",
        type=seed_list,
        default=None,
        metavar="S,S,...",
        help="run each variant once per seed (train.seed); the summary gives mean, sd and t-intervals",
    )
    cmp.add_argument("--resume", action="store_true", help="resume runs that have a checkpoint")
    cmp.add_argument(
        "--overwrite",
        action="store_true",
        help="move a comparison already in the folder aside to <folder>.old-N and start afresh",
    )
    add_common_options(cmp)
    cmp.set_defaults(func=cmd_compare)


def build_parser() -> argparse.ArgumentParser:
    """The ``biocircuits`` parser: one subcommand each, its handler as ``func``."""
    p = Parser(prog="biocircuits", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    add_run_commands(sub)
    add_sweep_commands(sub)

    val = sub.add_parser("validate", help="check constraint specs or experiment files")
    val.add_argument("files", nargs="+")
    add_common_options(val)
    val.set_defaults(func=cmd_validate)

    add_layers_command(sub)

    plot = sub.add_parser("plot", help="write PNG plots of one or more runs")
    plot.add_argument("runs", nargs="+")
    plot.add_argument("--output", help="where to write the PNGs (default: each run's plots/ or the first)")
    plot.add_argument("--debug", action="store_true", default=argparse.SUPPRESS)
    plot.set_defaults(func=cmd_plot)

    add_check_pathway(sub)
    add_shard_command(sub, positive)
    return p


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns the exit code (argparse's own usage errors exit 2 by ``SystemExit``)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    debug, args = "--debug" in argv, None
    try:
        args = build_parser().parse_args(argv)
        return args.func(args)
    except KeyboardInterrupt:
        if debug:
            traceback.print_exc()
        print("interrupted", file=sys.stderr)
        return 130
    except ConfigError as err:
        if debug:
            traceback.print_exc()
        if err.key is None or not err.key.startswith("-"):
            err.with_file(getattr(args, "experiment", None) or getattr(args, "sweep", None))
        print(f"error: {err}", file=sys.stderr)
        return 2
    except TrainingDiverged as err:
        print(f"error: training diverged: {err}", file=sys.stderr)
        return 1
    except BiocircuitsError as err:  # a checkpoint that cannot be read is bad input (2); the rest failed a run (1)
        if debug:
            traceback.print_exc()
        print(f"error: {err}", file=sys.stderr)
        return 2 if isinstance(err, CheckpointError) else 1
    except Exception as err:  # a failure during the run
        if debug:
            traceback.print_exc()
        else:
            print(f"error: {type(err).__name__}: {err} (run with --debug for the traceback)", file=sys.stderr)
        return 1
    finally:
        distributed.teardown()
