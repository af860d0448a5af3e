"""Sweep throughput on this machine: N single-thread trials of one recipe (seeds 0..N-1) run by `biocircuits sweep` on
a local Ray, against the same trials one after another in one process; and Ray's start-up and per-trial overhead.

    python benchmarks/sweep_throughput.py --repeats 2        # 8 quickstart trials, 2 interleaved repetitions
    python benchmarks/sweep_throughput.py --smoke --trials 2 # a tiny check that the script runs

Measured: ``sequential_s`` (the N trials in turn, torch at 1 thread, no Ray), ``sweep_s`` (the whole command: Ray
start, trials, results), ``ratio`` = sweep_s / sequential_s (the issue's target: <= 0.6 for 8 trials on 2 cores),
``ray_start_s`` (``ray.init`` + ``ray.shutdown`` of a local Ray, in a fresh process, before and after every round)
and ``overhead_per_trial_s``: (sweep_s - ray_start_s - the trials' own spans / concurrency) / N, the scheduling and
worker cost per trial. With ``--repeats R`` the rounds alternate which of the two goes first, and the medians are
reported; the load averages before and after are recorded (the figures mean little on a loaded machine)."""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SMOKE = (
    "name: smoke\nconstraints: bp.yaml\ndata: {name: digits}\nmodel: {name: mlp, kwargs: {hidden: [8]}}\n"
    "train: {steps: 4, batch_size: 32, probe_every: null, plots: false, progress: false}\n"
)
QUICKSTART_SET = "{train.plots: false, train.progress: false, train.probe_every: null}"


def env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "RAY_AUTH_MODE": "disabled", "PYTHONPATH": str(ROOT)}


def sequential(experiment: Path, trials: int, tmp: Path, smoke: bool) -> float:
    """Wall seconds of the trials one after another in a fresh process (1 torch thread)."""
    code = (
        "import sys, time, torch\nfrom biocircuits.config.experiment import Experiment\n"
        "from biocircuits.train.trainer import run_experiment\ntorch.set_num_threads(1)\nt0 = time.perf_counter()\n"
        f"for seed in range({trials}):\n"
        f"    sets = {{'train.seed': seed}} if {smoke} else {{'train.seed': seed, 'train.plots': False, "
        "'train.progress': False, 'train.probe_every': None}\n"
        f"    run_experiment(Experiment.from_yaml({str(experiment)!r}, sets), {str(tmp / 'seq')!r} + f'/{{seed}}')\n"
        "print(time.perf_counter() - t0)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env(), cwd=ROOT, capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def ray_start() -> float:
    """Seconds to start and stop a local Ray in a fresh process."""
    code = (
        "import time, ray\nt0 = time.perf_counter()\nray.init(include_dashboard=False, log_to_driver=False)\n"
        "ray.shutdown()\nprint(time.perf_counter() - t0)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env(), capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def sweep(experiment: Path, trials: int, tmp: Path, smoke: bool) -> tuple[float, list[dict[str, Any]]]:
    """Wall seconds of ``biocircuits sweep`` over seeds 0..N-1, and its results rows."""
    path = tmp / "sweep.yaml"
    path.write_text(
        f"experiment: {experiment}\nseeds: {list(range(trials))}\nresources: {{cpu: 1}}\n"
        + ("" if smoke else f"set: {QUICKSTART_SET}\n")
    )
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "biocircuits", "sweep", str(path), "--output", str(tmp / "sweep")],
        env=env(),
        cwd=ROOT,
        capture_output=True,
        check=True,
    )
    wall = time.perf_counter() - t0
    return wall, json.loads((tmp / "sweep" / "results.json").read_text())


def load() -> list[float]:
    """The 1-, 5- and 15-minute load averages (other jobs on a shared machine), rounded."""
    return [round(x, 2) for x in os.getloadavg()]


def one_round(experiment: Path, trials: int, smoke: bool, sweep_first: bool) -> dict[str, Any]:
    """One repetition: the sequential trials and the sweep, in the given order, each in fresh folders."""
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        if sweep_first:
            wall, rows = sweep(experiment, trials, tmp, smoke)
            seq = sequential(experiment, trials, tmp, smoke)
        else:
            seq = sequential(experiment, trials, tmp, smoke)
            wall, rows = sweep(experiment, trials, tmp, smoke)
    spans = [r["finished_at"] - r["started_at"] for r in rows if r["finished_at"]]
    return {
        "sequential_s": seq,
        "sweep_s": wall,
        "ratio": wall / seq,
        "trial_span_s": spans,
        "finished": sum(r["status"] == "finished" for r in rows),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=8)
    p.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="interleaved repetitions (sweep and sequential alternate which goes first)",
    )
    p.add_argument("--smoke", action="store_true", help="tiny trials (digits, 4 steps): checks the script only")
    args = p.parse_args(argv)
    load_before, started = load(), time.time()
    with tempfile.TemporaryDirectory() as d:
        experiment = ROOT / "experiments" / "quickstart.yaml"
        if args.smoke:
            experiment = Path(d) / "smoke.yaml"
            experiment.write_text(SMOKE)
        starts = [ray_start()]
        rounds = []
        for r in range(args.repeats):
            rounds.append(one_round(experiment, args.trials, args.smoke, sweep_first=r % 2 == 1))
            starts.append(ray_start())
    concurrency = min(args.trials, os.cpu_count() or 1)
    start = statistics.median(starts)
    for r in rounds:
        r["overhead_per_trial_s"] = (r["sweep_s"] - start - sum(r["trial_span_s"]) / concurrency) / args.trials
    result = {
        "trials": args.trials,
        "repeats": args.repeats,
        "cpus": os.cpu_count(),
        "machine": platform.platform(),
        "ray_start_s": starts,
        "rounds": rounds,
        "median": {
            k: statistics.median(r[k] for r in rounds)
            for k in ("sequential_s", "sweep_s", "ratio", "overhead_per_trial_s")
        },
        "load_before": load_before,
        "load_after": load(),
        "wall_s": time.time() - started,
    }
    result["median"]["ray_start_s"] = start
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
