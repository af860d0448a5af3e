"""The built wheel carries the presets: installed without the source tree on the path, a preset and a recipe
are found by name from another working directory; ``biocircuits --version`` matches the package metadata."""

import importlib.metadata
import os
import shutil
import subprocess
import sys
from pathlib import Path

from biocircuits.app.cli import main

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("biocircuits", "constraints", "experiments", "pyproject.toml", "setup.py", "README.md")

# run in the installed copy, from a directory that is neither the checkout nor the install
CHECK = """
import importlib.metadata, sys, torch
import biocircuits as bc
from biocircuits.app.cli import main
from biocircuits.config.experiment import Experiment
from biocircuits.config.loading import PACKAGE_ROOT
site = sys.argv[1]
assert bc.__file__.startswith(site), bc.__file__
assert str(PACKAGE_ROOT).startswith(site), PACKAGE_ROOT
model = bc.apply(torch.nn.Sequential(torch.nn.Linear(8, 6), torch.nn.ReLU(), torch.nn.Linear(6, 3)),
                 "dale_sign_symmetry")
assert model[2].rule.name == "sign_symmetry" and model[2].dale_sign.numel() == 6
exp = Experiment.from_yaml("experiments/quickstart.yaml", {"constraints": "sign_symmetry.yaml"})
assert exp.resolved_constraints().feedback.rule == "sign_symmetry"
assert str(exp.source).startswith(site), exp.source
print("metadata", importlib.metadata.version("biocircuits"))
try:
    main(["--version"])
except SystemExit:
    pass
"""


def test_version_flag_matches_metadata(capsys):
    try:
        main(["--version"])
    except SystemExit as done:
        assert done.code == 0
    assert capsys.readouterr().out.split() == ["biocircuits", importlib.metadata.version("biocircuits")]


def test_wheel_ships_presets(tmp_path):
    src, dist, site, elsewhere = (tmp_path / d for d in ("src", "dist", "site", "elsewhere"))
    src.mkdir()
    elsewhere.mkdir()
    for name in SOURCES:  # build from a copy: setuptools writes build/ and *.egg-info beside the sources
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(ROOT / name, src / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(dist), str(src)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = dist.glob("biocircuits-*.whl")
    subprocess.run(
        [*pip, "install", "--no-deps", "--target", str(site), str(wheel)], check=True, capture_output=True, timeout=300
    )
    assert (site / "biocircuits" / "presets" / "constraints" / "dale_sign_symmetry.yaml").is_file()
    assert (site / "biocircuits" / "py.typed").is_file()

    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"PYTHONPATH": str(site)}
    done = subprocess.run(
        [sys.executable, "-c", CHECK, str(site)], cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.split("\n")
    version = wheel.name.split("-")[1]
    assert f"metadata {version}" in lines and f"biocircuits {version}" in lines, done.stdout
