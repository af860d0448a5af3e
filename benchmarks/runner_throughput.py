"""Runner throughput on this machine: the quickstart's training images/s per rule relative to bp, the
ImageFolder loading rate on generated JPEGs, and the step time of a 2-process (torchrun, gloo) CPU run.

    python benchmarks/runner_throughput.py
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def quickstart(tmp: Path) -> dict[str, float]:
    out = {}
    for rule in ("bp", "sign_symmetry", "fa"):
        run = tmp / rule
        subprocess.run(
            [
                sys.executable,
                "-m",
                "biocircuits",
                "run",
                str(ROOT / "experiments" / "quickstart.yaml"),
                "--output",
                str(run),
                "--set",
                f"constraints.feedback.rule={rule}",
                "--set",
                "train.probe_every=null",
            ],
            check=True,
            capture_output=True,
        )
        rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
        out[rule] = statistics.median(r["images_per_s"] for r in rows if r["kind"] == "train")
    return out


def imagefolder_rate(tmp: Path, n: int = 600, size: int = 256, workers: int = 2) -> float:
    from biocircuits.config.experiment import DataSpec
    from biocircuits.data import build_data

    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for c in range(3):
            folder = tmp / "imnet" / split / f"c{c}"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n // 3 if split == "train" else 2):
                Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(folder / f"{i}.JPEG")
    bundle = build_data(DataSpec(name="imagefolder", root=str(tmp / "imnet"), image_size=224))
    loader = torch.utils.data.DataLoader(bundle.train, batch_size=64, num_workers=workers, shuffle=True)
    t0, count = time.perf_counter(), 0
    for x, _ in loader:
        count += len(x)
    return count / (time.perf_counter() - t0)


def ddp_step(tmp: Path) -> dict[str, float]:
    exp = tmp / "ddp.yaml"
    exp.write_text(
        "name: ddp\nconstraints: sign_symmetry.yaml\ndata: {name: mnist5k}\n"
        "model: {name: convnet, kwargs: {channels: [16, 32], hidden: 64}}\n"
        "train: {steps: 40, batch_size: 64, log_every: 10, eval_every: 1000}\n"
    )
    out = {}
    for nproc in (1, 2):
        run = tmp / f"ddp{nproc}"
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc_per_node={nproc}",
            "-m",
            "biocircuits",
            "run",
            str(exp),
            "--output",
            str(run),
        ]
        subprocess.run(cmd, check=True, capture_output=True, cwd=ROOT)
        rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if '"train"' in x][1:]
        out[nproc] = statistics.median(64 / r["compute_images_per_s"] * 1e3 for r in rows)
    return out


def main() -> None:
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        qs = quickstart(tmp)
        print("quickstart training images/s (median of log rows):")
        for rule, ips in qs.items():
            print(f"  {rule:<14} {ips:8.0f}  {ips / qs['bp']:.3f}x bp")
        for workers in (0, 2):
            print(
                f"imagefolder, 256x256 JPEGs -> 224 crops, {workers} workers: "
                f"{imagefolder_rate(tmp / f'w{workers}', workers=workers):.0f} images/s"
            )
        steps = ddp_step(tmp)
        print(
            f"convnet on mnist5k, global batch 64: compute step {steps[1]:.1f} ms in 1 process, "
            f"{steps[2]:.1f} ms with 2 processes (torchrun, gloo)"
        )


if __name__ == "__main__":
    main()
