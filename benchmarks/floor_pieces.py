"""The floor pieces of ``floors.py``: each cheap variant's irreducible extra work at a model's shapes, as timed
functions (issue #27). Each builder allocates its tensors once and returns a function that does one step's worth
of the work; ``pieces`` builds them all."""

from __future__ import annotations

import copy
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import torch
import variant_copies  # noqa: F401  (puts this checkout on sys.path before biocircuits is imported)
from torch import Tensor, nn

import biocircuits as bc
from biocircuits.core.scratch import scratch_like
from biocircuits.core.seeds import step_seed
from biocircuits.phases.transforms.noise import ErrorNoise
from biocircuits.phases.transforms.quantization import ErrorQuantization

DANN_BP = {"feedback": {"rule": "bp"}, "dale": {"architecture": "dann"}}
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
    second core would cost (the route to a cheaper error_noise without changing its stream; not in the code). On the
    quiet machine it took as long as the one-thread draws: they did not overlap."""
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
    projected = extra + sum(w_ee.numel() for w_ee, _, _ in dann)
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
        "DANN SGD + projection": (
            dann_sgd_projection(dann),
            projected,
            f"SGD on W_IE, W_EI ({extra / 1e6:.2f}M); all {projected / 1e6:.1f}M projected onto >= 0",
        ),
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
