"""The building blocks of the spec schemas: strict sections, layer-name globs, names checked against a registry."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict


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
# Dale's layer lists also take "<input>": the first weight layer, fed by the raw input
DaleGlob = Annotated[str, AfterValidator(lambda p: p if p == "<input>" else check_glob(p))]
