"""The constraint spec: which feedback rule each layer learns with, Dale's law, phases and plasticity."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from biocircuits.core.interface import validate_options as validate_attachment_options
from biocircuits.dale.enforcers import ENFORCERS
from biocircuits.dale.init import INITS
from biocircuits.dale.norms import NORM_GAMMA
from biocircuits.dale.population_norm import POPULATION_NORMS
from biocircuits.errors import ConfigError, did_you_mean
from biocircuits.feedback.rules import RULES, validate_options
from biocircuits.phases.transforms import TRANSFORMS
from biocircuits.plasticity.rules import PLASTICITY

from .errors import from_validation_error
from .loading import load_with_includes


class Strict(BaseModel):
    """A spec section: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def check_glob(pattern: str) -> str:
    """A layer-name glob: non-empty, no spaces, balanced brackets."""
    if not isinstance(pattern, str) or not pattern.strip():
        raise ValueError("a layer-name glob must be a non-empty string")
    if any(c.isspace() for c in pattern):
        raise ValueError(f"layer-name glob {pattern!r} contains whitespace")
    if pattern.count("[") != pattern.count("]"):
        raise ValueError(f"layer-name glob {pattern!r} has unbalanced brackets")
    return pattern


def registered(lookup: Callable[[str], object]) -> AfterValidator:
    """Accept a name that ``lookup`` finds in its registry (``lookup`` raises a ConfigError listing the valid
    names and the closest ones otherwise)."""
    def check(name: str) -> str:
        lookup(name)
        return name
    return AfterValidator(check)


Glob = Annotated[str, AfterValidator(check_glob)]
RuleName = Annotated[str, registered(RULES.get)]
EnforcerName = Annotated[str, registered(ENFORCERS.get)]
DaleInitName = Annotated[str, registered(INITS.get)]
NormGammaName = Annotated[str, registered(NORM_GAMMA.get)]
PopulationNormName = Annotated[str, registered(POPULATION_NORMS.get)]
PlasticityName = Annotated[str, registered(PLASTICITY.get)]
# Dale's layer lists also take "<input>": the first weight layer, fed by the raw input
DaleGlob = Annotated[str, AfterValidator(lambda p: p if p == "<input>" else check_glob(p))]


class RuleRef(Strict):
    """A rule with options: ``{rule: sign_symmetry, options: {magnitude: unit}}``."""

    rule: RuleName
    options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _options(self) -> RuleRef:
        validate_options(self.rule, self.options, "options.")
        return self


class FeedbackSpec(Strict):
    """``feedback:``: the default rule and options, per-layer ``overrides`` (fnmatch over qualified module
    names; the last matching pattern wins), ``exclude`` (left as plain torch layers) and the ``seed`` of
    random feedback."""

    rule: RuleName = "bp"
    options: dict[str, Any] = Field(default_factory=dict)
    overrides: dict[Glob, RuleName | RuleRef] = Field(default_factory=dict)
    exclude: list[Glob] = Field(default_factory=list)
    seed: int = 0

    @model_validator(mode="after")
    def _options(self) -> FeedbackSpec:
        validate_options(self.rule, self.options, "options.")
        return self


class DaleSpec(Strict):
    """``dale:``: per-presynaptic-unit excitatory/inhibitory signs. See :mod:`biocircuits.dale`.

    ``norm_gamma`` (``free`` | ``nonnegative``): whether normalisation layers keep gamma >= 0, so that the
    BN-folded weights obey the law too (:mod:`biocircuits.dale.norms`). ``population_norm`` (``none`` |
    ``divisive``): each constrained layer's input divided by its E and I populations' mean activity, which keeps
    deep column-sign networks from collapsing to one dimension (:mod:`biocircuits.dale.population_norm`)."""

    enabled: bool = True
    excitatory_fraction: float = Field(0.8, ge=0.0, le=1.0)
    assignment: Literal["block", "random"] = "block"
    seed: int = 0
    layers: list[DaleGlob] = Field(default_factory=lambda: ["*"])
    exempt: list[DaleGlob] = Field(default_factory=lambda: ["<input>"])
    enforce: EnforcerName = "project"
    init: DaleInitName = "balanced"
    residual: Literal["identity", "signed"] = "identity"
    norm_gamma: NormGammaName = "free"
    population_norm: PopulationNormName = "none"


class PhasesSpec(Strict):
    """``phases:``: transforms of the error pathway, one key per registered transform (see
    :mod:`biocircuits.phases.transforms`: ``error_noise``, ``error_quantization``, ``error_delay``,
    ``eligibility_decay``, ...), each given its options or the scalar its ``shorthand`` option takes; 0 or absent
    is off. ``seed`` seeds their draws."""

    model_config = ConfigDict(extra="allow", validate_assignment=True)
    seed: int = 0

    @model_validator(mode="after")
    def _transforms(self) -> PhasesSpec:
        for key, value in (self.model_extra or {}).items():
            if key not in TRANSFORMS:
                valid = ["seed", *TRANSFORMS.names()]
                raise ConfigError("unknown key", key=key, expected="one of " + ", ".join(valid), given=key,
                                  suggestion=did_you_mean(key, valid), has_given=False)
            cls = TRANSFORMS.get(key)
            try:
                validate_attachment_options(cls, cls.expand(value), f"error transform {key!r}", f"{key}.")
            except ConfigError as err:
                if isinstance(value, dict):
                    raise
                raise ConfigError(err.message, key=key, given=value) from None  # a scalar: name the key itself
        return self

    def transforms(self) -> dict[str, dict[str, Any]]:
        """{transform name: options mapping} of every transform the section names (active or not)."""
        return {k: TRANSFORMS.get(k).expand(v) for k, v in (self.model_extra or {}).items()}


class PlasticityMatch(Strict):
    layers: Glob = "*"
    population: Literal["E", "I", "any"] = "any"


class PlasticityRow(Strict):
    """One row of ``plasticity.rules``: which weights (layer glob, presynaptic population), which registered
    ``rule`` (default ``update``: ``lr_scale``, ``direction``, ``frozen``) and that rule's options, given beside
    ``rule`` in the row."""

    model_config = ConfigDict(extra="allow", validate_assignment=True)
    rule: PlasticityName = "update"
    match: PlasticityMatch = Field(default_factory=PlasticityMatch)

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

    update: Literal["sgd", "batch_manhattan"] = "sgd"
    rules: list[PlasticityRow] = Field(default_factory=list)


class Constraints(Strict):
    """A constraint spec: ``feedback``, ``dale`` (absent or null: off), ``phases``, ``plasticity``."""

    feedback: FeedbackSpec = Field(default_factory=FeedbackSpec)
    dale: DaleSpec | None = None
    phases: PhasesSpec = Field(default_factory=PhasesSpec)
    plasticity: PlasticitySpec = Field(default_factory=PlasticitySpec)
    source: str | None = Field(default=None, exclude=True)

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
            raise ConfigError("a constraint spec must be a mapping", file=file, expected="a mapping",
                              given=type(data).__name__)
        try:
            spec = cls.model_validate(data)
        except ValidationError as err:
            raise from_validation_error(err, cls, file) from None
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
                raise ConfigError("constraint spec not found", given=str(spec),
                                  suggestion="give a path to a YAML file or a preset name in constraints/")
            return cls.from_yaml(found)
        raise ConfigError("cannot read a constraint spec from this", expected="Constraints, dict or path",
                          given=type(spec).__name__)
