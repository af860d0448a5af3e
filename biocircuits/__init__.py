"""biocircuits: biological constraints (feedback rules, Dale's law, phases, plasticity) for PyTorch networks.

    import biocircuits as bc
    spec = bc.Constraints.from_yaml("constraints/sign_symmetry.yaml")
    model = bc.apply(model, spec)
    opt = bc.bind(torch.optim.SGD(model.parameters(), lr=0.1), model)
    rep = bc.audit(model)
    stats = bc.probe(model, inputs, targets)
"""

__version__ = "0.1.0"  # the one place the version is written (pyproject.toml reads it)

import sys as _sys

if _sys.argv[:1] == ["-m"] or _sys.argv[0].endswith(("/biocircuits", "biocircuits.exe")):  # the command
    def _quiet_interrupt(kind, value, tb, _default=_sys.excepthook):
        """Ctrl-C while the command starts (importing torch takes seconds): exit 130 without a traceback."""
        if issubclass(kind, KeyboardInterrupt):
            import os
            print("interrupted", file=_sys.stderr, flush=True)
            os._exit(130)
        _default(kind, value, tb)

    _sys.excepthook = _quiet_interrupt

from biocircuits import nn  # noqa: E402
from biocircuits.apply import apply, constraints_of, remove
from biocircuits.config.constraints import Constraints
from biocircuits.core.binding import bind
from biocircuits.core.interface import LayerAttachment
from biocircuits.core.registry import Registry
from biocircuits.dale.audit import AuditReport, audit
from biocircuits.dale.enforcers import ENFORCERS, DaleEnforcer
from biocircuits.errors import BiocircuitsError, ConfigError
from biocircuits.feedback.convert import describe, feedback_layers
from biocircuits.feedback.rules import RULES, FeedbackRule, make_rule, register_rule
from biocircuits.phases.transforms import TRANSFORMS, ErrorTransform
from biocircuits.plasticity.rules import PLASTICITY, PlasticityRule
from biocircuits.probes.alignment import LayerProbe, probe

__all__ = [
    "ENFORCERS", "PLASTICITY", "RULES", "TRANSFORMS", "AuditReport", "BiocircuitsError", "ConfigError",
    "Constraints", "DaleEnforcer", "ErrorTransform", "FeedbackRule", "LayerAttachment", "LayerProbe",
    "PlasticityRule", "Registry", "apply", "audit", "bind", "constraints_of", "describe", "feedback_layers",
    "make_rule", "nn", "probe", "register_rule", "remove",
]
