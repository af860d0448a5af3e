"""The generated constraint-spec reference (docs/hooks.py): every registered rule, enforcer, transform and plasticity
rule with its whole docstring, and every option and every spec key with its ``Field(description=...)``."""

import importlib.util
import inspect
import re
import typing
from pathlib import Path

import pytest
from pydantic import BaseModel

import biocircuits as bc
from biocircuits.config.constraints import Constraints

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("docs_hooks", ROOT / "docs" / "hooks.py")
hooks = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(hooks)
REGISTRIES = {"rules": bc.RULES, "enforcers": bc.ENFORCERS, "transforms": bc.TRANSFORMS, "plasticity": bc.PLASTICITY}


@pytest.fixture(scope="module")
def page() -> str:
    return hooks.constraint_spec_page()


def row(name: str, description: str) -> re.Pattern:
    """The table row of option ``name``, ending with its description (``|`` escaped as in a Markdown cell)."""
    cell = " ".join(description.split()).replace("|", "\\|")
    return re.compile(rf"^\| `{re.escape(name)}` \|.*\| {re.escape(cell)} \|$", re.MULTILINE)


def sections(model: type[BaseModel], seen: set | None = None) -> list[type[BaseModel]]:
    """``model`` and every section model nested in it."""
    seen = seen if seen is not None else set()
    if model in seen:
        return []
    seen.add(model)
    found = [model]
    for field in model.model_fields.values():
        stack = [field.annotation]
        while stack:
            a = stack.pop()
            if isinstance(a, type) and issubclass(a, BaseModel):
                found += sections(a, seen)
            stack += typing.get_args(a)
    return found


@pytest.mark.parametrize("kind", REGISTRIES)
def test_every_registered_class_has_its_whole_docstring_and_described_options(page, kind):
    registry = REGISTRIES[kind]
    for name in registry.names():
        cls = registry.get(name)
        heading = page.index(f"### `{name}`\n")
        doc = re.sub(r"\[(`[^`]+`)\]\[[\w.]+\]", r"\1", inspect.cleandoc(cls.__doc__ or ""))
        assert doc and page.find(doc, heading) == heading + len(f"### `{name}`\n\n"), f"{name}: docstring cut"
        options = getattr(cls, "Options", None)
        for option, field in options.model_fields.items() if options is not None else ():
            assert field.description, f"{kind} {name}: option {option!r} has no Field(description=...)"
            assert row(option, field.description).search(page, heading), f"{name}: {option} row"


def test_every_spec_key_has_a_description(page):
    for model in sections(Constraints):
        for key, field in model.model_fields.items():
            if field.exclude:
                continue
            assert field.description, f"{model.__name__}.{key} has no Field(description=...)"
            assert row(key, field.description).search(page), f"{model.__name__}.{key}: no row with its description"
