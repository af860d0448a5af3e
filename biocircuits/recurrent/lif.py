"""``lif_rnn``: a recurrent network of leaky integrate-and-fire units (LIF, or ALIF with an adaptive threshold) in
discrete time, as in Bellec et al. 2020 (e-prop), with a leaky (``voltage``) or counting (``spike_count``) readout
and a surrogate gradient, so that it trains with backprop through time (autograd) or with e-prop."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from biocircuits.errors import ConfigError
from biocircuits.models.registry import register_model


class SpikeFunction(torch.autograd.Function):
    """z = H(v - A) forward; backward the pseudo-derivative of Bellec et al. 2020 (their eq. 5):

    dz/dv ~ psi = (gamma / v_th) * max(0, 1 - |v - A| / v_th)        (shapes: elementwise, [B, n])"""

    @staticmethod
    def forward(ctx, distance: Tensor, v_th: float, gamma: float) -> Tensor:
        ctx.save_for_backward(distance)
        ctx.v_th, ctx.gamma = v_th, gamma
        return (distance > 0).to(distance.dtype)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None, None]:
        (distance,) = ctx.saved_tensors
        return grad * pseudo_derivative(distance, ctx.v_th, ctx.gamma), None, None


def pseudo_derivative(distance: Tensor, v_th: float, gamma: float) -> Tensor:
    """psi = (gamma / v_th) max(0, 1 - |v - A| / v_th), elementwise, given ``distance`` = v - A."""
    return (gamma / v_th) * torch.clamp(1.0 - distance.abs() / v_th, min=0.0)


@dataclass
class LIFState:
    """The network's state after a step: membrane potentials ``v``, threshold adaptations ``a``, spikes ``z`` and
    the readout's filtered output ``out`` (without its bias), each [B, n] (``out``: [B, n_out])."""

    v: Tensor
    a: Tensor
    z: Tensor
    out: Tensor


READOUT_DECAY = {  # readout -> kappa(dt, tau_out) of out_t = kappa out_{t-1} + W_out z_t
    "voltage": lambda dt, tau_out: math.exp(-dt / tau_out),
    "spike_count": lambda dt, tau_out: 1.0,
}


class LIFRNN(nn.Module):
    """Recurrent LIF/ALIF units (Bellec et al. 2020, Methods), one step per input time bin t = 1..T:

        v_t = alpha v_{t-1} + W_in u_t + W_rec z_{t-1} + b_rec - v_th z_{t-1}    (reset by subtraction; the reset's
                                                                                z is not differentiated)
        a_t = rho a_{t-1} + z_{t-1},      A_t = v_th + beta a_t                  (ALIF; beta = 0: LIF)
        z_t = H(v_t - A_t)                                                      (surrogate: SpikeFunction)
        out_t = kappa out_{t-1} + W_out z_t,      logits_t = out_t + b_out

    with alpha = exp(-dt/tau_mem), rho = exp(-dt/tau_adapt), kappa = exp(-dt/tau_out) for the ``voltage`` readout
    (a leaky readout neuron) and kappa = 1 for ``spike_count`` (W_out times the spikes counted so far). Shapes:
    forward(x [B, T, n_in]) -> logits [B, T, n_out]; submodules ``input`` (no bias), ``recurrent`` (no bias unless
    ``bias``), ``readout`` (nn.Linear each). ``self_connections: false`` keeps W_rec's diagonal at zero."""

    kind = "lif"

    def __init__(
        self,
        n_in: int,
        n_hidden: int,
        n_out: int,
        dt: float = 1.0,
        tau_mem: float = 20.0,
        tau_adapt: float = 200.0,
        beta: float = 0.0,
        v_th: float = 1.0,
        gamma: float = 0.3,
        readout: Literal["voltage", "spike_count"] = "voltage",
        tau_out: float = 20.0,
        bias: bool = False,
        self_connections: bool = False,
        input_scale: float = 1.0,
    ) -> None:
        super().__init__()
        if readout not in READOUT_DECAY:
            raise ConfigError(
                "unknown readout",
                key="model.kwargs.readout",
                given=readout,
                expected="one of " + ", ".join(READOUT_DECAY),
            )
        for key, value in (
            ("dt", dt),
            ("tau_mem", tau_mem),
            ("tau_adapt", tau_adapt),
            ("tau_out", tau_out),
            ("v_th", v_th),
        ):
            if not value > 0:
                raise ConfigError("must be positive", key=f"model.kwargs.{key}", given=value, expected="> 0")
        self.input = nn.Linear(n_in, n_hidden, bias=False)
        self.recurrent = nn.Linear(n_hidden, n_hidden, bias=bias)
        self.readout = nn.Linear(n_hidden, n_out)
        with torch.no_grad():
            self.input.weight.mul_(input_scale)
        if not self_connections:  # W_rec (1 - I) in the forward: the diagonal neither acts nor gets a gradient
            self.register_buffer("self_mask", 1.0 - torch.eye(n_hidden))
            with torch.no_grad():
                self.recurrent.weight.mul_(self.self_mask)
        self.alpha, self.rho = math.exp(-dt / tau_mem), math.exp(-dt / tau_adapt)
        self.kappa = READOUT_DECAY[readout](dt, tau_out)
        self.beta, self.v_th, self.gamma, self.self_connections = beta, v_th, gamma, self_connections

    def initial_state(self, batch: int, like: Tensor) -> LIFState:
        """Everything zero at t = 0 (no spikes, resting potential, no adaptation)."""
        zero = like.new_zeros(batch, self.recurrent.out_features)
        return LIFState(zero, zero, zero, like.new_zeros(batch, self.readout.out_features))

    def distance(self, v: Tensor, a: Tensor) -> Tensor:
        """v - A with A = v_th + beta a: positive where the unit spikes."""
        return v - (self.v_th + self.beta * a)

    def step(self, state: LIFState, u: Tensor) -> tuple[LIFState, Tensor]:
        """One time bin: (state_{t-1}, u_t [B, n_in]) -> (state_t, logits_t [B, n_out]) by the equations above."""
        z_prev = state.z
        v = self.alpha * state.v + self.input(u) + self.recurrent_drive(z_prev) - self.v_th * z_prev.detach()
        a = self.rho * state.a + z_prev
        z = SpikeFunction.apply(self.distance(v, a), self.v_th, self.gamma)
        out = self.kappa * state.out + nn.functional.linear(z, self.readout.weight)
        return LIFState(v, a, z, out), out + self.readout.bias

    def recurrent_drive(self, z_prev: Tensor) -> Tensor:
        """W_rec z_{t-1} (+ b_rec), with W_rec's diagonal masked when self-connections are off."""
        weight = self.recurrent.weight
        if not self.self_connections:
            weight = weight * self.self_mask.to(weight.dtype)
        return nn.functional.linear(z_prev, weight, self.recurrent.bias)

    def forward(self, x: Tensor) -> Tensor:
        """x [B, T, n_in] -> logits [B, T, n_out]."""
        if x.dim() != 3:
            raise ConfigError(
                "lif_rnn takes sequences", expected="inputs shaped [batch, time, features]", given=tuple(x.shape)
            )
        state, logits = self.initial_state(x.shape[0], x), []
        for t in range(x.shape[1]):
            state, out = self.step(state, x[:, t])
            logits.append(out)
        return torch.stack(logits, dim=1)


@register_model("lif_rnn")
def lif_rnn(input_shape: tuple[int, ...], num_classes: int, n_hidden: int = 64, **kwargs) -> LIFRNN:
    """A [`LIFRNN`][biocircuits.recurrent.lif.LIFRNN] for sequences shaped ``input_shape = (T, n_in)`` (its last entry
    is n_in) and ``num_classes`` readout units; ``kwargs``: the neuron and readout parameters of
    [`LIFRNN`][biocircuits.recurrent.lif.LIFRNN]."""
    return LIFRNN(int(input_shape[-1]), n_hidden, num_classes, **kwargs)
