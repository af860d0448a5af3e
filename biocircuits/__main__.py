"""``python -m biocircuits`` is the ``biocircuits`` command (so ``torchrun -m biocircuits run ...`` works).

[`entry`][biocircuits.__main__.entry] (the console script) installs the command's Ctrl-C handling before it imports
anything heavy; importing the package never touches ``sys.excepthook``."""

import os
import sys


def quiet_interrupt(kind: type[BaseException], value: BaseException, tb: object, _default=sys.__excepthook__) -> None:
    """``sys.excepthook`` of the command: Ctrl-C while it starts (importing torch takes seconds) exits 130 with
    one line and no traceback; anything else goes to the default hook. (Once
    [`biocircuits.app.cli.main`][biocircuits.app.cli.main] runs, it catches ``KeyboardInterrupt`` itself.)"""
    if issubclass(kind, KeyboardInterrupt):
        print("interrupted", file=sys.stderr, flush=True)
        os._exit(130)
    _default(kind, value, tb)


def entry() -> None:
    """The ``biocircuits`` command: install [`quiet_interrupt`][biocircuits.__main__.quiet_interrupt], then import and
    run the CLI."""
    sys.excepthook = quiet_interrupt
    from biocircuits.app.cli import main

    sys.exit(main())


if __name__ == "__main__":
    entry()
