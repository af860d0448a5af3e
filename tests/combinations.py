"""The drawn combinations of ``tests/test_combinations.py``: a spec strategy (feedback rule x Dale architecture x
phases x plasticity x optimiser x model) and a harness that trains a tiny model a few steps under it.

A combination is a plain dict: ``rule`` ((name, options)), ``dale`` (None or the ``dale:`` section), ``phases``,
``plasticity`` (the spec's sections), ``optim`` (a key of :data:`OPTIMISERS`), ``model`` (``mlp``, ``mlp_ln``: with a
LayerNorm, ``conv``, ``conv_bn``: with a BatchNorm), ``trained`` (which parameters the optimiser owns, see
:func:`trained`) and ``resume_at`` (the step a resumed run is saved at) and ``micro`` (micro-batches per step)."""

from __future__ import annotations

import copy
import io
from collections.abc import Callable
from typing import Any

import torch
from hypothesis import strategies as st
from torch import nn

import biocircuits as bc

from .builders import build_mlp

BATCH, N_OUT, STEPS = 4, 5, 4
MLP_SIZES = (6, 8, 7, N_OUT)  # weight layers "0", "2", "4"
CONV_IN = (2, 4, 4)  # weight layers "0", "2", "5"

OPTIMISERS: dict[str, Callable[[Any], torch.optim.Optimizer]] = {
    "sgd": lambda params: torch.optim.SGD(params, lr=0.05),
    "momentum": lambda params: torch.optim.SGD(params, lr=0.05, momentum=0.9, weight_decay=1e-3),
    "nesterov": lambda params: torch.optim.SGD(params, lr=0.05, momentum=0.9, nesterov=True),
    "adam": lambda params: torch.optim.Adam(params, lr=0.01),
    "adamw": lambda params: torch.optim.AdamW(params, lr=0.01, weight_decay=0.05),
}

RULES = st.sampled_from(
    [
        ("bp", {}),
        ("fa", {}),
        ("fa", {"init": "uniform"}),
        ("fa", {"init": "signed"}),
        ("sign_symmetry", {}),
        ("sign_symmetry", {"magnitude": "unit"}),
        ("sign_symmetry", {"magnitude": "weight_rms"}),
        ("sign_symmetry", {"magnitude": "random_fixed"}),
        ("sign_symmetry", {"magnitude": "random_batch", "random_init": "uniform"}),
        ("sign_symmetry", {"magnitude": "weight_rms", "centre": True}),
        ("kolen_pollack", {}),
        ("kolen_pollack", {"weight_decay": 0.1, "init": "signed"}),
        ("weight_mirror", {}),
        ("weight_mirror", {"noise_std": 2.0, "mirror_every": 2, "samples": 8}),
        ("dfa", {}),
        ("dfa", {"conv": "full"}),
    ]
)

DALE = st.one_of(
    st.none(),
    st.builds(
        lambda enforce, norm_gamma, population_norm, assignment, types, exempt: {
            "enforce": enforce,
            "norm_gamma": norm_gamma,
            "population_norm": population_norm,
            "assignment": assignment,
            "types": types,
            "exempt": exempt,
        },
        st.sampled_from(["project", "abs", "softplus", "exp_gradient"]),
        st.sampled_from(["free", "nonnegative"]),
        st.sampled_from(["none", "none", "divisive"]),
        st.sampled_from(["block", "block", "random"]),
        st.sampled_from(["graph", "graph", "per_layer"]),
        st.sampled_from([["<input>"], ["<input>"], []]),
    ),
    st.builds(
        lambda norm_gamma, dann: {"architecture": "dann", "norm_gamma": norm_gamma, "dann": dann},
        st.sampled_from(["free", "nonnegative"]),
        st.fixed_dictionaries(
            {},
            optional={
                "inhibitory_fraction": st.just(0.3),
                "divisive": st.booleans(),
                "corrected_updates": st.booleans(),
                "init": st.sampled_from(["paper", "mean_row"]),
            },
        ),
    ),
)

TRANSFORM_SETTINGS = {
    "error_noise": st.just(0.2),
    "error_quantization": st.just(3),
    "error_filter": st.builds(lambda cascade: {"tau": 2.0, "cascade": cascade}, st.booleans()),
    "interference": st.builds(lambda scale: {"gamma": 0.3, "scale": scale}, st.sampled_from(["activity", "error"])),
}


@st.composite
def phases(draw: st.DrawFn) -> dict[str, Any]:
    """Off, or an ``error_delay`` (with its backward state) and / or up to two other transforms."""
    out: dict[str, Any] = {}
    if draw(st.booleans()):
        out["error_delay"] = draw(st.sampled_from([1, 2]))
        state = draw(st.sampled_from(["stored", "current", "trace"]))
        out["backward_state"] = state
        if state == "trace":
            out["trace_decay"] = 0.5
    for key in draw(st.lists(st.sampled_from(sorted(TRANSFORM_SETTINGS)), max_size=2, unique=True)):
        out[key] = draw(TRANSFORM_SETTINGS[key])
    return out


PLASTICITY_ROWS = st.sampled_from(
    [
        {"match": {"layers": "*"}, "lr_scale": 0.5},
        {"match": {"layers": "2"}, "direction": "potentiation_only"},
        {"match": {"layers": "0"}, "direction": "depression_only"},
        {"match": {"layers": "2"}, "frozen": True},
        {"match": {"population": "I"}, "lr_scale": 2.0},
        {"match": {"synapse": "E->I"}, "direction": "depression_only"},
    ]
)

PLASTICITY = st.builds(
    lambda update, rules: {"update": update, "rules": rules},
    st.sampled_from(["sgd", "sgd", "batch_manhattan"]),
    st.lists(PLASTICITY_ROWS, max_size=2),
)

COMBOS = st.fixed_dictionaries(
    {
        "rule": RULES,
        "dale": DALE,
        "phases": phases(),
        "plasticity": PLASTICITY,
        "optim": st.sampled_from(sorted(OPTIMISERS)),
        "model": st.sampled_from(["mlp", "mlp", "mlp_ln", "conv", "conv_bn"]),
        "trained": st.sampled_from(["all", "all", "all", "skip2", "skip2_weight", "groups"]),
        "resume_at": st.sampled_from([1, 2, 3]),
        "micro": st.sampled_from([1, 1, 2]),
    }
)


def trained(model: nn.Module, which: str) -> list[nn.Parameter] | list[dict[str, Any]]:
    """What the optimiser owns: ``all`` the parameters; ``skip2``: all but those of module ``2``; ``skip2_weight``:
    all but module ``2``'s weight (its latent ``original`` under a reparametrisation or DANN, whose interneuron
    weights and bias stay in the optimiser); ``groups``: all, module ``0``'s in a second group with lr 0.003."""
    if which == "groups":
        first = [p for name, p in model.named_parameters() if name.startswith("0.")]
        rest = [p for name, p in model.named_parameters() if not name.startswith("0.")]
        return [{"params": rest}, {"params": first, "lr": 0.003}]
    skipped = {"all": (), "skip2": ("2.",), "skip2_weight": ("2.weight", "2.parametrizations.weight.original")}[which]
    return [
        p
        for name, p in model.named_parameters()
        if not any(name == s or (s.endswith(".") and name.startswith(s)) for s in skipped)
    ]


def spec_of(combo: dict[str, Any]) -> dict[str, Any]:
    """The constraint spec a combination asks for."""
    rule, options = combo["rule"]
    spec: dict[str, Any] = {
        "feedback": {"rule": rule, "options": dict(options)},
        "phases": dict(combo["phases"]),
        "plasticity": copy.deepcopy(combo["plasticity"]),
    }
    if combo["dale"] is not None:
        spec["dale"] = dict(combo["dale"])
    return spec


class TimesOne(nn.Module):
    """A no-op module that makes a new tensor (y * 1): appended after the last layer it must change nothing."""

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return y * 1.0


def build_model(kind: str, tail: bool = False) -> nn.Module:
    """The tiny model of a draw, its weights from seed 0 (``tail``: a :class:`TimesOne` appended)."""
    if kind == "mlp":
        model = build_mlp(*MLP_SIZES, seed=0)
    else:
        torch.manual_seed(0)
        c, h, w = CONV_IN
        n_in, n_h, n_h2, n_out = MLP_SIZES
        model = {
            "mlp_ln": lambda: nn.Sequential(
                nn.Linear(n_in, n_h),
                nn.ReLU(),
                nn.Linear(n_h, n_h2),
                nn.LayerNorm(n_h2),
                nn.ReLU(),
                nn.Linear(n_h2, n_out),
            ),
            "conv": lambda: nn.Sequential(
                nn.Conv2d(c, 3, 3, padding=1),
                nn.ReLU(),
                nn.Conv2d(3, 4, 3, padding=1),
                nn.ReLU(),
                nn.Flatten(),
                nn.Linear(4 * h * w, N_OUT),
            ),
            "conv_bn": lambda: nn.Sequential(
                nn.Conv2d(c, 3, 3, padding=1),
                nn.ReLU(),
                nn.Conv2d(3, 4, 3, padding=1),
                nn.BatchNorm2d(4),
                nn.ReLU(),
                nn.Flatten(),
                nn.Linear(4 * h * w, N_OUT),
            ),
        }[kind]()
    return nn.Sequential(*model, TimesOne()) if tail else model


def inputs(kind: str, generator: torch.Generator, batch: int = BATCH) -> torch.Tensor:
    """x ~ U[0, 1) of the model's input shape, from ``generator``."""
    return torch.rand(batch, *((MLP_SIZES[0],) if kind.startswith("mlp") else CONV_IN), generator=generator)


def train_step(model: nn.Module, opt: torch.optim.Optimizer, kind: str, seed: int, micro: int = 1) -> None:
    """One step on L = sum(model(x) * r) (a random output gradient r, as :func:`tests.builders.random_gradient_step`),
    x ~ U[0, 1) then r ~ N(0, 1) drawn from a generator seeded ``seed``, for each of ``micro`` micro-batches (their
    gradients accumulated). The global RNG is not reseeded: it is the model's (weight-mirror noise, random-batch
    magnitudes), so a draw from it between steps would show."""
    g = torch.Generator().manual_seed(seed)
    opt.zero_grad()
    for _ in range(micro):
        x = inputs(kind, g)
        r = torch.randn(BATCH, N_OUT, generator=g)
        (model(x) * r).sum().backward()
    opt.step()


def build(combo: dict[str, Any], tail: bool = False) -> tuple[nn.Module, torch.optim.Optimizer]:
    """A fresh model converted under the combination's spec, with its bound optimiser."""
    model = build_model(combo["model"], tail)
    bc.apply(model, spec_of(combo))
    return model, bc.bind(OPTIMISERS[combo["optim"]](trained(model, combo.get("trained", "all"))), model)


def snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def interleave(model: nn.Module, kind: str, seed: int) -> bc.AuditReport:
    """Between steps: an evaluation forward (eval mode, no grad), a training-mode forward under no_grad (no
    BatchNorm), a probe and an audit on a sample."""
    g = torch.Generator().manual_seed(seed)
    x = inputs(kind, g)
    targets = torch.randint(0, N_OUT, (BATCH,), generator=g)
    model.eval()
    with torch.no_grad():
        model(x)
    model.train()
    if not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
        with torch.no_grad():  # a training-mode forward without gradients (BatchNorm would update its statistics)
            model(x)
    bc.probe(model, x, targets)
    return bc.audit(model, x, spectra=False)


def run(
    combo: dict[str, Any],
    *,
    tail: bool = False,
    probe: bool = False,
    check: Callable[[nn.Module, bc.AuditReport], None] | None = None,
) -> dict[str, torch.Tensor]:
    """Train STEPS steps; the state dict at the end. ``probe``: :func:`interleave` after every step (its audit
    goes to ``check``); ``check`` also gets the model and ``bc.audit(model)`` after every step."""
    model, opt = build(combo, tail)
    for i in range(STEPS):
        train_step(model, opt, combo["model"], 100 + i, combo.get("micro", 1))
        if check is not None:
            check(model, bc.audit(model, spectra=False))
        if probe:
            report = interleave(model, combo["model"], 1000 + i)
            if check is not None:
                check(model, report)
    return snapshot(model)


def resumed(combo: dict[str, Any]) -> dict[str, torch.Tensor]:
    """``resume_at`` steps, the model's and the optimiser's state and the global RNG state saved (through bytes, as a
    checkpoint) and loaded into a freshly built and converted model, then the remaining steps: the state dict at
    the end."""
    at = combo.get("resume_at", 2)
    model, opt = build(combo)
    for i in range(at):
        train_step(model, opt, combo["model"], 100 + i, combo.get("micro", 1))
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "optim": opt.state_dict(), "rng": torch.get_rng_state()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    model, opt = build(combo)
    model.load_state_dict(saved["model"])
    opt.load_state_dict(saved["optim"])
    torch.set_rng_state(saved["rng"])
    for i in range(at, STEPS):
        train_step(model, opt, combo["model"], 100 + i, combo.get("micro", 1))
    return snapshot(model)


def differences(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> list[str]:
    """Keys whose tensors are not bit-identical (with the largest difference), and keys in one only."""
    out = [f"{k}: only in one" for k in sorted(set(a) ^ set(b))]
    for k in sorted(set(a) & set(b)):
        x, y = a[k], b[k]
        if x.shape != y.shape or x.dtype != y.dtype:
            out.append(f"{k}: {tuple(x.shape)} {x.dtype} vs {tuple(y.shape)} {y.dtype}")
        elif not torch.equal(x, y) and not (
            x.is_floating_point() and torch.equal(x.isnan(), y.isnan()) and torch.equal(x.nan_to_num(), y.nan_to_num())
        ):
            gap = (x.double().nan_to_num() - y.double().nan_to_num()).abs().max().item() if x.numel() else 0.0
            out.append(f"{k}: max |diff| {gap:.3g}")
    return out
