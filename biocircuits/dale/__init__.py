"""Dale's law: sign-fixed excitatory/inhibitory presynaptic units, enforcement, initialisation and audit."""

from .audit import AuditReport, LayerAudit, audit
from .constrain import constrain, weight_layers
from .populations import assign_signs, population_mask, sign_mask

__all__ = ["AuditReport", "LayerAudit", "assign_signs", "audit", "constrain", "population_mask", "sign_mask",
           "weight_layers"]
