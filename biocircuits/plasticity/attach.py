"""Attaching a ``plasticity:`` section's rules to the layers they match."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import nn

from biocircuits.core.celltypes import cell_types
from biocircuits.core.globs import match_any
from biocircuits.core.interface import attach

from .rules import PLASTICITY, BatchManhattan


def attach_plasticity(model: nn.Module, layers: Sequence[tuple[str, nn.Module]], spec: Any) -> int:
    """For each of ``layers``, attach the rules of ``spec.rules`` whose layer glob matches its name, in spec order
    (a rule that changes nothing is left out; a population rule needs a Dale-constrained layer); with
    ``spec.update == "batch_manhattan"`` attach :class:`BatchManhattan` to ``model`` itself. ``spec`` is a
    :class:`~biocircuits.config.constraints.PlasticitySpec`. Returns the number of attachments made."""
    made = 0
    for name, layer in layers:
        for row in spec.rules:
            cls = PLASTICITY.get(row.rule)
            options = row.rule_options()
            if not match_any(name, [row.match.layers]) or cls.changes_nothing(cls(options).options):
                continue
            if row.match.population != "any" and cell_types(layer) is None:
                continue  # populations exist only in Dale-constrained layers
            attach(layer, cls(options, population=row.match.population), name)
            made += 1
    if spec.update == "batch_manhattan":
        attach(model, BatchManhattan(), "")
        made += 1
    return made
