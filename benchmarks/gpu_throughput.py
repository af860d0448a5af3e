"""GPU training throughput: resnet18 and alexnet_bn on synthetic 224x224 data, batch 256, bf16 autocast,
channels_last, eager and torch.compile; plain autograd vs bp vs sign_symmetry vs fa vs Dale + sign_symmetry.

    python benchmarks/gpu_throughput.py --json gpu.json          # a few minutes on one H100/H200

Prints images/s (median of interleaved steps), the ratio to plain autograd, and peak GPU memory (one model
resident at a time) with its ratio. Targets: sign_symmetry and fa >= 0.97x bp's images/s, memory <= 1.05x.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import interleaved_medians, measure_memory  # noqa: E402
from feedback_step import build_step  # noqa: E402

from biocircuits.models import build_model  # noqa: E402

VARIANTS = {
    "plain autograd": None,
    "bp": {"feedback": {"rule": "bp"}},
    "sign_symmetry": {"feedback": {"rule": "sign_symmetry"}},
    "fa": {"feedback": {"rule": "fa"}},
    "dale+sign_symmetry": {"feedback": {"rule": "sign_symmetry"}, "dale": {"residual": "signed"}},
}


def bench(model_name: str, compiled: bool, args) -> dict:
    ns = argparse.Namespace(device=args.device, channels_last=True, compile=compiled, batch=args.batch, size=args.size,
                            amp=True)
    torch.manual_seed(0)
    base = build_model(model_name, (3, args.size, args.size), 1000, {})
    spec_of = {k: (None if v is None else json.loads(json.dumps(v))) for k, v in VARIANTS.items()}
    if model_name != "resnet18":
        spec_of["dale+sign_symmetry"]["dale"].pop("residual")
    t0 = time.perf_counter()
    steps = {name: build_step(copy.deepcopy(base), ns, spec) for name, spec in spec_of.items()}
    device = torch.device(args.device)
    medians = interleaved_medians(steps, device, args.warmup, args.reps)
    setup_s = time.perf_counter() - t0
    del steps
    _empty_cache(device)
    memory = {}
    for name, spec in spec_of.items():
        step = build_step(copy.deepcopy(base), ns, spec)
        step()
        memory[name] = measure_memory(step, device)
        del step
        _empty_cache(device)
    rows = {}
    for name in spec_of:
        ips = args.batch / medians[name]
        rows[name] = {"images_per_s": ips, "ratio_vs_plain": medians["plain autograd"] / medians[name],
                      "ratio_vs_bp": medians["bp"] / medians[name], "peak_mem_gib": memory[name] / 2**30,
                      "mem_ratio_vs_bp": memory[name] / memory["bp"]}
    return {"model": model_name, "compiled": compiled, "setup_and_timing_s": setup_s, "rows": rows}


def _empty_cache(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="resnet18,alexnet_bn")
    p.add_argument("--compile-models", default="resnet18", help="models also timed under torch.compile ('' for none)")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--reps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--json")
    p.add_argument("--device", default="cuda", help="cpu only for a smoke test of this script")
    args = p.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("gpu_throughput.py needs a CUDA GPU; on the CPU use benchmarks/feedback_step.py")
    torch.backends.cudnn.benchmark = True
    name = torch.cuda.get_device_name() if args.device == "cuda" else "cpu (smoke test)"
    print(f"{name}  torch {torch.__version__}  batch {args.batch}  {args.size}x{args.size}  "
          f"bf16 channels_last; median of {args.reps} interleaved steps", flush=True)
    results = []
    plan = [(m, False) for m in args.models.split(",") if m]
    plan += [(m, True) for m in args.compile_models.split(",") if m]
    for model_name, compiled in plan:
        res = bench(model_name, compiled, args)
        results.append(res)
        print(f"\n{model_name} ({'compiled' if compiled else 'eager'}; {res['setup_and_timing_s']:.0f} s)")
        print(f"{'variant':<22} {'images/s':>9} {'vs plain':>9} {'vs bp':>7} {'peak GiB':>9} {'mem vs bp':>10}")
        for name, r in res["rows"].items():
            print(f"{name:<22} {r['images_per_s']:9.0f} {r['ratio_vs_plain']:9.3f} {r['ratio_vs_bp']:7.3f} "
                  f"{r['peak_mem_gib']:9.2f} {r['mem_ratio_vs_bp']:10.3f}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"device": name, "torch": torch.__version__,
                                               "args": vars(args), "results": results}, indent=2))


if __name__ == "__main__":
    main()
