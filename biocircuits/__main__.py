"""``python -m biocircuits`` is the ``biocircuits`` command (so ``torchrun -m biocircuits run ...`` works).

[`entry`][biocircuits.__main__.entry] (the console script) installs the command's Ctrl-C handling before it imports
anything heavy; importing the package never touches ``sys.excepthook``."""

import atexit
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


def quick_exit(code: int) -> None:
    """End the process with ``code`` once the exit handlers have run and stdout/stderr are flushed, skipping the
    interpreter's teardown of every imported module: after torch, Ray Tune, pandas and pyarrow that teardown takes
    1-2 s and does nothing a finished command needs (its files are written and closed, its Ray is down)."""
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def entry() -> None:
    """The ``biocircuits`` command: install [`quiet_interrupt`][biocircuits.__main__.quiet_interrupt], then (for
    ``sweep``) start Ray while the rest is imported
    ([`start_early`][biocircuits.app.sweep.session.start_early]), then import and run the CLI; a sweep ends with
    [`quick_exit`][biocircuits.__main__.quick_exit]."""
    sys.excepthook = quiet_interrupt
    sweep = sys.argv[1:2] == ["sweep"]
    if sweep:
        from biocircuits.app.sweep.session import start_early

        start_early(sys.argv[2:])
    from biocircuits.app.cli import main

    code = main()
    if sweep:
        quick_exit(code)
    sys.exit(code)


if __name__ == "__main__":
    entry()
