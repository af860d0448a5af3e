"""The summary's statistics against hand computation from the rows: mean, sd (n - 1), the 95% t-interval and the
paired differences (t-interval, paired t-test) over matched seeds; and ``biocircuits report`` rebuilding results and
summary from run folders."""

from __future__ import annotations

import csv
import json
import math

import pytest
import yaml
from scipy import stats as scipy_stats

from biocircuits.app.cli import main
from biocircuits.app.sweep.stats import summarise

ROWS = [  # variant, seed, status, val_acc1
    ("bp", 0, "finished", 91.0),
    ("bp", 1, "finished", 93.5),
    ("bp", 2, "finished", 92.25),
    ("bp", 3, "failed", None),
    ("fa", 0, "finished", 80.0),
    ("fa", 1, "finished", 84.5),
    ("fa", 2, "finished", 81.0),
    ("fa", 3, "finished", 70.0),
    ("ss", 1, "finished", 90.0),
    ("ss", 2, "finished", 89.0),
]


def rows():
    return [{"variant": v, "seed": s, "status": st, "val_acc1": x} for v, s, st, x in ROWS]


def by_hand(xs):
    n = len(xs)
    mean = sum(xs) / n
    sd = (sum((x - mean) ** 2 for x in xs) / (n - 1)) ** 0.5
    half = scipy_stats.t.ppf(0.975, n - 1) * sd / n**0.5
    return n, mean, sd, mean - half, mean + half


def test_per_variant_mean_sd_and_t_interval_by_hand():
    summary = summarise(rows(), "val_acc1")
    assert summary["baseline"] == "bp" and "t interval" in summary["interval"].replace("Student-t", "t")
    for label, xs in (("bp", [91.0, 93.5, 92.25]), ("fa", [80.0, 84.5, 81.0, 70.0]), ("ss", [90.0, 89.0])):
        v = summary["variants"][label]
        n, mean, sd, lo, hi = by_hand(xs)
        assert v["n"] == n
        assert v["mean"] == pytest.approx(mean, rel=1e-12) and v["sd"] == pytest.approx(sd, rel=1e-12)
        assert (v["ci_low"], v["ci_high"]) == (pytest.approx(lo, rel=1e-12), pytest.approx(hi, rel=1e-12))
    assert summary["variants"]["bp"]["status"] == {"finished": 3, "failed": 1}
    # n = 2: t_{0.975, 1} = 12.706...; the interval is wide, as it should be
    assert summary["variants"]["ss"]["ci_high"] - 89.5 == pytest.approx(12.7062047 * 0.5, rel=1e-6)  # sd 0.5**0.5


def test_paired_differences_over_matched_seeds_by_hand():
    summary = summarise(rows(), "val_acc1", baseline="bp")
    fa = summary["variants"]["fa"]["vs_baseline"]
    diffs = [80.0 - 91.0, 84.5 - 93.5, 81.0 - 92.25]  # seed 3 of bp failed: no pair
    n, mean, sd, lo, hi = by_hand(diffs)
    assert fa["seeds"] == [0, 1, 2] and fa["n"] == 3
    assert fa["mean"] == pytest.approx(mean) and fa["sd"] == pytest.approx(sd)
    assert (fa["ci_low"], fa["ci_high"]) == (pytest.approx(lo), pytest.approx(hi))
    t = mean / (sd / math.sqrt(n))
    assert fa["t"] == pytest.approx(t) and fa["p"] == pytest.approx(2 * scipy_stats.t.sf(abs(t), n - 1))
    assert fa["p"] == pytest.approx(scipy_stats.ttest_rel([80.0, 84.5, 81.0], [91.0, 93.5, 92.25]).pvalue)
    ss = summary["variants"]["ss"]["vs_baseline"]
    assert ss["seeds"] == [1, 2] and ss["mean"] == pytest.approx(((90.0 - 93.5) + (89.0 - 92.25)) / 2)
    assert "vs_baseline" not in summary["variants"]["bp"]


def test_one_value_has_no_sd_nor_interval():
    summary = summarise([{"variant": "a", "seed": 0, "status": "finished", "val_acc1": 50.0}])
    v = summary["variants"]["a"]
    assert (v["n"], v["mean"], v["sd"], v["ci_low"]) == (1, 50.0, None, None)


def fake_run(path, rule, seed, vals, summary=True):
    path.mkdir(parents=True)
    (path / "config.yaml").write_text(yaml.safe_dump({"name": path.name, "train": {"seed": seed}}))
    lines = [
        {"step": 3 * (i + 1), "kind": "val", "acc1": a, "loss": loss, "acc5": 99.0} for i, (a, loss) in enumerate(vals)
    ]
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    if summary:
        last = lines[-1]
        (path / "summary.json").write_text(
            json.dumps(
                {
                    "rule": rule,
                    "val_acc1": last["acc1"],
                    "val_loss": last["loss"],
                    "val_acc5": 99.0,
                    "steps": last["step"],
                    "wall_s": 1.5,
                }
            )
        )


def test_report_rebuilds_results_and_summary_from_run_folders(tmp_path, capsys):
    fake_run(tmp_path / "runs" / "bp0", "bp", 0, [(50.0, 1.0), (60.0, 0.8)])
    fake_run(tmp_path / "runs" / "bp1", "bp", 1, [(70.0, 0.7), (65.0, 0.9)])
    fake_run(tmp_path / "runs" / "fa0", "fa", 0, [(40.0, 1.2), (45.0, 1.1)])
    fake_run(tmp_path / "runs" / "fa1", "fa", 1, [(30.0, 1.5)], summary=False)  # interrupted: no summary
    folders = [str(tmp_path / "runs" / n) for n in ("bp0", "bp1", "fa0", "fa1")]
    assert main(["report", *folders, "--output", str(tmp_path / "rep")]) == 0
    with open(tmp_path / "rep" / "results.csv") as f:
        table = list(csv.DictReader(f))
    assert [(r["variant"], r["seed"], r["status"]) for r in table] == [
        ("bp", "0", "finished"),
        ("bp", "1", "finished"),
        ("fa", "0", "finished"),
        ("fa1", "1", "pending"),
    ]
    assert [float(r["best_val_acc1"]) for r in table] == [60.0, 70.0, 45.0, 30.0]
    assert [float(r["best_val_loss"]) for r in table] == [0.8, 0.7, 1.1, 1.5]
    summary = json.loads((tmp_path / "rep" / "summary.json").read_text())
    assert summary["variants"]["bp"]["mean"] == pytest.approx(62.5)
    assert summary["variants"]["fa"]["vs_baseline"]["mean"] == pytest.approx(45.0 - 60.0)
    assert "| bp | 2 | 62.500 |" in capsys.readouterr().out
    for name in ("metric_by_variant.png", "learning_curves.png"):
        assert (tmp_path / "rep" / "plots" / name).stat().st_size > 1000
    assert main(["report", str(tmp_path / "runs" / "bp0"), "--metric", "val_accuracy"]) == 2
    assert main(["report", str(tmp_path)]) == 2  # not a run, compare or sweep folder


def test_report_rebuilds_a_sweep_folder_from_its_trials(tmp_path):
    sweep = tmp_path / "sw"
    ids = ["000_rule=bp_s0", "001_rule=bp_s1", "002_rule=fa_s0", "003_rule=fa_s1"]
    accs = {"000_rule=bp_s0": 90.0, "001_rule=bp_s1": 94.0, "002_rule=fa_s0": 80.0, "003_rule=fa_s1": 85.0}
    for tid in ids:
        rule, seed = tid.split("=")[1].split("_")[0], int(tid[-1])
        fake_run(sweep / "trials" / tid, rule, seed, [(accs[tid] - 5, 1.0), (accs[tid], 0.5)])
        (sweep / "trials" / tid / "trial.json").write_text(
            json.dumps(
                {
                    "trial": tid,
                    "variant": f"rule={rule}",
                    "values": {"constraints.feedback.rule": rule},
                    "seed": seed,
                    "status": "finished",
                    "started_at": 1.0,
                    "finished_at": 2.0,
                }
            )
        )
    (sweep / "sweep.json").write_text(
        json.dumps(
            {
                "trials": ids,
                "sweep": {
                    "axes": {"constraints.feedback.rule": ["bp", "fa"]},
                    "metric": "val_acc1",
                    "baseline": "rule=fa",
                },
            }
        )
    )
    assert main(["report", str(sweep)]) == 0
    with open(sweep / "results.csv") as f:
        table = list(csv.DictReader(f))
    assert [(r["trial"], r["constraints.feedback.rule"], r["val_acc1"]) for r in table] == [
        (tid, tid.split("=")[1].split("_")[0], str(accs[tid])) for tid in ids
    ]
    summary = json.loads((sweep / "summary.json").read_text())
    assert summary["baseline"] == "rule=fa"  # from the sweep file
    d = summary["variants"]["rule=bp"]["vs_baseline"]
    assert d["seeds"] == [0, 1] and d["mean"] == pytest.approx(((90 - 80) + (94 - 85)) / 2)
