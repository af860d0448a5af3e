"""How the cost of each rule and Dale variant grows with the work (issue #27): step time and memory of resnet18
against plain autograd, one axis at a time around 64x64, batch 32, width x1.

    python benchmarks/cost_scaling.py                  # full grid, CPU (about 10 min on 2 quiet cores)
    python benchmarks/cost_scaling.py --quick          # 5 of the 9 points (about 2 min)
    python benchmarks/cost_scaling.py --device cuda --reps 10

Axes: batch 8, 32, 128, 256; resnet18 channel widths x0.5, x1, x2 (every conv and the classifier scaled); image size
32, 64, 128, 224. Each point builds one separate model copy per variant (plus a second plain copy, whose ratio is
this machine's noise floor) and times full training steps (forward, cross-entropy, backward, SGD with momentum
and weight decay) with the variants taking turns in a fresh random order each round. ``ratio`` is the median over
rounds of (variant step / plain step in the same round).

Memory (CPU): the step's "peak" proxy is the bytes autograd saves for backward (distinct storages) plus the bytes
the model keeps between steps (parameters, gradients, buffers, what the converted layers and their attachments
hold: ``held_tensors.py``, and the optimiser's state). On CUDA: ``torch.cuda.max_memory_allocated`` of one step.

Writes ``docs/figures/cost_scaling.{csv,md,png}`` (``--out`` elsewhere) and prints the Markdown tables.
"""

from __future__ import annotations

import argparse
import copy
import csv
import gc
import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock, ResNet

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import FIGURES, SavedBytes, command_line, measure_memory, sync  # noqa: E402
from held_tensors import model_state_bytes  # noqa: E402

import biocircuits as bc  # noqa: E402

SS = {"feedback": {"rule": "sign_symmetry"}}
VARIANTS: dict[str, dict | None] = {
    "plain autograd (copy 2)": None,
    "bp": {"feedback": {"rule": "bp"}},
    "fa": {"feedback": {"rule": "fa"}},
    "sign_symmetry": SS,
    "kolen_pollack": {"feedback": {"rule": "kolen_pollack"}},
    # the mirror every step (the schedule before #27's new defaults: a median of single steps would hide a period)
    "weight_mirror": {"feedback": {"rule": "weight_mirror", "options": {"samples": 32, "mirror_every": 1}}},
    "dale_project+sign_symmetry": {**SS, "dale": {"enforce": "project"}},
    "dale_dann+bp": {"feedback": {"rule": "bp"}, "dale": {"architecture": "dann"}},
    "dale_softplus+sign_symmetry": {**SS, "dale": {"enforce": "softplus"}},
    "error_noise 0.1+sign_symmetry": {**SS, "phases": {"error_noise": 0.1}},
    "error_quantization 16+sign_symmetry": {**SS, "phases": {"error_quantization": 16}},
}
REFERENCE = "plain autograd"
BASE = {"batch": 32, "width": 1.0, "size": 64}
AXES = {"batch": (8, 32, 128, 256), "width": (0.5, 1.0, 2.0), "size": (32, 64, 128, 224)}
QUICK_AXES = {"batch": (8, 32, 128), "width": (0.5, 1.0), "size": (32, 64)}


def resnet18_width(width: float, num_classes: int = 1000) -> nn.Module:
    """torchvision's resnet18 (``ResNet(BasicBlock, [2, 2, 2, 2])``) with every stage's channels scaled by ``width``
    (64, 128, 256, 512 -> round(c * width)); torchvision's init (Kaiming-normal convs, BN gain 1, bias 0)."""
    planes = [max(1, round(c * width)) for c in (64, 128, 256, 512)]
    model = ResNet(BasicBlock, [2, 2, 2, 2], num_classes=num_classes)
    model.inplanes = planes[0]
    model.conv1 = nn.Conv2d(3, planes[0], kernel_size=7, stride=2, padding=3, bias=False)
    model.bn1 = nn.BatchNorm2d(planes[0])
    model.layer1 = model._make_layer(BasicBlock, planes[0], 2)
    model.layer2 = model._make_layer(BasicBlock, planes[1], 2, stride=2)
    model.layer3 = model._make_layer(BasicBlock, planes[2], 2, stride=2)
    model.layer4 = model._make_layer(BasicBlock, planes[3], 2, stride=2)
    model.fc = nn.Linear(planes[3], num_classes)
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    return model


def grid(axes: dict[str, tuple]) -> list[dict]:
    """The points: the base point once and each axis's other values with the other two at the base, cheapest first
    (work ~ batch x width^2 x size^2), so a run stopped early has covered every axis's small end."""
    points = [dict(BASE)]
    for axis, values in axes.items():
        points += [{**BASE, axis: v} for v in values if v != BASE[axis]]
    return sorted(points, key=lambda p: p["batch"] * p["width"] ** 2 * p["size"] ** 2)


class Run:
    """One variant's model, optimiser and batch at one point; ``step()`` is a full training step."""

    def __init__(self, base: nn.Module, spec: dict | None, x: torch.Tensor, y: torch.Tensor) -> None:
        self.model = copy.deepcopy(base)
        if spec is not None:
            bc.apply(self.model, spec)
        self.model.to(x.device)
        self.opt = torch.optim.SGD(self.model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
        if spec is not None:
            bc.bind(self.opt, self.model)
        self.x, self.y = x, y

    def step(self) -> None:
        self.opt.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(self.model(self.x), self.y).backward()
        self.opt.step()

    def memory(self, device: torch.device) -> tuple[float, float]:
        """(peak-memory proxy, saved-for-backward) bytes of one step: see the module docstring."""
        if device.type == "cuda":
            return measure_memory(self.step, device), float("nan")
        saved = SavedBytes()
        with torch.autograd.graph.saved_tensors_hooks(saved.pack, saved.unpack):
            self.step()
        return float(saved.total + model_state_bytes(self.model, self.opt)), float(saved.total)


def interleaved_ratios(
    steps: dict[str, Callable[[], None]], reference: str, device: torch.device, warmup: int, reps: int
) -> dict[str, tuple[float, float]]:
    """{name: (median seconds, median over rounds of seconds / the reference's seconds in that round)}, the
    variants taking turns in a fresh random order each round (so drift and position favour none)."""
    for _ in range(warmup):
        for fn in steps.values():
            fn()
    times: dict[str, list[float]] = {k: [] for k in steps}
    names, order = list(steps), random.Random(0)
    for _ in range(reps):
        order.shuffle(names)
        for name in names:
            sync(device)
            t0 = time.perf_counter()
            steps[name]()
            sync(device)
            times[name].append(time.perf_counter() - t0)
    ref = times[reference]
    return {
        k: (statistics.median(v), statistics.median(t / r for t, r in zip(v, ref, strict=True)))
        for k, v in times.items()
    }


def measure_point(point: dict, args, device: torch.device) -> list[dict]:
    """Rows (one per variant) of one grid point."""
    torch.manual_seed(0)
    base = resnet18_width(point["width"])
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(point["batch"], 3, point["size"], point["size"], generator=gen).to(device)
    y = torch.randint(0, 1000, (point["batch"],), generator=gen).to(device)
    specs = {REFERENCE: None, **{name: spec for name, spec in VARIANTS.items() if name in args.variants}}
    load_before = os.getloadavg()[0]
    if args.reps == 0:  # memory only: one model resident at a time (bc.bind's hooks make cycles: collect them)
        memory = {}
        for name, spec in specs.items():
            memory[name] = Run(base, spec, x, y).memory(device)
            gc.collect()
        timed = {name: (float("nan"), float("nan")) for name in specs}
    else:
        runs = {name: Run(base, spec, x, y) for name, spec in specs.items()}
        for _ in range(args.warmup - 1):
            for run in runs.values():
                run.step()
        memory = {name: run.memory(device) for name, run in runs.items()}  # the last warm-up round
        timed = interleaved_ratios({n: r.step for n, r in runs.items()}, REFERENCE, device, 0, args.reps)
    load_after = os.getloadavg()[0]
    rows = []
    for name, (seconds, ratio) in timed.items():
        peak, saved = memory[name]
        rows.append(
            {
                **point,
                "variant": name,
                "step_ms": seconds * 1e3,
                "ratio": ratio,
                "memory_mb": peak / 2**20,
                "memory_ratio": peak / memory[REFERENCE][0],
                "saved_mb": saved / 2**20,
                "load1": (load_before + load_after) / 2,
            }
        )
    return rows


def axis_rows(rows: list[dict], axis: str, values: tuple) -> dict[float, dict[str, dict]]:
    """{axis value: {variant: row}} for the points on ``axis`` (the base point included)."""
    out: dict[float, dict[str, dict]] = {}
    for v in values:
        point = {**BASE, axis: v}
        out[v] = {r["variant"]: r for r in rows if all(r[k] == point[k] for k in BASE)}
    return {v: got for v, got in out.items() if got}


def markdown(rows: list[dict], axes: dict[str, tuple], header: str) -> str:
    """One table per axis: each variant's step-time ratio / memory ratio against plain autograd at each value, and
    plain autograd's own step time and memory."""
    unit = {"batch": "batch {}", "width": "x{}", "size": "{}px"}
    parts = [header]
    for axis, values in axes.items():
        table = axis_rows(rows, axis, values)
        if not table:
            continue
        cols = list(table)
        parts.append(
            f"\n**{axis}** (others at {BASE['size']}x{BASE['size']}, batch {BASE['batch']}, x1 unless moved); "
            "cells: step-time ratio / memory ratio against plain autograd\n"
        )
        parts.append("| variant | " + " | ".join(unit[axis].format(v) for v in cols) + " |")
        parts.append("| --- | " + " | ".join("---:" for _ in cols) + " |")
        ref = [table[v][REFERENCE] for v in cols]
        parts.append(
            "| plain autograd: step ms / memory MB | "
            + " | ".join(f"{r['step_ms']:.0f} / {r['memory_mb']:.0f}".replace("nan", "-") for r in ref)
            + " |"
        )
        for name in [n for n in table[cols[0]] if n != REFERENCE]:
            cells = [table[v].get(name) for v in cols]
            parts.append(
                f"| {name} | "
                + " | ".join(
                    f"{c['ratio']:.3f} / {c['memory_ratio']:.3f}".replace("nan", "-") if c else "" for c in cells
                )
                + " |"
            )
        loads = ", ".join(f"{table[v][REFERENCE]['load1']:.1f}" for v in cols)
        parts.append(f"\nload average (1 min) during each point: {loads}")
    return "\n".join(parts) + "\n"


def plot(rows: list[dict], axes: dict[str, tuple], path: Path) -> None:
    """Step-time ratio (top; left out of a memory-only run) and memory ratio (bottom) against each axis, one line per
    variant."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [k for k in ("ratio", "memory_ratio") if any(r[k] == r[k] for r in rows)]  # nan != nan: not measured
    fig, grid_axes = plt.subplots(len(keys), len(axes), figsize=(5 * len(axes), 4 * len(keys)), squeeze=False)
    names = [n for n in dict.fromkeys(r["variant"] for r in rows) if n != REFERENCE]
    colours = plt.get_cmap("tab20").colors
    for col, (axis, values) in enumerate(axes.items()):
        table = axis_rows(rows, axis, values)
        xs = list(table)
        for row, key in enumerate(keys):
            ax = grid_axes[row][col]
            for i, name in enumerate(names):
                ys = [table[v][name][key] if name in table[v] else float("nan") for v in xs]
                style = {"color": "black", "linestyle": "--"} if name.startswith(REFERENCE) else {"color": colours[i]}
                ax.plot(xs, ys, marker="o", label=name, **style)
            ax.axhline(1.0, color="black", linewidth=0.8)
            if len(xs) > 1:  # a run stopped early may have one point on an axis
                ax.set_xscale("log", base=2)
            ax.set_xticks(xs, [str(v) for v in xs])
            ax.minorticks_off()
            ax.set_xlabel(axis)
            ax.set_ylabel("step time / plain" if key == "ratio" else "memory / plain")
    fig.legend(*grid_axes[0][0].get_legend_handles_labels(), fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.suptitle("resnet18: cost against plain autograd, one axis at a time around 64x64, batch 32, x1")
    fig.tight_layout()
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)


def write_csv(rows: list[dict], path: Path) -> None:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="batch 8-128, width x0.5-x1, size 32-64")
    p.add_argument("--device", default="cpu")
    p.add_argument("--reps", type=int, default=3, help="timed rounds per point (0: memory only, one model at a time)")
    p.add_argument("--warmup", type=int, default=1, help="untimed rounds per point (the last one measures memory)")
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS), metavar="NAME")
    p.add_argument("--axes", nargs="+", choices=list(AXES), help="only these axes (default: all three)")
    p.add_argument("--out", type=Path, default=FIGURES, help="folder for cost_scaling.{csv,md,png}")
    args = p.parse_args(argv)
    axes = QUICK_AXES if args.quick else AXES
    axes = {a: v for a, v in axes.items() if args.axes is None or a in args.axes}
    device = torch.device(args.device)
    rows: list[dict] = []
    points = grid(axes)
    t0 = time.perf_counter()
    args.out.mkdir(parents=True, exist_ok=True)
    for i, point in enumerate(points):
        rows += measure_point(point, args, device)
        print(f"[{i + 1}/{len(points)}] {point} done at {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        header = (
            f"`{command_line('cost_scaling.py', argv)}` — resnet18 on {args.device}, torch {torch.__version__}, "
            f"{torch.get_num_threads()} threads, median of {args.reps} interleaved rounds ({args.warmup} warm-up); "
            f"{i + 1} of {len(points)} points, {time.perf_counter() - t0:.0f} s"
        )
        text = markdown(
            rows, axes, header
        )  # after every point: a run stopped early keeps its table (the plot: at the end)
        write_csv(rows, args.out / "cost_scaling.csv")
        (args.out / "cost_scaling.md").write_text(text)
    plot(rows, axes, args.out / "cost_scaling.png")
    print(text)
    return rows


if __name__ == "__main__":
    main()
