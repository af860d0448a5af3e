"""Direct feedback alignment (Nøkland 2016): every layer receives the output error through its own fixed random
matrix, straight from the output, instead of from the layer above."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn

from biocircuits.core.interface import attached_modules
from biocircuits.errors import ConfigError

from .registry import FeedbackRule, draw_init_uniform, register_rule


class DirectFeedbackOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    conv: Literal["channel", "full"] = Field(
        "channel",
        description="Conv layers: `channel` draws D as K x C_in and broadcasts e D over positions (memory-saving); "
        "`full` draws D as K x (C_in H W), Nøkland's rule, at the first backward.",
    )


class OutputError:
    """The output error e = dL/dy_out of the current backward pass, shared by every DFA layer of one model; recorded
    by a hook on the output layer's output, forgotten at its next forward and after each optimiser step."""

    def __init__(self) -> None:
        self.error: Tensor | None = None

    def capture(self, module: nn.Module, args: tuple, out: Tensor) -> None:
        """Forward hook of the output layer: forget the last pass's error, and record this pass's."""
        self.error = None
        if isinstance(out, Tensor) and out.requires_grad:
            out.register_hook(self.record)

    def record(self, grad: Tensor) -> None:
        self.error = grad.detach()


class DirectPathway:
    """grad_input of one layer: e D (D: the layer's fixed ``direct_feedback``, classes x input units), reshaped to
    the input. ``conv``: None for a linear layer, else the rule's option (``channel``: D has one column per input
    channel and e D is broadcast over the positions; ``full``: one column per input unit, drawn when first used)."""

    def __init__(self, layer: nn.Module, output: OutputError, conv: str | None, seed: int) -> None:
        self.layer, self.output, self.seed = layer, output, seed
        self.per_channel, self.full = conv == "channel", conv == "full"

    def __call__(self, delta: Tensor, input_shape: torch.Size) -> Tensor:
        error = self.output.error
        if error is None:
            raise RuntimeError(
                "dfa: a layer's backward ran without the output layer's backward of the same forward "
                "pass (is the network's output the last converted layer? losses on hidden features "
                "have no output error to send)"
            )
        direct = self.matrix(error.shape[-1], input_shape).to(error.dtype)
        signal = error.reshape(-1, direct.shape[0]) @ direct  # (N, units)
        if self.per_channel:  # conv: per channel, broadcast
            signal = signal.view(*signal.shape, *([1] * (len(input_shape) - 2)))
            return signal.expand(input_shape).contiguous()
        return signal.reshape(input_shape)

    def matrix(self, classes: int, input_shape: torch.Size) -> Tensor:
        """D; for a full conv pathway drawn at the first backward, when the input's size is known:
        U(-1/sqrt(units), 1/sqrt(units)) with units = C_in x positions, as a linear layer reading the flattened
        input would get, from the layer's seed (identical on every rank; saved and loaded with the model)."""
        layer, units = self.layer, math.prod(input_shape[1:])
        direct = layer.direct_feedback
        if not self.full:
            return direct
        if direct.numel() == 0:
            shape = torch.empty(classes, units, dtype=direct.dtype, device=direct.device)
            layer.direct_feedback = direct = draw_init_uniform(shape, self.seed)
        if direct.shape[1] != units:
            raise RuntimeError(
                f"dfa (conv: full): {layer.qualname or type(layer).__name__}'s D was drawn for "
                f"{direct.shape[1]} input units, this input has {units} ({tuple(input_shape[1:])}); "
                "the full pathway needs one input size in training (conv: channel does not)"
            )
        return direct


@register_rule
class DirectFeedbackAlignment(FeedbackRule):
    """For hidden layer l with input h_(l-1) and pre-activation a_l = W_l h_(l-1) (Nøkland 2016):

        dL/dh_(l-1) := e D_l,       so  delta_(l-1) = (e D_l) * f'(a_(l-1))  after the nonlinearity's own backward,

    with e = dL/dy the error at the output layer's output (N x K), and D_l a fixed random K x (input units) matrix
    drawn once from U(-1/sqrt(units), 1/sqrt(units)) (buffer ``direct_feedback``, seeded by (seed, layer name)).
    The output layer is the last converted layer in module order, whatever its rule (``overrides: {fc: bp}`` keeps a
    backprop output layer; e is recorded at its output). If it is a DFA layer itself, its input gets e D too (for
    it, D plays the part of FA's B). Weight and bias gradients stay delta x^T and sum(delta) with each layer's own
    delta.

    Conv layers, ``conv``:

    - ``channel`` (default): D is K x C_in, and e D is broadcast over the input's spatial positions (the
      memory-saving variant: one value per channel and sample, the same at every position);
    - ``full`` (Nøkland's rule, as for a linear layer): D is K x (C_in H W), one random weight from every output
      class to every input unit, so dL/dx[n, c, i, j] = sum_k e[n, k] D[k, (c, i, j)] (row-major (c, i, j), the
      input of the convolution op, after an explicit pad for non-zero padding modes); D is drawn at the first
      backward (buffer ``direct_feedback``, empty until then) because the input size is known only then, and a
      later input of another size is an error. Memory: K C_in H W per layer (ImageNet ResNet-18's ``layer1``:
      1000 x 64 x 56 x 56, 0.8 GB in float32).

    biotorch's DFA for convs (a random kernel applied with a transposed convolution to the output error, which
    differs from both at the borders and with strides) is not implemented. What still flows by backprop: everything
    between converted layers — nonlinearities (f'), batch norm, pooling, dropout, reshapes — and identity shortcuts,
    which carry the direct signal of the layer they skip to the layers before them. The output layer must be
    linear (e is (N, K))."""

    name = "dfa"
    Options = DirectFeedbackOptions

    def attach(self, layer: nn.Module, qualname: str) -> None:
        super().attach(layer, qualname)
        self._pathway: DirectPathway | None = None
        self._hook = None  # the output layer's forward hook (held by the first DFA layer, removed by detach)

    def detach(self, layer: nn.Module) -> None:
        if self._hook is not None:
            self._hook.remove()
            self._hook = None
        super().detach(layer)

    @classmethod
    def attach_group(cls, members: Sequence[tuple[str, nn.Module, FeedbackRule]], model: nn.Module) -> None:
        """Link the model's DFA layers: one shared output error, recorded at the output of the last converted
        layer of the model (module order, any rule)."""
        output_name, output_layer, _ = [(n, m, a.rule) for n, m, a in attached_modules(model) if a.rule][-1]
        if not isinstance(output_layer, nn.Linear):
            raise ConfigError(
                "dfa needs a linear output layer (the last converted layer)",
                key="feedback",
                given=f"{output_name} ({type(output_layer).__name__})",
                has_given=True,
                suggestion="exclude the layers after the classifier, or give them another rule",
            )
        classes = output_layer.out_features
        shared = OutputError()
        members[0][2]._hook = output_layer.register_forward_hook(shared.capture)
        for _, layer, rule in members:
            conv = None if isinstance(layer, nn.Linear) else rule.options.conv
            units = {None: getattr(layer, "in_features", 0), "channel": getattr(layer, "in_channels", 0), "full": 0}
            shape = torch.empty(classes, units[conv], dtype=layer.weight.dtype, device=layer.weight.device)
            rule.register_buffer(layer, "direct_feedback", draw_init_uniform(shape, rule.layer_seed))
            if conv == "full":  # drawn at the first backward: a checkpoint's D loads whatever its size
                rule.lazy_buffers = ("direct_feedback",)
            rule._pathway = DirectPathway(layer, shared, conv, rule.layer_seed)

    def direct_pathway(self, layer: nn.Module) -> DirectPathway | None:
        return self._pathway

    @classmethod
    def after_step_group(cls, members, step) -> None:
        """Release the output error after the optimiser step (it is the size of the network's output)."""
        for _, rule in members:
            if rule._pathway is not None:
                rule._pathway.output.error = None

    def feedback(self, layer: nn.Module, weight: Tensor, advance: bool) -> Tensor:
        raise NotImplementedError("dfa has no B of the weight's shape: see direct_pathway")
