"""The statistics a paper quotes, per variant of a sweep: n, mean, sample standard deviation and the 95% Student-t
confidence interval of the mean; and, against a baseline variant over the seeds both finished, the paired
differences with their t-interval and a two-sided paired t-test.

For values x_1..x_n: mean m = sum x_i / n, sd s = sqrt(sum (x_i - m)^2 / (n - 1)), CI = m -+ t_{0.975, n-1} s / sqrt(n).
Paired: d_i = x_i(variant) - x_i(baseline) for each matched seed; the same on d, t = m_d / (s_d / sqrt(n)), p = 2 (1 -
F_t(|t|; n - 1))."""

from __future__ import annotations

import math
from typing import Any

LEVEL = 0.95


def t_quantile(q: float, dof: int) -> float:
    """The q-quantile of Student's t with ``dof`` degrees of freedom (scipy, installed with scikit-learn)."""
    from scipy import stats

    return float(stats.t.ppf(q, dof))


def describe(values: list[float]) -> dict[str, Any]:
    """n, mean, sd (n - 1 in the denominator) and the 95% t-interval of the mean (None where n is too small)."""
    n = len(values)
    out: dict[str, Any] = {"n": n, "mean": None, "sd": None, "ci_low": None, "ci_high": None}
    if n == 0:
        return out
    mean = sum(values) / n
    out["mean"] = mean
    if n >= 2:
        sd = math.sqrt(sum((x - mean) ** 2 for x in values) / (n - 1))
        half = t_quantile(0.5 + LEVEL / 2, n - 1) * sd / math.sqrt(n)
        out.update(sd=sd, ci_low=mean - half, ci_high=mean + half)
    return out


def paired(values: dict[int, float], baseline: dict[int, float]) -> dict[str, Any]:
    """``values`` minus ``baseline`` over the seeds both hold: [`describe`][biocircuits.app.sweep.stats.describe] of the
    differences, the seeds, the paired t statistic and its two-sided p-value (None when n < 2 or the differences do not
    vary)."""
    seeds = sorted(set(values) & set(baseline))
    diffs = [values[s] - baseline[s] for s in seeds]
    out = {**describe(diffs), "seeds": seeds, "t": None, "p": None}
    if len(diffs) >= 2 and out["sd"]:
        from scipy import stats

        t = out["mean"] / (out["sd"] / math.sqrt(len(diffs)))
        out.update(t=t, p=float(2 * stats.t.sf(abs(t), len(diffs) - 1)))
    return out


def summarise(rows: list[dict[str, Any]], metric: str = "val_acc1", baseline: str | None = None) -> dict[str, Any]:
    """Per variant (in row order): [`describe`][biocircuits.app.sweep.stats.describe] of ``metric`` over its finished
    trials, the failed count, and [`paired`][biocircuits.app.sweep.stats.paired] against ``baseline`` (default: the
    first variant)."""
    by_variant: dict[str, dict[int, float]] = {}
    counts: dict[str, dict[str, int]] = {}
    for row in rows:
        label = str(row["variant"])
        by_variant.setdefault(label, {})
        status = counts.setdefault(label, {})
        status[row["status"]] = status.get(row["status"], 0) + 1
        value = row.get(metric)
        if row["status"] == "finished" and isinstance(value, int | float) and math.isfinite(value):
            by_variant[label][row["seed"]] = float(value)
    labels = list(by_variant)
    base = baseline if baseline is not None else (labels[0] if labels else None)
    variants = {}
    for label in labels:
        entry = {**describe(list(by_variant[label].values())), "status": counts[label]}
        if base in by_variant and label != base:
            entry["vs_baseline"] = paired(by_variant[label], by_variant[base])
        variants[label] = entry
    return {
        "metric": metric,
        "interval": f"{LEVEL:.0%} Student-t interval of the mean (sd with n - 1)",
        "test": "two-sided paired t-test over matched seeds",
        "baseline": base,
        "variants": variants,
    }


def _num(value: Any, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def markdown(summary: dict[str, Any], title: str) -> str:
    """``summary.md``: one table per variant, one of paired differences against the baseline."""
    metric, base = summary["metric"], summary["baseline"]
    lines = [
        f"# {title}",
        "",
        f"{metric}: mean, sd and {summary['interval']}; paired differences against "
        f"`{base}` over matched seeds ({summary['test']}).",
        "",
        "| variant | n | mean | sd | 95% CI | finished / failed / other |",
        "|---|---:|---:|---:|---|---|",
    ]
    for label, v in summary["variants"].items():
        status = v["status"]
        other = sum(c for s, c in status.items() if s not in ("finished", "failed"))
        lines.append(
            f"| {label} | {v['n']} | {_num(v['mean'])} | {_num(v['sd'])} | "
            f"[{_num(v['ci_low'])}, {_num(v['ci_high'])}] | "
            f"{status.get('finished', 0)} / {status.get('failed', 0)} / {other} |"
        )
    lines += [
        "",
        f"| variant - {base} | n pairs | mean diff | sd | 95% CI | t | p |",
        "|---|---:|---:|---:|---|---:|---:|",
    ]
    for label, v in summary["variants"].items():
        d = v.get("vs_baseline")
        if d is not None:
            lines.append(
                f"| {label} | {d['n']} | {_num(d['mean'])} | {_num(d['sd'])} | "
                f"[{_num(d['ci_low'])}, {_num(d['ci_high'])}] | {_num(d['t'])} | {_num(d['p'], 4)} |"
            )
    return "\n".join(lines) + "\n"
