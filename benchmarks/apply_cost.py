"""What ``bc.apply`` costs against model size (issue #27): wall time, peak memory during the conversion and the
memory the converted model keeps, for resnet18 -> resnet152, vit_b_16 and densenet201 (torchvision, weights=None).

    python benchmarks/apply_cost.py            # 5 models x 4 presets, one fresh process each (a few minutes)
    python benchmarks/apply_cost.py --quick    # resnet18 and resnet50 only (under 1 min on 2 quiet cores)

Each (model, preset) runs in a fresh Python process, so one conversion's allocations do not hide the next one's.
In it: convert a tiny conv net first (imports and set-up), build the model (1000 classes), then time
``bc.apply(model, preset)``. Memory is the process's resident set (Linux ``/proc/self/status``): the peak (VmHWM,
reset just before the call through ``/proc/self/clear_refs``) less the resident size before the call, and what
stays: the resident size after less before. ``kept (tensors)`` counts storages instead: parameters, buffers and
what the converted layers and attachments hold (``held_tensors.py``), after less before. A preset that refuses a
model (e.g. a layer type it cannot convert) gets its error message in the table.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import FIGURES, command_line  # noqa: E402

MODELS = ("resnet18", "resnet50", "resnet152", "vit_b_16", "densenet201")
QUICK_MODELS = ("resnet18", "resnet50")
PRESETS = {
    "sign_symmetry": "sign_symmetry.yaml",
    "fa": "feedback_alignment.yaml",
    "dale (project, bp)": "dale.yaml",
    "dann (bp)": "dale_dann.yaml",
}


def _status_kb(field: str) -> int:
    return int(re.search(rf"{field}:\s+(\d+)", Path("/proc/self/status").read_text()).group(1))


def measure_one(model_name: str, preset: str) -> dict:
    """In this process: build ``model_name``, convert it with ``preset`` and return the figures (see the module
    docstring); ``error`` instead of the figures when ``bc.apply`` refuses."""
    import torchvision
    from held_tensors import model_state_bytes

    import biocircuits as bc

    warm = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.Conv2d(8, 8, 3), torch.nn.Flatten())
    try:  # the first call's lazy imports and set-up are not the conversion's cost
        bc.apply(warm, preset)
    except Exception:  # noqa: BLE001  a preset that refuses the tiny model still warms up
        pass
    torch.manual_seed(0)
    model = torchvision.models.get_model(model_name, weights=None, num_classes=1000)
    params = sum(p.numel() for p in model.parameters())
    state_before = model_state_bytes(model)
    rss_before = _status_kb("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
    t0, cpu0 = time.perf_counter(), time.process_time()
    try:
        bc.apply(model, preset)
    except Exception as err:  # a refusal is a result: report it
        return {"params_m": params / 1e6, "error": f"{type(err).__name__}: {str(err).splitlines()[0]}"}
    seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    peak = _status_kb("VmHWM")
    return {
        "params_m": params / 1e6,
        "apply_s": seconds,
        "apply_cpu_s": cpu,  # all threads' CPU time: steadier than the wall time on a shared machine
        "peak_mb": (peak - rss_before) / 1024,
        "kept_rss_mb": (_status_kb("VmRSS") - rss_before) / 1024,
        "kept_tensors_mb": (model_state_bytes(model) - state_before) / 2**20,
        "layers": len(bc.feedback_layers(model)),
    }


def run_child(model_name: str, preset: str) -> dict:
    done = subprocess.run(
        [sys.executable, __file__, "--child", model_name, preset], capture_output=True, text=True, timeout=900
    )
    if done.returncode != 0:
        return {"error": (done.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def markdown(rows: list[dict], header: str) -> str:
    lines = [
        header,
        "",
        "| model | params (M) | preset | layers | apply s | CPU s | peak MB (RSS) | kept MB (RSS) | kept MB (tensors) "
        "|",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        head = f"| {r['model']} | {r.get('params_m', float('nan')):.1f} | {r['preset']} |"
        if "error" in r:
            lines.append(f"{head} refused: {r['error'][:120]} | | | | | |")
        else:
            lines.append(
                f"{head} {r['layers']} | {r['apply_s']:.2f} | {r['apply_cpu_s']:.2f} | {r['peak_mb']:.0f} | "
                f"{r['kept_rss_mb']:.0f} | {r['kept_tensors_mb']:.0f} |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="resnet18 and resnet50 only")
    p.add_argument("--models", nargs="+", help="torchvision model names (default: the five above)")
    p.add_argument("--presets", nargs="+", choices=list(PRESETS), metavar="NAME", default=list(PRESETS))
    p.add_argument("--out", type=Path, default=FIGURES, help="folder for apply_cost.{json,md}")
    p.add_argument("--child", nargs=2, metavar=("MODEL", "PRESET"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(measure_one(*args.child)))
        return []
    models = args.models or (QUICK_MODELS if args.quick else MODELS)
    rows, t0, load = [], time.perf_counter(), os.getloadavg()[0]
    for model_name in models:
        for name in args.presets:
            rows.append({"model": model_name, "preset": name, **run_child(model_name, PRESETS[name])})
            print(f"{model_name} {name}: {rows[-1]}", file=sys.stderr)
    header = (
        f"`{command_line('apply_cost.py', argv)}` — torch {torch.__version__}, CPU, one fresh process per row, "
        f"{time.perf_counter() - t0:.0f} s in all; load average (1 min) {load:.1f} before, "
        f"{os.getloadavg()[0]:.1f} after"
    )
    text = markdown(rows, header)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "apply_cost.json").write_text(json.dumps(rows, indent=2) + "\n")
    (args.out / "apply_cost.md").write_text(text)
    return rows


if __name__ == "__main__":
    main()
