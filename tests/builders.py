"""Model and data builders shared by the tests. Test functions get them as the fixtures of ``tests/conftest.py``
(``mlp``, ``random_step``); module-level helpers, which cannot take fixtures, import them from here."""

from __future__ import annotations

import torch
from torch import nn


def build_mlp(
    *sizes: int, act: type[nn.Module] = nn.ReLU, dtype: torch.dtype | None = None, seed: int | None = None
) -> nn.Sequential:
    """``Linear(sizes[0], sizes[1]), act(), Linear(sizes[1], sizes[2]), ..., Linear(sizes[-2], sizes[-1])``: an
    activation between layers, none after the last, so the weight layers sit at indices 0, 2, 4, ...

    ``seed``: ``torch.manual_seed(seed)`` first (else the global generator as it stands). ``dtype``: the built
    model is cast with ``.to(dtype)``, so float64 weights are the float32 draws widened (the same numbers a
    test's ``.double()`` gives)."""
    if len(sizes) < 2:
        raise ValueError(f"an MLP needs an input and an output size, given {sizes}")
    if seed is not None:
        torch.manual_seed(seed)
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes, sizes[1:], strict=False)):
        layers += [act()] if i else []
        layers.append(nn.Linear(n_in, n_out))
    model = nn.Sequential(*layers)
    return model.to(dtype) if dtype is not None else model


def build_batches(
    n: int, batch: int, n_in: int, n_classes: int, seed: int = 0, dtype: torch.dtype = torch.float64
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``n`` classification batches drawn in turn from one generator seeded ``seed``: for each,
    ``x ~ N(0, 1)`` of shape (batch, n_in) then labels ``y`` uniform in [0, n_classes) of shape (batch,)."""
    g = torch.Generator().manual_seed(seed)
    return [
        (torch.randn(batch, n_in, generator=g, dtype=dtype), torch.randint(0, n_classes, (batch,), generator=g))
        for _ in range(n)
    ]


def random_gradient_step(model: nn.Module, optimizer: torch.optim.Optimizer, seed: int, batch: int = 16) -> None:
    """One optimiser step on ``L = sum(model(x) * r)`` after ``torch.manual_seed(seed)``: ``x ~ U[0, 1)`` of shape
    (batch, n_in) then ``r ~ N(0, 1)`` of shape (batch, n_out), sizes read from the first and last ``nn.Linear``
    (so ``dL/d out = r``: a random output gradient)."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    torch.manual_seed(seed)
    optimizer.zero_grad()
    (model(torch.rand(batch, linears[0].in_features)) * torch.randn(batch, linears[-1].out_features)).sum().backward()
    optimizer.step()


class TinyAttention(nn.Module):
    """embed Linear(2, E) -> ReLU -> self-attention (E, ``heads``) -> mean over tokens -> head Linear(E, 3); input
    [B, T, 2], output [B, 3]."""

    def __init__(self, embed_dim: int = 4, heads: int = 2) -> None:
        super().__init__()
        self.embed = nn.Linear(2, embed_dim)
        self.attn = nn.MultiheadAttention(embed_dim, heads, batch_first=True)
        self.head = nn.Linear(embed_dim, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.embed(x).relu()
        return self.head(self.attn(t, t, t, need_weights=False)[0].mean(1))


def recurrent_dale(excitatory_fraction: float) -> dict:
    """The ``dale:`` spec of a rate RNN's own E/I form (column signs per layer on the recurrent and readout
    weights, block assignment, kept by projection from the model's own init)."""
    return {
        "layers": ["recurrent", "readout"],
        "types": "per_layer",
        "excitatory_fraction": excitatory_fraction,
        "assignment": "block",
        "enforce": "project",
        "init": "keep",
    }
