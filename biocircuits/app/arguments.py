"""The command line's argument types and parser: values argparse checks itself (so that a bad one exits 2 naming
the option, in one line), and the options several commands share."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import NoReturn


def seed_list(text: str) -> list[int]:
    """``--seeds 0,1,2``: distinct non-negative integers."""
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        seeds = []
    if not seeds or min(seeds) < 0 or len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"expected distinct non-negative integers like 0,1,2, given {text!r}")
    return seeds


def positive(kind: type) -> Callable[[str], float]:
    """An argparse type: a number of ``kind`` above zero (argparse then exits 2 naming the option)."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number above 0, given {text[:40]!r}") from None
        if not (value > 0 and value < 1e9):
            raise argparse.ArgumentTypeError(f"expected a number above 0 and below 1e9, given {text[:40]!r}")
        return value

    return parse


def positive_list(text: str) -> list[float]:
    """An argparse type: comma-separated numbers above zero."""
    return [positive(float)(part) for part in text.split(",") if part.strip()] or positive(float)(text)


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (exit 2), like every other user error of the command."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {self.prog}: {message} (see {self.prog} --help)\n")


def add_common_options(sp: argparse.ArgumentParser) -> None:
    """``--set KEY=VALUE`` (repeatable) and ``--debug``, for the commands that read an experiment or a spec."""
    sp.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set train.epochs=2 (repeatable)",
    )
    sp.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
