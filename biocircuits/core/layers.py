"""Which modules are weight layers, where their trainable tensor lives, and unwrapping DDP / torch.compile."""

from __future__ import annotations

from torch import Tensor, nn

# the layer types that have a feedback class (their subclasses count too)
WEIGHT_LAYER_TYPES: tuple[type[nn.Module], ...] = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
# modules whose 2-d weight takes no input gradient (a lookup table): no feedback pathway, no weight transport
NO_INPUT_GRADIENT: tuple[type[nn.Module], ...] = (nn.Embedding, nn.EmbeddingBag)


def unwrap(model: nn.Module) -> nn.Module:
    """The user's module inside DistributedDataParallel and/or ``torch.compile`` wrappers (any nesting)."""
    while True:
        if isinstance(model, nn.parallel.DistributedDataParallel | nn.DataParallel):
            model = model.module
        elif hasattr(model, "_orig_mod") and isinstance(model._orig_mod, nn.Module):
            model = model._orig_mod
        else:
            return model


def attention_owned(model: nn.Module) -> set[int]:
    """ids of Linear layers that an ``nn.MultiheadAttention`` reads directly (its ``out_proj``; a converted one,
    whose class sets ``calls_out_proj``, calls it as a module)."""
    return {
        id(m.out_proj)
        for m in model.modules()
        if isinstance(m, nn.MultiheadAttention) and not getattr(m, "calls_out_proj", False)
    }


def weight_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(qualified name, layer) of every Linear / Conv{1,2,3}d layer (plain, subclassed or converted), in module
    order; layers that another module uses without calling them (``MultiheadAttention.out_proj``) are left out."""
    owned = attention_owned(model)
    return [(n, m) for n, m in model.named_modules() if isinstance(m, WEIGHT_LAYER_TYPES) and id(m) not in owned]


def packed_attention(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(qualified name, module) of every converted ``nn.MultiheadAttention`` (its class sets ``calls_out_proj``):
    its packed in-projection ``in_proj_weight`` (3E, E) is a weight layer of its own for Dale's law, read as
    ``.weight``."""
    return [(n, m) for n, m in model.named_modules() if getattr(m, "calls_out_proj", False)]


def dale_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """What Dale's law constrains and audits: the [`weight_layers`][biocircuits.core.layers.weight_layers] and the
    [`packed_attention`][biocircuits.core.layers.packed_attention] in-projections, in module order."""
    chosen = {id(m) for _, m in (*weight_layers(model), *packed_attention(model))}
    return [(n, m) for n, m in model.named_modules() if id(m) in chosen]


def weight_name(layer: nn.Module) -> str:
    """The name of the layer's weight parameter: ``in_proj_weight`` for ``nn.MultiheadAttention`` (whose converted
    class reads it as ``.weight``), ``weight`` otherwise. A Dale reparametrisation is registered on that name."""
    return "in_proj_weight" if isinstance(layer, nn.MultiheadAttention) else "weight"


def has_transported_weight(module: nn.Module) -> bool:
    """True for a module holding a parameter of two or more dimensions that the input gradient would be
    sent back through (so backprop would transport it): any such module except lookup tables."""
    if isinstance(module, NO_INPUT_GRADIENT):
        return False
    return any(p.dim() >= 2 for p in module.parameters(recurse=False))


def trainable_weight(layer: nn.Module) -> Tensor:
    """The tensor the optimiser updates: ``weight``, or the latent of a ``torch.nn.utils.parametrize``
    parametrisation of it (e.g. a Dale reparametrisation)."""
    parametrizations = getattr(layer, "parametrizations", None)
    name = weight_name(layer)
    if parametrizations is not None and name in parametrizations:
        return parametrizations[name].original
    return getattr(layer, name)


def weight_sources(layer: nn.Module) -> list[Tensor]:
    """Every tensor the layer's ``weight`` is computed from: the plain weight, or under a parametrisation its
    latent and the parametrisation's own parameters (DANN: W_EE, W_IE, W_EI, ...). A cache of anything built from
    W must key on all of them (an in-place edit of any one changes W)."""
    parametrizations = getattr(layer, "parametrizations", None)
    name = weight_name(layer)
    if parametrizations is not None and name in parametrizations:
        return list(parametrizations[name].parameters())
    return [getattr(layer, name)]


def synapse_params(layer: nn.Module) -> list[tuple[str, Tensor]]:
    """(key, tensor) of every tensor that the error of a step updates in this layer: the trainable weight
    (``weight``), the weight parametrisation's own parameters under their last names (DANN's ``weight_ie``,
    ``weight_ei``, ``alpha``, ``gain``) and the bias, when present. Per-tensor state that must follow each update
    (the stored delay's queues) keys on these."""
    parametrizations = getattr(layer, "parametrizations", None)
    found = [("weight", trainable_weight(layer))]
    if parametrizations is not None and "weight" in parametrizations:
        extra = parametrizations.weight.named_parameters()
        found += [(name.rsplit(".", 1)[-1], p) for name, p in extra if name != "original" and p.requires_grad]
    bias = getattr(layer, "bias", None)
    return found + ([("bias", bias)] if bias is not None else [])


def trainable_param(layer: nn.Module, name: str) -> Tensor | None:
    """``trainable_weight`` for ``name == "weight"``; the plain attribute (e.g. ``bias``, maybe None) otherwise."""
    return trainable_weight(layer) if name == "weight" else getattr(layer, name, None)


def trainable_params(layer: nn.Module) -> list[tuple[str, Tensor]]:
    """(name, tensor) of the layer's trainable weight (see
    [`trainable_weight`][biocircuits.core.layers.trainable_weight]) and its bias, when present."""
    return [(name, p) for name in ("weight", "bias") if (p := trainable_param(layer, name)) is not None]


def weight_shape(layer: nn.Module):
    """The shape of the layer's weight (read from the latent under a parametrisation, without evaluating it)."""
    return trainable_weight(layer).shape
