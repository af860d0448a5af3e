"""A continuous-time rate RNN (Song, Yang & Wang 2016), discretised with step ``dt`` and time constant ``tau``,
registered as ``rate_rnn``; with ``dale`` set it takes their E/I form (column signs on the recurrent and readout
weights, optionally no self-connections)."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from biocircuits.core.celltypes import assign_signs
from biocircuits.errors import ConfigError

from .rate_bptt import rate_recurrence
from .registry import register_model

ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "relu": F.relu,
    "tanh": torch.tanh,
    "softplus": F.softplus,
    "sigmoid": torch.sigmoid,
    "identity": lambda x: x,
}


class RateRNN(nn.Module):
    r"""Rate units x (N = ``n_hidden``) driven by inputs u (``n_in``), read out linearly (``n_out``).

    With :math:`\alpha = dt / \tau`, state :math:`x_0 = 0` and :math:`r_t = \phi(x_t)`:

    .. math::

        x_{t+1} = (1 - \alpha) x_t + \alpha (W_{rec} r_t + W_{in} u_t + b_{rec}) + \sqrt{2 \alpha}\, \sigma \xi_t,
        \qquad z_t = W_{out} r_{t+1} + b_{out}

    for t = 0 .. T-1, with :math:`\xi_t \sim N(0, 1)` drawn per unit, sample and step (private noise) when
    :math:`\sigma` = ``noise_std`` > 0 and the module is training; evaluation is noiseless (so validation figures are
    reproducible), and [`step`][biocircuits.models.recurrent.RateRNN.step] takes an explicit ``noise`` :math:`\xi_t`
    from a caller that wants its own.

    Submodules, in this order (the first is Dale's ``<input>`` layer): ``input`` (``nn.Linear`` n_in -> N, no bias:
    :math:`W_{in}`), ``recurrent`` (``nn.Linear`` N -> N: :math:`W_{rec}, b_{rec}`) and ``readout`` (``nn.Linear``
    N -> n_out: :math:`W_{out}, b_{out}`). Every matrix is an ordinary linear layer, so ``bc.apply`` converts each to
    a feedback layer and backprop through time sends the error through B in place of W at every step.

    ``dale`` (None or the excitatory fraction, e.g. 0.8): Song et al.'s E/I form. The first round(dale N) units are
    excitatory (buffer ``unit_sign``: +1 E, -1 I, as Dale's ``block`` assignment of that fraction gives them), and
    the recurrent and readout weights start with their presynaptic unit's sign (column signs), the I columns scaled
    by n_E / n_I so that each unit's mean E and I input balance. The signs are *kept* by the constraint spec's
    ``dale:`` section (``layers: [recurrent, readout]``, ``types: per_layer``, the same ``excitatory_fraction``,
    ``assignment: block``, any enforcer, ``init: keep``), which registers the same signs as ``dale_sign``.
    ``self_connections=False`` zeroes the diagonal of W_rec and masks its gradient, so it stays zero under every
    optimiser and column-sign enforcer that keeps a zero weight at zero.
    """

    def __init__(
        self,
        n_in: int,
        n_hidden: int,
        n_out: int,
        dt: float = 20.0,
        tau: float = 100.0,
        noise_std: float = 0.0,
        activation: str = "relu",
        dale: float | None = None,
        self_connections: bool = True,
    ) -> None:
        super().__init__()
        _check(n_in, n_hidden, n_out, dt, tau, noise_std, activation, dale)
        self.n_in, self.n_hidden, self.n_out = n_in, n_hidden, n_out
        self.dt, self.tau, self.alpha, self.noise_std = float(dt), float(tau), float(dt) / float(tau), noise_std
        self.activation, self.phi = activation, ACTIVATIONS[activation]
        self.dale, self.self_connections = dale, self_connections
        self.input = nn.Linear(n_in, n_hidden, bias=False)
        self.recurrent = nn.Linear(n_hidden, n_hidden)
        self.readout = nn.Linear(n_hidden, n_out)
        if dale is not None:
            self.register_buffer("unit_sign", assign_signs(n_hidden, dale, "block", 0).float())
            with torch.no_grad():
                for layer in (self.recurrent, self.readout):
                    layer.weight.copy_(signed_balanced(layer.weight, self.unit_sign))
        if not self_connections:
            self.register_buffer("self_mask", 1.0 - torch.eye(n_hidden))
            with torch.no_grad():
                self.recurrent.weight.mul_(self.self_mask)

    def initial_state(self, batch: int, like: Tensor) -> Tensor:
        """x_0 = 0, shaped [batch, N], in ``like``'s dtype and device."""
        return like.new_zeros(batch, self.n_hidden)

    def step(self, x_state: Tensor, u_t: Tensor, noise: Tensor | None = None) -> tuple[Tensor, Tensor]:
        r"""One time step: (x_{t+1}, r_{t+1}) from x_t [B, N] and u_t [B, n_in].

        x_{t+1} = (1 - alpha) x_t + alpha (W_rec phi(x_t) + W_in u_t + b_rec) + sqrt(2 alpha) noise_std xi_t, with
        xi_t = ``noise`` when given (shaped like x_t), else drawn when noise_std > 0 and training, else 0."""
        return self._advance(x_state, self.input(u_t), noise)

    def _advance(self, x_state: Tensor, drive_in: Tensor, noise: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """[`step`][biocircuits.models.recurrent.RateRNN.step] from the input drive W_in u_t [B, N]."""
        drive = self.recurrent(self.phi(x_state)) + drive_in
        x_next = (1.0 - self.alpha) * x_state + self.alpha * drive
        if noise is None and self.noise_std > 0 and self.training:
            noise = torch.randn_like(x_state)
        if noise is not None:
            x_next = x_next + math.sqrt(2.0 * self.alpha) * self.noise_std * noise
        return x_next, self.phi(x_next)

    def forward(self, x: Tensor) -> Tensor:
        """Logits z [B, T, n_out] for inputs x [B, T, n_in] (z_t read from r_{t+1}).

        The input drive W_in u_t is one product over all steps. With gradients on and a recurrent layer that sends
        its error through a feedback weight for a whole sequence (a converted ``recurrent``, see
        [`rate_bptt`][biocircuits.models.rate_bptt]), the recursion is one autograd op per sequence (B fixed for the
        sequence: a rule that redraws B per training forward draws once per sequence); otherwise it is the loop of
        [`step`][biocircuits.models.recurrent.RateRNN.step]s that autograd differentiates."""
        if x.dim() != 3 or x.shape[-1] != self.n_in:
            raise ValueError(f"RateRNN takes inputs [batch, time, {self.n_in}], got {tuple(x.shape)}")
        if not self.self_connections:
            self._mask_self_gradient()
        drive_in = self.input(x)
        sequence = getattr(self.recurrent, "sequence_feedback", None)
        pair = sequence() if sequence is not None and torch.is_grad_enabled() else None
        if pair is not None:
            noise_std = self.noise_std if self.training else 0.0
            layer = self.recurrent
            rates = rate_recurrence(
                drive_in, layer.weight, layer.bias, *pair, self.alpha, self.activation, self.phi, noise_std
            )
            return self.readout(rates)
        state, rates = self.initial_state(x.shape[0], x), []
        for p_t in drive_in.unbind(1):
            state, r = self._advance(state, p_t)
            rates.append(r)
        return self.readout(torch.stack(rates, 1))

    def _mask_self_gradient(self) -> None:
        """Hook grad_W_rec <- grad_W_rec * (1 - I) on the recurrent weight parameter, once per parameter object (a
        copied or loaded model's new parameter gets its own at its first forward)."""
        weight = self.recurrent.weight
        if weight.requires_grad and weight.is_leaf and not getattr(weight, "_self_mask_hooked", False):
            weight.register_hook(lambda grad: grad * self.self_mask.to(grad.dtype))
            weight._self_mask_hooked = True

    def extra_repr(self) -> str:
        return (
            f"alpha={self.alpha:g} (dt={self.dt:g}, tau={self.tau:g}), noise_std={self.noise_std:g}, "
            f"activation={self.activation}, dale={self.dale}, self_connections={self.self_connections}"
        )


def signed_balanced(weight: Tensor, unit_sign: Tensor) -> Tensor:
    """|W| with each column j given sign s_j, the inhibitory columns scaled by n_E / n_I (so that
    sum_j W_ij has mean 0 over draws); shapes: W [out, N], s [N]."""
    n_e, n_i = int((unit_sign > 0).sum()), int((unit_sign < 0).sum())
    scale = torch.where(unit_sign > 0, 1.0, n_e / max(n_i, 1)).to(weight.dtype)
    return weight.abs() * unit_sign.to(weight.dtype) * scale


def _check(
    n_in: int, n_hidden: int, n_out: int, dt: float, tau: float, noise_std: float, activation: str, dale: float | None
) -> None:
    for key, value in (("n_in", n_in), ("n_hidden", n_hidden), ("n_out", n_out)):
        if not isinstance(value, int) or value < 1:
            raise ConfigError("a layer width must be a positive integer", key=f"model.kwargs.{key}", given=value)
    if not 0 < dt <= tau:
        raise ConfigError(
            "the step must be positive and at most the time constant (alpha = dt / tau in (0, 1])",
            key="model.kwargs.dt",
            given=f"dt={dt}, tau={tau}",
            suggestion="e.g. dt: 20, tau: 100",
        )
    if noise_std < 0:
        raise ConfigError(
            "noise_std is a standard deviation", key="model.kwargs.noise_std", given=noise_std, expected=">= 0"
        )
    if activation not in ACTIVATIONS:
        raise ConfigError(
            "unknown activation",
            key="model.kwargs.activation",
            given=activation,
            expected="one of " + ", ".join(ACTIVATIONS),
        )
    if dale is not None and not 0 < dale < 1:
        raise ConfigError(
            "dale is the excitatory fraction",
            key="model.kwargs.dale",
            given=dale,
            expected="a number in (0, 1), e.g. 0.8, or null for no E/I form",
        )


@register_model("rate_rnn")
def rate_rnn(input_shape: tuple[int, ...], num_classes: int, n_hidden: int = 64, **kwargs) -> RateRNN:
    """A [`RateRNN`][biocircuits.models.recurrent.RateRNN] for sequences [T, n_in] (``input_shape``; n_in = its last
    entry) with ``num_classes`` outputs per step; ``kwargs`` are RateRNN's (dt, tau, noise_std, activation, dale,
    self_connections)."""
    return RateRNN(int(input_shape[-1]), n_hidden, num_classes, **kwargs)
