"""``biocircuits sweep``: a grid (or named variants) of one experiment x seeds, each trial an ordinary run folder,
run on Ray Tune; then the results and a summary with confidence intervals ([`report`][biocircuits.app.sweep.report]).

The command itself is [`command.run_sweep`][biocircuits.app.sweep.command.run_sweep]; ``biocircuits report`` is
[`report.report`][biocircuits.app.sweep.report.report]. Importing this package is light: its names (``run_sweep``,
``plan``, the sweep file's ``SweepSpec``, ``Trial``, ``expand``, ``load_sweep``: all need torch) are imported on
first use (PEP 562 ``__getattr__``), so that the command can start Ray
([`session.start_early`][biocircuits.app.sweep.session.start_early]) before torch is imported."""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "plan": ".command",
    "run_sweep": ".command",
    "SweepSpec": ".spec",
    "Trial": ".spec",
    "expand": ".spec",
    "load_sweep": ".spec",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name], __name__), name)
    globals()[name] = value
    return value


__all__ = ["SweepSpec", "Trial", "expand", "load_sweep", "plan", "run_sweep"]
