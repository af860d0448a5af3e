"""The whole pass: trace the model, run it on a sample carrying unit ids, merge, and return the
[`UnitGraph`][biocircuits.dale.graph.units.UnitGraph]."""

from __future__ import annotations

import torch
from torch import nn

from biocircuits.core.layers import weight_layers
from biocircuits.errors import ConfigError

from .merging import merge_repeated_calls
from .propagate import Propagate
from .sizes import sample_input
from .tracing import trace
from .units import UnitGraph


@torch.no_grad()
def unit_graph(model: nn.Module, input_shape: list[int] | None = None) -> UnitGraph:
    """Trace ``model`` and follow its units (see [`biocircuits.dale.graph`][biocircuits.dale.graph]). The model runs
    once in eval mode on a random sample of batch size 1 (``input_shape`` without the batch dim, guessed when None), its
    weight layers with their plain torch forward, the global RNG state kept."""
    gm = trace(model)
    layers = dict(weight_layers(model))
    was_training = model.training
    errors: list[str] = []
    model.eval()
    try:
        for sample in sample_input(model, input_shape):
            prop = Propagate(gm, layers)
            try:
                with torch.random.fork_rng(devices=[]):
                    prop.run(sample)
            except ConfigError:
                raise
            except Exception as err:  # a wrong guessed input size: try the next one
                errors.append(f"{tuple(sample.shape)}: {type(err).__name__}")
                continue
            return _finish(prop)
    finally:
        model.train(was_training)
    raise ConfigError(
        "cannot run the model on a sample input to follow its units",
        key="dale.input_shape",
        given=input_shape,
        expected="the shape of one input without the batch dimension",
        suggestion="set dale.input_shape, e.g. [3, 32, 32] (tried " + "; ".join(errors[:6]) + ", ...)",
    )


def _finish(prop: Propagate) -> UnitGraph:
    """The graph of a finished run: a layer called twice reads and produces one set of units (its first call's)."""
    for calls in (*prop.inputs.values(), *prop.outputs.values()):
        merge_repeated_calls(prop.uf, calls)
    return UnitGraph(
        prop.producers,
        {k: v[0] for k, v in prop.inputs.items()},
        {k: v[0] for k, v in prop.outputs.items()},
        prop.uf.roots(prop.n),
        prop.folds,
        prop.norms,
    )
