"""The ``dale:`` section of a constraint spec: the E/I typing and the Dale slot's classes it chooses by value."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from biocircuits.core.interface import Choice, check_pair
from biocircuits.core.interface import validate_options as validate_attachment_options
from biocircuits.dale import DALE, SPEC_KEYS
from biocircuits.dale.dann import DannOptions
from biocircuits.dale.init import INITS
from biocircuits.dale.slot import LAYER_KEYS
from biocircuits.errors import ConfigError, did_you_mean

from .fields import DaleGlob, Strict, registered

EnforcerName = Annotated[str, registered(SPEC_KEYS["enforce"].get)]
ArchitectureName = Annotated[str, registered(SPEC_KEYS["architecture"].get)]
ResidualName = Annotated[str, registered(SPEC_KEYS["residual"].get)]
DaleInitName = Annotated[str, registered(INITS.get)]
NormGammaName = Annotated[str, registered(SPEC_KEYS["norm_gamma"].get)]
PopulationNormName = Annotated[str, registered(SPEC_KEYS["population_norm"].get)]


class DaleSpec(Strict):
    """``dale:``: excitatory/inhibitory types per neuron. See [`biocircuits.dale`][biocircuits.dale].

    ``types``: ``graph`` (one type per producing unit, followed through the traced graph to every layer that reads
    it: [`biocircuits.dale.graph`][biocircuits.dale.graph]) or ``per_layer`` (each layer types its inputs by its own
    width, the earlier behaviour: a unit read by two layers may then get two types); ``input_shape``: one input without
    the batch dim, for the trace (guessed from the first layer when absent). The Dale slot's classes
    ([`biocircuits.dale.slot`][biocircuits.dale.slot]) are chosen by value: ``architecture``: ``column`` (every weight
    carries its presynaptic unit's sign, kept by the enforcer ``enforce``) or ``dann`` (Cornford et al. 2021: an
    excitatory projection and inhibitory interneurons per layer, all weights non-negative, options in ``dann``:
    [`biocircuits.dale.dann`][biocircuits.dale.dann]). ``norm_gamma`` (``free`` | ``nonnegative``): whether
    normalisation layers keep gamma >= 0, so that the BN-folded weights obey the law too
    ([`biocircuits.dale.norms`][biocircuits.dale.norms]). ``population_norm`` (``none`` | ``divisive``): each
    constrained layer's input divided by its E and I populations' mean activity, which keeps deep column-sign networks
    from collapsing to one dimension ([`biocircuits.dale.population_norm`][biocircuits.dale.population_norm]). Another
    registered Dale class takes its options under its name."""

    model_config = ConfigDict(extra="allow", validate_assignment=True)
    enabled: bool = Field(True, description="Set false to switch Dale off while keeping the section.")
    excitatory_fraction: float = Field(
        0.8,
        ge=0.0,
        le=1.0,
        description="Share of E units among each layer's presynaptic units (round(fraction * n) are E).",
    )
    assignment: Literal["block", "random"] = Field(
        "block", description="Which units are E: `block` (the first ones) or `random` (seeded by seed and the width)."
    )
    seed: int = Field(0, description="Seeds the random type assignment and the signed initialisation.")
    layers: list[DaleGlob] = Field(default_factory=lambda: ["*"], description="Patterns of the layers that obey Dale.")
    exempt: list[DaleGlob] = Field(
        default_factory=lambda: ["<input>"],
        description="Patterns of layers exempt from Dale (`<input>`: the layers that read the network's input).",
    )
    enforce: EnforcerName = Field(
        "project", description="The column-sign enforcer that keeps each weight's sign after every step."
    )
    init: DaleInitName = Field(
        "balanced",
        description="How weights get their unit's sign at attach: `balanced` (I weights rescaled so E and I cancel) "
        "or `keep`.",
    )
    residual: ResidualName = Field(
        "identity",
        description="How identity shortcuts carry I units: `identity` (weight +1, a sign leak the audit reports) or "
        "`signed`.",
    )
    types: Literal["graph", "per_layer"] = Field(
        "graph",
        description="`graph`: one type per producing unit, followed through the traced graph; `per_layer`: each layer"
        " types its inputs by its own width.",
    )
    input_shape: list[Annotated[int, Field(ge=1)]] | None = Field(
        None,
        description="One input without the batch dim, for the graph trace; guessed from the first layer when absent.",
    )
    architecture: ArchitectureName = Field(
        "column",
        description="`column` (every weight carries its presynaptic unit's sign) or `dann` (E projection plus "
        "inhibitory interneurons, all weights >= 0).",
    )
    dann: DannOptions = Field(default_factory=DannOptions, description="Options of the DANN architecture.")
    norm_gamma: NormGammaName = Field(
        "free",
        description="`nonnegative` keeps normalisation gammas >= 0, so the BN-folded weights obey Dale too; `free`.",
    )
    population_norm: PopulationNormName = Field(
        "none",
        description="`divisive`: each constrained layer's input divided by its E and I populations' mean activity; "
        "`none`.",
    )

    @model_validator(mode="after")
    def _choices(self) -> DaleSpec:
        for key, value in (self.model_extra or {}).items():
            if key not in DALE:
                valid = [*type(self).model_fields, *DALE.names()]
                raise ConfigError(
                    "unknown key",
                    key=key,
                    expected="one of " + ", ".join(valid),
                    given=key,
                    suggestion=did_you_mean(key, valid),
                    has_given=False,
                )
            validate_attachment_options(DALE.get(key), value, f"Dale {key!r}", f"{key}.")
        chosen = self.choices()
        for key in self.model_extra or {}:
            cls = DALE.get(key)
            if cls not in [c.cls for c in chosen]:
                raise ConfigError(
                    f"options for {key!r}, which this section does not choose",
                    key=key,
                    suggestion=f"set {cls.spec_key}: {cls.choice_name()}, or remove {key}",
                )
        first, *others = chosen
        for other in others:  # the class every layer gets and each other chosen class may refuse one another
            check_pair(first, other)
        return self

    def options_of(self, name: str) -> Any:
        """The options a Dale class called ``name`` takes from this section: the mapping under its name (an extra
        key or a declared section such as ``dann``), else none."""
        value = (self.model_extra or {}).get(
            name, getattr(self, name, None) if name in type(self).model_fields else None
        )
        return value if isinstance(value, dict | BaseModel) else {}

    def choices(self, prefix: str = "", acting: bool = False) -> list[Choice]:
        """The Dale classes this section chooses, the one every constrained layer gets first, each with its
        validated options and key paths (prefixed with ``prefix``); ``acting``: without the enforcer that an
        architecture replaces."""
        out: list[Choice] = []
        for key, choices in SPEC_KEYS.items():
            cls = choices.get(getattr(self, key))
            replaced = acting and key in LAYER_KEYS and any(c.key == f"{prefix}{k}" for c in out for k in LAYER_KEYS)
            if cls is not None and not replaced:
                options = validate_attachment_options(cls, cls.spec_options(self))
                out.append(Choice(cls, options, f"{prefix}{key}", f"{prefix}{cls.name}."))
        return out
