"""Writes the docs notebooks from their cell sources and executes them, so that they are committed with their
outputs and figures (run: ``python docs/notebooks/make_notebooks.py [NAME ...] [--no-execute]``).

Each notebook has one ``parameters`` cell (its size: steps, simulated time); the tests swap it for the small
settings in ``FAST`` and execute the notebook, and check that the committed notebooks are what this file writes.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import nbformat as nbf
from nbclient import NotebookClient

HERE = Path(__file__).parent


def notebook(cells: list[tuple[str, str]]) -> nbf.NotebookNode:
    """A v4 notebook from ``(kind, source)`` pairs: ``md``, ``code``, or ``parameters`` (a code cell tagged
    ``parameters``, the one the tests replace with fast settings)."""
    nb = nbf.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    for kind, src in cells:
        if kind == "md":
            nb.cells.append(nbf.v4.new_markdown_cell(src))
        else:
            cell = nbf.v4.new_code_cell(src)
            if kind == "parameters":
                cell.metadata["tags"] = ["parameters"]
            nb.cells.append(cell)
    for i, cell in enumerate(nb.cells):  # stable ids, so regenerating an unchanged notebook changes nothing
        cell.id = f"cell-{i}"
    return nb


ALIGNMENT = [
    ("md", """# Do feedback alignment and sign symmetry stay aligned with backprop?

We train the same MLP on scikit-learn's digits (offline) with three rules — backprop (`bp`), sign symmetry
(`sign_symmetry`, Liao et al. 2016; Xiao et al. 2018) and feedback alignment (`fa`, Lillicrap et al. 2016) —
and probe every few steps how far each layer's feedback weights B, error signals and weight updates are
from exact backprop's (`bc.probe`). Two facts from the papers should appear:

1. sign symmetry learns about as well as backprop;
2. under feedback alignment the error signals stay within 90 degrees of backprop's, and the forward
   weights W turn to align with the fixed random B."""),
    ("parameters", """steps, probe_every = 900, 30   # steps per rule, steps between probes (tests: fewer)"""),
    ("code", """import copy, torch, torch.nn.functional as F
from torch import nn
import matplotlib.pyplot as plt
import biocircuits as bc
from biocircuits.config.experiment import DataSpec
from biocircuits.data import build_data

data = build_data(DataSpec(name="digits", val_fraction=0.25, split_seed=0))
xtr, ytr = data.train.tensors
xva, yva = data.val.tensors
xtr, xva = xtr.flatten(1), xva.flatten(1)
probe_x, probe_y = xva[:256], yva[:256]
print(xtr.shape, xva.shape)"""),
    ("code", """def train(rule, steps=steps, lr=0.05, probe_every=probe_every, seed=0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(64, 128), nn.Tanh(), nn.Linear(128, 64), nn.Tanh(), nn.Linear(64, 10))
    bc.apply(model, {"feedback": {"rule": rule, "seed": seed}})
    opt = bc.bind(torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9), model)
    gen = torch.Generator().manual_seed(seed)
    history = []
    for step in range(steps + 1):
        if step % probe_every == 0:
            stats = bc.probe(model, probe_x, probe_y)
            history.append({"step": step, **{f"{k}/{name}": getattr(s, k) for name, s in stats.items()
                                             for k in ("weight_angle", "error_angle", "update_angle")}})
        idx = torch.randint(0, len(xtr), (64,), generator=gen)
        loss = F.cross_entropy(model(xtr[idx]), ytr[idx])
        opt.zero_grad(); loss.backward(); opt.step()
    with torch.no_grad():
        acc = (model(xva).argmax(1) == yva).float().mean().item() * 100
    return model, history, acc

results = {rule: train(rule) for rule in ("bp", "sign_symmetry", "fa")}
for rule, (_, _, acc) in results.items():
    print(f"{rule:>14}: validation accuracy {acc:.1f}%")"""),
    ("code", """fig, axes = plt.subplots(1, 3, figsize=(15, 4), sharey=True)
for ax, kind in zip(axes, ("weight_angle", "error_angle", "update_angle")):
    for rule, style in (("sign_symmetry", "-"), ("fa", "--")):
        hist = results[rule][1]
        for layer in ("0", "2"):
            ax.plot([h["step"] for h in hist], [h[f"{kind}/{layer}"] for h in hist], style,
                    label=f"{rule}, layer {layer}")
    ax.axhline(90, color="grey", lw=1, ls=":")
    ax.set(title=kind.replace("_", " "), xlabel="optimiser step")
axes[0].set_ylabel("angle to backprop (degrees)")
axes[-1].legend(fontsize=8)
plt.tight_layout()"""),
    ("md", """## What the numbers show

**Fact 1**: sign symmetry trains within five points of backprop's validation accuracy. **Fact 2**: under
feedback alignment the hidden layer's error signals stay within 90 degrees of backprop's at every probe after
the first, and the last layer's W turns towards its fixed random B (their angle falls by more than 10 degrees).
The next cell prints the figures of the runs above and asserts both facts, so this notebook stops running if
either stops holding."""),
    ("code", """acc = {rule: r[2] for rule, r in results.items()}
fa_hist = results["fa"][1]
err = [h["error_angle/2"] for h in fa_hist[1:]]
w_start, w_end = fa_hist[0]["weight_angle/4"], fa_hist[-1]["weight_angle/4"]
print(f"Fact 1: validation accuracy: sign symmetry {acc['sign_symmetry']:.1f}%, backprop {acc['bp']:.1f}%, "
      f"feedback alignment {acc['fa']:.1f}%.")
print(f"Fact 2: FA's layer-2 error signals are {err[0]:.1f} degrees from backprop's after {probe_every} steps, "
      f"{err[-1]:.1f} at the end, at most {max(err):.1f};")
print(f"        the last layer's W is {w_start:.1f} degrees from its B at the start and {w_end:.1f} at the end.")
assert acc["sign_symmetry"] > acc["bp"] - 5
assert max(err) < 90
assert w_end < w_start - 10"""),
]


SPIKING = [
    ("md", """# Does the feedback pathway survive spikes, continuous time and Dale's law?

Every rule's backward phase assumes an exact, instantaneous error pathway delivering B^T e. Here we train a
small network with sign symmetry and with feedback alignment, take real error vectors at its last hidden
layer, and rebuild that layer's feedback pathway in Brian2 (`biocircuits.bridges.brian2.check_pathway`):
as continuous-time leaky integrators (`rate`), as push-pull Poisson populations with current-based synapses
(`spiking`), and with every simulated neuron obeying Dale's law (`dale=True`, negative weights through
inhibitory relays). We then watch the fidelity grow with simulated time, against the Poisson prediction."""),
    ("parameters", """train_steps = 300                     # optimiser steps per rule (the tests run fewer)
check_duration = 0.5                  # seconds of simulated time per pattern in the spiking checks
durations = [0.05, 0.15, 0.5, 1.5]    # the fidelity-vs-time sweep
rules = ("sign_symmetry", "fa")"""),
    ("code", """import torch, torch.nn.functional as F
from torch import nn
import matplotlib.pyplot as plt
import biocircuits as bc
from biocircuits.bridges.brian2 import check_pathway
from biocircuits.app.check_pathway import layer_errors
from biocircuits.config.experiment import DataSpec
from biocircuits.data import build_data

data = build_data(DataSpec(name="digits", val_fraction=0.25))
xtr, ytr = data.train.tensors
xva, yva = data.val.tensors

def trained(rule, steps=train_steps):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 48), nn.ReLU(), nn.Linear(48, 24), nn.ReLU(), nn.Linear(24, 10))
    bc.apply(model, {"feedback": {"rule": rule}})
    opt = bc.bind(torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9), model)
    for step in range(steps):
        idx = torch.randint(0, len(xtr), (64,))
        opt.zero_grad(); F.cross_entropy(model(xtr[idx]), ytr[idx]).backward(); opt.step()
    acc = (model(xva).argmax(1) == yva).float().mean().item() * 100
    return model, acc

models = {rule: trained(rule) for rule in rules}
for rule, (_, acc) in models.items():
    print(f"{rule}: validation accuracy {acc:.1f}%")"""),
    ("code", """# the last hidden layer (24 -> 10): errors e at its output, feedback B^T e to its 24 inputs
reports = {}
for rule, (model, _) in models.items():
    layer = model[5]
    errors = layer_errors(model, layer, xva[:4], yva[:4])
    for mode, dale in (("rate", False), ("spiking", False), ("spiking", True)):
        rep = check_pathway(layer, errors, mode, dale=dale, duration=check_duration if mode == "spiking" else None)
        reports[(rule, mode, dale)] = rep
        print(rule); print(rep.summary())"""),
    ("code", """# fidelity against simulated time, the first rule's pathway (sign symmetry), with the Poisson prediction
model, _ = models[rules[0]]
errors = layer_errors(model, model[5], xva[:4], yva[:4])
measured, predicted = [], []
for d in durations:
    rep = check_pathway(model[5], errors, "spiking", duration=d, seed=3)
    measured.append(sum(p.cosine for p in rep.patterns) / 4)
    predicted.append(sum(p.poisson_cosine for p in rep.patterns) / 4)
plt.semilogx(durations, measured, "o-", label="simulated (mean over 4 patterns)")
plt.semilogx(durations, predicted, "s--", label="Poisson prediction cos*")
plt.xlabel("simulated time per pattern (s)"); plt.ylabel("cosine(simulated, B^T e)")
plt.title("Spiking feedback pathway: fidelity vs time"); plt.legend(); plt.grid(alpha=0.3)
print([round(m, 4) for m in measured])"""),
    ("md", """## What the numbers show

The rate pathway reproduces B^T e (cosine above 0.999 for every pattern); routing the negative weights
through inhibitory relays (Dale) leaves no sign violation and changes the spiking pathway's mean cosine by
less than 0.03; and the spiking pathway's fidelity grows with the simulated time, as the Poisson prediction
says it should. The next cell prints these figures from the runs above and asserts each claim."""),
    ("code", """def mean_cos(rep):
    return sum(p.cosine for p in rep.patterns) / len(rep.patterns)

for rule in models:
    rate = min(p.cosine for p in reports[(rule, "rate", False)].patterns)
    plain, dale = mean_cos(reports[(rule, "spiking", False)]), mean_cos(reports[(rule, "spiking", True)])
    print(f"{rule}: rate cosine >= {rate:.4f}; spiking mean cosine {plain:.3f}, with Dale {dale:.3f} "
          f"({check_duration} s per pattern)")
print("fidelity vs time:", ", ".join(f"{d} s: {m:.3f} (Poisson {p:.3f})"
                                     for d, m, p in zip(durations, measured, predicted)))
assert all(p.cosine > 0.999 for (r, m, d), rep in reports.items() if m == "rate" for p in rep.patterns)
assert all(rep.sign_violations == 0 for (r, m, d), rep in reports.items() if d)
assert all(abs(mean_cos(reports[(r, "spiking", True)]) - mean_cos(reports[(r, "spiking", False)])) < 0.03
           for r in models)
assert measured[-1] > measured[0] and predicted[-1] > predicted[0]"""),
]


NOTEBOOKS = {"alignment": ALIGNMENT, "spiking_feedback": SPIKING}

# the parameters cells the tests execute (a few seconds each, the same code path)
FAST = {
    "alignment": "steps, probe_every = 150, 30",
    "spiking_feedback": 'train_steps = 150\ncheck_duration = 0.2\ndurations = [0.05, 0.5]\nrules = ("sign_symmetry",)',
}


def build(name: str, fast: bool = False) -> nbf.NotebookNode:
    """The notebook ``name`` as this file writes it (unexecuted); ``fast`` swaps in the ``FAST`` parameters."""
    nb = notebook(NOTEBOOKS[name])
    if fast:
        (cell,) = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
        cell.source = FAST[name]
    return nb


def execute(nb: nbf.NotebookNode, cwd: Path | None = None, timeout: int = 900) -> nbf.NotebookNode:
    """Run every cell in a fresh ``python3`` kernel (working directory ``cwd``, default a temporary folder);
    the outputs and figures are stored in ``nb``. A failing cell raises ``nbclient``'s CellExecutionError."""
    with tempfile.TemporaryDirectory() as tmp:
        path = str(cwd or tmp)
        NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": path}}).execute()
    return nb


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help=f"notebooks to write: {', '.join(NOTEBOOKS)} (default all)")
    parser.add_argument("--no-execute", action="store_true", help="write the cells without running them")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.names) - set(NOTEBOOKS))
    if unknown:
        parser.error(f"unknown notebooks {unknown}; choose from {list(NOTEBOOKS)}")
    for name in args.names or NOTEBOOKS:
        nb = build(name)
        if not args.no_execute:
            execute(nb)
        nbf.write(nb, HERE / f"{name}.ipynb")
        print("wrote", HERE / f"{name}.ipynb")
    return 0


if __name__ == "__main__":
    sys.exit(main())
