"""Full training step (forward, backward, SGD step) of resnet18 for each feedback rule against plain autograd.

    python benchmarks/feedback_step.py                       # CPU: 64x64, batch 32
    python benchmarks/feedback_step.py --dale                # + Dale variants (column signs, DANN, synapse-class
                                                             #   plasticity) against the same rule
    python benchmarks/feedback_step.py --learned             # + kolen_pollack, dfa, weight_mirror
    python benchmarks/feedback_step.py --cheap               # issue #27's cheap rules: sign_symmetry, kolen_pollack,
                                                             #   abs/softplus Dale, error_noise, error_quantization
    python benchmarks/feedback_step.py --cheap --quick       # the same, 5 interleaved steps (about a minute)
    python benchmarks/feedback_step.py --cheap --steps 41    # 41 interleaved steps (a narrower CI)
    python benchmarks/feedback_step.py --device cuda --amp --channels-last --size 224 --batch 256

Prints (a Markdown table) the median step time of interleaved runs and its ratio to plain autograd (1.00 is the
limit: a rule has backprop's FLOPs) with a bootstrap 95% CI of that ratio of medians (the interleaved rounds
resampled with replacement, each round's pair of steps kept together), and the memory ratio (peak GPU memory on
CUDA; saved-for-backward bytes on the CPU).
By default the timed variants share one model's tensors (``shared_weights.py``); ``--separate-models``
times one model copy per variant instead. The reparametrised Dale variants (abs, softplus) change the
module structure, so they are always separate copies, timed against a separate sign_symmetry copy.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import sys
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    CLOCKS,
    bootstrap_ratio_ci,
    clock_argument,
    interleaved_times,
    measure_memory,
    synthetic_batch,
    training_step,
)
from shared_weights import shared_steps  # noqa: E402

import biocircuits as bc  # noqa: E402
from biocircuits.models import build_model  # noqa: E402

VARIANTS = {
    "bp": {"feedback": {"rule": "bp"}},
    "fa": {"feedback": {"rule": "fa"}},
    "sign_symmetry": {"feedback": {"rule": "sign_symmetry"}},
}
# issue #27's cheap variants, each on its own model copy, against a separate copy of their reference
SS = {"feedback": {"rule": "sign_symmetry"}}
CHEAP_VARIANTS = {
    "kolen_pollack": ({"feedback": {"rule": "kolen_pollack"}}, "plain autograd (separate copy)"),
    "dale_abs+sign_symmetry": ({**SS, "dale": {"enforce": "abs"}}, "sign_symmetry (separate copy)"),
    "dale_softplus+sign_symmetry": ({**SS, "dale": {"enforce": "softplus"}}, "sign_symmetry (separate copy)"),
    "error_noise 0.1+sign_symmetry": ({**SS, "phases": {"error_noise": 0.1}}, "sign_symmetry (separate copy)"),
    "error_quantization 16+sign_symmetry": (
        {**SS, "phases": {"error_quantization": 16}},
        "sign_symmetry (separate copy)",
    ),
}
# the targets (ratio to the reference)
TARGETS = {
    "sign_symmetry": 1.03,
    "kolen_pollack": 1.05,
    "dale_abs+sign_symmetry": 1.10,
    "dale_softplus+sign_symmetry": 1.10,
    "error_noise 0.1+sign_symmetry": 1.10,
    "error_quantization 16+sign_symmetry": 1.10,
}
# the rules after sign symmetry, each on its own model copy (their hooks and buffers differ), against a separate
# plain-autograd copy
LEARNED_VARIANTS = {
    "kolen_pollack": {"feedback": {"rule": "kolen_pollack"}},
    "dfa": {"feedback": {"rule": "dfa"}},
    "weight_mirror (32 draws every step)": {
        "feedback": {"rule": "weight_mirror", "options": {"samples": 32, "mirror_every": 1}}
    },
}
DALE_VARIANTS = {
    "dale_project+sign_symmetry": ("sign_symmetry", {"dale": {"enforce": "project"}}),
    "dale_exp_gradient+sign_symmetry": ("sign_symmetry", {"dale": {"enforce": "exp_gradient"}}),
    "dale_abs+sign_symmetry": ("sign_symmetry", {"dale": {"enforce": "abs"}}),
    "dale_softplus+sign_symmetry": ("sign_symmetry", {"dale": {"enforce": "softplus"}}),
    "dale_project+plasticity+sign_symmetry": (
        "sign_symmetry",
        {
            "dale": {"enforce": "project"},
            "plasticity": {"rules": [{"match": {"layers": "layer4.*", "population": "I"}, "lr_scale": 0.5}]},
        },
    ),
    "dale_project+synapse_plasticity+sign_symmetry": (
        "sign_symmetry",
        {
            "dale": {"enforce": "project"},
            "plasticity": {
                "rules": [
                    {"match": {"layers": "layer4.*", "synapse": "E->I"}, "lr_scale": 0.5},
                    {"match": {"synapse": "I->E"}, "direction": "depression_only"},
                ]
            },
        },
    ),
    "dale_dann+sign_symmetry": ("sign_symmetry", {"dale": {"architecture": "dann"}}),
    "dale_dann_divisive+sign_symmetry": (
        "sign_symmetry",
        {"dale": {"architecture": "dann", "dann": {"divisive": True}}},
    ),
    "dale_dann+bp": ("bp", {"dale": {"architecture": "dann"}}),
    "dale_dann+sign_symmetry_centred": (
        "sign_symmetry",
        {  # constraints/dale_dann_sign_symmetry.yaml's feedback
            "feedback": {"rule": "sign_symmetry", "options": {"magnitude": "weight_rms", "centre": True}},
            "dale": {"architecture": "dann"},
        },
    ),
}
# Dale variants that change the module structure or attach rules the shared-weights harness does not build: always
# separate copies, against a separate copy of their rule (bp: plain autograd)
SEPARATE_DALE = (
    "dale_abs+sign_symmetry",
    "dale_softplus+sign_symmetry",
    "dale_project+synapse_plasticity+sign_symmetry",
    "dale_dann+sign_symmetry",
    "dale_dann_divisive+sign_symmetry",
    "dale_dann+bp",
    "dale_dann+sign_symmetry_centred",
)


def build_step(model: nn.Module, args, spec: dict | None):
    device = torch.device(args.device)
    if spec is not None:
        bc.apply(model, spec)
    model.to(device)
    if args.channels_last:
        model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    if spec is not None:
        bc.bind(opt, model)
    run = torch.compile(model) if args.compile else model
    x, y = synthetic_batch(args, device)
    return lambda: training_step(run, opt, x, y, args.amp)


def print_table(args, rows: dict[str, dict], load: list[tuple[float, ...]]) -> None:
    """The rows as a Markdown table, with the issue's target where there is one."""
    mem_kind = "peak GPU memory" if args.device.startswith("cuda") else "saved-for-backward"
    print(
        f"{args.model} {args.size}x{args.size} batch {args.batch} on {args.device}, {torch.get_num_threads()} threads"
        f"{' bf16' if args.amp else ''}{' channels_last' if args.channels_last else ''}"
        f"{' compiled' if args.compile else ''}; median of {args.reps} interleaved steps ({args.clock} clock); "
        f"load average {load[0][0]:.1f} before, {load[1][0]:.1f} after\n"
    )
    print(f"| variant | step ms | vs | ratio | 95% CI (bootstrap) | target | {mem_kind} MB | ratio |")
    print("| --- | ---: | --- | ---: | --- | ---: | ---: | ---: |")
    for name, r in rows.items():
        target = f"<= {TARGETS[name]:.2f}" if name in TARGETS else ""
        lo, hi = r["ci95"]
        print(
            f"| {name} | {r['step_ms']:.1f} | {r['vs']} | {r['ratio']:.3f} | {lo:.3f}-{hi:.3f} | {target} "
            f"| {r['memory_mb']:.1f} | {r['memory_ratio']:.3f} |"
        )


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--reps", "--steps", type=int, default=15, help="interleaved steps (rounds) per variant")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--amp", action="store_true", help="bf16 autocast")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--compile", action="store_true")
    p.add_argument("--dale", action="store_true", help="also time Dale/plasticity variants against their rule")
    p.add_argument(
        "--learned",
        action="store_true",
        help="also time kolen_pollack, dfa and weight_mirror (separate copies) against plain autograd",
    )
    p.add_argument(
        "--cheap",
        action="store_true",
        help="also time issue #27's cheap variants (kolen_pollack, abs/softplus Dale, error_noise, error_quantization)"
        " on separate copies against a separate copy of their reference",
    )
    p.add_argument("--quick", action="store_true", help="5 interleaved steps after 1 warm-up (about a minute)")
    clock_argument(p, "OMP_NUM_THREADS=1")
    p.add_argument("--model", default="resnet18")
    p.add_argument("--separate-models", action="store_true", help="one model copy per variant")
    p.add_argument(
        "--only",
        nargs="+",
        metavar="TEXT",
        help="time only the variants whose name contains one of these (and their references)",
    )
    p.add_argument("--json", help="write the results here")
    args = p.parse_args(argv)
    if args.quick:
        args.reps, args.warmup = 5, 1
    torch.manual_seed(0)
    base = build_model(args.model, (3, args.size, args.size), 1000, {})
    if args.separate_models:
        steps = {"plain autograd": build_step(copy.deepcopy(base), args, None)}
        steps |= {name: build_step(copy.deepcopy(base), args, spec) for name, spec in VARIANTS.items()}
        if args.dale:
            for name, (rule, extra) in DALE_VARIANTS.items():
                steps[name] = build_step(copy.deepcopy(base), args, {"feedback": {"rule": rule}, **extra})
    else:
        steps = shared_steps(base, args, args.dale)
    reference = {name: "plain autograd" for name in ("plain autograd", *VARIANTS)}
    if args.dale:
        reference |= {
            name: "sign_symmetry" if rule == "sign_symmetry" else "plain autograd"
            for name, (rule, _) in DALE_VARIANTS.items()
        }
        if not args.separate_models:
            for name in SEPARATE_DALE:
                rule, extra = DALE_VARIANTS[name]
                steps[name] = build_step(copy.deepcopy(base), args, {"feedback": {"rule": rule}, **extra})
                own = "sign_symmetry" if rule == "sign_symmetry" else "plain autograd"
                reference[name] = f"{own} (separate copy)"
            steps["sign_symmetry (separate copy)"] = build_step(copy.deepcopy(base), args, VARIANTS["sign_symmetry"])
            reference["sign_symmetry (separate copy)"] = "sign_symmetry"
            steps["plain autograd (separate copy)"] = build_step(copy.deepcopy(base), args, None)
            reference["plain autograd (separate copy)"] = "plain autograd"
    if (args.learned or args.cheap) and "plain autograd (separate copy)" not in steps:
        steps["plain autograd (separate copy)"] = build_step(copy.deepcopy(base), args, None)
        reference["plain autograd (separate copy)"] = "plain autograd"
    if args.cheap and "sign_symmetry (separate copy)" not in steps:
        steps["sign_symmetry (separate copy)"] = build_step(copy.deepcopy(base), args, VARIANTS["sign_symmetry"])
        reference["sign_symmetry (separate copy)"] = "sign_symmetry"
    if args.cheap:
        for name, (spec, ref) in CHEAP_VARIANTS.items():
            steps[name], reference[name] = build_step(copy.deepcopy(base), args, spec), ref
    if args.learned:
        for name, spec in LEARNED_VARIANTS.items():
            steps[name] = build_step(copy.deepcopy(base), args, spec)
            reference[name] = "plain autograd (separate copy)"
    if args.only:
        keep = {n for n in steps if any(t in n for t in args.only)}
        keep |= {reference[n] for n in keep} | {reference[reference[n]] for n in keep}
        steps = {n: step for n, step in steps.items() if n in keep}
    clock = CLOCKS[args.clock]
    load = [os.getloadavg()]
    times = interleaved_times(steps, torch.device(args.device), args.warmup, args.reps, clock)
    load.append(os.getloadavg())
    medians = {name: statistics.median(t) for name, t in times.items()}
    specs = {"plain autograd": None, **VARIANTS}
    if args.dale:
        specs |= {name: {"feedback": {"rule": rule}, **extra} for name, (rule, extra) in DALE_VARIANTS.items()}
        specs["sign_symmetry (separate copy)"] = VARIANTS["sign_symmetry"]
        specs["plain autograd (separate copy)"] = None
    if args.learned:
        specs |= {"plain autograd (separate copy)": None, **LEARNED_VARIANTS}
    if args.cheap:
        specs |= {"plain autograd (separate copy)": None, "sign_symmetry (separate copy)": VARIANTS["sign_symmetry"]}
        specs |= {name: spec for name, (spec, _) in CHEAP_VARIANTS.items()}
    del steps
    memory = {}
    specs = {n: spec for n, spec in specs.items() if n in medians}
    for name, spec in specs.items():  # one model resident at a time, so peaks are comparable
        step = build_step(copy.deepcopy(base), args, spec)
        step()
        memory[name] = measure_memory(step, torch.device(args.device))
        del step
        if args.device.startswith("cuda"):
            torch.cuda.empty_cache()
    rows = {}
    for name in medians:
        ref = reference[name]
        rows[name] = {
            "step_ms": medians[name] * 1e3,
            "ratio": medians[name] / medians[ref],
            "ci95": bootstrap_ratio_ci(times[name], times[ref]),
            "vs": ref,
            "memory_mb": memory[name] / 2**20,
            "memory_ratio": memory[name] / memory[ref] if memory[ref] else float("nan"),
        }
    print_table(args, rows, load)
    result = {"args": vars(args), "load_average": load, "rows": rows}
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
