"""Phases in time for recurrent models (``rate_rnn``, ``lif_rnn``): the ``phases:`` settings act on the learning
signal as it runs through the steps t = 0 .. T-1 of a trial, not across optimiser steps.

The signal s_t of a population at step t is, for the online rules (``rflo``, ``eprop``), the hidden units' learning
signal L_t = err_t B [B, N] and the readout's own error err_t = dE/dlogits_t [B, n_out]; with backprop through time
(``bp``, ``fa``, ``sign_symmetry``... on ``rate_rnn`` / ``lif_rnn``) it is the error dE/dz_t [B, n_out] entering the
network at the readout at step t. Each population's signal passes, in the order of the feedforward transforms,

    late         a_t = s_{t-d}                                  (a_t = 0 for t < d; ``error_delay: d``)
    noise        a_t <- a_t + sigma rms(a_t) xi_t,   xi_t ~ N(0, 1)   (rms over the step's [B, n]; ``error_noise``)
    quantised    a_t <- quantize(a_t, N)                        (``error_quantization``: at most N spikes per unit)
    filter       f_t = a f_{t-1} + (1 - a) a_t,  a = exp(-1 / tau),  f_{-1} = 0          (``error_filter: tau``)

and what arrives at step t is f_t. One noise draw per step (the silent first d steps included), from a generator
seeded by (``phases.seed``, population, trial number): the model's buffer ``phase_trial`` counts the training trials,
so a run resumes exactly. Every state here lives within one trial: the network starts each trial at rest, so queue
and filter start empty, and the signals of the last d steps, which would arrive after the trial, are lost.

What the late signal meets (``backward_state``; online rules, with the eligibility e_t of each synapse and the
readout's presynaptic activity y_t):

    stored    grad += f_t e_{t-d}         the trace kept for the signal (memory: d traces per matrix)
    current   grad += f_t e_t             the trace as it is when the signal arrives (Bellec et al. 2020's
                                          learning signal arriving late; nothing kept)
    trace     grad += f_t ebar_t,   ebar_t = lam ebar_{t-1} + (1 - lam) e_t   (``trace_decay`` / ``trace_tau``:
                                          a slower trace of the eligibility, as the feedforward presynaptic trace)

``interference: gamma`` (online rules, rate units): what arrived at step t stays in the units and adds to their
activity at step t + 1, per sample b (rms over the units), as the feedforward ``interference``:

    x'_{t+1}[b] = x_{t+1}[b] + gamma rms(x_{t+1}[b]) / rms(L'_t[b]) L'_t[b]      (``scale: activity``; + gamma B L'_t[b]
    z'_{t+1}[b] = z_{t+1}[b] + gamma rms(z_{t+1}[b]) / rms(e'_t[b]) e'_t[b]        with ``scale: error``)

with L'_t, e'_t the hidden units' and the readout's arrived signals; everything downstream (rates, phi'(x'), the
logits, the errors) sees the sum, and the added term carries no gradient (nothing is differentiated online).

With backprop through time the error of step t - d enters the network at step t (``current``): the network's state
of step t carries it back; ``trace`` (``rate_rnn``) pairs every matrix's error at step t with a trace of its
presynaptic activity over the trial ([`bptt_trace`][biocircuits.recurrent.bptt_trace]). Refused, each with its
reason: ``stored`` under BPTT (one update per trial is made by autograd from the whole unrolled trial: a stored late
error is the same update less its last d steps), ``trace`` for ``lif_rnn`` under BPTT, ``interference`` under BPTT
(the error of step t does not exist while the forward pass runs) or for spiking units, and ``error_filter: {cascade:
false}`` (each population's signal is filtered once: there is no cascade of layers in time)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from biocircuits.core.interface import LayerAttachment, attach, attachments_of
from biocircuits.core.seeds import layer_seed, step_seed
from biocircuits.errors import ConfigError
from biocircuits.models.recurrent import RateRNN
from biocircuits.phases.transforms import TRANSFORMS

from .bptt_trace import TracedTrial
from .lif import LIFRNN
from .rules import OnlineRule
from .signals import SignalInTime, TimeOptions, TrialSignals

IN_TIME = (RateRNN, LIFRNN)  # the models whose phases act in time


SETTINGS: dict[str, tuple[str, str]] = {
    "error_delay": ("delay", "steps"),
    "error_noise": ("sigma", "sigma"),
    "error_quantization": ("spikes", "spikes"),
    "error_filter": ("tau", "tau"),
    "interference": ("gamma", "gamma"),
}
# settings without a meaning in time (per mode): phases key -> why
REFUSED: dict[str, dict[str, str]] = {
    "bptt": {
        "interference": "with backprop through time the error of step t does not exist while the forward pass runs, "
        "so it cannot be added to the activity of step t + 1"
    },
    "online": {},
}
REFUSED_STATES = {
    "bptt": {
        "stored": "with backprop through time the trial's update is made at its end: a stored late error is the same "
        "update without its last d steps"
    },
    "online": {},
}


def time_options(phases: Any, mode: str) -> TimeOptions | None:
    """The [`TimeOptions`][biocircuits.recurrent.signals.TimeOptions] of a ``phases:`` section for a recurrent model
    trained ``mode`` (``online`` or ``bptt``); None when every setting is off; a ConfigError, with the reason, for a
    setting that has no meaning in time."""
    values: dict[str, Any] = {}
    for key, value in (phases.model_extra or {}).items():
        cls = TRANSFORMS.get(key)
        options = cls(cls.expand(value)).options
        if not cls.active(options):
            continue
        if key in REFUSED[mode] or key not in SETTINGS:
            raise ConfigError(
                f"phases in time for a recurrent model: {REFUSED[mode].get(key, 'not defined in time')}",
                key=f"phases.{key}",
                given=value,
                expected="error_delay, error_noise, error_quantization, error_filter, backward_state",
                suggestion="remove it for this model",
            )
        if key == "error_filter" and not options.cascade:
            raise ConfigError(
                "in time each population's signal is filtered once: there is no cascade to turn off",
                key="phases.error_filter.cascade",
                given=False,
                suggestion="remove cascade: false",
            )
        field, option = SETTINGS[key]
        values[field] = getattr(options, option)
        if key == "interference":
            values["scale"] = options.scale
    state, lam = phases.backward_state, phases.trace_lambda()
    late_or_traced = values.get("delay", 0) > 0 or state == "trace"
    if late_or_traced and state in REFUSED_STATES[mode]:
        raise ConfigError(
            f"phases in time for a recurrent model: {REFUSED_STATES[mode][state]}",
            key="phases.backward_state",
            given=state,
            expected="current or trace" if mode == "bptt" else "stored, current or trace",
            suggestion="set backward_state: current",
        )
    if not values and state != "trace":
        return None
    return TimeOptions(**values, backward_state=state, trace_decay=lam)


class TimePhases(LayerAttachment):
    """Attached to the root of a recurrent model by ``bc.apply`` when its ``phases:`` settings are on (module
    docstring): the online learner asks it for each trial's
    [`TrialSignals`][biocircuits.recurrent.signals.TrialSignals]; under BPTT (``mode: bptt``) a forward hook hands
    the model's output [B, T, n_out] a gradient hook that replaces the per-step errors dE/dz_t by what arrives at
    step t. Buffer ``phase_trial``: the training trials so far (seeds the noise of each trial)."""

    slot, name, whole_model = "transform", "phases_in_time", True
    Options = TimeOptions

    def __init__(self, options: TimeOptions, seed: int = 0, mode: str = "bptt") -> None:
        super().__init__(options, seed)
        self.mode = mode
        self._hook: Any = None
        self._traced: TracedTrial | None = None

    def attach(self, layer: nn.Module, qualname: str) -> None:
        super().attach(layer, qualname)
        device = next(layer.parameters()).device
        self.register_buffer(layer, "phase_trial", torch.zeros((), dtype=torch.int64, device=device))
        if self.mode == "bptt":
            self._hook = layer.register_forward_hook(self._on_output)
        if self.mode == "bptt" and self.options.backward_state == "trace":
            self._traced = TracedTrial(self.options.trace_decay)
            self._traced.install(layer)

    def detach(self, layer: nn.Module) -> None:
        if self._hook is not None:
            self._hook.remove()
            self._hook = None
        if self._traced is not None:
            self._traced.remove(layer)
            self._traced = None
        super().detach(layer)

    def generators(self, model: nn.Module, device: torch.device, *populations: str) -> list[torch.Generator]:
        """One generator per population for the next training trial (and count the trial)."""
        trial = int(model.phase_trial)
        model.phase_trial += 1
        seeds = [step_seed(layer_seed(self.layer_seed, p), trial) for p in populations]
        return [torch.Generator(device=device).manual_seed(s) for s in seeds]

    def trial(self, model: nn.Module, like: Tensor, matrices: int = 2) -> TrialSignals:
        """The signals of the next online trial (inputs ``like``)."""
        readout, hidden = self.generators(model, like.device, "readout", "hidden")
        return TrialSignals(self.options, readout, hidden, matrices)

    def _on_output(self, model: nn.Module, args: Any, out: Tensor) -> None:
        held = attachments_of(model)
        if not (model.training and torch.is_grad_enabled() and out.requires_grad and not held.suspended):
            return
        signal = SignalInTime(self.options, self.generators(model, out.device, "readout")[0])
        out.register_hook(lambda grad: _in_time(signal, grad))


@torch.no_grad()
def _in_time(signal: SignalInTime, grad: Tensor) -> Tensor:
    """dE/dz [B, T, n] -> the errors arriving at each step, [B, T, n]."""
    return torch.stack([signal(grad[:, t]) for t in range(grad.shape[1])], dim=1)


def time_phases_of(model: nn.Module) -> TimePhases | None:
    """The model's [`TimePhases`][biocircuits.recurrent.phases.TimePhases], or None."""
    held = attachments_of(model)
    found = [a for a in held.slots.get("transform", []) if isinstance(a, TimePhases)] if held is not None else []
    return found[0] if found else None


def attach_in_time(model: nn.Module, phases: Any) -> bool:
    """For a ``rate_rnn`` or ``lif_rnn`` model: attach its [`TimePhases`][biocircuits.recurrent.phases.TimePhases]
    (online when its readout learns with ``rflo`` / ``eprop``, else BPTT) when ``phases`` (the spec's section) has a
    setting on, and return True: the layer-wise transforms are not attached to it. False for any other model."""
    if type(model) not in IN_TIME:
        return False
    mode = "online" if isinstance(getattr(model.readout, "rule", None), OnlineRule) else "bptt"
    options = time_options(phases, mode)
    if options is not None and options.gamma and isinstance(model, LIFRNN):
        raise ConfigError(
            "phases in time for a recurrent model: interference adds the learning signal to rate units' state; it is "
            "not defined for spiking units",
            key="phases.interference",
            given=options.gamma,
            suggestion="use rate_rnn, or remove interference",
        )
    traced = options is not None and mode == "bptt" and options.backward_state == "trace"
    if traced and isinstance(model, LIFRNN):
        raise ConfigError(
            "phases in time for a recurrent model: backward_state: trace is built for rate_rnn under backprop through "
            "time (lif_rnn's readout reads W_out outside its layer's forward)",
            key="phases.backward_state",
            given="trace",
            suggestion="use backward_state: current, or train lif_rnn with eprop",
        )
    if options is not None:
        attach(model, TimePhases(options, phases.seed, mode), "")
    return True
