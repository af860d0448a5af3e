"""``table.md`` (the table docs/results.md quotes) against the rows it is made from: mean and min-max over the
finished trials computed here by hand, the seed count, each seed's value or fate (diverged, failed, pending), the
sweep file's extra columns, and the provenance line; ``biocircuits report`` writes it from a sweep folder."""

from __future__ import annotations

import json

from biocircuits.app.cli import main
from biocircuits.app.sweep.table import markdown_table, provenance

ROWS = [  # variant, seed, status, reason, val_acc1
    ("bp", 1, "finished", None, 93.5),
    ("bp", 0, "finished", None, 91.0),
    ("bp", 2, "finished", None, 92.25),
    ("dann", 0, "failed", "TrainingDiverged: non-finite loss at step 31", None),
    ("dann", 1, "finished", None, 90.0),
    ("dann", 2, "failed", "RuntimeError: out of memory", None),
    ("fa", 0, "pending", None, None),
]


def rows():
    return [
        {
            "variant": v,
            "seed": s,
            "status": st,
            "reason": r,
            "val_acc1": x,
            "wall_s": 60.0,
            "started_at": 100.0 + s,
            "finished_at": 400.0 + s if st == "finished" else None,
        }
        for v, s, st, r, x in ROWS
    ]


def test_each_variant_row_by_hand_with_its_columns():
    text = markdown_table(
        rows(),
        "val_acc1",
        {"bp": {"published": "30.4"}, "fa": {"published": "85.3", "note": "x"}},
        header="Sweep: here",
    )
    lines = text.splitlines()
    assert lines[:4] == [
        "Sweep: here",
        "",
        "| variant | val_acc1 mean | spread (min-max) | seeds | per seed | published | note |",
        "|---|---:|---:|---:|---|---|---|",
    ]
    bp_mean = (93.5 + 91.0 + 92.25) / 3
    assert lines[4] == f"| bp | {bp_mean:.2f} | 91.00-93.50 | 3 | 91.0, 93.5, 92.2 | 30.4 | - |"  # by seed
    assert lines[5] == "| dann | 90.00 | 90.00-90.00 | 3 | diverged, 90.0, failed | - | - |"
    assert lines[6] == "| fa | - | - | 1 | pending | 85.3 | x |"
    assert len(lines) == 7


def test_provenance_states_file_engine_machine_and_wall_time():
    record = {
        "sweep_file": "/abs/sweeps/x.yaml",
        "engine": "ray",
        "engine_version": "2.0",
        "machine": {"platform": "Linux-x86_64", "cpus": 2, "torch": "2.14.1"},
    }
    line = provenance(record, rows())
    # first start 100.0 (seed 0), last finish 402.0 (seed 2): 302 s; 7 x 60 s summed
    assert line == (
        "Sweep: `/abs/sweeps/x.yaml` on ray 2.0; machine: Linux-x86_64, 2 CPUs, torch 2.14.1; 7 trials "
        f"(4 finished); wall time {302 / 60:.1f} min (first start to last finish), 7.0 min summed over "
        "the trials."
    )


def test_report_writes_the_table_of_a_sweep_folder_with_its_columns(tmp_path):
    sweep = tmp_path / "sw"
    ids = ["000_bp_s0", "001_bp_s1", "002_fa_s0"]
    for tid, acc in zip(ids, (90.0, 94.0, 80.0), strict=True):
        run = sweep / "trials" / tid
        run.mkdir(parents=True)
        (run / "summary.json").write_text(json.dumps({"val_acc1": acc, "steps": 10, "wall_s": 6.0}))
        (run / "trial.json").write_text(
            json.dumps(
                {
                    "trial": tid,
                    "variant": tid.split("_")[1],
                    "values": {"variant": tid.split("_")[1]},
                    "seed": int(tid[-1]),
                    "status": "finished",
                    "started_at": 1.0,
                    "finished_at": 7.0,
                }
            )
        )
    variants = [{"name": "bp", "set": {}, "columns": {"published": "30.4 / 8.63"}}, {"name": "fa", "set": {}}]
    (sweep / "sweep.json").write_text(
        json.dumps(
            {
                "trials": ids,
                "sweep_file": "p.yaml",
                "engine": "ray",
                "sweep": {"variants": variants, "metric": "val_acc1"},
            }
        )
    )
    assert main(["report", str(sweep)]) == 0
    table = (sweep / "table.md").read_text()
    assert "| bp | 92.00 | 90.00-94.00 | 2 | 90.0, 94.0 | 30.4 / 8.63 |" in table
    assert "| fa | 80.00 | 80.00-80.00 | 1 | 80.0 | - |" in table and table.startswith("Sweep: `p.yaml` on ray")
