"""Deep Dale networks: torchvision ResNet-18 on mnist5k (``experiments/paper_mnist5k_resnet18.yaml`` at 8 epochs),
unconstrained vs column-sign Dale with the old settings (``residual: signed`` only) and the new ones
(``population_norm: divisive``, ``norm_gamma: nonnegative``) vs DANN (``architecture: dann``), with bp and sign
symmetry, several seeds; ``ABLATIONS`` are the DANN + sign symmetry variants that show what its settings do.

Each finished run (or diverged one: recorded as such) is appended to ``<out>/results.jsonl`` at once, so an
interrupted table keeps what ran and ``--report`` writes the table from it. With ``--write-docs`` the table goes to
``docs/figures/dale_deep.md`` and ``docs/figures/dale_deep.json`` (``docs/results.md``, "Deep Dale networks",
quotes it).

    python benchmarks/dale_deep.py --write-docs                     # 10 variants x 3 seeds x 8 epochs
    python benchmarks/dale_deep.py --variants "DANN sign_symmetry paper,DANN sign_symmetry weight_rms,DANN \
sign_symmetry centred paper,DANN sign_symmetry centred uncorrected" --seeds 1   # the ablations, seed 0
    python benchmarks/dale_deep.py --variants "bp,Dale new bp" --seeds 1 --set train.epochs=2 --out /tmp/d
    python benchmarks/dale_deep.py --report --write-docs   # the table from every variant that has run

``--rank`` prints the participation ratio of the block outputs at initialisation (the collapse measurement);
``--grad-ratio`` each layer's gradient norm at initialisation over DANN bp's, for DANN sign symmetry variants.
"""

from __future__ import annotations

import argparse
import functools
import json
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

from biocircuits.config.experiment import Experiment
from biocircuits.config.loading import parse_set
from biocircuits.errors import TrainingDiverged
from biocircuits.train.trainer import run_experiment

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import command_line, write_figures  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENT = ROOT / "experiments" / "paper_mnist5k_resnet18.yaml"
EPOCHS = 8

OLD_DALE: dict[str, Any] = {"residual": "signed"}
NEW_DALE: dict[str, Any] = {"residual": "signed", "population_norm": "divisive", "norm_gamma": "nonnegative"}
SS: dict[str, Any] = {"rule": "sign_symmetry", "options": {"magnitude": "paper"}}
FRSF: dict[str, Any] = {"rule": "sign_symmetry", "options": {"magnitude": "random_fixed"}}
# Dale's ANNs (Cornford et al. 2021): every unit E, inhibition through interneurons. Sign symmetry needs B centred
# over the outputs and scaled to W's RMS there (docs/results.md, "DANN and sign symmetry"); the other DANN sign
# symmetry variants are that finding's ablations (seed 0, asked for by name).
DANN: dict[str, Any] = {"architecture": "dann", "norm_gamma": "nonnegative"}
SS_DANN: dict[str, Any] = {"rule": "sign_symmetry", "options": {"magnitude": "weight_rms", "centre": True}}

# label -> constraint spec (the feedback seed is set per run)
VARIANTS: dict[str, dict[str, Any]] = {
    "bp": {"feedback": {"rule": "bp"}},
    "sign_symmetry": {"feedback": SS},
    "Dale old bp": {"feedback": {"rule": "bp"}, "dale": OLD_DALE},
    "Dale old sign_symmetry": {"feedback": SS, "dale": OLD_DALE},
    "Dale new bp": {"feedback": {"rule": "bp"}, "dale": NEW_DALE},
    "Dale new sign_symmetry": {"feedback": SS, "dale": NEW_DALE},
    "sign_symmetry frSF": {"feedback": FRSF},
    "Dale new sign_symmetry frSF": {"feedback": FRSF, "dale": NEW_DALE},
    "DANN bp": {"feedback": {"rule": "bp"}, "dale": DANN},
    "DANN sign_symmetry centred": {"feedback": SS_DANN, "dale": DANN},
    # ablations of the last one
    "DANN sign_symmetry paper": {"feedback": SS, "dale": DANN},
    "DANN sign_symmetry weight_rms": {"feedback": {"rule": "sign_symmetry", "options": {"magnitude": "weight_rms"}},
                                      "dale": DANN},
    "DANN sign_symmetry centred paper": {"feedback": {"rule": "sign_symmetry",
                                                      "options": {"magnitude": "paper", "centre": True}},
                                         "dale": DANN},
    "DANN sign_symmetry centred uncorrected": {"feedback": SS_DANN,
                                               "dale": {**DANN, "dann": {"corrected_updates": False}}},
    # W_IE as W_EE's mean row (exact centring; the default before dann.init existed)
    "DANN bp mean_row": {"feedback": {"rule": "bp"}, "dale": {**DANN, "dann": {"init": "mean_row"}}},
    "DANN sign_symmetry centred mean_row": {"feedback": SS_DANN, "dale": {**DANN, "dann": {"init": "mean_row"}}},
}
ABLATIONS = ["DANN sign_symmetry paper", "DANN sign_symmetry weight_rms", "DANN sign_symmetry centred paper",
             "DANN sign_symmetry centred uncorrected", "DANN bp mean_row", "DANN sign_symmetry centred mean_row"]
DEFAULT = [label for label in VARIANTS if label not in ABLATIONS]   # what --write-docs runs


def run_name(label: str, seed: int) -> str:
    return f"{label.replace(' ', '_')}-seed{seed}"


def run_table(labels: list[str], seeds: int, sets: dict, out: Path) -> dict[str, list[float | None]]:
    """Train each (label, seed) not yet in ``out/results.jsonl``; returns {label: [val top-1 per seed]}."""
    out.mkdir(parents=True, exist_ok=True)
    log = out / "results.jsonl"
    done = {(r["label"], r["seed"]) for r in read_results(log)}
    for seed in range(seeds):  # seed-major: a cut-short table has every variant at the first seeds
        for label in labels:
            if (label, seed) in done:
                continue
            spec = json.loads(json.dumps(VARIANTS[label]))
            spec["feedback"]["seed"] = seed
            exp = Experiment.from_yaml(EXPERIMENT, {"train.epochs": EPOCHS, **sets, "train.seed": seed,
                                                    "constraints": spec})
            start = time.perf_counter()
            try:
                acc, diverged = run_experiment(exp, out / run_name(label, seed), overwrite=True)["val_acc1"], None
            except TrainingDiverged as err:   # a result too: recorded, and the table says so
                acc, diverged = None, str(err).split(";")[0]
            row = {"label": label, "seed": seed, "val_acc1": acc, "epochs": exp.train.epochs,
                   "wall_s": round(time.perf_counter() - start, 1), **({"diverged": diverged} if diverged else {})}
            with log.open("a") as f:
                f.write(json.dumps(row) + "\n")
            print(f"{label:<28} seed {seed}: " + (f"val top-1 {acc:.2f}%" if acc is not None else diverged) +
                  f" ({row['wall_s']:.0f} s)", flush=True)
    return collect(read_results(log), labels)


def read_results(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()] if log.is_file() else []


def collect(rows: list[dict[str, Any]], labels: list[str] | None = None) -> dict[str, list[float | None]]:
    """{label: [val top-1 of each seed, by seed; None: diverged]} in the order of ``labels`` (default: VARIANTS),
    only labels that ran."""
    order = labels or list(VARIANTS)
    out: dict[str, list[float | None]] = {}
    for label in order:
        got = sorted(((r["seed"], r["val_acc1"]) for r in rows if r["label"] == label), key=lambda t: t[0])
        if got:
            out[label] = [acc for _, acc in got]
    return out


def table_row(label: str, accs: list[float | None]) -> str:
    """One markdown row: mean and spread over the seeds that finished; a diverged seed is listed as such."""
    done = [a for a in accs if a is not None]
    stats = f"{statistics.mean(done):.2f} | {min(done):.2f}-{max(done):.2f}" if done else "diverged | -"
    seeds = ", ".join("diverged" if a is None else f"{a:.1f}" for a in accs)
    return f"| {label} | {stats} | {len(accs)} | {seeds} |"


def markdown(results: dict[str, list[float | None]], rows: list[dict[str, Any]], command: str) -> str:
    head = ["| variant | val top-1 (%) mean | spread (min-max) | seeds | per seed |", "|---|---:|---:|---:|---|"]
    body = [table_row(label, accs) for label, accs in results.items()]
    wall = sum(r["wall_s"] for r in rows if r["label"] in results)
    epochs = sorted({r["epochs"] for r in rows if r["label"] in results})
    machine = f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}"
    return "\n".join([f"Command: `{command}`  ", f"Machine: {machine}; {'/'.join(map(str, epochs))} epochs; "
                      f"summed wall time {wall / 60:.1f} min.", "", *head, *body, ""])


def participation_ratios(spec: dict[str, Any], n: int = 256) -> dict[str, float]:
    """PR = (sum l)^2 / sum l^2 of the channel covariance (spatially pooled) of ResNet-18's block outputs and
    logits at initialisation, on ``n`` training digits: ~1 when every channel carries the same signal."""
    import biocircuits as bc
    from biocircuits.models import build_model
    x, _, shape, classes = _digits(n)
    torch.manual_seed(0)
    model = bc.apply(build_model("resnet18", shape, classes, {}), spec)
    names = [f"layer{i}.{j}" for i in range(1, 5) for j in range(2)] + ["fc"]
    got: dict[str, float] = {}

    def pr(name: str):
        def hook(module, args, out):
            f = out.detach().flatten(2).mean(2) if out.dim() == 4 else out.detach()
            f = f - f.mean(0)
            lam = torch.linalg.eigvalsh(f.T @ f / len(f)).clamp(min=0)
            got[name] = float(lam.sum() ** 2 / (lam ** 2).sum())
        return hook
    for name in names:
        model.get_submodule(name).register_forward_hook(pr(name))
    with torch.no_grad():
        model(x)
    return got


def gradient_ratios(spec: dict[str, Any], reference: dict[str, Any], n: int = 128) -> dict[str, float]:
    """||grad W|| under ``spec`` over ||grad W|| under ``reference`` (same init, one batch of ``n`` training digits)
    for each weight layer of ResNet-18 at initialisation: how the error grows or shrinks on its way down."""
    import torch.nn.functional as F

    import biocircuits as bc
    from biocircuits.core.layers import trainable_weight
    from biocircuits.models import build_model
    x, labels, shape, classes = _digits(n)

    def norms(constraints: dict[str, Any]) -> dict[str, float]:
        torch.manual_seed(0)
        model = bc.apply(build_model("resnet18", shape, classes, {}), constraints)
        F.cross_entropy(model(x), labels).backward()
        return {name: float(trainable_weight(layer).grad.norm()) for name, layer in model.named_modules()
                if isinstance(layer, (torch.nn.Conv2d, torch.nn.Linear))}
    got, ref = norms(spec), norms(reference)
    return {name: got[name] / ref[name] for name in ref}


@functools.lru_cache(maxsize=2)
def _digits(n: int) -> tuple[torch.Tensor, torch.Tensor, tuple, int]:
    """The first ``n`` training images of the recipe's data and their labels, its input shape and class count
    (loaded once)."""
    from biocircuits.data import build_data
    data = build_data(Experiment.from_yaml(EXPERIMENT).data)
    items = [data.train[i] for i in range(n)]
    return (torch.stack([x for x, _ in items]), torch.tensor([int(y) for _, y in items]), data.input_shape,
            data.num_classes)


def main(argv: list[str] | None = None) -> dict[str, list[float | None]]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--variants", help="comma-separated labels of VARIANTS (default: all)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="experiment overrides")
    p.add_argument("--out", default=str(ROOT / "runs" / "dale_deep"), help="where the runs and results.jsonl go")
    p.add_argument("--report", action="store_true", help="only write the table from <out>/results.jsonl")
    p.add_argument("--rank", action="store_true", help="print the block outputs' participation ratio at init")
    p.add_argument("--grad-ratio", action="store_true",
                   help="print each layer's gradient norm at init over DANN bp's (the DANN sign symmetry finding)")
    p.add_argument("--write-docs", action="store_true", help="write docs/figures/dale_deep.{md,json}")
    args = p.parse_args(argv)
    labels = [s.strip() for s in args.variants.split(",")] if args.variants else \
        (list(VARIANTS) if args.report else DEFAULT)   # a report shows every variant that ran
    if args.rank:
        for label in labels:
            spec = {k: v for k, v in VARIANTS[label].items() if k == "dale"}
            print(f"{label:<28}", " ".join(f"{k}:{v:.1f}" for k, v in participation_ratios(spec).items()))
        return {}
    if args.grad_ratio:
        names = [s.strip() for s in args.variants.split(",")] if args.variants else \
            ["DANN sign_symmetry paper", "DANN sign_symmetry centred paper", "DANN sign_symmetry centred"]
        ratios = {label: gradient_ratios(VARIANTS[label], VARIANTS["DANN bp"]) for label in names}
        width = max(16, *(len(label) + 2 for label in names))
        print(f"{'layer':<24}" + "".join(f"{label:>{width}}" for label in names))
        for layer in ratios[names[0]]:
            print(f"{layer:<24}" + "".join(f"{ratios[label][layer]:>{width}.3g}" for label in names))
        return {}
    out = Path(args.out)
    results = collect(read_results(out / "results.jsonl"), labels) if args.report else \
        run_table(labels, args.seeds, parse_set(args.set), out)
    text = markdown(results, read_results(out / "results.jsonl"), command_line("dale_deep.py", argv))
    print(text)
    if args.write_docs:
        write_figures("dale_deep", results, text)
    return results


if __name__ == "__main__":
    main()
