"""The documentation site (mkdocs.yml, docs/hooks.py) builds offline with ``--strict``; every public name of
the contract has an API entry; the generated references cover every schema key, registered name and command;
the notebooks render with their stored figures."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

import biocircuits as bc
from biocircuits.app.cli import build_parser
from biocircuits.config.constraints import Constraints
from biocircuits.config.experiment import Experiment

pytest.importorskip("mkdocs")
ROOT = Path(__file__).resolve().parents[1]

# the public contract (DESIGN.md): bc.NAME -> where the API page documents it
PUBLIC = {
    "apply": "biocircuits.apply.apply",
    "bind": "biocircuits.core.binding.bind",
    "audit": "biocircuits.dale.audit.audit",
    "probe": "biocircuits.probes.alignment.probe",
    "describe": "biocircuits.feedback.convert.describe",
    "remove": "biocircuits.apply.remove",
    "load_data": "biocircuits.config.data.load_data",
    "layer_errors": "biocircuits.probes.errors.layer_errors",
    "Constraints": "biocircuits.config.constraints.Constraints",
    "RULES": "biocircuits.feedback.rules.RULES",
    "ENFORCERS": "biocircuits.dale.enforcers.ENFORCERS",
    "TRANSFORMS": "biocircuits.phases.transforms.TRANSFORMS",
    "PLASTICITY": "biocircuits.plasticity.rules.PLASTICITY",
    "FeedbackRule": "biocircuits.feedback.rules.FeedbackRule",
    "DaleEnforcer": "biocircuits.dale.enforcers.DaleEnforcer",
    "ErrorTransform": "biocircuits.phases.transforms.ErrorTransform",
    "PlasticityRule": "biocircuits.plasticity.rules.PlasticityRule",
    "LayerAttachment": "biocircuits.core.interface.LayerAttachment",
    **{f"nn.{name}": f"biocircuits.nn.{name}" for name in bc.nn.__all__},
}


def resolve(dotted: str) -> object:
    module, _, name = dotted.rpartition(".")
    __import__(module)
    return getattr(sys.modules[module], name)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    env = os.environ | {
        "NO_MKDOCS_2_WARNING": "1",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "WARNING" not in done.stderr, done.stderr
    return out


def test_every_public_name_has_an_api_entry(site):
    api = (site / "api" / "index.html").read_text()
    for name, dotted in PUBLIC.items():
        obj = bc
        for part in name.split("."):
            obj = getattr(obj, part)
        assert resolve(dotted) is obj, f"bc.{name} is not {dotted}"
        assert f'id="{dotted}"' in api, f"no API entry for bc.{name} ({dotted})"


def test_references_cover_the_schemas_and_the_parser(site):
    spec = (site / "reference" / "constraint-spec" / "index.html").read_text()
    exp = (site / "reference" / "experiment" / "index.html").read_text()
    cli = (site / "reference" / "cli" / "index.html").read_text()
    for section in ("feedback", "dale", "phases", "plasticity"):
        model = type(getattr(Constraints(dale={}), section))
        assert all(f"<code>{key}</code>" in spec for key in model.model_fields if key != "source")
    for registry in (bc.RULES, bc.ENFORCERS, bc.TRANSFORMS, bc.PLASTICITY):
        assert all(f"<code>{name}</code>" in spec for name in registry.names())
    for section in ("data", "model", "optim", "schedule", "train"):
        model = Experiment.model_fields[section].annotation
        assert all(f"<code>{key}</code>" in exp for key in model.model_fields)
    commands = next(a for a in build_parser()._actions if hasattr(a, "choices") and a.choices).choices
    assert all(f"biocircuits {name}" in cli for name in commands)
    assert "--version" in cli


def test_notebooks_render_with_their_figures(site):
    for name in ("alignment", "spiking_feedback"):
        page = (site / "notebooks" / name / "index.html").read_text()
        assert "data:image/png;base64" in page, f"{name}: no stored figure on the page"


def test_no_sphinx_role_reaches_the_site_and_cross_references_are_links(site):
    import re

    pages = {path: path.read_text() for path in site.rglob("*.html")}
    roles = {p: re.findall(r":(?:func|class|meth|mod|attr|data|obj|exc):`?", t) for p, t in pages.items()}
    assert not {p: r for p, r in roles.items() if r}, "Sphinx roles on the site: run python tools/docstring_roles.py"
    assert not [p for p, t in pages.items() if re.search(r"\]\[biocircuits\.", t)], "a cross-reference left unlinked"
    api = pages[site / "api" / "index.html"]
    # bc.remove's docstring names apply: a link to its entry on the same page
    assert re.search(r'<a[^>]+href="#biocircuits\.apply\.apply"[^>]*>\s*<code>apply</code>', api)
