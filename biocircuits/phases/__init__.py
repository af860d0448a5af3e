"""Phase-separated learning: forward, backward (error through the feedback pathway) and update phases,
and perturbations of the error pathway."""

from .perturb import ErrorPerturbation, GradientPhases, attach_perturbations, quantize
from .step import PhaseCallback, PhasedStep, StepContext

__all__ = ["ErrorPerturbation", "GradientPhases", "PhaseCallback", "PhasedStep", "StepContext",
           "attach_perturbations", "quantize"]
