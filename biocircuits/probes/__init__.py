"""Probes: alignment of each rule's feedback, errors and updates with exact backprop; the update angle of a
training step ([`StepProbe`][biocircuits.probes.step.StepProbe])."""

from .alignment import LayerProbe, angle, probe
from .errors import layer_errors
from .step import StepProbe

__all__ = ["LayerProbe", "StepProbe", "angle", "layer_errors", "probe"]
