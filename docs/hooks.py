"""MkDocs hook: writes the reference pages from the code at build time, so they are never written twice — the
constraint-spec and experiment references from the pydantic schemas (every key, type, default and bounds, and
the options of every registered rule, enforcer, transform and plasticity rule), and the CLI reference from
``biocircuits.app.cli.build_parser``. ``python docs/hooks.py DIR`` writes the same pages to ``DIR``."""

from __future__ import annotations

import argparse
import inspect
import os
import re
import sys
import types
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from biocircuits.core.registry import Registry

BOUNDS = {"gt": ">", "ge": ">=", "lt": "<", "le": "<="}


def docstring(doc: str | None) -> str:
    """A whole docstring as Markdown: dedented (``inspect.cleandoc``), paragraphs, lists and indented formula blocks
    kept, cross-references shown as code (as in ``prose``)."""
    return re.sub(r"\[(`[^`]+`)\]\[[\w.]+\]", r"\1", inspect.cleandoc(doc or ""))


def cell(text: str | None) -> str:
    """``text`` on one line, safe inside a Markdown table cell (``|`` escaped)."""
    return prose(text).replace("|", "\\|")


def prose(doc: str | None) -> str:
    """A docstring as one Markdown paragraph (cross-references ``[`x`][biocircuits.x]`` become code: the reference
    pages do not link into the API page)."""
    return re.sub(r"\[(`[^`]+`)\]\[[\w.]+\]", r"\1", " ".join((doc or "").split()))


def type_name(annotation: Any) -> str:
    """A readable type: ``int | None``, ``list[str]``, ``'block' | 'random'`` for Literals, a model's class name."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Literal:
        return " \\| ".join(f"`{a!r}`" for a in args)
    if origin is typing.Union or isinstance(annotation, types.UnionType):
        return " \\| ".join(type_name(a) for a in args)
    if origin is typing.Annotated:
        return type_name(args[0])
    if origin is not None:
        return f"{getattr(origin, '__name__', str(origin))}[{', '.join(type_name(a) for a in args)}]"
    if annotation is type(None):
        return "None"
    return getattr(annotation, "__name__", str(annotation))


def registry_of(metadata: list[Any]) -> Registry | None:
    """The registry a name field is checked against (``config.constraints.registered(REGISTRY.get)``)."""
    for item in metadata:
        for cell in getattr(getattr(item, "func", None), "__closure__", None) or ():
            owner = getattr(cell.cell_contents, "__self__", None)
            if isinstance(owner, Registry):
                return owner
    return None


def constraint_text(field: Any) -> str:
    """Bounds (``>= 0``, ``< 1``) and, for registered names, the names that are valid now."""
    parts = [f"{sym} {getattr(m, attr)}" for m in field.metadata for attr, sym in BOUNDS.items() if hasattr(m, attr)]
    for arg in (field.annotation, *typing.get_args(field.annotation)):
        parts += [
            f"{sym} {getattr(m, attr)}"
            for m in getattr(arg, "__metadata__", ())
            for attr, sym in BOUNDS.items()
            if hasattr(m, attr)
        ]
    registry = registry_of(field.metadata)
    if registry is not None:
        parts.append("one of " + ", ".join(f"`{n}`" for n in registry.names()))
    return "; ".join(parts)


def default_text(field: Any) -> str:
    if field.default_factory is not None:
        value = field.default_factory()
        return "(section)" if isinstance(value, BaseModel) else f"`{value!r}`"
    return "required" if field.default is PydanticUndefined else f"`{field.default!r}`"


def nested_models(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models a field can hold (through unions, lists and dicts), in order."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for a in typing.get_args(annotation) for m in nested_models(a)]


def model_tables(model: type[BaseModel], prefix: str, level: int = 2) -> list[str]:
    """One table per (sub)section of ``model``: key, type, default, bounds, description (the field's
    ``Field(description=...)``); then the nested sections."""
    lines = [
        f"{'#' * level} `{prefix or model.__name__}`",
        "",
        docstring(model.__doc__),
        "",
        "| key | type | default | bounds / valid values | description |",
        "| --- | --- | --- | --- | --- |",
    ]
    nested = []
    for name, field in model.model_fields.items():
        if field.exclude:
            continue
        lines.append(
            f"| `{name}` | {type_name(field.annotation)} | {default_text(field)} | {constraint_text(field)} "
            f"| {cell(field.description)} |"
        )
        nested += [(f"{prefix}.{name}" if prefix else name, m) for m in nested_models(field.annotation)]
    if model.model_config.get("extra") == "allow":
        lines += ["", "Other keys are allowed here: see the registered names below."]
    lines.append("")
    seen = set()
    for key, sub in nested:
        if sub not in seen and not issubclass(model, sub):
            seen.add(sub)
            lines += model_tables(sub, key, level + 1)
    return lines


def registry_tables(registry: Registry, title: str) -> list[str]:
    """Every class registered in ``registry``: its whole docstring (the maths it implements) and the options of its
    ``Options`` model."""
    lines = [f"## {title} (`{registry.kind}` registry)", ""]
    for name in registry.names():
        cls = registry.get(name)
        lines += [f"### `{name}`", "", docstring(cls.__doc__), ""]
        options = getattr(cls, "Options", None)
        if options is not None and options.model_fields:
            lines += model_tables(options, f"{name} options", 4)[2:]
        else:
            lines += ["No options.", ""]
    return lines


def constraint_spec_page() -> str:
    from biocircuits import ENFORCERS, PLASTICITY, RULES, TRANSFORMS
    from biocircuits.config.constraints import Constraints

    head = [
        "# Constraint-spec reference",
        "",
        "Generated from the pydantic schemas in `biocircuits/config/constraints.py` and the registries at build "
        "time. The guide with a worked example is [Constraint specs](../constraints.md).",
        "",
    ]
    body = model_tables(Constraints, "")
    for registry, title in (
        (RULES, "Feedback rules"),
        (ENFORCERS, "Dale enforcers"),
        (
            TRANSFORMS,
            "Error-pathway transforms (`phases:` keys; `late_error`, `eligibility_trace` "
            "and `stream_clock` are attached through `backward_state`, "
            "`output_error_filter` through `error_filter: {cascade: false}`)",
        ),
        (PLASTICITY, "Plasticity rules (`plasticity.rules[].rule`)"),
    ):
        body += registry_tables(registry, title)
    return "\n".join(head + body)


def experiment_page() -> str:
    from biocircuits.config.experiment import Experiment
    from biocircuits.data import DATASETS
    from biocircuits.models import MODELS

    head = [
        "# Experiment reference",
        "",
        "Generated from the pydantic schemas in `biocircuits/config/experiment.py` at build time. The guide is "
        "[Experiments](../experiments.md); `constraints:` takes a path or an inline "
        "[constraint spec](constraint-spec.md).",
        "",
        f"Registered datasets: {', '.join(f'`{n}`' for n in DATASETS.names())}.",
        "",
        f"Registered models: {', '.join(f'`{n}`' for n in MODELS.names())} (and torchvision classifiers).",
        "",
    ]
    return "\n".join(head + model_tables(Experiment, ""))


def cli_page() -> str:
    from biocircuits.app.cli import build_parser

    os.environ["COLUMNS"] = "100"  # argparse wraps help at the terminal's width: fix it
    parser = build_parser()
    lines = [
        "# Command-line reference",
        "",
        "Generated from `biocircuits.app.cli.build_parser()` at build time.",
        "",
        "```text",
        parser.format_help().rstrip(),
        "```",
        "",
    ]
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, sub in subparsers.choices.items():
        lines += [f"## `biocircuits {name}`", "", "```text", sub.format_help().rstrip(), "```", ""]
    return "\n".join(lines)


PAGES = {
    "reference/constraint-spec.md": constraint_spec_page,
    "reference/experiment.md": experiment_page,
    "reference/cli.md": cli_page,
}


def on_files(files: Any, config: Any) -> Any:
    """MkDocs event: add the generated reference pages to the site's files."""
    from mkdocs.structure.files import File

    for uri, page in PAGES.items():
        files.append(File.generated(config, uri, content=page()))
    return files


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "reference-preview")
    for uri, page in PAGES.items():
        (out / uri).parent.mkdir(parents=True, exist_ok=True)
        (out / uri).write_text(page())
        print("wrote", out / uri)
