"""The ground floor: helpers every package may use (registries, weight layers, cell types, globs, per-layer seeds,
unwrapping DDP and compile) and the layer-attachment interface. It imports nothing else of biocircuits but
[`biocircuits.errors`][biocircuits.errors]."""

from .globs import check_patterns_match, match_any
from .interface import (
    Attachments,
    LayerAttachment,
    StepState,
    attach,
    attached_modules,
    attachments_of,
    constraint_buffer_names,
    detach_all,
)
from .layers import trainable_weight, unwrap, weight_layers
from .registry import Registry
from .seeds import layer_seed

__all__ = [
    "Attachments",
    "LayerAttachment",
    "Registry",
    "StepState",
    "attach",
    "attached_modules",
    "attachments_of",
    "check_patterns_match",
    "constraint_buffer_names",
    "detach_all",
    "layer_seed",
    "match_any",
    "trainable_weight",
    "unwrap",
    "weight_layers",
]
