"""``biocircuits layers EXPERIMENT``: the model's weight layers as a run would build them (name, type, weight shape,
feedback rule, Dale types, exempt or not), to write layer globs against; and the model build that ``biocircuits
validate`` checks an experiment with (every glob, override, exemption and plasticity match, before a run)."""

from __future__ import annotations

import argparse
import json
from typing import Any

import torch
from torch import nn

import biocircuits as bc
from biocircuits.config.experiment import Experiment
from biocircuits.config.loading import parse_set
from biocircuits.core.celltypes import cell_types
from biocircuits.core.imports import is_import_path
from biocircuits.core.layers import dale_layers
from biocircuits.data.registry import data_signature
from biocircuits.errors import ConfigError
from biocircuits.feedback.layers import FeedbackLayer
from biocircuits.models.registry import build_model
from biocircuits.train.weights import check_keys, load_weights, state_from_file

COLUMNS = ("layer", "type", "weight", "rule", "dale", "exempt")
META_FAILURES = (NotImplementedError, RuntimeError)  # what a data-dependent step raises on the meta device


def _classes(exp: Experiment, data_classes: int) -> int:
    classes = exp.model.num_classes or data_classes
    if classes < data_classes:
        raise ConfigError(
            "fewer classes than the dataset's labels",
            key="model.num_classes",
            expected=f"at least {data_classes} (the dataset's classes)",
            given=classes,
            suggestion="leave model.num_classes out to use the dataset's",
        )
    return classes


def _build_on(exp: Experiment, shape: tuple[int, ...], classes: int, device: str) -> nn.Module:
    """The experiment's model built on ``device``, with ``model.checkpoint`` checked against it (loaded on the
    CPU; on the meta device only its keys and shapes are compared), converted by ``bc.apply``; a forward pass at
    batch 1 checks that it takes the data's inputs (float inputs: skipped for a user's dataset)."""
    model = build_model(exp.model.name, shape, classes, exp.model.kwargs, device=device)
    path = exp.checkpoint_path()
    if path is not None and device == "meta":
        check_keys(model, state_from_file(model, path), str(path))
    elif path is not None:
        load_weights(model, path)
    bc.apply(model, exp.resolved_constraints())
    if not is_import_path(exp.data.name):
        _forward_once(model.eval(), shape, device)
    return model


def _forward_once(model: nn.Module, shape: tuple[int, ...], device: str) -> None:
    try:
        with torch.no_grad():
            model(torch.zeros(1, *shape, device=device))
    except Exception as err:
        if device == "meta" and isinstance(err, META_FAILURES):  # not an answer: the caller builds on the CPU
            raise
        first = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        raise ConfigError(
            f"the model does not take the data's inputs: {type(err).__name__}: {first}",
            key="model",
            expected=f"a model for inputs of shape {tuple(shape)}",
            given=type(model).__name__,
            has_given=True,
            suggestion="match model.kwargs (or data.channels / data.resize) to the data",
        ) from None


def inspect_model(exp: Experiment, device: str = "cpu") -> nn.Module:
    """The experiment's converted model, built as a run builds it but without loading the data where the dataset
    knows its shape (see [`peek`][biocircuits.data.registry.DatasetSource.peek]). ``device="meta"`` allocates no
    weights; a model whose build or conversion reads weight values (DANN's split, a builder calling ``.item()``)
    is then built on the CPU instead. Raises the [`ConfigError`][biocircuits.errors.ConfigError] a run would raise at
    its start."""
    shape, data_classes = data_signature(exp.data)
    classes = _classes(exp, data_classes)
    torch.manual_seed(exp.train.seed)
    if device == "meta":
        try:
            return _build_on(exp, shape, classes, "meta")
        except META_FAILURES:
            torch.manual_seed(exp.train.seed)
    return _build_on(exp, shape, classes, "cpu")


def layer_rows(model: nn.Module) -> list[dict[str, Any]]:
    """One row per weight layer (and converted attention's in-projection): name, type, weight shape, rule
    (``(plain torch)`` when not converted), Dale types (``nE/mI``, ``-`` when unconstrained) and whether
    ``dale.exempt`` leaves it out."""
    state = getattr(model, "biocircuits", None)
    exempt = set(state.exempt) if state is not None else set()
    rows = []
    for name, m in dale_layers(model):  # the weight layers and attention's packed in-projections
        sign = cell_types(m)
        rows.append(
            {
                "layer": name or "(root)",
                "type": type(m).__name__.replace("Parametrized", ""),
                "weight": list(m.weight.shape),
                "rule": repr(m.rule) if isinstance(m, FeedbackLayer) else "(plain torch)",
                "dale": f"{int((sign > 0).sum())}E/{int((sign < 0).sum())}I" if sign is not None else "-",
                "exempt": name in exempt,
            }
        )
    return rows


def layer_table(rows: list[dict[str, Any]]) -> str:
    """``rows`` as an aligned text table (columns [`COLUMNS`][biocircuits.app.layers.COLUMNS])."""
    cells = [list(COLUMNS)] + [
        [r["layer"], r["type"], "x".join(map(str, r["weight"])), r["rule"], r["dale"], "yes" if r["exempt"] else "no"]
        for r in rows
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(COLUMNS))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def cmd_layers(args: argparse.Namespace) -> int:
    """Print the table (or ``--json``: a list of rows) of the experiment's model."""
    exp = Experiment.from_yaml(args.experiment, parse_set(args.set))
    rows = layer_rows(inspect_model(exp, "cpu"))
    print(json.dumps(rows, indent=2) if args.json else layer_table(rows))
    return 0


def add_layers_command(sub: Any) -> None:
    """The ``layers`` parser."""
    lay = sub.add_parser(
        "layers",
        help="list the model's weight layers (name, type, shape, rule, Dale types, "
        "exempt), to write layer globs against",
    )
    lay.add_argument("experiment")
    lay.add_argument("--json", action="store_true", help="a JSON list of rows instead of the table")
    lay.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set constraints=dale.yaml (repeatable)",
    )
    lay.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
    lay.set_defaults(func=cmd_layers)
