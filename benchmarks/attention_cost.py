"""Cost of converting ``nn.MultiheadAttention`` (#23): one forward + backward of the plain module against the converted
one (``bp``, ``sign_symmetry``) for self-attention, cross-attention with key = value, and three separate inputs.

The converted module projects each distinct input through all of the packed W_in (3E x E) and keeps the rows it needs
(B_in is one matrix), so cross-attention's in-projection does 3E^2 multiply-adds per token where torch does E^2 per
query token and 2E^2 per key/value token. Usage: ``python benchmarks/attention_cost.py [--embed 256 --tokens 128
--batch 8 --reps 15]``; prints a markdown table (ms, median over ``reps`` after 3 warm-ups, one thread)."""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch
from torch import nn

import biocircuits as bc


class Attention(nn.Module):
    def __init__(self, embed: int, heads: int) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(embed, heads, batch_first=True)

    def forward(self, q, k, v):
        return self.attn(q, k, v, need_weights=False)[0]


def step_ms(model: nn.Module, inputs: tuple, reps: int) -> float:
    """Median ms of forward + backward of ``model(*inputs).sum()`` over ``reps`` runs after 3 warm-ups."""
    times = []
    for _ in range(reps + 3):
        start = time.perf_counter()
        model(*inputs).sum().backward()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times[3:])


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--embed", type=int, default=256)
    p.add_argument("--tokens", type=int, default=128)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--reps", type=int, default=15)
    args = p.parse_args(argv)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(0)
        plain = Attention(args.embed, 4)
        x, m1, m2 = (torch.randn(args.batch, args.tokens, args.embed, requires_grad=True) for _ in range(3))
        cases = {"self": (x, x, x), "cross, key = value": (x, m1, m1), "cross, 3 inputs": (x, m1, m2)}
        rows = {}
        for rule in ("plain", "bp", "sign_symmetry"):
            model = copy.deepcopy(plain)
            model = model if rule == "plain" else bc.apply(model, {"feedback": {"rule": rule}})
            rows[rule] = {case: step_ms(model, inputs, args.reps) for case, inputs in cases.items()}
    finally:
        torch.set_num_threads(threads)
    print("| module | " + " | ".join(f"{c} ms" for c in cases) + " |")
    print("| --- |" + " ---: |" * len(cases))
    for rule, row in rows.items():
        ratios = [f"{row[c]:.1f} ({row[c] / rows['plain'][c]:.2f}x)" for c in cases]
        print(f"| {rule} | " + " | ".join(ratios) + " |")
    return {"rows": rows}


if __name__ == "__main__":
    main()
