"""The constraint spec: which feedback rule each layer learns with, Dale's law, phases and plasticity."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, ValidationError, model_validator

from biocircuits.core.interface import Choice, check_pair
from biocircuits.core.interface import validate_options as validate_attachment_options
from biocircuits.errors import ConfigError, did_you_mean
from biocircuits.feedback.rules import RULES, rule_class, validate_options
from biocircuits.phases.transforms import TRANSFORMS, ErrorTransform, decay_from_tau
from biocircuits.plasticity.rules import PLASTICITY
from biocircuits.recurrent import rules as _online_rules  # noqa: F401  (registers eprop, rflo and lif_rnn)

from .dale_spec import DaleSpec
from .errors import from_validation_error
from .fields import Glob, Strict, registered
from .loading import load_with_includes

RuleName = Annotated[str, registered(RULES.get)]
PlasticityName = Annotated[str, registered(PLASTICITY.get)]


class RuleRef(Strict):
    """A rule with options: ``{rule: sign_symmetry, options: {magnitude: unit}}``."""

    rule: RuleName = Field(description="A registered feedback rule.")
    options: dict[str, Any] = Field(default_factory=dict, description="That rule's options.")

    @model_validator(mode="after")
    def _options(self) -> RuleRef:
        validate_options(self.rule, self.options, "options.")
        return self


class FeedbackSpec(Strict):
    """``feedback:``: the default rule and options, per-layer ``overrides`` (fnmatch over qualified module
    names; the last matching pattern wins), ``exclude`` (left as plain torch layers) and the ``seed`` of
    random feedback."""

    rule: RuleName = Field("bp", description="The default feedback rule of every converted layer.")
    options: dict[str, Any] = Field(
        default_factory=dict, description="The default rule's options (see its table below)."
    )
    overrides: dict[Glob, RuleName | RuleRef] = Field(
        default_factory=dict,
        description="Per-layer rules: fnmatch pattern over qualified module names -> rule name or {rule, options}; "
        "the last matching pattern wins.",
    )
    exclude: list[Glob] = Field(
        default_factory=list, description="Patterns of layers left as plain torch layers (no feedback rule)."
    )
    seed: int = Field(0, description="Seeds every random feedback draw (with each layer's name).")

    @model_validator(mode="after")
    def _options(self) -> FeedbackSpec:
        validate_options(self.rule, self.options, "options.")
        return self


# keys that left the schema: what they were and what to write instead
RETIRED_PHASES_KEYS = {
    "eligibility_decay": (
        "it was a decaying sum of weight gradients, e_t = lambda e_(t-1) + grad_t: the same "
        "trajectory as SGD momentum lambda, not an eligibility trace",
        "for an eligibility trace of presynaptic activity write backward_state: trace with "
        "trace_decay: lambda; for momentum set optim.momentum",
    )
}


def _off(value: Any) -> bool:
    """True for a setting's off value: 0, None, false, or a mapping of those."""
    if isinstance(value, dict):
        return all(_off(v) for v in value.values())
    return value is None or value is False or value == 0


class PhasesSpec(Strict):
    """``phases:``: the error pathway and the timing of the backward phase (see
    [`biocircuits.phases`][biocircuits.phases]).

    Transforms, one key per registered transform (``error_noise``, ``error_quantization``, ``error_delay``,
    ``error_filter``, ``interference``, ...), each given its options or the scalar its ``shorthand`` option takes;
    0 or absent is off. ``backward_state`` says what a late error (``error_delay: K``) meets: ``stored`` (the
    activity that caused it: an oracle memory of K weight-sized gradients), ``current`` (the output error of step
    t - K through the network state of step t) or ``trace`` (as current, with each weight update pairing the error
    with an eligibility trace of its presynaptic activity, decay ``trace_decay`` or time constant ``trace_tau``
    steps). ``seed`` seeds the transforms' draws."""

    model_config = ConfigDict(extra="allow", validate_assignment=True)
    seed: int = Field(0, description="Seeds the transforms' random draws (noise, spikes).")
    backward_state: Literal["stored", "current", "trace"] = Field(
        "stored",
        description="What a late error meets: `stored` (the activity that caused it), `current` (the current network "
        "state) or `trace` (an eligibility trace of presynaptic activity).",
    )
    trace_decay: float | None = Field(
        None, ge=0.0, lt=1.0, description="lambda of the eligibility trace (backward_state: trace)."
    )
    trace_tau: float | None = Field(
        None, ge=0.0, le=1e6, description="The trace's time constant in steps instead: lambda = exp(-1 / tau)."
    )

    @model_validator(mode="after")
    def _transforms(self) -> PhasesSpec:
        extra = self.model_extra if self.model_extra is not None else {}
        for key in [k for k, v in extra.items() if k in RETIRED_PHASES_KEYS and _off(v)]:
            del extra[key]  # e.g. ``eligibility_decay: 0.0`` in a config saved before it left: it did nothing
        for key, value in extra.items():
            if key in RETIRED_PHASES_KEYS:
                what, instead = RETIRED_PHASES_KEYS[key]
                raise ConfigError(f"{key} is no longer a setting: {what}", key=key, given=value, suggestion=instead)
            if key not in TRANSFORMS or not TRANSFORMS.get(key).spec_key:
                valid = [*type(self).model_fields, *(n for n in TRANSFORMS.names() if TRANSFORMS.get(n).spec_key)]
                raise ConfigError(
                    "unknown key",
                    key=key,
                    expected="one of " + ", ".join(valid),
                    given=key,
                    suggestion=did_you_mean(key, valid),
                    has_given=False,
                )
            cls = TRANSFORMS.get(key)
            try:
                validate_attachment_options(cls, cls.expand(value), f"error transform {key!r}", f"{key}.")
            except ConfigError as err:
                if isinstance(value, dict):
                    raise
                raise ConfigError(err.message, key=key, given=value) from None  # a scalar: name the key itself
        if self.trace_decay is not None and self.trace_tau is not None:
            raise ConfigError(
                "give the trace's decay or its time constant, not both",
                key="trace_tau",
                given=self.trace_tau,
                suggestion="remove trace_decay or trace_tau",
            )
        traced = self.trace_decay is not None or self.trace_tau is not None
        if traced and self.backward_state != "trace":
            raise ConfigError(
                "a trace decay is set but the backward state is not a trace",
                key="backward_state",
                given=self.backward_state,
                expected="trace",
                suggestion="set backward_state: trace, or remove trace_decay / trace_tau",
            )
        return self

    def trace_lambda(self) -> float:
        """The eligibility trace's decay lambda (0 without a trace)."""
        if self.trace_tau is not None:
            return decay_from_tau(self.trace_tau)
        return self.trace_decay or 0.0

    def transforms(self) -> dict[str, dict[str, Any]]:
        """{transform name: options mapping} of every transform the section asks for (active or not): the class
        acting for each key it names (its ``acting_class`` given the section: ``error_delay`` meets the current
        state unless ``backward_state`` is ``stored``), then those its settings imply (``implied_by``: the
        presynaptic trace of ``backward_state: trace``)."""
        chosen: dict[str, dict[str, Any]] = {}
        moved: dict[str, dict[str, Any]] = {}
        for key, value in (self.model_extra or {}).items():
            cls = TRANSFORMS.get(key)
            acting = cls.acting_class(self)
            (chosen if acting is cls else moved)[acting.name] = cls.expand(value)
        chosen.update(moved)
        for name, cls in TRANSFORMS.items():  # (the registry also holds the stream clock, not a transform)
            if issubclass(cls, ErrorTransform) and (implied := cls.implied_by(self)) is not None:
                chosen[name] = implied
        return chosen


SYNAPSE_CLASSES = ("E->E", "E->I", "I->E", "I->I")


class PlasticityMatch(Strict):
    """Which synapses a plasticity row acts on: a layer glob, the presynaptic type (``population``) and the
    postsynaptic type (``post``: the type of the output unit, one per neuron,
    [`biocircuits.dale.graph`][biocircuits.dale.graph]). ``synapse: E->I`` is shorthand for ``population: E, post:
    I``."""

    layers: Glob = Field("*", description="Pattern of the layers' qualified names.")
    population: Literal["E", "I", "any"] = Field("any", description="Presynaptic type: `E`, `I` or `any`.")
    post: Literal["E", "I", "any"] = Field(
        "any", description="Postsynaptic type (the output unit's): `E`, `I` or `any`."
    )

    @model_validator(mode="before")
    @classmethod
    def _synapse(cls, data: Any) -> Any:
        if not isinstance(data, dict) or "synapse" not in data:
            return data
        data = dict(data)
        synapse = data.pop("synapse")
        if synapse not in SYNAPSE_CLASSES:
            raise ConfigError(
                "unknown synapse class",
                key="synapse",
                expected="one of " + ", ".join(SYNAPSE_CLASSES),
                given=synapse,
                suggestion=did_you_mean(str(synapse), SYNAPSE_CLASSES),
            )
        pre, post = synapse.split("->")
        for field_name, value in (("population", pre), ("post", post)):
            if data.get(field_name, value) not in (value, "any"):
                raise ConfigError(
                    f"synapse: {synapse} contradicts {field_name}",
                    key=field_name,
                    given=data[field_name],
                    suggestion="give synapse or population/post, not both",
                )
            data[field_name] = value
        return data


class PlasticityRow(Strict):
    """One row of ``plasticity.rules``: which weights (layer glob, presynaptic population), which registered
    ``rule`` (default ``update``: ``lr_scale``, ``direction``, ``frozen``) and that rule's options, given beside
    ``rule`` in the row."""

    model_config = ConfigDict(extra="allow", validate_assignment=True)
    rule: PlasticityName = Field(
        "update", description="A registered plasticity rule; its options go beside `rule` in the row."
    )
    match: PlasticityMatch = Field(default_factory=PlasticityMatch, description="Which synapses the row acts on.")

    @model_validator(mode="after")
    def _options(self) -> PlasticityRow:
        validate_attachment_options(PLASTICITY.get(self.rule), self.rule_options(), f"plasticity rule {self.rule!r}")
        return self

    def rule_options(self) -> dict[str, Any]:
        """The row's options for its rule (every key beside ``rule`` and ``match``)."""
        return dict(self.model_extra or {})


class PlasticitySpec(Strict):
    """``plasticity:``: ``update`` (``sgd``, or ``batch_manhattan``: the sign of the gradient, Liao et al.
    2016) and cell-type/region ``rules`` applied in order."""

    update: Literal["sgd", "batch_manhattan"] = Field(
        "sgd", description="`sgd`, or `batch_manhattan`: the sign of the gradient (Liao et al. 2016)."
    )
    rules: list[PlasticityRow] = Field(
        default_factory=list, description="Cell-type and region plasticity rows, applied in order."
    )


class Constraints(Strict):
    """A constraint spec: ``feedback``, ``dale`` (absent or null: off), ``phases``, ``plasticity``."""

    feedback: FeedbackSpec = Field(
        default_factory=FeedbackSpec, description="The feedback rules: which rule computes each layer's backward."
    )
    dale: DaleSpec | None = Field(
        None, description="Dale's law (E/I types, enforcer or DANN architecture); absent or null: off."
    )
    phases: PhasesSpec = Field(
        default_factory=PhasesSpec, description="The error pathway's transforms and the timing of the backward phase."
    )
    plasticity: PlasticitySpec = Field(
        default_factory=PlasticitySpec, description="The update rule and the cell-type and region plasticity rows."
    )
    source: str | None = Field(default=None, exclude=True)

    @model_validator(mode="after")
    def _dale_rules(self) -> Constraints:
        """Every feedback rule the spec names and every Dale class it chooses may refuse one another (their
        ``check_partner``), exempt layers included."""
        if self.dale is None or not self.dale.enabled:
            return self
        fb = self.feedback
        refs = [("feedback.rule", "feedback.options.", fb.rule, fb.options)] + [
            (
                f"feedback.overrides.{pattern}",
                f"feedback.overrides.{pattern}.options.",
                *((ref, {}) if isinstance(ref, str) else (ref.rule, ref.options)),
            )
            for pattern, ref in fb.overrides.items()
        ]
        dale = self.dale.choices("dale.", acting=True)
        for key, options_key, rule, options in refs:
            chosen = Choice(rule_class(rule), validate_options(rule, options), key, options_key)
            for other in dale:
                check_pair(chosen, other)
        return self

    @property
    def dale_on(self) -> bool:
        return self.dale is not None and self.dale.enabled

    @classmethod
    def from_yaml(cls, path: str | Path) -> Constraints:
        """Load a spec file (with its ``include:`` files merged under it) and validate it."""
        data = load_with_includes(path, "constraints")
        return cls.from_dict(data, file=str(path))

    @classmethod
    def from_dict(cls, data: dict[str, Any], file: str | None = None) -> Constraints:
        """Validate a mapping; errors name ``file`` and the key path."""
        if not isinstance(data, dict):
            raise ConfigError(
                "a constraint spec must be a mapping", file=file, expected="a mapping", given=type(data).__name__
            )
        try:
            spec = cls.model_validate(data)
        except ValidationError as err:
            raise from_validation_error(err, cls, file, data) from None
        spec.source = file
        return spec

    @classmethod
    def coerce(cls, spec: Constraints | dict | str | Path | None) -> Constraints:
        """Accept a Constraints, a mapping, a path to a YAML file, or None (backprop, no constraints)."""
        if spec is None:
            return cls()
        if isinstance(spec, Constraints):
            return spec
        if isinstance(spec, dict):
            return cls.from_dict(spec)
        if isinstance(spec, str | Path):
            from .loading import resolve_path

            found = resolve_path(str(spec), None, "constraints")
            if found is None:
                raise ConfigError(
                    "constraint spec not found",
                    given=str(spec),
                    suggestion="give a path to a YAML file or a preset name in constraints/",
                )
            return cls.from_yaml(found)
        raise ConfigError(
            "cannot read a constraint spec from this", expected="Constraints, dict or path", given=type(spec).__name__
        )
