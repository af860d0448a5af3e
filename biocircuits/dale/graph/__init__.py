"""One type per neuron: Dale types belong to the unit that produces an activation (a channel or a feature) and
hold in every layer that reads it. The units are found by following the model's graph (``torch.fx``).

Every tensor in the traced graph carries an integer *unit id* per element (batch size 1, so the ids are small):

* the model input and every weight layer's output get fresh ids, one per channel (dim 1 of a conv output, the
  last dim of a linear output): these are the *producers*;
* data-movement ops (``cat``, ``view`` / ``reshape`` / ``flatten``, ``permute`` / ``transpose``, ``chunk`` /
  ``split``, indexing, ``channel_shuffle``...) are applied to the ids themselves, so a concatenation lists its
  inputs' units, a flattened feature inherits its channel's unit and a channel shuffle permutes the units;
* ``a + b``, ``a - b`` and ``a * b`` of two tracked tensors of the output's shape *merge* the units they pair
  element by element (a residual sum is one neuron: its operands must share a type), union-find over unit ids; an
  operand broadcast to the output (a scalar, a per-channel gate) is not merged;
* any other op passes the ids through when its output has their shape (activations, BatchNorm, dropout...) or
  when every dim it changes held one unit along it (pooling, means over space or time); an op that mixes units
  (attention, an unknown op) starts fresh units, along dim 1 (along the last dim when the model's first weight
  layer is linear, as in sequence models).

Each weight layer then reads a vector ``u`` of unit ids, one per input channel (``in_features`` / ``in_channels``),
and its Dale signs are ``s = sign[u]``. Signs are given per producer, in graph order: producer p of width n gets
``assign_signs(n, fraction, assignment, seed)`` (the E units first for ``block``), and a unit merged with an
earlier producer's unit takes that unit's sign. In a chain (no concatenation) every consumer reads one producer
of its own width, so the signs are exactly the per-layer ones of earlier versions.

The package, one job per module: [`tracing`][biocircuits.dale.graph.tracing] (the ``torch.fx`` graph, weight layers as
leaves), [`propagate`][biocircuits.dale.graph.propagate] (runs it on a sample, carrying ids beside every tensor),
[`ops`][biocircuits.dale.graph.ops] (how each op carries them: the [`UNIT_RULES`][biocircuits.dale.graph.ops.UNIT_RULES]
table, where a new op joins with one entry), [`layers`][biocircuits.dale.graph.layers] (what a weight layer reads and
produces), [`merging`][biocircuits.dale.graph.merging] (union-find over unit ids),
[`sizes`][biocircuits.dale.graph.sizes] (the sample input, guessed when not given),
[`units`][biocircuits.dale.graph.units] (the result, [`UnitGraph`][biocircuits.dale.graph.units.UnitGraph]) and
[`build`][biocircuits.dale.graph.build] ([`unit_graph`][biocircuits.dale.graph.build.unit_graph], the whole pass).
"""

from .build import unit_graph
from .ops import (
    MERGING_FUNCTIONS,
    MERGING_METHODS,
    STRUCTURAL_FUNCTIONS,
    STRUCTURAL_METHODS,
    STRUCTURAL_MODULES,
    UNIT_RULES,
    UnitRule,
    merging,
    passthrough,
    structural,
)
from .sizes import GUESSED_SIZES, sample_input
from .tracing import trace
from .units import Producer, UnitGraph

__all__ = [
    "GUESSED_SIZES",
    "MERGING_FUNCTIONS",
    "MERGING_METHODS",
    "STRUCTURAL_FUNCTIONS",
    "STRUCTURAL_METHODS",
    "STRUCTURAL_MODULES",
    "UNIT_RULES",
    "Producer",
    "UnitGraph",
    "UnitRule",
    "merging",
    "passthrough",
    "sample_input",
    "structural",
    "trace",
    "unit_graph",
]
