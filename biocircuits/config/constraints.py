"""The constraint spec: which feedback rule each layer learns with, Dale's law, phases and plasticity."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from biocircuits.errors import ConfigError
from biocircuits.feedback.rules import rule_class, validate_options

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
RuleName = Annotated[str, registered(rule_class)]
# Dale's layer lists also take "<input>": the first weight layer, fed by the raw input
DaleGlob = Annotated[str, AfterValidator(lambda p: p if p == "<input>" else check_glob(p))]


class RuleRef(Strict):
    """A rule with options: ``{rule: sign_symmetry, options: {magnitude: unit}}``."""

    rule: RuleName
    options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _options(self) -> RuleRef:
        validate_options(self.rule, self.options)
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
        validate_options(self.rule, self.options)
        return self


class DaleSpec(Strict):
    """``dale:``: per-presynaptic-unit excitatory/inhibitory signs. See :mod:`biocircuits.dale`."""

    enabled: bool = True
    excitatory_fraction: float = Field(0.8, ge=0.0, le=1.0)
    assignment: Literal["block", "random"] = "block"
    seed: int = 0
    layers: list[DaleGlob] = Field(default_factory=lambda: ["*"])
    exempt: list[DaleGlob] = Field(default_factory=lambda: ["<input>"])
    enforce: Literal["project", "abs", "softplus", "exp_gradient"] = "project"
    init: Literal["balanced", "keep"] = "balanced"
    residual: Literal["identity", "signed"] = "identity"


class PhasesSpec(Strict):
    """``phases:``: perturbations of the error pathway (see :mod:`biocircuits.phases`)."""

    error_noise: float = Field(0.0, ge=0.0)
    error_quantization: int = Field(0, ge=0)
    error_delay: int = Field(0, ge=0)
    eligibility_decay: float = Field(0.0, ge=0.0, lt=1.0)
    seed: int = 0


class PlasticityMatch(Strict):
    layers: Glob = "*"
    population: Literal["E", "I", "any"] = "any"


class PlasticityRule(Strict):
    """One row of ``plasticity.rules``: which weights (layer glob, presynaptic population) and how they learn."""

    match: PlasticityMatch = Field(default_factory=PlasticityMatch)
    lr_scale: float = Field(1.0, ge=0.0)
    direction: Literal["both", "potentiation_only", "depression_only"] = "both"
    frozen: bool = False


class PlasticitySpec(Strict):
    """``plasticity:``: ``update`` (``sgd``, or ``batch_manhattan``: the sign of the gradient, Liao et al.
    2016) and cell-type/region ``rules`` applied in order."""

    update: Literal["sgd", "batch_manhattan"] = "sgd"
    rules: list[PlasticityRule] = Field(default_factory=list)


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
