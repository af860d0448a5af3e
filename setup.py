"""Package layout that pyproject.toml cannot say alone: the top-level ``constraints/`` and ``experiments/``
folders ship inside the wheel as ``biocircuits/presets/constraints`` and ``biocircuits/presets/experiments``
(one copy in the repository; see biocircuits/presets/__init__.py). Everything else is in pyproject.toml."""

from setuptools import find_packages, setup

PRESETS = {"biocircuits.presets.constraints": "constraints", "biocircuits.presets.experiments": "experiments"}

setup(
    packages=[*find_packages(include=["biocircuits*"]), *PRESETS],
    package_dir=PRESETS,
    package_data={"biocircuits": ["py.typed"], **{name: ["*.yaml"] for name in PRESETS}},
)
