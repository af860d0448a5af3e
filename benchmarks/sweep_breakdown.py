"""Where a sweep's time goes, for `sweep_throughput.py --breakdown`: the stages of each trial (from the ``timeline``
in its ``trial.json``, see `biocircuits.app.sweep.timeline`), the engine's costs between trials (worker start,
imports, the gap from one trial's end to the next one's start on the same worker), the sweep command's head (start
to first trial: its imports and validation, Ray's start, Tune's fit called; from the ``timeline`` the command records
in ``sweep.json``) and tail (last trial to exit: Tune's fit returning, the report written and Ray stopped side by side,
the exit), and the import costs of a fresh process. Worker start times come from the process table (``psutil``), whose
clock counts from the boot second: they can read up to 1 s early."""

from __future__ import annotations

import statistics
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

IMPORTS = {
    "import torch": "import torch",
    "import biocircuits' trial module (after torch)": "import torch\nT0()\nimport biocircuits.app.sweep.trial",
    "import ray and ray.tune": "import ray\nfrom ray import tune",
}

STAGES = (  # (row, from, to) within one trial's timeline
    ("data, model, optimiser, run folder (entered -> built)", "entered_at", "built_at"),
    ("first step (built -> first step done)", "built_at", "first_step_at"),
    ("training (first -> last step)", "first_step_at", "last_step_at"),
    ("final evaluation, checkpoint, report (last step -> trained)", "last_step_at", "trained_at"),
    ("trial.json (trained -> finished)", "trained_at", "finished_at"),
)


def import_times(env: dict[str, str], root: Path) -> dict[str, float]:
    """Seconds of each import in ``IMPORTS`` in a fresh process (``T0()`` restarts the clock)."""
    out = {}
    for name, body in IMPORTS.items():
        code = "import time\nt0 = [time.perf_counter()]\ndef T0(): t0[0] = time.perf_counter()\n"
        code += body + "\nprint(time.perf_counter() - t0[0])\n"
        done = subprocess.run([sys.executable, "-c", code], env=env, cwd=root, capture_output=True, text=True)
        out[name] = float(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 else float("nan")
    return out


def span(times: dict[str, Any], begin: str, end: str) -> float | None:
    if times.get(begin) is None or times.get(end) is None:
        return None
    return times[end] - times[begin]


def median(values: list[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return statistics.median(kept) if kept else None


def per_trial(states: list[dict[str, Any]]) -> dict[str, float | None]:
    """Median seconds of each stage of ``STAGES`` over the trials, and of the whole trial (entered -> finished)."""
    rows = {}
    for name, begin, end in STAGES:
        rows[name] = median(
            [span({**s.get("timeline", {}), "finished_at": s.get("finished_at")}, begin, end) for s in states]
        )
    whole = [
        span({**s.get("timeline", {}), "finished_at": s.get("finished_at")}, "entered_at", "finished_at")
        for s in states
    ]
    rows["the whole trial (entered -> finished)"] = median(whole)
    return rows


def since(times: dict[str, Any], key: str, origin: float | None) -> float | None:
    return None if origin is None or times.get(key) is None else times[key] - origin


def engine_costs(states: list[dict[str, Any]], window: list[float], command: dict[str, Any]) -> dict[str, Any]:
    """The engine's costs around the trials: workers used, their start and imports, the gap between trials on one
    worker, and the command's head and tail (with its own ``command`` timeline: validated, Ray init / ready / down,
    Tune's fit called / returned, report written)."""
    by_worker: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for s in states:
        by_worker[s["timeline"].get("worker_pid")].append(s)
    boot, setup, gaps = [], [], []
    for runs in by_worker.values():
        runs.sort(key=lambda s: s["timeline"]["entered_at"])
        first = runs[0]["timeline"]
        boot.append(span(first, "worker_started_at", "imported_at"))
        setup.append(span(first, "imported_at", "entered_at"))
        gaps += [b["timeline"]["entered_at"] - a["finished_at"] for a, b in zip(runs, runs[1:], strict=False)]
    entered = [s["timeline"]["entered_at"] for s in states]
    finished = max((s["finished_at"] for s in states if s.get("finished_at")), default=None)
    last = max((command.get("report_at") or 0, command.get("ray_down_at") or 0)) or None
    started = min((s["timeline"]["worker_started_at"] or 0 for s in states), default=0) or None
    return {
        "workers (processes) for the trials": len(by_worker),
        "head: command start -> Ray init called": since(command, "ray_init_at", window[0]),
        "head: command start -> sweep validated (imports, validation)": since(command, "validated_at", window[0]),
        "head: Ray start (init -> ready)": span(command, "ray_init_at", "ray_ready_at"),
        "head: command start -> Ray ready": since(command, "ray_ready_at", window[0]),
        "head: command start -> Tune's fit called": since(command, "fit_at", window[0]),
        "head: command start -> first worker process started": since({"at": started}, "at", window[0]),
        "worker process start -> imports done (first trial of a worker)": median(boot),
        "imports done -> trial entered (first trial of a worker)": median(setup),
        "gap between trials on one worker (finished -> next entered)": median(gaps),
        "head: command start -> first trial entered": min(entered) - window[0] if entered else None,
        "tail: last trial finished -> Tune's fit returned": since(command, "fit_done_at", finished),
        "tail: fit returned -> report written": span(command, "fit_done_at", "report_at"),
        "tail: fit returned -> Ray down (side by side with the report)": span(command, "fit_done_at", "ray_down_at"),
        "tail: report written and Ray down -> command exit": None if last is None else window[1] - last,
        "tail: last trial finished -> command exit": window[1] - finished if finished else None,
    }


def breakdown_rows(round_: dict[str, Any]) -> dict[str, Any]:
    """The breakdown of one round: per-trial stages in the sweep and in the sequential baseline, the engine's costs."""
    sweep = [s for s in round_["sweep_trials"] if s.get("timeline")]
    return {
        "stages": {"sweep": per_trial(sweep), "sequential": per_trial(round_["sequential_trials"])},
        "engine": engine_costs(sweep, round_["sweep_window"], round_.get("sweep_command", {})),
    }


def fmt(value: Any) -> str:
    return "-" if value is None else (f"{value:.2f}" if isinstance(value, float) else str(value))


def markdown(cases: dict[str, dict[str, Any]], imports: dict[str, float]) -> str:
    """The breakdown as Markdown tables: per-trial stages (median s, sweep | sequential) and the engine's costs."""
    names = list(cases)
    head = "| stage, median per trial (s) | " + " | ".join(f"{n}: sweep | {n}: sequential" for n in names) + " |"
    lines = [head, "|---|" + "---:|---:|" * len(names)]
    for stage in next(iter(cases.values()))["stages"]["sweep"]:
        cells = [
            f"{fmt(c['stages']['sweep'][stage])} | {fmt(c['stages']['sequential'][stage])}" for c in cases.values()
        ]
        lines.append(f"| {stage} | " + " | ".join(cells) + " |")
    lines += ["", "| engine cost (s) | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for key in next(iter(cases.values()))["engine"]:
        lines.append(f"| {key} | " + " | ".join(fmt(c["engine"][key]) for c in cases.values()) + " |")
    lines += ["", "| fresh process | s |", "|---|---:|"]
    lines += [f"| {name} | {fmt(value)} |" for name, value in imports.items()]
    return "\n".join(lines)
