"""``bc.load_data``: a registered dataset by name, with the settings of an experiment's ``data:`` section, for code
outside a run (notebooks, scripts) that wants the same train and validation split the runs use."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from biocircuits.data.registry import DataBundle, build_data

from .errors import from_validation_error
from .experiment import DataSpec

__all__ = ["load_data"]


def load_data(name: str = "digits", **settings: Any) -> DataBundle:
    """Build the registered dataset ``name`` (``bc.DATASETS.names()``) split into train and validation sets.

    Args:
        name: A registered dataset, e.g. ``"digits"`` or ``"mnist5k"``.
        **settings: Any other key of the experiment's ``data:`` section (``val_fraction``, ``split_seed``,
            ``root``, ``download``, ...), validated as there.

    Returns:
        A ``DataBundle``: ``train`` and ``val`` datasets (``TensorDataset``s for the in-memory sets, so
        ``bundle.train.tensors`` is ``(x, y)``), ``num_classes`` and ``input_shape``.

    Raises:
        ConfigError: An unknown dataset or key, or a value out of bounds (key path, expected, given).
    """
    given = {"name": name, **settings}
    try:
        spec = DataSpec.model_validate(given)
    except ValidationError as err:
        raise from_validation_error(err, DataSpec, data=given) from None
    return build_data(spec)
