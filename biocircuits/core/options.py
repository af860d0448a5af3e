"""An attachment's options: a pydantic model per attachment class
([`LayerAttachment.Options`][biocircuits.core.interface.LayerAttachment]), validated with errors that name the
attachment, the option's key path and what the class takes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, ValidationError

from biocircuits.errors import ConfigError, did_you_mean

if TYPE_CHECKING:
    from .interface import LayerAttachment


class NoOptions(BaseModel):
    """Options of an attachment that takes none."""

    model_config = ConfigDict(extra="forbid")


def validate_options(
    cls: type[LayerAttachment], options: Any, what: str | None = None, key_prefix: str = ""
) -> BaseModel:
    """``options`` (a mapping) validated against ``cls.Options``; unknown or bad options are ConfigErrors that
    say which ``what`` (e.g. "rule 'fa'") was given them and what it takes, at key ``key_prefix + option``."""
    what = what or f"{cls.slot} {cls.name!r}"
    if isinstance(options, BaseModel):
        return options
    if options is None:
        options = {}
    if not isinstance(options, dict):
        raise ConfigError(
            f"options of {what} must be a mapping",
            expected="a mapping",
            given=options,
            key=key_prefix.rstrip(".") or None,
        )
    fields = cls.Options.model_fields
    for key in options:
        if key not in fields:
            takes = ", ".join(fields) if fields else "no options"
            raise ConfigError(
                f"{what} does not take option {key!r}",
                expected=takes,
                given=key,
                suggestion=did_you_mean(str(key), fields),
                has_given=False,
                key=f"{key_prefix}{key}",
            )
    try:
        return cls.Options.model_validate(options)
    except ValidationError as err:
        first = err.errors()[0]
        key = ".".join(str(p) for p in first["loc"])
        raise ConfigError(
            f"option {key!r} of {what}: {first['msg']}", given=first.get("input"), key=f"{key_prefix}{key}"
        ) from None
