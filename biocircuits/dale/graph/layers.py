"""Weight layers in the unit graph: each reads one unit per input channel (a conv's dim 1, a linear layer's last
dim) and produces fresh units, one per output channel."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch.fx as fx
from torch import Tensor, nn

from biocircuits.errors import ConfigError

if TYPE_CHECKING:
    from .propagate import Propagate


def per_channel(ids: Tensor) -> Tensor | None:
    """The unit of each channel (dim 1) when it is the same at every position, else None."""
    flat = ids.transpose(0, 1).reshape(ids.shape[1], -1)
    return flat[:, 0].clone() if bool((flat == flat[:, :1]).all()) else None


def per_feature(ids: Tensor) -> Tensor | None:
    """The unit of each feature (last dim) when it is the same at every leading position, else None."""
    flat = ids.reshape(-1, ids.shape[-1])
    return flat[0].clone() if bool((flat == flat[:1]).all()) else None


def weight_layer_units(prop: Propagate, n: fx.Node, real: Tensor) -> Tensor:
    """The weight layer called at node ``n``: records the unit of each of its input channels (shape (in,)) and of
    each output channel (shape (out,)) under its name, one entry per call, and returns its output's fresh ids;
    a ConfigError when an input channel carries several units."""
    name = str(n.target)
    ids = prop.first_ids(n)
    conv = not isinstance(prop.layers[name], nn.Linear)
    if ids is not None:
        per = per_channel(ids) if conv else per_feature(ids)
        if per is None:
            raise ConfigError(
                f"{name}: an input channel of this layer carries several units (an op before "
                "it mixes channels in a way the graph cannot follow)",
                key="dale.types",
                given="graph",
                suggestion="set dale.types: per_layer for this model",
            )
        prop.inputs.setdefault(name, []).append(per)
    out = prop.fresh(name, real, 1 if conv else real.dim() - 1, "layer")
    if out.dim() > 1:  # the unit of each output channel (constant off the channel dim: fresh ids)
        prop.outputs.setdefault(name, []).append(per_channel(out) if conv else per_feature(out))
    else:
        prop.outputs.setdefault(name, []).append(out)
    return out
