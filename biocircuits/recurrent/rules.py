"""The online rules ``eprop`` (Bellec et al. 2020) and ``rflo`` (Murray 2019) as feedback rules: chosen in the
constraint spec (``feedback: {rule: eprop, options: {feedback: random}}``), they convert a recurrent model's input,
recurrent and readout layers, keep the matrix B that sends the output error back as the learning signal, and
make the training step hand the trial to [`OnlineLearner`][biocircuits.recurrent.learner.OnlineLearner] (forward in time
with eligibility traces, no backprop through time)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn

from biocircuits.core.interface import Choice, LayerAttachment, attachments_of
from biocircuits.errors import ConfigError
from biocircuits.feedback.rules.registry import FeedbackRule, draw_init_uniform, register_rule

from .cells import cell_for
from .traces import AdaptiveTrace, EligibilityTrace, PresynapticTrace, RFLOTrace

LAYERS = ("input", "recurrent", "readout")  # the submodules an online rule learns, all three with the same rule


class OnlineRule(FeedbackRule):
    """Base class of the online rules. ``traces``: the eligibility trace of each kind of unit the rule learns
    (``rate``, ``lif``, ``alif``); ``random``: whether B is a fixed random matrix (else B = W_out, symmetric).

    The learning signal's B [n_out, N] is the readout's: W_out itself (symmetric) or the persistent buffer
    ``feedback_weight`` of the readout layer, drawn once like the readout's own init, U(-1/sqrt(N), 1/sqrt(N)),
    from the readout's seed (saved and loaded with the model).
    [`feedback`][biocircuits.recurrent.rules.OnlineRule.feedback] (the B of an autograd backward, which the online step
    never runs) is W: a probe or a BPTT pass through these layers sees backprop."""

    traces: ClassVar[dict[str, type[EligibilityTrace]]] = {}
    reads_weight = True

    def random(self) -> bool:
        return False

    def feedback(self, layer: nn.Module, weight: Tensor, advance: bool) -> Tensor:
        return weight

    def learning_feedback(self, readout: nn.Module) -> Tensor:
        """B [n_out, N] of the learning signal L_t = err_t B."""
        return readout.feedback_weight if self.random() else readout.weight

    def trace_class(self, kind: str) -> type[EligibilityTrace]:
        """The trace for units of ``kind``; a ConfigError naming the kinds this rule learns otherwise."""
        if kind not in self.traces:
            raise ConfigError(
                f"the online rule {self.name!r} does not learn {kind} units",
                key="feedback.rule",
                expected="a model of units " + " or ".join(self.traces),
                given=kind,
                suggestion="use eprop for spiking (lif_rnn) models",
            )
        return self.traces[kind]

    @classmethod
    def attach_group(cls, members: Sequence[tuple[str, nn.Module, LayerAttachment]], model: nn.Module) -> None:
        """Refuse a model the rule cannot step in time, or one whose input, recurrent and readout layers do not
        all learn with this rule (and these options); draw the readout's random B."""
        rule = members[0][2]
        cell = cell_for(model, cls.name)
        rule.trace_class(cell.kind)
        ruled = {name: att for name, _, att in members}
        for name in LAYERS:
            att = ruled.get(name)
            if att is None or att.options != rule.options:
                raise ConfigError(
                    f"the online rule {cls.name!r} learns the input, recurrent and readout weights together",
                    key="feedback.overrides",
                    given=name,
                    suggestion=f"give {name} the same rule and options (no override or exclude)",
                )
        for name in LAYERS:  # bc.apply gives these models the phases in time (recurrent/phases.py), never these
            transforms = attachments_of(model.get_submodule(name)).of("transform")
            if transforms:
                raise ConfigError(
                    f"the online rule {cls.name!r} runs no backward pass for a layer's error transforms to act on",
                    key="phases",
                    given=", ".join(t.name for t in transforms),
                    suggestion="set phases in the constraint spec: they act on the learning signal in time",
                )
        readout = model.readout
        head = ruled["readout"]
        if head.random() and "feedback_weight" not in head.buffer_names:
            head.register_buffer(
                readout, "feedback_weight", draw_init_uniform(readout.weight.detach(), head.layer_seed)
            )

    @classmethod
    def check_partner(cls, own: Choice, partner: Choice) -> None:
        """Refuse Dale classes other than a column-sign enforcer acting on W itself (``project``,
        ``exp_gradient``): a reparametrised W, DANN's split weights, a population norm in the forward."""
        if partner.cls.reparametrises or not partner.cls.fixed_column_signs:
            raise ConfigError(
                f"the online rule {cls.name!r} writes the weights' own gradients: it learns column-sign Dale "
                "weights kept by an enforcer on W, not this Dale class",
                key=partner.key,
                given=partner.cls.name,
                suggestion="use dale.architecture: column with dale.enforce: project or exp_gradient",
            )


UPDATE_DESCRIPTION = (
    "When the update is applied: `per_trial` (the trial's sum, at the optimiser step) or `per_step` (each step's "
    "part, by an optimiser step at the end of that time step: the weights change within the trial)"
)


class RFLOOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    update: Literal["per_trial", "per_step"] = Field("per_trial", description=UPDATE_DESCRIPTION)


class EPropOptions(RFLOOptions):
    feedback: Literal["symmetric", "random"] = Field(
        "symmetric", description="B of the learning signal: W_out (symmetric) or fixed random (random e-prop)"
    )


@register_rule
class EProp(OnlineRule):
    """e-prop (Bellec et al. 2020): grad W_ji = sum_t L_t[j] F_kappa(e)_t[j, i], the eligibility trace e of
    [`PresynapticTrace`][biocircuits.recurrent.traces.PresynapticTrace] (rate and LIF units) or
    [`AdaptiveTrace`][biocircuits.recurrent.traces.AdaptiveTrace] (ALIF), the learning signal L_t = err_t B with B =
    W_out (``feedback: symmetric``) or fixed random (``feedback: random``). With symmetric feedback and no recurrent
    weights it is the exact gradient."""

    name = "eprop"
    Options = EPropOptions
    traces = {"rate": PresynapticTrace, "lif": PresynapticTrace, "alif": AdaptiveTrace}

    def random(self) -> bool:
        return self.options.feedback == "random"


@register_rule
class RFLO(OnlineRule):
    """Random feedback local online learning (Murray 2019): grad W_ji = sum_t L_t[j] p_t[j, i] with the trace
    p of [`RFLOTrace`][biocircuits.recurrent.traces.RFLOTrace] and L_t = err_t B, B fixed random. Rate units only."""

    name = "rflo"
    Options = RFLOOptions
    reads_weight = False
    traces = {"rate": RFLOTrace}

    def random(self) -> bool:
        return True
