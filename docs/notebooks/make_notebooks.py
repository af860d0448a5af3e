"""Writes the docs notebooks from their cell sources (run: python docs/notebooks/make_notebooks.py).
The test suite executes the notebooks themselves."""

from pathlib import Path

import nbformat as nbf

HERE = Path(__file__).parent


def notebook(cells: list[tuple[str, str]]) -> nbf.NotebookNode:
    nb = nbf.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbf.v4.new_markdown_cell(src) if kind == "md" else nbf.v4.new_code_cell(src) for kind, src in cells]
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
    ("code", """def train(rule, steps=900, lr=0.05, probe_every=30, seed=0):
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
    ("md", """**Fact 1** — sign symmetry trains about as well as backprop (here within a few points), while feedback
alignment lags. **Fact 2** — FA's hidden-layer error signals stay within 90 degrees of backprop's, and the
angle between the last layer's W and its random B falls from ~90 degrees as W aligns with B."""),
    ("code", """acc = {rule: r[2] for rule, r in results.items()}
fa_hist = results["fa"][1]
print("accuracy:", {k: round(v, 1) for k, v in acc.items()})
print("fa error angle, layer 2: start %.1f, end %.1f" % (fa_hist[1]["error_angle/2"], fa_hist[-1]["error_angle/2"]))
print("fa weight angle, last layer: start %.1f, end %.1f" % (fa_hist[0]["weight_angle/4"], fa_hist[-1]["weight_angle/4"]))
assert acc["sign_symmetry"] > acc["bp"] - 5
assert all(h["error_angle/2"] < 90 for h in fa_hist[1:])
assert fa_hist[-1]["weight_angle/4"] < fa_hist[0]["weight_angle/4"] - 10"""),
]


if __name__ == "__main__":
    nbf.write(notebook(ALIGNMENT), HERE / "alignment.ipynb")
    print("wrote", HERE / "alignment.ipynb")
