"""Which parameters backprop would send the error through: decided by how the forward uses them, not by their
presence.

The model runs once (eval mode, batch 1, the RNG state kept) on a sample input and its autograd graph is read.
Following each parameter's uses forward through computations of parameters alone (views, expands, indexing, a
parametrisation), the first op that meets the activity decides its *role*:

* ``additive``: the parameter is added to, concatenated with or substituted into the activity (positional
  embeddings, class tokens, attention and relative-position biases): dL/dx does not depend on it, no transport;
* ``gain``: it scales the activity elementwise (LayerNorm / BatchNorm / LayerScale gains): the error passes through
  the gain as in backprop, as BatchNorm's does (Xiao et al.'s code does the same);
* ``transported``: any other op (a matmul, a convolution, an einsum): the error is multiplied by a matrix built from
  it, so it needs a feedback class.

A weight layer whose weight is in the graph although its forward never ran is *read directly* by another module
(``F.linear(x, layer.weight)``): converting that layer alone would change nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from biocircuits.core.samples import sample_input

ROLES = ("additive", "gain", "transported")  # in increasing order of what they ask for
ADDITIVE_OPS = {"Add", "Sub", "Cat", "Stack", "Where", "IndexPut", "MaskedScatter", "MaskedFill"}
GAIN_OPS = {
    "Mul",
    "Div",
    "NativeLayerNorm",
    "NativeBatchNorm",
    "CudnnBatchNorm",
    "NativeGroupNorm",
    "MiopenBatchNorm",
    "BatchNormWithUpdate",
    "RmsNorm",
    "FusedRmsNorm",
}


@dataclass
class TransportReport:
    """``roles``: qualified parameter name -> role (see the module docstring), for every parameter in the graph;
    ``read_directly``: names of weight layers whose weight another module reads without calling them;
    ``backprop``: transported parameters that some op sends the error through by plain backprop (not a feedback op
    of [`functional`][biocircuits.feedback.functional]): after a conversion with a rule other than bp, every one is an
    unconverted weight."""

    roles: dict[str, str] = field(default_factory=dict)
    read_directly: list[str] = field(default_factory=list)
    backprop: list[str] = field(default_factory=list)

    def transports(self, module_name: str, module: nn.Module) -> bool:
        """Whether any matrix (a parameter of two or more dims) that ``module`` holds itself is transported (or absent
        from the graph: unknown). A vector meeting a matmul is that op's bias."""
        prefix = f"{module_name}." if module_name else ""
        for name, p in module.named_parameters(recurse=False):
            if p.dim() >= 2 and self.roles.get(prefix + name, "transported") == "transported":
                return True
        return False


def _op(node: Any) -> str:
    return re.sub(r"Backward\d*$", "", type(node).__name__)


def _tensors(out: Any) -> Iterator[Tensor]:
    if isinstance(out, Tensor):
        yield out
    elif isinstance(out, dict):
        for v in out.values():
            yield from _tensors(v)
    elif isinstance(out, list | tuple):
        for v in out:
            yield from _tensors(v)


def _consumers(roots: Iterable[Any]) -> dict[Any, list[Any]]:
    """node -> the nodes that take its output (the autograd graph read forward)."""
    users: dict[Any, list[Any]] = {}
    seen, stack = set(), [r for r in roots if r is not None]
    while stack:
        node = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        users.setdefault(node, [])
        for nxt, _ in node.next_functions:
            if nxt is not None:
                users.setdefault(nxt, []).append(node)
                stack.append(nxt)
    return users


def _reach(users: dict[Any, list[Any]], start: Any) -> set[Any]:
    done, stack = set(), [start]
    while stack:
        node = stack.pop()
        if node not in done:
            done.add(node)
            stack.extend(users.get(node, []))
    return done


def _meets(users: dict[Any, list[Any]], acc: Any, data: set[Any]) -> list[str]:
    """The ops (names) where the parameter, through parameter-only ops, first meets the activity."""
    found, seen, stack = [], set(), list(users.get(acc, []))
    while stack:
        node = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        if node not in data:  # still a computation of parameters alone
            stack.extend(users.get(node, []))
            continue
        found.append(_op(node))
    return found


def _role(ops: list[str]) -> str:
    """The strongest role among the ops where a parameter meets the activity."""
    roles = ["additive" if op in ADDITIVE_OPS else "gain" if op in GAIN_OPS else "transported" for op in ops]
    return max(roles, key=ROLES.index, default="additive")


def transport_report(
    model: nn.Module, layers: Iterable[tuple[str, nn.Module]], input_shape: list[int] | None = None
) -> TransportReport | None:
    """Run ``model`` once on a sample (``input_shape`` without the batch dim, guessed when None) and read its
    autograd graph: each parameter's role, and which of ``layers`` (name, weight layer) are read without being
    called. None when no sample input runs (the caller then keeps the static check)."""
    layers = list(layers)
    called: set[int] = set()
    hooks = [m.register_forward_hook(lambda mod, a, o: called.add(id(mod))) for _, m in layers]
    params = dict(model.named_parameters())
    flags = {n: p.requires_grad for n, p in params.items()}
    was_training = model.training
    model.eval()
    try:
        for p in params.values():
            p.requires_grad_(True)
        for sample in sample_input(model, input_shape):
            sample.requires_grad_(True)
            called.clear()
            try:
                with torch.random.fork_rng(devices=[]), torch.enable_grad():
                    out = model(sample)
            except Exception:  # a wrong guessed input size: try the next one
                continue
            return _read_graph(out, sample, params, layers, called)
        return None
    finally:
        for h in hooks:
            h.remove()
        for n, p in params.items():
            p.requires_grad_(flags[n])
        model.train(was_training)


def _read_graph(
    out: Any, sample: Tensor, params: dict[str, Tensor], layers: list[tuple[str, nn.Module]], called: set[int]
) -> TransportReport:
    users = _consumers(t.grad_fn for t in _tensors(out))
    accs = {id(node.variable): node for node in users if _op(node) == "AccumulateGrad"}
    data = _reach(users, accs[id(sample)]) if id(sample) in accs else set()
    report = TransportReport()
    for name, p in params.items():
        if id(p) in accs:
            ops = _meets(users, accs[id(p)], data)
            role = _role(ops)
            plain = [op for op in ops if not op.startswith("Feedback") and op not in ADDITIVE_OPS | GAIN_OPS]
            if role == "transported" and p.dim() >= 2 and plain:
                report.backprop.append(name)
            # a norm op takes gain and bias together; its bias is added after the gain
            report.roles[name] = "additive" if role == "gain" and name.endswith("bias") else role
    report.read_directly = [n for n, m in layers if id(m) not in called and id(getattr(m, "weight", None)) in accs]
    return report


ROLE_TEXT = {
    "additive": "adds to the activity (no transport)",
    "gain": "gain (the error passes as in backprop)",
    "transported": "transported (no feedback class)",
}
NORM_TYPES = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm, nn.LocalResponseNorm)


def parameter_rows(model: nn.Module, skip: list[str]) -> list[tuple[str, str, str, str]]:
    """(qualified name, module type, shape, role text) of every parameter held by a module outside the modules
    named in ``skip`` (the weight layers, listed on their own). Roles come from
    [`transport_report`][biocircuits.feedback.transport.transport_report] (one sample run); when the model cannot run on
    a guessed sample, norm gains are listed as gains and the rest as unknown."""
    report = transport_report(model, [])
    rows = []
    for mname, module in model.named_modules():
        if any(mname == s or mname.startswith(f"{s}.") for s in skip):
            continue
        for pname, p in module.named_parameters(recurse=False):
            name = f"{mname}.{pname}" if mname else pname
            if report is not None:
                role = ROLE_TEXT[report.roles[name]] if name in report.roles else "unused by the forward"
            else:
                role = ROLE_TEXT["gain"] if isinstance(module, NORM_TYPES) else "role unknown (no sample input ran)"
            rows.append((name, type(module).__name__, "x".join(str(s) for s in p.shape), role))
    return rows
