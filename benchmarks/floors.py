"""Each cheap variant's floor on this machine: the irreducible extra work of the variant, timed alone and interleaved
with a plain resnet18 training step, as a share of that step (issue #27).

    python benchmarks/floors.py            # CPU, resnet18 64x64, batch 32, 2 threads, 21 interleaved rounds
    python benchmarks/floors.py --quick    # 7 rounds (under a minute on 2 quiet cores)

Every round times, in a fresh random order, the plain step, the full variants (each its own model copy, SGD with
momentum 0.9 and weight decay 1e-4 bound to the hooks) and the floor pieces at resnet18's shapes:

- sign_symmetry: one ``sign`` pass over all 21 layers' W into existing buffers (and a plain ``copy_`` pass, the
  memory-bandwidth reference; and the sign as foreach ops, which have no ``out=``: a copy, then ``sign_``);
- kolen_pollack: B's SGD step with momentum and decay, four passes per layer (u = g + lambda B into scratch memory,
  m = mu m, m += u, B -= eta m), and the same passes in two other orders (foreach ops over all layers, one op after
  another; per layer in cache-sized blocks);
- DANN: per DANN layer the three products (``addmm`` forward, two ``mm`` backward), then SGD with momentum and decay
  on W_IE and W_EI (the extra 12% of parameters) and the projection of W_EE, W_IE and W_EI onto >= 0;
- error_noise: the normal draws of every layer's error (about 6.5M values at this size), one generator per layer
  seeded as the error pathway seeds it (and the same draws split over two threads, the layers' generators being
  independent); error_quantization: the uniform draws. The transforms' whole work on the
  same errors is timed too (what lies above the draws).

The floor ratio of a variant is 1 + (its pieces' medians) / (its reference step's median); the measured ratio is the
full variant's median step over its reference's, with a bootstrap 95% CI of that ratio of medians (the interleaved
rounds resampled, paired). Timings on a loaded machine are noise: the script prints the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import NamedTuple

sys.path.insert(0, str(Path(__file__).resolve().parent))
import torch  # noqa: E402
from common import CLOCKS, bootstrap_ratio_ci, clock_argument, interleaved_times  # noqa: E402
from floor_pieces import DANN_BP, pieces  # noqa: E402
from variant_copies import build_step  # noqa: E402  (puts this checkout on sys.path)

import biocircuits  # noqa: E402
from biocircuits.models import build_model  # noqa: E402

SS = {"feedback": {"rule": "sign_symmetry"}}


class Variant(NamedTuple):
    """A full variant: its spec, the step it is timed against, the issue's target, its floor pieces, and the measured
    variant whose ratio its floor adds to (``base``: the converted layer's own cost, e.g. fa's custom autograd op
    and stored B under sign symmetry; None: the reference already has it)."""

    spec: dict | None
    vs: str
    target: float | None = None
    pieces: tuple[str, ...] = ()
    base: str | None = None


VARIANTS: dict[str, Variant] = {
    "plain autograd": Variant(None, "plain autograd"),
    "bp": Variant({"feedback": {"rule": "bp"}}, "plain autograd"),
    "fa": Variant({"feedback": {"rule": "fa"}}, "plain autograd"),
    "sign_symmetry": Variant(SS, "plain autograd", 1.03, ("sign pass",), "fa"),
    "kolen_pollack": Variant({"feedback": {"rule": "kolen_pollack"}}, "plain autograd", 1.05, ("B's SGD step",), "fa"),
    "dann + bp": Variant(DANN_BP, "plain autograd", 1.15, ("DANN products", "DANN SGD + projection"), "bp"),
    "error_noise 0.1 + sign_symmetry": Variant(
        {**SS, "phases": {"error_noise": 0.1}}, "sign_symmetry", 1.10, ("normal draws",)
    ),
    "error_quantization 16 + sign_symmetry": Variant(
        {**SS, "phases": {"error_quantization": 16}}, "sign_symmetry", 1.10, ("uniform draws",)
    ),
}


def arguments() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="resnet18")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--reps", type=int, default=21, help="interleaved rounds")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--quick", action="store_true", help="7 rounds, one warm-up round")
    clock_argument(p)
    p.add_argument("--json", help="write the results here")
    p.set_defaults(device="cpu", channels_last=False, amp=False)
    return p


def main(argv: list[str] | None = None) -> dict:
    args = arguments().parse_args(argv)
    if args.quick:
        args.reps, args.warmup = 7, 1
    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        torch.manual_seed(0)
        base = build_model(args.model, (3, args.size, args.size), 1000, {})
        x = torch.randn(args.batch, 3, args.size, args.size)
        parts = pieces(base, x)
        steps = {name: build_step(base, args, v.spec) for name, v in VARIANTS.items()}
        load = [os.getloadavg()]
        start = time.perf_counter()
        clock = CLOCKS[args.clock]
        timed = steps | {n: f for n, (f, _, _) in parts.items()}
        times = interleaved_times(timed, x.device, args.warmup, args.reps, clock)
        load.append(os.getloadavg())
        result = summarise(args, times, parts, load, time.perf_counter() - start)
    finally:
        torch.set_num_threads(threads)
    print_tables(args, result)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return result


def summarise(args, times: dict[str, list[float]], parts: dict, load: list, seconds: float) -> dict:
    med = {name: statistics.median(t) for name, t in times.items()}
    piece_rows = {}
    for name, (_, values, what) in parts.items():
        ref = "sign_symmetry" if "draws" in name or "transform" in name else "plain autograd"
        piece_rows[name] = {
            "what": what,
            "ms": med[name] * 1e3,
            "values": values,
            "ns_per_value": med[name] * 1e9 / values,
            "share": med[name] / med[ref],
            "of": ref,
        }
    variant_rows = {}
    for name, v in VARIANTS.items():
        if name == "plain autograd":
            continue
        share = sum(med[p] for p in v.pieces) / med[v.vs]
        base = med[v.base] / med[VARIANTS[v.base].vs] if v.base else 1.0
        variant_rows[name] = {
            "vs": v.vs,
            "step_ms": med[name] * 1e3,
            "floor_share": share,
            "floor_ratio": 1.0 + share,
            "base": v.base,
            "floor_on_base": base + share,
            "measured_ratio": med[name] / med[v.vs],
            "ci95": bootstrap_ratio_ci(times[name], times[v.vs]),
            "target": v.target,
            "pieces": list(v.pieces),
        }
    return {
        "args": vars(args),
        "load_average": load,
        "seconds": seconds,
        "plain_ms": med["plain autograd"] * 1e3,
        "pieces": piece_rows,
        "variants": variant_rows,
        "times": times,
    }


def print_tables(args, result: dict) -> None:
    before, after = result["load_average"]
    print(
        f"\nfloors: {args.model} {args.size}x{args.size}, batch {args.batch}, {args.threads} threads, median of "
        f"{args.reps} interleaved rounds ({args.clock} clock, {result['seconds']:.0f} s); plain step "
        f"{result['plain_ms']:.1f} ms; load average {before[0]:.1f} before, {after[0]:.1f} after; torch "
        f"{torch.__version__}, biocircuits from {Path(biocircuits.__file__).parent}\n"
    )
    print("| floor piece | what | ms | values | ns / value | share of |")
    print("| --- | --- | ---: | ---: | ---: | --- |")
    for name, r in result["pieces"].items():
        print(
            f"| {name} | {r['what']} | {r['ms']:.2f} | {r['values'] / 1e6:.2f}M | {r['ns_per_value']:.3f} | "
            f"{r['share']:.3f} of {r['of']} |"
        )
    print(
        "\n| variant | vs | floor pieces | floor ratio | floor + converted layer (measured) | measured ratio "
        "| 95% CI (bootstrap, median) | target |"
    )
    print("| --- | --- | --- | ---: | ---: | ---: | --- | ---: |")
    for name, r in result["variants"].items():
        lo, hi = r["ci95"]
        on_base = (
            f"{r['floor_on_base']:.3f} ({r['base']} {r['floor_on_base'] - r['floor_share']:.3f})" if r["base"] else ""
        )
        target = f"<= {r['target']:.2f}" if r["target"] else ""
        print(
            f"| {name} | {r['vs']} | {' + '.join(r['pieces'])} | {r['floor_ratio']:.3f} | {on_base} | "
            f"{r['measured_ratio']:.3f} | {lo:.3f}-{hi:.3f} | {target} |"
        )


if __name__ == "__main__":
    main()
