"""torch's ``nn.RNN``, ``nn.GRU`` and ``nn.LSTM`` converted: every weight matrix (``weight_ih_l{k}[_reverse]``,
``weight_hh_l{k}[_reverse]``) learns with its own feedback rule through time.

A converted module runs the cell in an explicit time loop whose matrix products are
[`feedback_linear`][biocircuits.feedback.functional.feedback_linear] ops, so backprop through time sends the error
through B in place of W at every step: for the input matrix once over the whole sequence (grad_x_t = B_ih^T delta_t),
for the recurrent matrix at each step (grad_h_{t-1} += B_hh^T delta_t), while grad_W = sum_t delta_t a_t^T as in
backprop. With rule ``bp`` (B = W) the outputs and gradients equal the torch module's own.

Each matrix is seen by its rule through a [`RecurrentMatrix`][biocircuits.feedback.recurrent.RecurrentMatrix], a small
module under ``feedback_matrices`` whose ``weight`` *is* the RNN's parameter (nothing is copied), so the rules of
feedforward layers (``bp``, ``fa``, ``sign_symmetry``, ``kolen_pollack``) keep their buffers
(``feedback_matrices.weight_hh_l0.feedback_weight``...) and their hooks at the optimiser step unchanged. The RNN's own
``state_dict`` keys are unchanged; ``bc.remove`` drops ``feedback_matrices`` and gives the module its class back. Not
supported (a ConfigError at conversion): rules without a B of W's shape (``dfa``) or with a phase of their own
(``weight_mirror``), and LSTM projections (``proj_size > 0``); the ``phases:`` error transforms do not act inside the
recurrence."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from biocircuits.core.interface import Attachments, LayerAttachment, attach
from biocircuits.errors import ConfigError

from .functional import feedback_linear
from .layers import FEEDBACK_CLASSES, FeedbackLayer, _as_pair, feedback_class_for
from .rules import FeedbackRule, make_rule

SUPPORTED_RULES = ("bp", "fa", "sign_symmetry", "kolen_pollack")


class RecurrentMatrix(FeedbackLayer, nn.Module):
    """One weight matrix W (out, in) of a converted RNN, as its rule sees it: ``weight`` is the RNN's parameter
    ``name``; the rule's buffers live here. Never called itself: the RNN asks `matmul` for its products."""

    def __init__(self, owner: nn.Module, name: str) -> None:
        nn.Module.__init__(self)
        self.__dict__["_owner"] = owner  # not a submodule: the owner holds this module
        self.param_name = name

    @property
    def weight(self) -> Tensor:
        return getattr(self.__dict__["_owner"], self.param_name)

    def feedback_pair(self) -> tuple[Tensor | None, float | Tensor | None]:
        """(B, s) for the forward now running (B None: B = W), advancing the rule once per training forward."""
        others = sorted(set(self.attachments.slots) - {"rule"})
        if others:  # error transforms act on a layer's output error: the recurrence has no such hook
            raise ConfigError(
                f"{self.qualname}: a converted RNN's matrices take a feedback rule only",
                key="phases",
                given=", ".join(others),
                suggestion="turn the phases off, or add the RNN to feedback.exclude",
            )
        weight = self.weight
        feedback, scale = _as_pair(self.rule.feedback(self, weight, advance=self.training))
        return (None, None) if feedback is weight else (feedback, scale)

    def extra_repr(self) -> str:
        return f"{self.param_name}, rule={self.rule!r}"

    def describe_type(self) -> str:
        """What ``bc.describe`` lists as its type: the RNN's matrix and the gates its rows feed, e.g.
        ``GRU.weight_hh_l0 (gates r|z|n, 4 rows each)``."""
        owner = self.__dict__["_owner"]
        gates = GATES[owner.mode]
        rows = f", {owner.hidden_size} rows each" if "|" in gates else ""
        return f"{type(owner).__name__.removeprefix('Feedback')}.{self.param_name} ({gates}{rows})"


GATES = {"RNN_TANH": "tanh", "RNN_RELU": "relu", "GRU": "gates r|z|n", "LSTM": "gates i|f|g|o"}  # rows of W, in order


def recurrent_parameter_roles(model: nn.Module) -> dict[str, str]:
    """{qualified name: role} of every parameter of a converted RNN in ``model``: a weight learns through its
    [`RecurrentMatrix`][biocircuits.feedback.recurrent.RecurrentMatrix] (listed with the layers), a bias is added to
    the gates' input and transports nothing."""
    roles = {}
    for name, module in model.named_modules():
        if isinstance(module, FeedbackRecurrent):
            for pname, _ in module.named_parameters(recurse=False):
                where = f"{name}.feedback_matrices.{pname}" if name else f"feedback_matrices.{pname}"
                roles[f"{name}.{pname}" if name else pname] = (
                    f"learns with its rule through {where}" if pname.startswith("weight_") else "adds to the gates"
                )
    return roles


class RecurrentMatrices(LayerAttachment):
    """Marks a converted RNN (its ``attachments``): detaching it removes ``feedback_matrices``."""

    slot, name = "recurrent_matrices", "recurrent_matrices"

    def detach(self, layer: nn.Module) -> None:
        layer._modules.pop("feedback_matrices", None)
        super().detach(layer)


def _rnn_cell(nonlinearity: Callable[[Tensor], Tensor]):
    def cell(gates_x: Tensor, state: tuple[Tensor, ...], hh: Callable[[Tensor], Tensor]) -> tuple[Tensor, ...]:
        """h' = phi(W_ih x + b_ih + W_hh h + b_hh)."""
        return (nonlinearity(gates_x + hh(state[0])),)

    return cell


def _gru_cell(gates_x: Tensor, state: tuple[Tensor, ...], hh: Callable[[Tensor], Tensor]) -> tuple[Tensor, ...]:
    """r = sigma(i_r + h_r), z = sigma(i_z + h_z), n = tanh(i_n + r h_n), h' = (1 - z) n + z h (torch's GRU; i_* and
    h_* the chunks of W_ih x + b_ih and W_hh h + b_hh)."""
    h = state[0]
    i_r, i_z, i_n = gates_x.chunk(3, -1)
    h_r, h_z, h_n = hh(h).chunk(3, -1)
    r, z = torch.sigmoid(i_r + h_r), torch.sigmoid(i_z + h_z)
    n = torch.tanh(i_n + r * h_n)
    return ((1 - z) * n + z * h,)


def _lstm_cell(gates_x: Tensor, state: tuple[Tensor, ...], hh: Callable[[Tensor], Tensor]) -> tuple[Tensor, ...]:
    """(i, f, g, o) = chunks of W_ih x + b_ih + W_hh h + b_hh; c' = sigma(f) c + sigma(i) tanh(g),
    h' = sigma(o) tanh(c')."""
    h, c = state
    i, f, g, o = (gates_x + hh(h)).chunk(4, -1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


CELLS = {"RNN_TANH": _rnn_cell(torch.tanh), "RNN_RELU": _rnn_cell(torch.relu), "GRU": _gru_cell, "LSTM": _lstm_cell}


class FeedbackRecurrent:
    """Mixin of the converted ``nn.RNN`` / ``nn.GRU`` / ``nn.LSTM``: the forward as an explicit time loop of feedback
    products. Inputs and outputs are the torch module's (batched or unbatched, ``batch_first``, bidirectional,
    stacked with inter-layer dropout); packed sequences are not taken."""

    feedback_matrices: nn.ModuleDict

    @classmethod
    def convert(cls, module: nn.Module, rule: FeedbackRule, qualname: str = "") -> nn.Module:
        """Turn ``module`` into this class in place: one
        [`RecurrentMatrix`][biocircuits.feedback.recurrent.RecurrentMatrix] per weight matrix, each with its own copy of
        ``rule`` (same name, options and seed; its draws seeded by ``qualname.<matrix>``)."""
        where = qualname or type(module).__name__
        if rule.name not in SUPPORTED_RULES:
            raise ConfigError(
                f"{where}: recurrent modules learn with {', '.join(SUPPORTED_RULES)}",
                key="feedback.rule",
                given=rule.name,
                suggestion="choose one of those, or add the module to feedback.exclude (backprop)",
            )
        if getattr(module, "proj_size", 0):
            raise ConfigError(
                f"{where}: an LSTM with proj_size > 0 cannot be converted",
                key="feedback",
                given=module.proj_size,
                suggestion="add it to feedback.exclude (backprop)",
            )
        plain = type(module)
        module.__class__ = feedback_class_for(cls, plain)
        matrices = nn.ModuleDict()
        for name in module._flat_weights_names:
            if name.startswith("weight_"):
                matrices[name] = RecurrentMatrix(module, name)
                copy = make_rule(rule.name, rule.options.model_dump(exclude_unset=True), seed=rule.seed)
                attach(matrices[name], copy, f"{qualname}.{name}" if qualname else name)
        module.feedback_matrices = matrices
        module.__dict__["attachments"] = Attachments(qualname, plain)
        attach(module, RecurrentMatrices(), qualname)
        return module

    def forward(self, input: Tensor, hx=None):
        if not isinstance(input, Tensor):
            raise TypeError(f"{type(self).__name__} takes a tensor input (packed sequences are not supported)")
        batched = input.dim() == 3
        x = input if batched else input.unsqueeze(1)
        x = x.transpose(0, 1) if self.batch_first and batched else x  # [T, B, in]
        lstm = self.mode == "LSTM"
        states = self._initial_states(x, hx, batched, lstm)
        finals: list[list[Tensor]] = [[] for _ in states]
        dirs = 2 if self.bidirectional else 1
        for layer in range(self.num_layers):
            outs = []
            for d in range(dirs):
                k = layer * dirs + d
                seq, last = self._run_direction(x, tuple(s[k] for s in states), layer, d)
                outs.append(seq)
                for keep, s in zip(finals, last, strict=True):
                    keep.append(s)
            x = torch.cat(outs, -1) if dirs > 1 else outs[0]
            if self.dropout and self.training and layer < self.num_layers - 1:
                x = F.dropout(x, self.dropout, training=True)
        out = x.transpose(0, 1) if self.batch_first and batched else x
        final = [torch.stack(f, 0) for f in finals]
        if not batched:
            out, final = out.squeeze(1), [f.squeeze(1) for f in final]
        return (out, tuple(final)) if lstm else (out, final[0])

    def _initial_states(self, x: Tensor, hx, batched: bool, lstm: bool) -> list[Tensor]:
        """[h0] or [h0, c0], each [num_layers * dirs, B, H] (zeros when ``hx`` is None)."""
        n = self.num_layers * (2 if self.bidirectional else 1)
        if hx is None:
            zeros = x.new_zeros(n, x.shape[1], self.hidden_size)
            return [zeros, zeros] if lstm else [zeros]
        hx = list(hx) if lstm else [hx]
        return hx if batched else [h.unsqueeze(1) for h in hx]

    def _run_direction(
        self, x: Tensor, state: tuple[Tensor, ...], layer: int, d: int
    ) -> tuple[Tensor, tuple[Tensor, ...]]:
        """One layer and direction over x [T, B, in]: (outputs [T, B, H], final state)."""
        suffix = f"_l{layer}" + ("_reverse" if d else "")
        ih, hh = self.feedback_matrices["weight_ih" + suffix], self.feedback_matrices["weight_hh" + suffix]
        b_ih, b_hh = (
            (getattr(self, "bias_ih" + suffix), getattr(self, "bias_hh" + suffix)) if self.bias else (None, None)
        )
        gates_x = _product(ih, x, b_ih)  # all steps at once: [T, B, G H]
        product_hh = _bound_product(hh, b_hh)
        cell = CELLS[self.mode]
        steps = range(x.shape[0] - 1, -1, -1) if d else range(x.shape[0])
        outs: list[Tensor] = [None] * x.shape[0]  # type: ignore[list-item]
        for t in steps:
            state = cell(gates_x[t], state, product_hh)
            outs[t] = state[0]
        return torch.stack(outs, 0), state


def _product(matrix: RecurrentMatrix, x: Tensor, bias: Tensor | None) -> Tensor:
    """x W^T + b, with the error sent back through the matrix's B."""
    return _bound_product(matrix, bias)(x)


def _bound_product(matrix: RecurrentMatrix, bias: Tensor | None) -> Callable[[Tensor], Tensor]:
    """a -> a W^T + b for every step of one forward, with B fixed once for the forward (a rule that redraws B per
    batch draws once per sequence, not per step)."""
    weight = matrix.weight
    if not torch.is_grad_enabled():
        return lambda a: F.linear(a, weight, bias)
    feedback, scale = matrix.feedback_pair()
    return lambda a: feedback_linear(a, weight, bias, feedback, scale)


class FeedbackRNN(FeedbackRecurrent, nn.RNN):
    """``nn.RNN`` (tanh or relu) whose matrices send the error through their rule's B at every step."""


class FeedbackGRU(FeedbackRecurrent, nn.GRU):
    """``nn.GRU`` whose matrices send the error through their rule's B at every step."""


class FeedbackLSTM(FeedbackRecurrent, nn.LSTM):
    """``nn.LSTM`` (no projections) whose matrices send the error through their rule's B at every step."""


FEEDBACK_CLASSES.update({nn.RNN: FeedbackRNN, nn.GRU: FeedbackGRU, nn.LSTM: FeedbackLSTM})
