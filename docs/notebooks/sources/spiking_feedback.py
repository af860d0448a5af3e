"""The cells of docs/notebooks/spiking_feedback.ipynb (written by ../make_notebooks.py)."""

CELLS = [
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

# the parameters cell the tests execute (a few seconds, the same code path)
FAST = 'train_steps = 150\ncheck_duration = 0.2\ndurations = [0.05, 0.5]\nrules = ("sign_symmetry",)'
