"""Wall time of the default Brian2 pathway check: a 100x10 pathway, 4 error patterns, spiking mode, numpy
code generation, in a fresh process (Brian2 import and set-up included).

    python benchmarks/brian2_pathway.py
"""

from __future__ import annotations

import subprocess
import sys
import time

SCRIPT = """
import time, torch
t0 = time.perf_counter()
from biocircuits.bridges.brian2 import check_pathway
gen = torch.Generator().manual_seed(0)
B = torch.randn({out}, {inp}, generator=gen)
rep = check_pathway(B, torch.randn(4, {out}, generator=gen), "spiking", dale={dale})
print(f"{{time.perf_counter() - t0:.2f}} {{rep.min_cosine:.4f}}")
"""


def main() -> None:
    print("shape (out x in)   dale   wall s (process)   wall s (import+check)   min cosine")
    for out, inp in ((100, 10), (10, 100)):
        for dale in (False, True):
            t0 = time.perf_counter()
            res = subprocess.run(
                [sys.executable, "-c", SCRIPT.format(out=out, inp=inp, dale=dale)],
                capture_output=True,
                text=True,
                check=True,
            )
            wall = time.perf_counter() - t0
            inner, cos = res.stdout.split()[-2:]
            print(f"{out:>4} x {inp:<10}  {str(dale):<6} {wall:16.2f}   {float(inner):20.2f}   {cos:>10}")


if __name__ == "__main__":
    main()
