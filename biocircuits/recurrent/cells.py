"""How an online learner steps each recurrent model it supports: one adapter class per model class (the lookup table
``CELLS``), giving per time step the logits, the presynaptic activity of the recurrent weights, the derivative of
each unit's output with respect to its state, and the activity the readout reads."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from biocircuits.errors import ConfigError
from biocircuits.models.recurrent import RateRNN

from .lif import LIFRNN, pseudo_derivative
from .traces import Dynamics


@dataclass
class CellStep:
    """One step t of a cell: its new ``state``, ``logits`` [B, n_out], ``rec_pre`` [B, N] (the recurrent units'
    output that W_rec met at this step: r_{t-1} or z_{t-1}), ``d`` [B, N] (d output_t / d state_t: phi'(x_t) or the
    pseudo-derivative psi_t) and ``readout_pre`` [B, N] (what W_out reads at this step: r_t or z_t)."""

    state: Any
    logits: Tensor
    rec_pre: Tensor
    d: Tensor
    readout_pre: Tensor


# phi'(x) for each activation of the rate RNN, written out (exact, no autograd graph)
DERIVATIVES: dict[str, Callable[[Tensor], Tensor]] = {
    "relu": lambda x: (x > 0).to(x.dtype),
    "tanh": lambda x: 1.0 - torch.tanh(x) ** 2,
    "softplus": torch.sigmoid,
    "sigmoid": lambda x: torch.sigmoid(x) * (1.0 - torch.sigmoid(x)),
    "identity": torch.ones_like,
}


class RateCell:
    """[`RateRNN`][biocircuits.models.recurrent.RateRNN]: x_t = (1 - alpha) x_{t-1} + alpha (W_rec r_{t-1} + W_in u_t
    + b_rec) + noise, r_t = phi(x_t), logits_t = W_out r_t + b_out: leak 1 - alpha, gain alpha, no readout filter.
    The private noise is drawn by the model's own ``step`` (training mode), as in its forward."""

    kind = "rate"

    def __init__(self, model: RateRNN) -> None:
        self.model = model
        self.dynamics = Dynamics(lam=1.0 - model.alpha, g=model.alpha)
        self.readout_decay = 0.0
        self.phi_prime = DERIVATIVES[model.activation]

    def start(self, batch: int, like: Tensor) -> Tensor:
        return self.model.initial_state(batch, like)

    def advance(self, x: Tensor, u: Tensor, interfere: Interfering | None = None) -> CellStep:
        """Step t; ``interfere`` (phases in time: the learning signals left in the units) adds to x_t and logits_t."""
        r_prev = self.model.phi(x)
        x_next, r_next = self.model.step(x, u)
        if interfere is not None:
            x_next = interfere.state(x_next)
            r_next = self.model.phi(x_next)
        logits = self.model.readout(r_next)
        logits = interfere.logits(logits) if interfere is not None else logits
        return CellStep(x_next, logits, r_prev, self.phi_prime(x_next), r_next)


class LIFCell:
    """[`LIFRNN`][biocircuits.recurrent.lif.LIFRNN]: leak alpha, gain 1, the threshold adaptation (beta, rho) of ALIF
    units, the readout's filter kappa; ``d`` is the pseudo-derivative psi_t."""

    def __init__(self, model: LIFRNN) -> None:
        self.model = model
        self.kind = "alif" if model.beta != 0.0 else "lif"
        self.dynamics = Dynamics(lam=model.alpha, g=1.0, beta=model.beta, rho=model.rho)
        self.readout_decay = model.kappa

    def start(self, batch: int, like: Tensor) -> Any:
        return self.model.initial_state(batch, like)

    def advance(self, state: Any, u: Tensor, interfere: Interfering | None = None) -> CellStep:
        """Step t (``interfere`` is refused for spiking units at ``bc.apply``: always None)."""
        m = self.model
        new, logits = m.step(state, u)
        psi = pseudo_derivative(m.distance(new.v, new.a), m.v_th, m.gamma)
        return CellStep(new, logits, state.z, psi, new.z)


class Interfering(Protocol):
    """What the units' activity gets added at a step
    ([`TrialSignals`][biocircuits.recurrent.signals.TrialSignals])."""

    def state(self, x: Tensor) -> Tensor: ...

    def logits(self, z: Tensor) -> Tensor: ...


CELLS: dict[type[nn.Module], type] = {RateRNN: RateCell, LIFRNN: LIFCell}


def cell_for(model: nn.Module, rule: str) -> RateCell | LIFCell:
    """The adapter that steps ``model`` for online rule ``rule``; a ConfigError for a model it does not know."""
    cls = CELLS.get(type(model))
    if cls is None:
        raise ConfigError(
            f"the online rule {rule!r} learns recurrent models it can step in time",
            key="feedback.rule",
            expected="a model of class "
            + " or ".join(c.__name__ for c in CELLS)
            + " (model.name: rate_rnn or lif_rnn), converted as a whole",
            given=type(model).__name__,
            suggestion="use a BPTT rule (bp, fa, sign_symmetry) for other models",
        )
    if isinstance(model, RateRNN) and model.activation not in DERIVATIVES:
        raise ConfigError(
            "no derivative known for this activation",
            key="model.kwargs.activation",
            given=model.activation,
            expected="one of " + ", ".join(DERIVATIVES),
        )
    return cls(model)
