"""The cells of docs/notebooks/recurrent.ipynb (written by ../make_notebooks.py)."""

CELLS = [
    ("md", """# Recurrent networks on cognitive tasks: rules through time, online rules, Dale's law

The sweep behind the first part of this notebook (108 trials, one at a time: 39 minutes on 2 CPU cores shared with
other jobs at a load average of 3-27):

```bash
for task in perceptual_decision delayed_match context_integration; do
  biocircuits sweep experiments/sweeps/recurrent_$task.yaml --max-concurrent 1    # -> runs/recurrent_$task/
done
```

A continuous-time rate RNN (`rate_rnn`, Song, Yang & Wang 2016) learns three cognitive tasks
(`data.name: cognitive`): **perceptual decision making** (which of two noisy inputs is stronger), **delayed
match-to-sample** (is the test stimulus the one shown before a 300 ms delay?) and **context-dependent
integration** (report the coherence of the modality a context cue names). Each is a two-way choice scored on the
response period (chance: 50%). Six ways to learn, each with and without Dale's law:

- by backprop through time: `bp` (autograd), `fa` (fixed random B in place of every input and recurrent
  matrix's transpose, at every step) and `sign_symmetry` (B = sign(W));
- online, forward in time with eligibility traces and no backprop through time: `rflo` (Murray 2019) and `eprop`
  (Bellec et al. 2020) with symmetric (B = W_out) or random learning-signal feedback.

**Dale's law** is the recipes' Song et al. form: 80% excitatory units, column signs on the recurrent and readout
weights kept by projection after every step, no self-connections. **Without Dale** the same network has no E/I
signs (`constraints.dale: null`, `model.kwargs.dale: null`) and is otherwise identical. 3 seeds per combination
(the seed draws the initial weights, the data order, the private noise and the random feedback).

**Length.** Every trial trains for **10 epochs of 2,048 trials** (batch 64) and is scored on the same 512
validation trials, with each recipe's network and optimiser (`experiments/rnn_*.yaml`: 64 units for the
decision and delayed-match tasks, 128 for context integration; Adam, lr 0.003 for the decision task, lr 0.001 with
gradients clipped at norm 1 for the other two). That is the perceptual-decision recipe's default length but
**half** the delayed-match and context-integration recipes' (20 epochs), so that the sweep fits the 2 shared
cores; those two tasks are therefore less converged here than in their recipes' headers.

The notebook reads the sweeps' `results.csv` (one row per trial) and `summary.json` (per variant: n, mean, sd
with n - 1, 95% Student-t interval of the mean); the results of the run quoted below are committed under
`docs/figures/recurrent/`. Set `results` to your own `runs` folder to read yours."""),
    ("parameters", """results = None             # None: the committed sweeps; "runs": yours, in runs/recurrent_<task>/
lengths = (50, 200, 800)   # sequence lengths T for memory and step time
hidden, batch, reps = 256, 32, 3"""),
    ("code", """import csv, json, importlib.util, statistics, argparse
from pathlib import Path
import torch
import matplotlib.pyplot as plt
import biocircuits as bc

torch.set_num_threads(1)
ROOT = Path(importlib.util.find_spec("biocircuits").origin).parents[1]   # the repository (an editable install)
TASKS = ("perceptual_decision", "delayed_match", "context_integration")
RULES = ("BPTT_bp", "BPTT_fa", "BPTT_sign_symmetry", "RFLO", "eprop_symmetric", "eprop_random")

def sweep_folder(task):
    return ROOT / "docs" / "figures" / "recurrent" / task if results is None else Path(results) / f"recurrent_{task}"

rows, summary, header = {}, {}, {}
for task in TASKS:
    folder = sweep_folder(task)
    with open(folder / "results.csv") as f:
        rows[task] = list(csv.DictReader(f))
    summary[task] = json.loads((folder / "summary.json").read_text())["variants"]
    header[task] = (folder / "table.md").read_text().splitlines()[0]   # the sweep, machine and wall time
    print(header[task])"""),
    ("md", """One validation trial of each task (inputs over time; channel 0 is the fixation cue, which turns off when
the response period begins; the target is defined only in the response period, the steps the loss and the accuracy
read):"""),
    ("code", """fig, axes = plt.subplots(1, 3, figsize=(13, 3))
for ax, task in zip(axes, TASKS):
    x, y = bc.load_data("cognitive", task=task, train_size=8, val_size=8).val.tensors
    ax.imshow(x[0].T, aspect="auto", cmap="coolwarm", vmin=-3, vmax=3, interpolation="nearest")
    scored = (y[0] >= 0).nonzero().flatten()
    ax.axvspan(scored[0] - 0.5, scored[-1] + 0.5, color="k", alpha=0.15, label=f"response (target {y[0][scored[0]]})")
    ax.set(title=task.replace("_", " "), xlabel="step (20 ms)", ylabel="input channel", yticks=range(x.shape[-1]))
    ax.legend(loc="upper left", fontsize=8)
fig.tight_layout()"""),
    ("md", """## Accuracy

Validation accuracy (%) after training: per rule, with and without Dale's law, the mean over 3 seeds, its sd and
95% t-interval, and the status of the trials (a combination the library refuses, or a run that diverges, would
show here as failed with its reason)."""),
    ("code", """def stat(task, variant):
    s = summary[task].get(variant)
    if s is None or not s.get("n"):
        return "not run"
    ci = f"[{s['ci_low']:5.1f}, {s['ci_high']:5.1f}]" if s.get("ci_low") is not None else ""
    sd = f"{s['sd']:4.1f}" if s.get("sd") is not None else "  - "
    return f"{s['mean']:5.1f} ± {sd} {ci:>14s}"

for task in TASKS:
    print(f"\\n{task}: val_acc1 (%), mean ± sd [95% CI] over seeds")
    print(f"{'rule':20s} {'with Dale':>30s} {'without Dale':>30s}")
    for rule in RULES:
        print(f"{rule:20s} {stat(task, rule):>30s} {stat(task, 'noDale_' + rule):>30s}")
not_finished = [(task, r["trial"], r["status"], r["reason"]) for task in TASKS for r in rows[task]
                if r["status"] != "finished"]
print("\\ntrials not finished:", not_finished or "none (every combination ran, Dale included)")"""),
    ("code", """acc = {task: {} for task in TASKS}     # task -> variant -> {seed: val_acc1}
for task in TASKS:
    for r in rows[task]:
        if r["status"] == "finished":
            acc[task].setdefault(r["variant"], {})[int(r["seed"])] = float(r["val_acc1"])

fig, axes = plt.subplots(1, 3, figsize=(14, 4), sharey=True)
for ax, task in zip(axes, TASKS):
    for offset, prefix, color, label in ((-0.15, "", "C3", "Dale"), (0.15, "noDale_", "C0", "no Dale")):
        for i, rule in enumerate(RULES):
            seeds = acc[task].get(prefix + rule, {})
            ax.plot([i + offset] * len(seeds), list(seeds.values()), ".", color=color, alpha=0.5)
            s = summary[task].get(prefix + rule, {})
            if s.get("ci_low") is not None:
                ax.errorbar(i + offset, s["mean"], yerr=[[s["mean"] - s["ci_low"]], [s["ci_high"] - s["mean"]]],
                            fmt="o", color=color, capsize=3, label=label if i == 0 else None)
    ax.axhline(50, color="gray", ls=":", lw=1)
    ax.set_xticks(range(len(RULES)), [r.replace("_", "\\n", 1) for r in RULES], fontsize=8)
    ax.set_title(task.replace("_", " "))
axes[0].set(ylabel="validation accuracy (%)", ylim=(40, 100))
axes[0].legend(loc="lower left")
fig.suptitle("each seed a dot; the mean with its 95% t-interval (chance 50%)")
fig.tight_layout()"""),
    ("md", """What Dale's law costs each rule: the paired difference, seed by seed, without Dale minus with Dale
(percentage points; positive: Dale costs accuracy)."""),
    ("code", """dale_cost, dale_diffs = {}, {}
for task in TASKS:
    print(f"\\n{task}: no Dale - Dale (points), per seed and mean")
    for rule in RULES:
        dale, free = acc[task].get(rule, {}), acc[task].get("noDale_" + rule, {})
        diffs = dale_diffs[task, rule] = [free[s] - dale[s] for s in sorted(set(dale) & set(free))]
        dale_cost[task, rule] = statistics.mean(diffs) if diffs else float("nan")
        print(f"  {rule:20s} {', '.join(f'{d:+5.1f}' for d in diffs):24s} mean {dale_cost[task, rule]:+5.1f}")"""),
    ("md", """**Sign symmetry under column-sign Dale sends no error at all.** Under Dale every column of W_out has its
presynaptic unit's sign, so B = sign(W_out) (times one scale) has identical rows: B = 1 s^T. The error a hidden
unit receives from the readout is then B^T (p - y) = s (sum_k (p_k - y_k)) = 0, since the softmax probabilities p
and the one-hot target y both sum to 1. So under Dale, BPTT-sign symmetry trains the readout alone: the input and
recurrent weights get a zero gradient at every step. The same holds in any network whose output layer is
column-sign Dale, e.g. a two-layer net with Dale on its output layer only:"""),
    ("code", """from torch import nn
import torch.nn.functional as F

dale = {"layers": ["2"], "types": "per_layer", "excitatory_fraction": 0.8, "assignment": "block",
        "enforce": "project"}
for spec in ({"feedback": {"rule": "sign_symmetry"}}, {"feedback": {"rule": "sign_symmetry"}, "dale": dale}):
    torch.manual_seed(0)
    net = bc.apply(nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 2)), spec)
    F.cross_entropy(net(torch.randn(16, 3)), torch.randint(0, 2, (16,))).backward()
    rows_equal = bool((net[2].backward_weight() == net[2].backward_weight()[:1]).all())
    print(f"Dale {'dale' in spec!s:5}: rows of B_out identical {rows_equal!s:5}, "
          f"max |grad W_hidden| {net[0].weight.grad.abs().max().item():.1e}")
    if "dale" in spec:
        assert rows_equal and net[0].weight.grad.abs().max() < 1e-6"""),
    ("md", """## Memory and step time against the sequence length

One training step of a `rate_rnn` (256 units, batch 32, tanh, no Dale) at T = 50, 200 and 800 steps, measured
with `benchmarks/recurrent_memory.py`'s measurer: backprop through time (autograd, rule `bp`) keeps every step's
activity for the backward pass; e-prop keeps one eligibility trace per synapse and sends the error at each step.
Memory is the peak of the bytes that the step's own ops hold alive at once, less the logits [B, T, C] both
return (`working`); time is the median of `reps` steps, on one CPU thread of a shared machine (so its absolute
values vary from run to run)."""),
    ("code", """path = ROOT / "benchmarks" / "recurrent_memory.py"
spec = importlib.util.spec_from_file_location("recurrent_memory", path)
recurrent_memory = importlib.util.module_from_spec(spec)
spec.loader.exec_module(recurrent_memory)
settings = argparse.Namespace(hidden=hidden, batch=batch, inputs=3, classes=3, reps=reps)
methods = ("bptt (bp)", "eprop symmetric")
cost = {m: {t: recurrent_memory.measure(m, t, settings, torch.device("cpu")) for t in lengths} for m in methods}
for m in methods:
    for t in lengths:
        c = cost[m][t]
        print(f"{m:16s} T={t:4d}: working memory {c['working_mb']:8.3f} MB, step {c['step_s'] * 1e3:8.1f} ms")
    print(f"{m:16s} working memory at T={lengths[-1]} / T={lengths[0]}: "
          f"{cost[m][lengths[-1]]['working_mb'] / cost[m][lengths[0]]['working_mb']:.2f}")

fig, (ax_mem, ax_time) = plt.subplots(1, 2, figsize=(10, 3.5))
for m in methods:
    ax_mem.plot(lengths, [cost[m][t]["working_mb"] for t in lengths], "o-", label=m)
    ax_time.plot(lengths, [cost[m][t]["step_s"] for t in lengths], "o-", label=m)
ax_mem.set(xscale="log", yscale="log", xlabel="sequence length T", ylabel="working memory (MB)")
ax_time.set(xscale="log", yscale="log", xlabel="sequence length T", ylabel="step time (s)")
for ax in (ax_mem, ax_time):
    ax.set_xticks(lengths, [str(t) for t in lengths], minor=False)
    ax.minorticks_off()
ax_mem.legend()
fig.tight_layout()"""),
    ("md", """## What the numbers show

_Written from the figures printed above (the committed sweeps: 3 seeds, 10 epochs of 2,048 trials; memory at
T = 50, 200, 800); the next cell asserts each claim._

- **Every combination ran.** The library refuses none of the 36: the online rules accept column-sign Dale kept
  by projection, and no trial failed or diverged.
- **Perceptual decision: every rule learns it, with and without Dale, except sign symmetry under Dale.** The other
  11 combinations end at 80.5-81.5% (an ideal observer of these coherences gets ~83%). BPTT-sign symmetry under
  Dale ends at 75.8%, 4.9 points below its own run without Dale (per seed +5.7, +7.0, +2.1): that is the readout
  of the untrained network, since its input and recurrent weights receive no error (the cell above).
- **Context integration: the online rules keep up with backprop through time.** RFLO (78.0% with Dale, 80.4%
  without), e-prop symmetric (81.1%, 79.6%) and e-prop random (79.6%, 79.7%) are within 2.5 points of BPTT-bp
  (80.1%, 82.0%), with 95% intervals that overlap it. Sign symmetry under Dale is near chance (53.9%; 81.5%
  without Dale).
- **Delayed match: only backprop through time learns it, and not reliably at this length.** RFLO and both e-props
  stay at chance (49-54%) with and without Dale. The task needs the sample held across a 300 ms (15-step) delay;
  their eligibility traces follow each synapse's effect on its own postsynaptic unit, decaying with the units'
  tau (100 ms), not the credit carried through the recurrent loop that backprop through time follows. BPTT-bp
  reaches 73.6% with Dale and 73.4% without, with wide seed spreads (66-82%); fa is erratic (seeds from 51% to
  71%, mean 61.8% with Dale, 57.0% without). Unconstrained sign symmetry is the best here (81.3%) and at chance
  under Dale (48.2%). At half the recipe's 20 epochs these figures are not converged.
- **What Dale's law costs.** For bp, RFLO and e-prop: nothing beyond the seeds' spread on the two tasks they learn
  (mean paired differences between -1.6 and +2.4 points on perceptual decision and context integration). For fa:
  8.7 points on context integration, on every seed (+4.3 to +12.3), and nothing on perceptual decision. For sign
  symmetry: all that its hidden layers learn (+4.9, +33.1 and +27.6 points on the three tasks), because under
  column-sign Dale sign(W_out) sends the hidden units a zero error.
- **Where the online rules fall behind BPTT: on the task with a memory delay**, not on the two integration tasks.
  What they buy is memory: BPTT's working memory grows with T (4.7, 18.8 and 75.0 MB at T = 50, 200 and 800:
  x15.9, since the graph keeps every step) while e-prop's stays at 0.76 MB (x1.00). Both take time roughly in
  proportion to the sequence (each of its steps is a forward step plus either a backward step or a trace
  update), so e-prop saves memory, not time. Step times vary from run to run on this shared machine (they are
  printed, not asserted; `docs/benchmarks.md` has the benchmark's own figures)."""),
    ("code", """ONLINE = ("RFLO", "eprop_symmetric", "eprop_random")
BOTH = ("", "noDale_")
def mean(task, variant):
    return summary[task][variant]["mean"]

assert all(r["status"] == "finished" for task in TASKS for r in rows[task])
assert all(len(acc[task].get(p + rule, {})) == 3 for task in TASKS for rule in RULES for p in BOTH)
pd = [mean("perceptual_decision", p + r) for p in BOTH for r in RULES if p + r != "BPTT_sign_symmetry"]
assert min(pd) > 80 and mean("perceptual_decision", "BPTT_sign_symmetry") < min(pd) - 4
for p in BOTH:
    assert all(abs(mean("context_integration", p + r) - mean("context_integration", p + "BPTT_bp")) < 2.5
               for r in ONLINE)
    assert all(mean("delayed_match", p + r) < 56 for r in ONLINE) and mean("delayed_match", p + "BPTT_bp") > 70
assert mean("context_integration", "BPTT_sign_symmetry") < 56 and mean("delayed_match", "BPTT_sign_symmetry") < 50
dm = {p + r: mean("delayed_match", p + r) for p in BOTH for r in RULES}
assert max(dm, key=dm.get) == "noDale_BPTT_sign_symmetry"
learned = ("perceptual_decision", "context_integration")
assert all(-2 < dale_cost[t, r] < 2.5 for t in learned for r in ("BPTT_bp",) + ONLINE)
assert min(dale_diffs["context_integration", "BPTT_fa"]) > 4 and abs(dale_cost["perceptual_decision", "BPTT_fa"]) < 1
assert all(dale_cost[t, "BPTT_sign_symmetry"] > 4 for t in TASKS)
full = tuple(lengths) == (50, 200, 800) and (hidden, batch) == (256, 32)
if full:
    bptt, eprop = cost["bptt (bp)"], cost["eprop symmetric"]
    assert bptt[800]["working_mb"] > 15 * bptt[50]["working_mb"]
    assert eprop[800]["working_mb"] < 1.01 * eprop[50]["working_mb"] < 0.2 * bptt[50]["working_mb"]
print("claims checked" if full else "fast settings: the memory claims are checked at full size only")"""),
]

FAST = """results = None
lengths = (10, 20, 40)
hidden, batch, reps = 16, 4, 1"""
