"""Dale's law: one E/I type per neuron (followed through the graph), and the Dale slot
([`slot`][biocircuits.dale.slot]): enforcers, DANN layers and normalisation policies, each a registered attachment in
``DALE``; initialisation and the audit."""

from biocircuits.core.celltypes import assign_signs, population_mask, sign_mask, synapse_mask

from .audit import AuditReport, LayerAudit, MixedUnit, audit
from .constrain import Constrained, constrain
from .dann import Dann, DannOptions, DannWeight
from .enforcers import ENFORCERS, DaleEnforcer
from .graph import UnitGraph, unit_graph
from .norms import NonnegativeGamma
from .population_norm import PopulationNorm
from .residual import SignedResidual
from .slot import DALE, SPEC_KEYS, DaleAttachment

__all__ = [
    "DALE",
    "ENFORCERS",
    "SPEC_KEYS",
    "AuditReport",
    "Constrained",
    "DaleAttachment",
    "DaleEnforcer",
    "Dann",
    "DannOptions",
    "DannWeight",
    "LayerAudit",
    "MixedUnit",
    "NonnegativeGamma",
    "PopulationNorm",
    "SignedResidual",
    "UnitGraph",
    "assign_signs",
    "audit",
    "constrain",
    "population_mask",
    "sign_mask",
    "synapse_mask",
    "unit_graph",
]
