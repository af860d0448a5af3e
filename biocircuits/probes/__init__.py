"""Probes: alignment of each rule's feedback, errors and updates with exact backprop."""

from .alignment import LayerProbe, angle, probe

__all__ = ["LayerProbe", "angle", "probe"]
