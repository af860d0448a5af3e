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
import copy
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

sys.path.insert(0, str(Path(__file__).resolve().parent))
import torch  # noqa: E402
from common import bootstrap_ratio_ci, interleaved_times  # noqa: E402
from torch import Tensor, nn  # noqa: E402
from variant_copies import build_step  # noqa: E402  (puts this checkout on sys.path)

import biocircuits as bc  # noqa: E402
from biocircuits.core.scratch import scratch_like  # noqa: E402
from biocircuits.core.seeds import step_seed  # noqa: E402
from biocircuits.models import build_model  # noqa: E402
from biocircuits.phases.transforms.noise import ErrorNoise  # noqa: E402
from biocircuits.phases.transforms.quantization import ErrorQuantization  # noqa: E402

SS = {"feedback": {"rule": "sign_symmetry"}}
DANN_BP = {"feedback": {"rule": "bp"}, "dale": {"architecture": "dann"}}


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
LR, MOMENTUM, DECAY = 0.01, 0.9, 1e-4  # the benchmark optimiser's settings (variant_copies.build_step)


def weight_layers(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, nn.Conv2d | nn.Linear)]


def error_shapes(model: nn.Module, x: Tensor) -> list[torch.Size]:
    """The output shape of every conv / linear layer: the errors delta that reach the layers in backward."""
    shapes: list[torch.Size] = []
    handles = [m.register_forward_hook(lambda m, a, out: shapes.append(out.shape)) for m in weight_layers(model)]
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    return shapes


def sign_pass(weights: list[Tensor], op: str) -> Callable[[], None]:
    """``sign`` (or ``copy``) of every W into buffers that exist already: one read and one write of W; ``foreach``:
    the sign as foreach ops (a copy pass, then ``sign_`` in place)."""
    out = [torch.empty_like(w) for w in weights]

    def run() -> None:
        if op == "foreach":  # torch._foreach_sign has no out=: copy into the buffers, then sign in place
            torch._foreach_copy_(out, weights)
            torch._foreach_sign_(out)
            return
        for w, o in zip(weights, out, strict=True):
            if op == "copy":
                o.copy_(w)
            else:
                torch.sign(w, out=o)

    return run


def b_sgd_step(weights: list[Tensor]) -> Callable[[], None]:
    """B's SGD step with momentum and decay, per layer: u = g + lambda B (scratch), m = mu m + u, B -= eta m."""
    gen = torch.Generator().manual_seed(1)
    state = [(torch.randn(w.shape, generator=gen) * 1e-3, w.clone(), torch.zeros_like(w)) for w in weights]

    def run() -> None:
        for g, b, m in state:
            u = torch.add(g, b, alpha=DECAY, out=scratch_like(b))
            m.mul_(MOMENTUM).add_(u)
            b.add_(m, alpha=-LR)

    return run


def b_sgd_step_foreach(weights: list[Tensor], chunk: int | None) -> Callable[[], None]:
    """The same passes in another order (same values): ``chunk`` None: u for every layer (a full-size scratch), then
    m, m and B as foreach ops over all layers; else per layer in pieces of ``chunk`` values (cache-blocked)."""
    gen = torch.Generator().manual_seed(1)
    state = [(torch.randn(w.shape, generator=gen) * 1e-3, w.clone(), torch.zeros_like(w)) for w in weights]
    us = [torch.empty_like(w) for w in weights] if chunk is None else []

    def foreach() -> None:
        for (g, b, _), u in zip(state, us, strict=True):
            torch.add(g, b, alpha=DECAY, out=u)
        momenta, feedback = [m for _, _, m in state], [b for _, b, _ in state]
        torch._foreach_mul_(momenta, MOMENTUM)
        torch._foreach_add_(momenta, us)
        torch._foreach_add_(feedback, momenta, alpha=-LR)

    def blocked() -> None:
        for g, b, m in state:
            g, b, m = g.view(-1), b.view(-1), m.view(-1)
            for s in range(0, b.numel(), chunk):
                u = torch.add(g[s : s + chunk], b[s : s + chunk], alpha=DECAY, out=scratch_like(b[s : s + chunk]))
                m[s : s + chunk].mul_(MOMENTUM).add_(u)
                b[s : s + chunk].add_(m[s : s + chunk], alpha=-LR)

    return foreach if chunk is None else blocked


def dann_tensors(base: nn.Module) -> list[tuple[Tensor, Tensor, Tensor]]:
    """(W_EE flattened (n_e, d), W_EI (n_e, n_i), W_IE flattened (n_i, d)) of every DANN layer of a converted copy."""
    model = copy.deepcopy(base)
    bc.apply(model, DANN_BP)
    found = []
    for m in model.modules():
        held = getattr(getattr(m, "parametrizations", None), "weight", None)
        if held is not None:
            w_ee, p = held.original.detach(), held[0]
            found.append((w_ee.reshape(w_ee.shape[0], -1), p.weight_ei.detach(), p.weight_ie.detach().flatten(1)))
    return found


def dann_products(tensors: list[tuple[Tensor, Tensor, Tensor]]) -> Callable[[], None]:
    """W = W_EE - W_EI W_IE (one ``addmm``), dL/dW_EI = -G W_IE^T and dL/dW_IE = (-W_EI)^T G (two ``mm``)."""
    grads = [torch.randn_like(w_ee) for w_ee, _, _ in tensors]

    def run() -> None:
        for (w_ee, w_ei, w_ie), g in zip(tensors, grads, strict=True):
            torch.addmm(w_ee, w_ei, w_ie, alpha=-1)
            torch.mm(g, w_ie.t())
            torch.mm(w_ei.t(), g)

    return run


def dann_sgd_projection(tensors: list[tuple[Tensor, Tensor, Tensor]]) -> Callable[[], None]:
    """SGD with momentum and decay on W_IE and W_EI (foreach form), then W_EE, W_IE, W_EI <- max(., 0)."""
    extra = [t.clone() for _, w_ei, w_ie in tensors for t in (w_ei, w_ie)]
    grads = [torch.randn_like(t) * 1e-3 for t in extra]
    momenta = [torch.zeros_like(t) for t in extra]
    projected = [w_ee.clone() for w_ee, _, _ in tensors] + extra

    def run() -> None:
        update = torch._foreach_add(grads, extra, alpha=DECAY)
        torch._foreach_mul_(momenta, MOMENTUM)
        torch._foreach_add_(momenta, update)
        torch._foreach_add_(extra, momenta, alpha=-LR)
        torch._foreach_clamp_min_(projected, 0.0)

    return run


def draws(shapes: list[torch.Size], kind: str) -> Callable[[], None]:
    """One generator per layer, seeded per (layer, step) as ``ErrorPathway`` seeds it, drawing the layer's error
    shape into a buffer that exists already: ``normal_`` (error_noise's xi) or ``uniform_`` (quantisation's u)."""
    out = [torch.empty(s) for s in shapes]
    fill = {"normal": Tensor.normal_, "uniform": Tensor.uniform_}[kind]
    step = [0]

    def run() -> None:
        step[0] += 1
        for layer, t in enumerate(out):
            fill(t, generator=torch.Generator().manual_seed(step_seed(layer, step[0])))

    return run


def draws_on_two_threads(shapes: list[torch.Size]) -> Callable[[], None]:
    """The normal draws of ``draws`` split over two Python threads (torch releases the GIL inside the op), the layers
    dealt to balance the values: each layer keeps its own generator, so the values are the same. What drawing on the
    second core would cost (the route to a cheaper error_noise without changing its stream; not in the code)."""
    out = [torch.empty(s) for s in shapes]
    order = sorted(range(len(out)), key=lambda i: -out[i].numel())
    halves = [order[0::2], order[1::2]]
    pool = ThreadPoolExecutor(2)

    def fill(layers: list[int]) -> None:
        for layer in layers:
            out[layer].normal_(generator=torch.Generator().manual_seed(step_seed(layer, 1)))

    return lambda: list(pool.map(fill, halves)) and None


def transform(shapes: list[torch.Size], attachment) -> Callable[[], None]:
    """The transform's whole ``on_error`` on errors of these shapes (draws and every pass around them)."""
    gen = torch.Generator().manual_seed(2)
    deltas = [torch.randn(s, generator=gen) for s in shapes]

    def run() -> None:
        for layer, d in enumerate(deltas):
            attachment.on_error(None, d, torch.Generator().manual_seed(step_seed(layer, 1)), None)

    return run


def pieces(base: nn.Module, x: Tensor) -> dict[str, tuple[Callable[[], None], int, str]]:
    """{piece: (timed function, values it touches or draws, what it is)} at ``base``'s shapes."""
    weights = [m.weight.detach() for m in weight_layers(base)]
    n_weights = sum(w.numel() for w in weights)
    shapes = error_shapes(base, x)
    n_errors = sum(s.numel() for s in shapes)
    dann = dann_tensors(base)
    products = sum(w_ee.numel() * w_ei.shape[1] for w_ee, w_ei, _ in dann)
    extra = sum(w_ei.numel() + w_ie.numel() for _, w_ei, w_ie in dann)
    n, k = len(weights), len(dann)
    return {
        "sign pass": (sign_pass(weights, "sign"), n_weights, f"`sign` of {n} layers' W into buffers"),
        "copy pass (bandwidth)": (sign_pass(weights, "copy"), n_weights, f"`copy_` of {n} layers' W"),
        "sign pass, foreach form": (sign_pass(weights, "foreach"), n_weights, "alternative: `copy_` + `sign_` foreach"),
        "B's SGD step": (b_sgd_step(weights), n_weights, f"4 passes per layer over {n} layers' B"),
        "B's SGD step, foreach form": (
            b_sgd_step_foreach(weights, None),
            n_weights,
            "alternative order: one op at a time",
        ),
        "B's SGD step, 256K-value blocks": (
            b_sgd_step_foreach(weights, 2**18),
            n_weights,
            "alternative order: cache-blocked",
        ),
        "DANN products": (dann_products(dann), 3 * products, f"{k} layers x (1 `addmm` + 2 `mm`); multiply-adds"),
        "DANN SGD + projection": (dann_sgd_projection(dann), extra, "SGD on W_IE, W_EI; projection of all >= 0"),
        "normal draws": (draws(shapes, "normal"), n_errors, f"`normal_` of {n} layers' errors"),
        "normal draws, on two threads": (draws_on_two_threads(shapes), n_errors, "the same draws, layers split"),
        "uniform draws": (draws(shapes, "uniform"), n_errors, f"`uniform_` of {n} layers' errors"),
        "error_noise 0.1, whole transform": (
            transform(shapes, ErrorNoise({"sigma": 0.1})),
            n_errors,
            "draws + the passes around them",
        ),
        "error_quantization 16, whole transform": (
            transform(shapes, ErrorQuantization({"spikes": 16})),
            n_errors,
            "draws + the passes around them",
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
    p.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="cpu: CPU seconds of the process (steadier on a shared machine; use with --threads 1)",
    )
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
        clock = time.process_time if args.clock == "cpu" else time.perf_counter
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
        f"{torch.__version__}\n"
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
