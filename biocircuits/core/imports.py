"""Objects named by import path (``"my_pkg.models:build"``): a user's own model or dataset builder, found without
an edit inside the package."""

from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path

from biocircuits.errors import ConfigError, did_you_mean

# module (dotted identifiers) ':' attribute (dotted identifiers)
IMPORT_PATH = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


def is_import_path(name: object) -> bool:
    """True for ``"package.module:attribute"`` (a registered name never holds a colon)."""
    return isinstance(name, str) and IMPORT_PATH.match(name) is not None


def _import_module(module: str, key: str, search: tuple[Path, ...]):
    """Import ``module``; when its top-level package is not on ``sys.path``, the folders ``search`` (the
    experiment file's folder, the working directory) are added to it, as ``python -m`` adds the working
    directory."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as err:
        top = module.split(".")[0]
        if err.name not in {top, module} and not module.startswith(f"{err.name}."):
            raise ConfigError(
                f"module {module!r} does not import: {err}",
                key=key,
                given=module,
                suggestion=f"install {err.name!r} or fix the import in {module!r}",
            ) from None
    for folder in (str(p.resolve()) for p in search):
        if folder not in sys.path and any((Path(folder) / f).exists() for f in (top, f"{top}.py")):
            sys.path.insert(0, folder)
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as err:
        raise ConfigError(
            f"module {module!r} not found ({err})",
            key=key,
            given=module,
            suggestion="make it importable: install it, put it beside the experiment file or in the "
            "working directory, or add its folder to PYTHONPATH",
        ) from None


def load_object(path: str, key: str, search: tuple[Path, ...] = ()) -> object:
    """The object ``attribute`` of ``module`` for ``path = "module:attribute"``; a
    [`ConfigError`][biocircuits.errors.ConfigError] naming ``key`` when the module does not import (its own exception is
    named) or lacks the attribute. ``search``: folders tried (after ``sys.path``) for the top-level package; the working
    directory is always tried last."""
    module_name, attr = path.split(":", 1)
    search = (*search, Path.cwd())
    try:
        module = _import_module(module_name, key, search)
    except ConfigError:
        raise
    except Exception as err:  # the user's module raised while importing
        raise ConfigError(
            f"module {module_name!r} does not import: {type(err).__name__}: {err}",
            key=key,
            given=path,
            suggestion=f"fix the error in {module_name!r} (import it in Python to see "
            "the traceback, or run with --debug)",
        ) from None
    obj: object = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            public = [n for n in dir(obj) if not n.startswith("_")]
            raise ConfigError(
                f"module {module_name!r} has no attribute {attr!r}",
                key=key,
                given=path,
                expected="module:attribute naming a callable in the module",
                suggestion=did_you_mean(part, public) or "it defines: " + ", ".join(public[:8]),
            )
        obj = getattr(obj, part)
    if not callable(obj):
        raise ConfigError(
            f"{path!r} is not callable",
            key=key,
            expected="a function (or class) that builds it",
            given=type(obj).__name__,
            has_given=True,
        )
    return obj
