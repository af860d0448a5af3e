"""The cells of docs/notebooks/alignment.ipynb (written by ../make_notebooks.py)."""

CELLS = [
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

data = bc.load_data("digits", val_fraction=0.25, split_seed=0)
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

# the parameters cell the tests execute (a few seconds, the same code path)
FAST = "steps, probe_every = 150, 30"
