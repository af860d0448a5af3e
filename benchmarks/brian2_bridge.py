"""Wall time of the Brian2 bridge, each case in a fresh process (Brian2 import and set-up included):

- the default check (``check_pathway(B, E)``: spiking, 4 patterns of 0.5 s) on a 100x10 pathway, numpy target,
  without and with Dale's relays;
- a rate frequency response (6 frequencies, 10x32) and a spiking two-layer gated chain (10 -> 32 -> 64);
- the default check with the cython target: cold (an empty cache: every code object compiled) and warm (a new
  process reusing that cache).

    python benchmarks/brian2_bridge.py
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time

PRELUDE = """
import time, torch
t0 = time.perf_counter()
import brian2
from brian2 import Hz, second
brian2.prefs.codegen.runtime.cython.cache_dir = {cache!r}
import biocircuits.bridges.brian2 as bridge
gen = torch.Generator().manual_seed(0)
"""

CASES = {
    "default check, numpy": """
rep = bridge.check_pathway(torch.randn(100, 10, generator=gen), torch.randn(4, 100, generator=gen))
result = f"min cosine {rep.min_cosine:.4f}"
""",
    "default check + Dale relays, numpy": """
rep = bridge.check_pathway(torch.randn(100, 10, generator=gen), torch.randn(4, 100, generator=gen), dale=True)
result = f"min cosine {rep.min_cosine:.4f}"
""",
    "rate frequency response, 6 frequencies, numpy": """
pts = bridge.frequency_response(torch.randn(10, 32, generator=gen), torch.randn(10, generator=gen),
                                [2, 5, 10, 20, 50, 100] * Hz, "rate")
result = "max |gain/analytic - 1| " + f"{max(abs(p.gain / p.gain_analytic - 1) for p in pts):.1e}"
""",
    "spiking 2-layer gated chain 10-32-64, 4 x 1 s, numpy": """
B3, B2 = torch.randn(10, 32, generator=gen), torch.randn(32, 64, generator=gen)
rep = bridge.check_chain([B3, B2], torch.randn(4, 10, generator=gen), [(torch.randn(32, generator=gen) > 0).double()])
result = f"min cosine {rep.min_cosine:.4f} (bound {min(p.poisson_bound for p in rep.patterns):.4f})"
""",
    "default check, cython cold": """
rep = bridge.check_pathway(torch.randn(100, 10, generator=gen), torch.randn(4, 100, generator=gen),
                           codegen_target="cython")
result = f"min cosine {rep.min_cosine:.4f}"
""",
}
CASES["default check, cython warm"] = CASES["default check, cython cold"]
EPILOGUE = '\nprint(f"{time.perf_counter() - t0:.2f}|{result}")\n'


def cpu_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    """One row per case; the CPU seconds (user + system of the process) are what a shared machine's load does
    not inflate, the wall seconds are what a user waits. The load average is printed for context."""
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print("case | wall s (process) | wall s (import + check) | CPU s (process) | result")
    with tempfile.TemporaryDirectory() as cache:
        for name, body in CASES.items():
            t0, c0 = time.perf_counter(), cpu_children()
            res = subprocess.run(
                [sys.executable, "-c", PRELUDE.format(cache=cache) + body + EPILOGUE],
                capture_output=True,
                text=True,
                check=True,
            )
            wall, cpu = time.perf_counter() - t0, cpu_children() - c0
            inner, result = res.stdout.strip().splitlines()[-1].split("|", 1)
            print(f"{name} | {wall:.2f} | {float(inner):.2f} | {cpu:.2f} | {result}", flush=True)


if __name__ == "__main__":
    main()
