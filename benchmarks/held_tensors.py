"""What a converted layer keeps in memory between steps: every tensor reachable from the layer (its parameters and
their gradients, buffers, parametrisation modules, tensors in its ``__dict__``) and from its attachments (their
attributes, hooks and closures), counted once per storage (a view of W is not a copy of W).

Used by ``cost_scaling.py`` (the model's state in MB) and by ``tests/test_memory_kept.py`` (weight-sized tensors per
layer, against what each variant's maths needs).

    python benchmarks/held_tensors.py      # resnet18: what each variant keeps per layer after one step (a table)
"""

from __future__ import annotations

import re
import sys
import types
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from biocircuits.core.interface import attachments_of
from biocircuits.core.layers import weight_shape

MAX_DEPTH = 6  # how deep the walk follows attributes, containers and closures from a layer or an attachment


@dataclass(frozen=True)
class Held:
    """One storage a layer keeps: where it was found first, its elements (in its tensor's dtype) and bytes."""

    path: str
    numel: int
    nbytes: int
    storage: tuple[int, int]  # (data pointer, bytes): the identity of the storage


def _storage_key(t: Tensor) -> tuple[int, int] | None:
    try:
        storage = t.untyped_storage()
    except (RuntimeError, NotImplementedError):  # sparse, meta or wrapper tensors
        return None
    return storage.data_ptr(), storage.nbytes()


def _children(obj: object) -> Iterator[tuple[str, object]]:
    """(name, value) of what ``obj`` refers to: container items, closure cells, bound ``__self__``, attributes."""
    if isinstance(obj, dict):
        yield from ((f"[{k!r}]", v) for k, v in obj.items())
    elif isinstance(obj, list | tuple | set | frozenset):
        yield from ((f"[{i}]", v) for i, v in enumerate(obj))
    elif isinstance(obj, types.FunctionType):
        cells = obj.__closure__ or ()
        yield from ((f".<{name}>", c.cell_contents) for name, c in zip(obj.__code__.co_freevars, cells, strict=False))
    elif isinstance(obj, types.MethodType):
        yield ".__self__", obj.__self__
    elif hasattr(obj, "__dict__") and not isinstance(obj, type | types.ModuleType):
        yield from ((f".{k}", v) for k, v in vars(obj).items())


def held_tensors(layer: nn.Module) -> list[Held]:
    """Every distinct storage that ``layer`` (with its submodules, e.g. parametrisations) and its attachments keep,
    with gradients. The walk does not enter other modules of the model (an attachment that links layers) nor
    optimisers; tensors reached through them are the other owner's."""
    seen_objects: set[int] = set()
    found: dict[tuple[int, int], Held] = {}

    def visit(obj: object, path: str, depth: int) -> None:
        if id(obj) in seen_objects or depth > MAX_DEPTH or isinstance(obj, str | bytes | int | float | bool):
            return
        seen_objects.add(id(obj))
        if isinstance(obj, Tensor):
            key = _storage_key(obj)
            if key is not None and key[1] > 0 and key not in found:
                found[key] = Held(path, key[1] // obj.element_size(), key[1], key)
            if obj.grad is not None:
                visit(obj.grad, path + ".grad", depth)
            return
        if isinstance(obj, torch.optim.Optimizer | nn.Module):  # the layer's own modules are walked from the top
            return
        for name, child in _children(obj):
            visit(child, path + name, depth + 1)

    for name, module in layer.named_modules():
        prefix = name + "." if name else ""
        for attr, value in vars(module).items():
            visit(value, prefix + attr, 0)
    held = attachments_of(layer)
    if held is not None:
        visit(held, "attachments", 0)
    return list(found.values())


def weight_numel(layer: nn.Module) -> int:
    """Entries of the layer's weight W (read from the shape, so a parametrised W is not computed)."""
    n = 1
    for d in weight_shape(layer):
        n *= int(d)
    return n


def weight_sized(layer: nn.Module) -> list[Held]:
    """The storages ``layer`` keeps that hold at least as many entries as its weight W (copies of W, its gradient, B,
    caches of sign(W) or of W itself, optimiser-like state): the tensors issue #27's memory rule counts."""
    n = weight_numel(layer)
    return [h for h in held_tensors(layer) if h.numel >= n]


def model_state_bytes(model: nn.Module, optimizer: torch.optim.Optimizer | None = None) -> int:
    """Bytes of every distinct storage the model keeps between steps: parameters, gradients, buffers, what its
    converted layers and their attachments hold, and the optimiser's state."""
    keys: dict[tuple[int, int], int] = {}
    tensors = [*model.parameters(), *model.buffers()]
    tensors += [p.grad for p in model.parameters() if p.grad is not None]
    if optimizer is not None:
        tensors += [v for state in optimizer.state.values() for v in state.values() if isinstance(v, Tensor)]
    for t in tensors:
        if (key := _storage_key(t)) is not None:
            keys[key] = key[1]
    for module in model.modules():
        if attachments_of(module) is not None:
            for h in held_tensors(module):
                keys[h.storage] = h.nbytes
    return sum(keys.values())


def kept_table(variants: dict[str, dict | None], size: int = 32, batch: int = 2) -> str:
    """Markdown: for torchvision's resnet18 converted with each spec and trained one SGD step (momentum, weight
    decay), the weight-sized tensors per converted layer (fewest..most), what they are beyond W and its gradient, and
    all the layers' kept bytes against plain autograd's."""
    import torchvision

    import biocircuits as bc

    def one(spec: dict | None) -> nn.Module:
        torch.manual_seed(0)
        model = torchvision.models.resnet18(num_classes=10)
        if spec is not None:
            bc.apply(model, spec)
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
        if spec is not None:
            bc.bind(opt, model)
        x, y = torch.randn(batch, 3, size, size), torch.randint(0, 10, (batch,))
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        return model

    def weights(model: nn.Module) -> list[nn.Module]:
        return [m for m in model.modules() if isinstance(m, nn.Conv2d | nn.Linear)]

    plain = sum(h.nbytes for m in weights(one(None)) for h in held_tensors(m))
    lines = [
        "| variant | weight-sized per layer | beyond W and its gradient (weight-sized; smaller) | kept MB | vs plain |",
        "| --- | ---: | --- | ---: | ---: |",
    ]
    for name, spec in variants.items():
        layers = weights(one(spec))
        counts = [len(weight_sized(m)) for m in layers]
        big, small = set(), set()
        for m in layers:
            n = weight_numel(m)
            for h in held_tensors(m):
                label = re.sub(r"_(parameters|buffers)\['(\w+)'\]", r"\2", h.path).replace("._modules", "")
                if label.rsplit(".", 1)[0] in ("weight", "bias", "parametrizations.weight.original") or label in (
                    "weight",
                    "bias",
                    "parametrizations.weight.original",
                ):  # W (or the tensor that takes its place), the bias, and their gradients
                    continue
                (big if h.numel >= n else small).add(label)
        total = sum(h.nbytes for m in layers for h in held_tensors(m))
        lines.append(
            f"| {name} | {min(counts)}..{max(counts)} | {_codes(big)}; {_codes(small)} | {total / 2**20:.1f} | "
            f"{total / plain:.3f} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent))
    from cost_scaling import VARIANTS

    print(kept_table({"plain autograd": None, **{k: v for k, v in VARIANTS.items() if v is not None}}))


def _codes(names) -> str:
    """Names as Markdown code spans (``[...][0]`` in a name would read as a link), or ``-``."""
    return ", ".join(f"`{n}`" for n in sorted(names)) or "-"
