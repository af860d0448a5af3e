"""Dale's law: one E/I type per neuron (followed through the graph), enforcement, initialisation, DANN layers,
and the audit."""

from biocircuits.core.celltypes import assign_signs, population_mask, sign_mask, synapse_mask

from .audit import AuditReport, LayerAudit, MixedUnit, audit
from .constrain import Constrained, constrain
from .dann import Dann, DannOptions, DannWeight
from .enforcers import ENFORCERS, DaleEnforcer
from .graph import UnitGraph, unit_graph

__all__ = ["ENFORCERS", "AuditReport", "Constrained", "DaleEnforcer", "Dann", "DannOptions", "DannWeight",
           "LayerAudit", "MixedUnit", "UnitGraph", "assign_signs", "audit", "constrain", "population_mask",
           "sign_mask", "synapse_mask", "unit_graph"]
