"""``python -m biocircuits`` is the ``biocircuits`` command (so ``torchrun -m biocircuits run ...`` works)."""

import sys

from biocircuits.app.cli import main


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()
