"""Alignment probes: how far each layer's feedback, error and update are from exact backprop's.

One forward pass, then two backward passes over the same graph: a shadow backprop pass (every layer sends
the error through W) and the rule's own pass. Per converted layer, in degrees:

- ``weight_angle``: angle(W, B), B the feedback weight the layer's backward used;
- ``error_angle``: angle(delta_rule, delta_bp), the error dL/dy at the layer's output;
- ``update_angle``: angle(grad_W under the rule, grad_W under backprop);

also for each matrix of a converted ``nn.RNN`` / ``nn.GRU`` / ``nn.LSTM`` (named ``<rnn>.feedback_matrices.<weight>``,
its rows the gates), whose error_angle is NaN: its products have no output tensor of their own;

with angle(a, b) = arccos(<a, b> / (|a| |b|)) over the flattened tensors, ``norm_ratio`` = |B| / |W| and
``sign_concordance`` = the fraction of entries where sign(B) = sign(W). A zero vector gives NaN and a reason.
The probe leaves training untouched: .grad, optimiser state, buffers (batch-norm statistics, random
feedback draws) and RNG streams are as they were.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from biocircuits.core.interface import error_pathways_suspended
from biocircuits.core.layers import trainable_weight, unwrap
from biocircuits.feedback.convert import feedback_layers
from biocircuits.feedback.functional import save_weight_for_shadow, shadow_backprop
from biocircuits.feedback.recurrent import RecurrentMatrix

from .attention import capture_outputs, joined, projection_rows


@dataclass
class LayerProbe:
    weight_angle: float
    error_angle: float
    update_angle: float
    norm_ratio: float
    sign_concordance: float
    rule: str = ""
    reasons: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def angle(a: Tensor, b: Tensor) -> tuple[float, str | None]:
    """(angle in degrees between flattened ``a`` and ``b``, None) or (NaN, reason) when one is zero."""
    a, b = a.detach().double().flatten(), b.detach().double().flatten()
    na, nb = a.norm(), b.norm()
    if na == 0 or nb == 0:
        return math.nan, "zero vector (" + ("first" if na == 0 else "second") + " operand)"
    cos = float((a @ b) / (na * nb))
    return math.degrees(math.acos(max(-1.0, min(1.0, cos)))), None


@contextlib.contextmanager
def preserved_state(model: nn.Module) -> Iterator[None]:
    """Restore every buffer of ``model`` and the CPU/CUDA RNG states on exit."""
    buffers = {k: v.detach().clone() for k, v in model.named_buffers()}
    cpu_rng = torch.get_rng_state()
    cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else None
    try:
        yield
    finally:
        with torch.no_grad():
            for k, v in model.named_buffers():
                v.copy_(buffers[k])
        torch.set_rng_state(cpu_rng)
        if cuda_rng is not None:
            torch.cuda.set_rng_state_all(cuda_rng)


def probe(
    model: nn.Module, inputs: Tensor, targets: Tensor, loss_fn: Callable[[Tensor, Tensor], Tensor] = F.cross_entropy
) -> dict[str, LayerProbe]:
    """Per converted layer of ``model``, the angles of its feedback, error and update to exact backprop (a packed
    attention: also per projection, ``<name>[q]`` / ``[k]`` / ``[v]``, see
    `biocircuits/probes/attention.py`)."""
    module = unwrap(model)
    layers = feedback_layers(module)
    outputs: dict[str, list[Tensor]] = {}

    def capture(name: str):
        def hook(mod: nn.Module, args: tuple, out: Tensor) -> Tensor:
            outputs[name] = [out]
            return out.clone()  # later in-place ops (ReLU(inplace=True)) must not touch y itself

        return hook

    handles = [capture_outputs(layer, name, outputs, capture(name)) for name, layer in layers]
    with preserved_state(module):
        try:
            with error_pathways_suspended(module), save_weight_for_shadow(), torch.enable_grad():
                loss = loss_fn(module(inputs), targets)
            feedback = {name: layer.backward_weight() for name, layer in layers}
        finally:
            for h in handles:
                h.remove()
        names = [n for n, _ in layers if outputs.get(n) and all(t.requires_grad for t in outputs[n])]
        matrices = [n for n, m in layers if isinstance(m, RecurrentMatrix) and m.weight.requires_grad]
        outs = [t for n in names for t in outputs[n]]
        wrt = outs + [trainable_weight(dict(layers)[n]) for n in names + matrices]
        with shadow_backprop():
            exact = torch.autograd.grad(loss, wrt, retain_graph=True, allow_unused=True)
        rule = torch.autograd.grad(loss, wrt, allow_unused=True)
    rows = _rows(names, dict(layers), feedback, [len(outputs[n]) for n in names], rule, exact)
    first = len(outs) + len(names)
    for i, name in enumerate(matrices, start=first):  # a converted RNN's matrices: no output tensor of their own
        rows[name] = _layer_probe(dict(layers)[name], feedback[name], (None, rule[i]), (None, exact[i]))
        rows[name].reasons["error_angle"] = "a recurrent matrix's products run inside the RNN's time loop"
    return rows


def _rows(names, layers, feedback, counts, rule, exact) -> dict[str, LayerProbe]:
    """Each probed layer's row (and a packed attention's projections' rows) from the gradients of its outputs (the
    first ``sum(counts)`` entries of ``rule`` and ``exact``, ``counts[i]`` for layer i) and of its weights (the
    next ``len(names)``)."""
    out, start, k = {}, 0, sum(counts)
    for i, name in enumerate(names):
        layer, cut = layers[name], slice(start, start + counts[i])
        start += counts[i]
        errors = (list(rule[cut]), list(exact[cut]))
        updates = (rule[k + i], exact[k + i])
        out[name] = _layer_probe(
            layer, feedback[name], (joined(errors[0]), updates[0]), (joined(errors[1]), updates[1])
        )
        if getattr(layer, "calls_out_proj", False):
            out.update(projection_rows(name, layer, feedback[name], errors, updates, _layer_probe))
    return out


def _layer_probe(
    layer: nn.Module,
    feedback: Tensor | None,
    rule_grads: tuple[Tensor | None, Tensor | None],
    exact_grads: tuple[Tensor | None, Tensor | None],
    weight: Tensor | None = None,
) -> LayerProbe:
    """One layer's row from its feedback weight B and the (error, weight) gradients of the rule's and the shadow
    backprop pass: NaN angles with a reason where a gradient did not reach the layer or a vector is zero. ``weight``:
    the rows of W the other tensors hold (default all of ``layer.weight``)."""
    weight = layer.weight.detach() if weight is None else weight
    reasons: dict[str, str] = {}
    values = {}
    pairs = {
        "weight_angle": (weight, feedback),
        "error_angle": (rule_grads[0], exact_grads[0]),
        "update_angle": (rule_grads[1], exact_grads[1]),
    }
    for key, (a, b) in pairs.items():
        if a is None or b is None:
            values[key], reasons[key] = math.nan, "no gradient reached this layer"
            continue
        values[key], why = angle(a, b)
        if why:
            reasons[key] = why
    b = feedback
    if b is None:  # no B of W's shape (direct feedback alignment)
        b = torch.full_like(weight, math.nan)
        reasons["weight_angle"] = f"rule {layer.rule.name!r} has no layer-local B"
    wn = float(weight.double().norm())
    return LayerProbe(
        **values,
        norm_ratio=float(b.double().norm()) / wn if wn > 0 else math.nan,
        sign_concordance=float((torch.sign(b) == torch.sign(weight)).double().mean()),
        rule=layer.rule.name,
        reasons=reasons,
    )
