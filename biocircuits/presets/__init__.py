"""The shipped presets: the YAML constraint specs of ``constraints/`` and the experiment recipes of
``experiments/``, found by name from any working directory.

The top-level ``constraints/`` and ``experiments/`` folders are the ones users edit; a built wheel carries a
copy of them inside this package (``biocircuits/presets/constraints/``, ``.../experiments/``; ``setup.py`` maps
the two package-data folders onto the top-level ones, so there is one copy in the repository). A source checkout
and an editable install read the top-level folders themselves.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

FOLDERS = ("constraints", "experiments")


def presets_root() -> Path:
    """The folder that holds ``constraints/`` and ``experiments/``: this package's own folder in an installed
    wheel (located with `importlib.resources.files`), otherwise the repository root of the checkout."""
    shipped = resources.files(__name__)
    if isinstance(shipped, Path) and all((shipped / folder).is_dir() for folder in FOLDERS):
        return shipped
    return Path(__file__).resolve().parents[2]


def preset_names(folder: str = "constraints") -> list[str]:
    """The preset names (file stems, sorted) shipped in ``folder`` (``constraints`` or ``experiments``)."""
    if folder not in FOLDERS:
        raise ValueError(f"folder must be one of {FOLDERS}, got {folder!r}")
    return sorted(p.stem for p in (presets_root() / folder).glob("*.yaml"))
