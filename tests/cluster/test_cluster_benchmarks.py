"""The cluster benchmarks run against the current interfaces at their ``--smoke`` size on the CPU (the figures come
from the documented commands): every data path of ``data_throughput.py``; every rule, Dale preset (DANN included)
and the JPEG data path of ``gpu_throughput.py``, with its table rows."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

import data_throughput  # noqa: E402
import gpu_throughput  # noqa: E402


def test_data_throughput_measures_every_cpu_path():
    rows = data_throughput.main(["--smoke"])["rows"]
    assert {"imagefolder_pil", "pil_decode_only", "shards_pil", "torchvision_io_cpu", "decode_gpu"} == set(rows)
    assert all(rows[k]["images_per_s"] > 0 for k in rows if k != "decode_gpu")
    assert rows["decode_gpu"]["images_per_s"] is None and "no CUDA" in rows["decode_gpu"]["where"]


def test_gpu_throughput_smoke_covers_every_rule_and_preset(tmp_path):
    out = gpu_throughput.main(["--smoke", "--markdown", str(tmp_path / "rows.md")])
    synthetic = next(r for r in out["results"] if r["data"] == "synthetic")["rows"]
    presets = {f"preset {p.stem}" for p in (ROOT / "constraints").glob("dale*.yaml")}
    assert {"preset dale_dann", "preset dale_dann_sign_symmetry"} <= presets
    assert {"plain autograd", *gpu_throughput.RULES, *presets} == set(synthetic)
    assert not [k for k, r in synthetic.items() if "error" in r], synthetic
    assert all(r["images_per_s"] > 0 and r["peak_mem_gib"] > 0 for r in synthetic.values())
    jpeg = next(r for r in out["results"] if r["data"] == "jpeg decode cpu")["rows"]
    assert set(jpeg) == set(gpu_throughput.DEFAULT_JPEG.split(",")) and all(
        r["images_per_s"] > 0 for r in jpeg.values()
    )
    table = (tmp_path / "rows.md").read_text().splitlines()
    assert table[0].startswith("| model | mode | data | variant | images/s |")
    assert len(table) == 2 + len(synthetic) + len(jpeg)
    bp_row = next(line for line in table if "| synthetic | bp |" in line)
    assert bp_row.split("|")[7].strip() == "1.000"  # bp against itself
