"""Dale's law: sign-fixed excitatory/inhibitory presynaptic units, enforcement, initialisation and audit."""

from biocircuits.core.celltypes import assign_signs, population_mask, sign_mask

from .audit import AuditReport, LayerAudit, audit
from .constrain import constrain
from .enforcers import ENFORCERS, DaleEnforcer

__all__ = ["ENFORCERS", "AuditReport", "DaleEnforcer", "LayerAudit", "assign_signs", "audit", "constrain",
           "population_mask", "sign_mask"]
