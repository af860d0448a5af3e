"""The reproduction table: every feedback rule on ``experiments/paper_mnist5k_resnet18.yaml`` for several seeds,
written to ``docs/results.md`` (val top-1 mean and spread, beside the published figures) and
``docs/figures/paper_table.json``.

    python benchmarks/paper_table.py                       # all rules x 3 seeds (~30 min on 2 CPU cores)
    python benchmarks/paper_table.py --seeds 1 --rules "bp,dfa (full conv)" --set train.steps=2 --out /tmp/t  # smoke
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

from biocircuits.config.experiment import Experiment
from biocircuits.config.loading import parse_set
from biocircuits.train.trainer import run_experiment

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import command_line, write_figures  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENT = ROOT / "experiments" / "paper_mnist5k_resnet18.yaml"

# label -> feedback section (the last layer of torchvision's resnet18 is ``fc``)
VARIANTS: dict[str, dict] = {
    "bp": {"rule": "bp"},
    "sign_symmetry (uSF)": {"rule": "sign_symmetry"},
    "sign_symmetry frSF": {"rule": "sign_symmetry", "options": {"magnitude": "random_fixed"}},
    "sign_symmetry brSF": {"rule": "sign_symmetry", "options": {"magnitude": "random_batch"}},
    "sign_symmetry + bp last": {"rule": "sign_symmetry", "overrides": {"fc": "bp"}},
    "fa": {"rule": "fa"},
    "fa + bp last": {"rule": "fa", "overrides": {"fc": "bp"}},
    "dfa (per-channel conv)": {"rule": "dfa"},
    "dfa (full conv)": {"rule": "dfa", "options": {"conv": "full"}},
    "kolen_pollack": {"rule": "kolen_pollack"},
    "weight_mirror": {"rule": "weight_mirror"},
}
# Published top-1 *error* (%) for context: Xiao et al. 2018, ImageNet ResNet-18 (FA as tabulated by biotorch);
# biotorch, CIFAR-10 ResNet-20 (its DFA sends the error to a conv layer through a random kernel, transposed-conv
# style: neither of our two conv variants).
PUBLISHED = {
    "bp": ("30.4", "8.63"), "sign_symmetry (uSF)": ("35.0", "10.05"), "sign_symmetry frSF": ("36.5", "-"),
    "sign_symmetry brSF": ("37.2", "-"), "fa": ("85.3", "32.16"), "dfa (per-channel conv)": ("-", "45.94"),
    "dfa (full conv)": ("-", "45.94"),
}


def run_table(labels: list[str], seeds: int, sets: dict, out: Path) -> dict[str, list[float]]:
    """{label: [val top-1 of each seed]}, each run in ``out/<label>-seed<k>``."""
    results: dict[str, list[float]] = {}
    for label in labels:
        for seed in range(seeds):
            exp = Experiment.from_yaml(EXPERIMENT, {**sets, "train.seed": seed, "constraints": {
                "feedback": {**VARIANTS[label], "seed": seed}}})
            run = out / f"{label.replace(' ', '_').replace('(', '').replace(')', '').replace('+', 'plus')}-seed{seed}"
            summary = run_experiment(exp, run)
            results.setdefault(label, []).append(summary["val_acc1"])
            print(f"{label:<26} seed {seed}: val top-1 {summary['val_acc1']:.2f}%", flush=True)
    return results


def markdown(results: dict[str, list[float]], seeds: int, wall_s: float, command: str) -> str:
    rows = ["| rule | val top-1 (%) mean | spread (min-max) | seeds | published top-1 error (%): ImageNet "
            "ResNet-18 / CIFAR-10 ResNet-20 |", "|---|---:|---:|---:|---|"]
    for label, accs in results.items():
        imagenet, cifar = PUBLISHED.get(label, ("-", "-"))
        rows.append(f"| {label} | {statistics.mean(accs):.2f} | {min(accs):.2f}-{max(accs):.2f} | {len(accs)} | "
                    f"{imagenet} / {cifar} |")
    machine = f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}"
    return "\n".join([f"Command: `{command}`  ", f"Machine: {machine}; wall time {wall_s / 60:.1f} min; "
                      f"{seeds} seed(s) per rule.", "", *rows, ""])


def main(argv: list[str] | None = None) -> dict[str, list[float]]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--rules", help="comma-separated labels of VARIANTS (default: all)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="experiment overrides")
    p.add_argument("--out", default=str(ROOT / "runs" / "paper_table"), help="where the runs go")
    p.add_argument("--write-docs", action="store_true", help="write docs/results.md's table and the JSON")
    args = p.parse_args(argv)
    labels = [s.strip() for s in args.rules.split(",")] if args.rules else list(VARIANTS)
    start = time.perf_counter()
    results = run_table(labels, args.seeds, parse_set(args.set), Path(args.out))
    text = markdown(results, args.seeds, time.perf_counter() - start, command_line("paper_table.py", argv))
    print(text)
    if args.write_docs:
        write_figures("paper_table", results, text)
    return results


if __name__ == "__main__":
    main()
