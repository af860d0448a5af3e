"""Keys of the ``data:`` section that only some datasets read: set away from its default for a dataset that does not
read it, such a key is refused (it would otherwise be accepted and do nothing)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from biocircuits.errors import ConfigError

# key -> the datasets that read it
DATASET_KEYS: dict[str, tuple[str, ...]] = {
    "val_labels": ("imagefolder",),
    "shuffle_buffer": ("webdataset",),
    "decode": ("imagefolder", "webdataset"),
    "task": ("cognitive", "neurogym"),
    "task_options": ("cognitive", "neurogym"),
}


def check_dataset_keys(spec: BaseModel) -> None:
    """Raise a [`ConfigError`][biocircuits.errors.ConfigError] naming the first key of
    [`DATASET_KEYS`][biocircuits.config.data_keys.DATASET_KEYS] that ``spec`` (a data section) sets away from its
    default while its dataset ``spec.name`` does not read it."""
    name: Any = spec.name
    for key, readers in DATASET_KEYS.items():
        value = getattr(spec, key)
        if name not in readers and value != type(spec).model_fields[key].get_default(call_default_factory=True):
            raise ConfigError(
                f"data.{key} is read only by the datasets {', '.join(readers)}",
                key=key,
                expected=f"no {key} for data.name {name!r}",
                given=value,
                suggestion=f"remove data.{key}, or use data.name: {readers[0]}",
            )
