"""``biocircuits compare``: one run per feedback rule or constraint spec, then a table and plots."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from biocircuits.config.constraints import Constraints
from biocircuits.config.experiment import Experiment
from biocircuits.config.loading import resolve_path
from biocircuits.core.atomic import atomic_write_json, atomic_write_text
from biocircuits.errors import ConfigError
from biocircuits.feedback.rules import rule_class
from biocircuits.train import distributed
from biocircuits.train.claim import claim_folder, holds_run
from biocircuits.train.run_folder import CompareFolder
from biocircuits.train.trainer import run_experiment

from .plots import PlotRun, plot_runs
from .sweep.report import write_report
from .sweep.results import run_row


def variants(base: Experiment, rules: list[str] | None, constraints: list[str] | None) -> dict[str, Experiment]:
    """{label: experiment}: the base experiment with its default feedback rule replaced (options kept for the spec's
    own rule, reset for the others; the per-layer overrides, exclusions and seed, Dale, phases and plasticity kept),
    or with each constraint spec."""
    out: dict[str, Experiment] = {}
    config = base.resolved_dict()
    for rule in rules or []:
        rule_class(rule)
        d = json.loads(json.dumps(config))
        feedback = d["constraints"]["feedback"]  # the rule changes; overrides (e.g. bp in the last layer) stay
        options = feedback["options"] if rule == feedback["rule"] else {}  # the spec's own rule keeps its options
        d["constraints"]["feedback"] = {**feedback, "rule": rule, "options": options}
        d["name"] = f"{base.name}-{rule}"
        out[rule] = Experiment.from_dict(d, file=base.source)
    for spec in constraints or []:
        found = resolve_path(spec, None, "constraints")
        if found is None:
            raise ConfigError(
                "constraint spec not found",
                key="--constraints",
                given=spec,
                suggestion="give a path or a preset name from constraints/",
            )
        d = json.loads(json.dumps(config))
        d["constraints"] = str(found.resolve())
        label = found.stem
        d["name"] = f"{base.name}-{label}"
        out[label] = Experiment.from_dict(d, file=base.source)
    return out


def seeded(
    experiment: str | Path,
    overrides: dict[str, Any] | None,
    rules: list[str] | None,
    constraints: list[str] | None,
    seeds: list[int] | None,
) -> dict[str, tuple[str, Experiment]]:
    """{run folder name: (label, experiment)}: the [`variants`][biocircuits.app.compare.variants] of the experiment as
    it is (``seeds`` None), or of the experiment at each ``train.seed`` of ``seeds`` (folders ``<label>-s<seed>``,
    variant-major), so that the feedback and phase seeds follow the seed unless the spec sets them."""
    if not seeds:
        return {
            label: (label, exp)
            for label, exp in variants(Experiment.from_yaml(experiment, overrides), rules, constraints).items()
        }
    per_seed = {
        seed: variants(Experiment.from_yaml(experiment, {**(overrides or {}), "train.seed": seed}), rules, constraints)
        for seed in seeds
    }
    out = {}
    for label in per_seed[seeds[0]]:
        for seed in seeds:
            exp = per_seed[seed][label]
            out[f"{label}-s{seed}"] = (label, exp.model_copy(update={"name": f"{exp.name}-s{seed}"}))
    return out


def _changed(section: str, value: dict[str, Any] | None) -> str:
    """A spec section for a table cell: the keys that differ from the defaults (the seed left out, it has its own
    column) as compact JSON, ``-`` when none do."""
    default = Constraints().model_dump(mode="json").get(section) or {}
    changed = {k: v for k, v in (value or {}).items() if k != "seed" and v != default.get(k)}
    if not changed:
        return "-"
    return json.dumps(changed, separators=(",", ":"), sort_keys=True).replace("|", "\\|")


def table(rows: dict[str, dict[str, Any]]) -> str:
    """A Markdown table of the runs' final figures and what they ran with: seed, the rule's options, phases and
    plasticity (``-`` where off)."""
    head = (
        "| run | rule | dale | seed | options | phases | plasticity | val acc@1 (%) | val acc@5 (%) | val loss | "
        "steps | wall (s) |"
    )
    lines = [head, "|---|---|---|---:|---|---|---|---:|---:|---:|---:|---:|"]
    for label, s in rows.items():
        options = json.dumps((s.get("feedback") or {}).get("options") or {}, separators=(",", ":"), sort_keys=True)
        lines.append(
            f"| {label} | {s['rule']} | {'yes' if s['dale'] else 'no'} | {s.get('seed', '-')} | "
            f"{'-' if options == '{}' else options} | {_changed('phases', s.get('phases'))} | "
            f"{_changed('plasticity', s.get('plasticity'))} | {s['val_acc1']:.2f} | {s['val_acc5']:.2f} | "
            f"{s['val_loss']:.4f} | {s['steps']} | {s['wall_s']:.1f} |"
        )
    return "\n".join(lines)


def compare(
    experiment: str | Path,
    rules: list[str] | None = None,
    constraints: list[str] | None = None,
    overrides: dict[str, Any] | None = None,
    output: str | Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    seeds: list[int] | None = None,
) -> dict[str, dict[str, Any]]:
    """Run every variant (once, or once per seed of ``seeds``) into ``output/<run>`` (plotting each when its
    ``train.plots`` is on); then write ``compare.md``, ``compare.json``, the comparison plots, and the sweep's
    results, summary and table
    ([`biocircuits.app.sweep.report.write_report`][biocircuits.app.sweep.report.write_report]: mean, sd, t-intervals and
    paired differences against the first variant over matched seeds). The folder is claimed like a run folder: one that
    already holds a comparison (its table or any variant's run) is refused unless ``resume`` (variants with a
    checkpoint continue, the others start) or ``overwrite`` (the whole folder is moved aside to ``<folder>.old-N``)."""
    base = Experiment.from_yaml(experiment, overrides)
    out = CompareFolder(output if output else Path(base.output) / f"{base.name}-compare")
    runs = seeded(experiment, overrides, rules, constraints, seeds)
    with claim_folder(out.path, resume=resume, overwrite=overwrite, holds=_holds_comparison, what="comparison"):
        return _run_variants(base, out, runs, resume)


def _holds_comparison(path: Path) -> bool:
    return (
        (path / "compare.json").exists()
        or (path / "compare.md").exists()
        or any(holds_run(sub) for sub in path.iterdir() if sub.is_dir())
    )


def _run_variants(
    base: Experiment, out: CompareFolder, runs: dict[str, tuple[str, Experiment]], resume: bool
) -> dict[str, dict[str, Any]]:
    """Train each run into its own run folder, then write the tables and the plots."""
    summaries: dict[str, dict[str, Any]] = {}
    for name, (label, exp) in runs.items():
        run = out.run(name)
        if distributed.current().is_main:
            print(f"== {name} -> {run.path}", flush=True)
        summaries[name] = run_experiment(
            exp, run.path, resume=resume and run.checkpoint.exists(), callbacks=[PlotRun()] if exp.train.plots else []
        )
        spec = exp.resolved_dict()["constraints"]  # what the table cannot show: seeds, options, phases, plasticity
        summaries[name].update(
            variant=label,
            seed=exp.train.seed,
            feedback=spec["feedback"],
            dale_spec=spec.get("dale"),
            phases=spec.get("phases"),
            plasticity=spec.get("plasticity"),
        )
        if summaries[name].get("interrupted"):
            print("compare stopped by signal; rerun with --resume to continue")
            return summaries
    if distributed.current().is_main:
        text = table(summaries)
        atomic_write_text(out.compare_md, f"# {base.name}: comparison\n\n{text}\n")
        atomic_write_json(out.compare_json, summaries)
        print(text)
        paths = plot_runs([out.run(name).path for name in runs], out.plots)
        rows = [run_row(out.run(name).path, label) for name, (label, _) in runs.items()]
        write_report(out.path, rows, "val_acc1", None, title=f"{base.name}: comparison, val_acc1")
        print(f"table: {out.compare_md}; summary: {out.path / 'summary.md'}; plots: {', '.join(str(p) for p in paths)}")
    return summaries
