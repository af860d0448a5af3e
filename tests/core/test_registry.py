"""The one registry shape: register, duplicates refused, unknown names get "did you mean"."""

import pytest

import biocircuits as bc
from biocircuits.core.registry import Registry
from biocircuits.data import DATASETS
from biocircuits.models import MODELS


def test_register_get_names_and_errors():
    reg = Registry("widget")

    @reg.register
    class Spanner:
        name = "spanner"

    reg.register("hammer")(len)
    assert reg.get("spanner") is Spanner and reg["hammer"] is len
    assert reg.names() == ["spanner", "hammer"] and "hammer" in reg and len(reg) == 2
    with pytest.raises(ValueError, match="widget 'spanner' is already registered"):
        reg.register("spanner")(str)
    with pytest.raises(
        bc.ConfigError,
        match=r"unknown widget; expected one of hammer, spanner, given 'spaner' "
        r"\(did you mean 'spanner'\?\)",
    ):
        reg.get("spaner")


@pytest.mark.parametrize("registry", [bc.RULES, bc.ENFORCERS, bc.TRANSFORMS, bc.PLASTICITY, DATASETS, MODELS])
def test_every_registry_has_the_one_shape(registry):
    assert isinstance(registry, Registry) and len(registry.names()) >= 1
    with pytest.raises(bc.ConfigError, match="did you mean"):
        registry.get(registry.names()[0] + "x")
