"""biocircuits: biological constraints (feedback rules, Dale's law, phases, plasticity) for PyTorch networks.

    import biocircuits as bc
    spec = bc.Constraints.from_yaml("constraints/sign_symmetry.yaml")
    model = bc.apply(model, spec)
    opt = bc.bind(torch.optim.SGD(model.parameters(), lr=0.1), model)
    rep = bc.audit(model)
    stats = bc.probe(model, inputs, targets)

``import biocircuits`` itself is light and has no side effect: the public names below (and the subpackages they
live in) are imported together on the first use of any of them (PEP 562 ``__getattr__``), so the command can
install its Ctrl-C handling ([`biocircuits.__main__`][biocircuits.__main__]) before torch is imported.
"""

__version__ = "0.1.0"  # the one place the version is written (pyproject.toml reads it)

import importlib as _importlib
import sys as _sys
import types as _types
import typing as _typing

# public name -> the module that defines it, imported in this order on first use (after biocircuits.nn)
_PUBLIC = {
    "apply": "biocircuits.apply",
    "constraints_of": "biocircuits.apply",
    "remove": "biocircuits.apply",
    "Constraints": "biocircuits.config.constraints",
    "DataBundle": "biocircuits.data.registry",
    "DATASETS": "biocircuits.data.registry",
    "load_data": "biocircuits.config.data",
    "bind": "biocircuits.core.binding",
    "LayerAttachment": "biocircuits.core.interface",
    "Registry": "biocircuits.core.registry",
    "AuditReport": "biocircuits.dale.audit",
    "audit": "biocircuits.dale.audit",
    "ENFORCERS": "biocircuits.dale.enforcers",
    "DaleEnforcer": "biocircuits.dale.enforcers",
    "BiocircuitsError": "biocircuits.errors",
    "ConfigError": "biocircuits.errors",
    "describe": "biocircuits.feedback.convert",
    "feedback_layers": "biocircuits.feedback.convert",
    "RULES": "biocircuits.feedback.rules",
    "FeedbackRule": "biocircuits.feedback.rules",
    "make_rule": "biocircuits.feedback.rules",
    "register_rule": "biocircuits.feedback.rules",
    "TRANSFORMS": "biocircuits.phases.transforms",
    "ErrorTransform": "biocircuits.phases.transforms",
    "PLASTICITY": "biocircuits.plasticity.rules",
    "PlasticityRule": "biocircuits.plasticity.rules",
    "LayerProbe": "biocircuits.probes.alignment",
    "probe": "biocircuits.probes.alignment",
    "layer_errors": "biocircuits.probes.errors",
    "StepProbe": "biocircuits.probes.step",
}
__all__ = [
    "DATASETS",
    "ENFORCERS",
    "PLASTICITY",
    "RULES",
    "TRANSFORMS",
    "AuditReport",
    "BiocircuitsError",
    "ConfigError",
    "Constraints",
    "DataBundle",
    "DaleEnforcer",
    "ErrorTransform",
    "FeedbackRule",
    "LayerAttachment",
    "LayerProbe",
    "PlasticityRule",
    "Registry",
    "StepProbe",
    "apply",
    "audit",
    "bind",
    "constraints_of",
    "describe",
    "feedback_layers",
    "layer_errors",
    "load_data",
    "make_rule",
    "nn",
    "probe",
    "register_rule",
    "remove",
]
_loaded = False

if _typing.TYPE_CHECKING:  # what a type checker, an IDE or a doc tool sees: the names, where they come from
    from biocircuits import nn
    from biocircuits.apply import apply, constraints_of, remove
    from biocircuits.config.constraints import Constraints
    from biocircuits.config.data import load_data
    from biocircuits.core.binding import bind
    from biocircuits.core.interface import LayerAttachment
    from biocircuits.core.registry import Registry
    from biocircuits.dale.audit import AuditReport, audit
    from biocircuits.dale.enforcers import ENFORCERS, DaleEnforcer
    from biocircuits.data.registry import DATASETS, DataBundle
    from biocircuits.errors import BiocircuitsError, ConfigError
    from biocircuits.feedback.convert import describe, feedback_layers
    from biocircuits.feedback.rules import RULES, FeedbackRule, make_rule, register_rule
    from biocircuits.phases.transforms import TRANSFORMS, ErrorTransform
    from biocircuits.plasticity.rules import PLASTICITY, PlasticityRule
    from biocircuits.probes.alignment import LayerProbe, probe
    from biocircuits.probes.errors import layer_errors
    from biocircuits.probes.step import StepProbe


def _load() -> None:
    """Import every public name into the package (once): ``bc.apply`` is the function, not its module."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    package = _sys.modules[__name__]
    _importlib.import_module("biocircuits.nn")  # the converted layers: bc.nn.FeedbackLinear ...
    for name, module in _PUBLIC.items():
        package.__dict__[name] = getattr(_importlib.import_module(module), name)


def __getattr__(name: str):
    """The first use of a public name (or of a subpackage) imports the API (see the module docstring)."""
    if name.startswith("_") or _loaded:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    _load()
    if name in globals():
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


class _Package(_types.ModuleType):
    """Keeps the public ``apply`` function when its module ``biocircuits.apply`` is imported (the import system
    sets a submodule as an attribute of its package, which would hide the function of the same name)."""

    def __setattr__(self, name: str, value: object) -> None:
        if name == "apply" and isinstance(value, _types.ModuleType) and value.__name__ == "biocircuits.apply":
            if _loaded:
                return  # bc.apply stays the function
            self.__dict__.pop(name, None)  # still lazy: __getattr__ resolves it
            return
        super().__setattr__(name, value)


_sys.modules[__name__].__class__ = _Package
