"""Accuracy and W-B alignment of a weight-mirror sweep, per variant, as a Markdown table (issue #27's schedule study).

    biocircuits sweep experiments/sweeps/weight_mirror_schedule.yaml --max-concurrent 1
    python benchmarks/weight_mirror_angles.py runs/weight_mirror_schedule [--steps 20 50 100]

Reads each trial's ``trial.json`` (variant), ``summary.json`` (final ``val_acc1``) and the ``attachment`` rows of its
``metrics.jsonl`` (the mirror's ``weight_feedback_angle`` per layer, logged every ``log_every`` steps). Per trial, the
angle at a step is the mean over the layers at the logged step nearest to it; "mean" is the mean over every logged
step and layer. Each cell is the mean +- sd over the variant's seeds (sd with n - 1).
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path


def trial_figures(trial: Path, steps: list[int]) -> tuple[str, dict[str, float]]:
    """(variant, {"val_acc1": ..., "angle@<step>": ..., "angle final": ..., "angle mean": ...}) of one trial."""
    variant = json.loads((trial / "trial.json").read_text())["variant"]
    figures = {"val_acc1": json.loads((trial / "summary.json").read_text())["val_acc1"]}
    rows = [json.loads(line) for line in (trial / "metrics.jsonl").read_text().splitlines() if line.strip()]
    angles: dict[int, list[float]] = {}
    for r in rows:
        if r["kind"] == "attachment" and "weight_feedback_angle" in r:
            angles.setdefault(r["step"], []).append(r["weight_feedback_angle"])
    if angles:
        logged = sorted(angles)
        for step in steps:
            figures[f"angle@{step}"] = statistics.mean(angles[min(logged, key=lambda s: abs(s - step))])
        figures["angle final"] = statistics.mean(angles[logged[-1]])
        figures["angle mean"] = statistics.mean(a for step in logged for a in angles[step])
    return variant, figures


def cell(values: list[float]) -> str:
    if not values:
        return "-"
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.1f} +- {sd:.1f}"


def table(sweep: Path, steps: list[int]) -> str:
    """The Markdown table of ``sweep``'s finished trials, variants in trial order."""
    by_variant: dict[str, list[dict[str, float]]] = {}
    for trial in sorted((sweep / "trials").iterdir()):
        if (trial / "summary.json").is_file():
            variant, figures = trial_figures(trial, steps)
            by_variant.setdefault(variant, []).append(figures)
    columns = ["val_acc1", *(f"angle@{s}" for s in steps), "angle final", "angle mean"]
    titles = ["val_acc1 %", *(f"angle at step {s}" for s in steps), "angle, final", "angle, mean over training"]
    lines = [f"| variant | seeds | {' | '.join(titles)} |", "| --- | ---: |" + " ---: |" * len(columns)]
    for variant, trials in by_variant.items():
        cells = [cell([t[c] for t in trials if c in t]) for c in columns]
        lines.append(f"| {variant} | {len(trials)} | {' | '.join(cells)} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> str:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("sweep", type=Path, help="the sweep folder (holds trials/)")
    p.add_argument("--steps", type=int, nargs="+", default=[20, 50, 100], help="steps to read the angle at")
    args = p.parse_args(argv)
    out = table(args.sweep, args.steps)
    print(out)
    return out


if __name__ == "__main__":
    main()
