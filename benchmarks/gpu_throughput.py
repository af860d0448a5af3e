"""GPU training throughput in one call (about 8 minutes on one H100/H200): images/s and peak memory at 224x224,
batch 256, bf16 autocast and channels_last (``--no-amp``, ``--no-channels-last`` to turn them off), for

- every feedback rule (bp, sign_symmetry, fa, kolen_pollack, weight_mirror, dfa) against plain autograd;
- every Dale preset in ``constraints/dale*.yaml`` (the DANN presets included);
- eager, and torch.compile for ``--compile-variants``;
- synthetic data (one fixed batch on the GPU: the model alone) and the real data path for ``--jpeg-variants``:
  generated 500x375 JPEGs decoded and augmented at 224 by ``--workers`` CPU loader workers (``data.decode: cpu``)
  and on the GPU (``data.decode: gpu``).

    python benchmarks/gpu_throughput.py --json gpu.json --markdown gpu.md     # rows for docs/benchmarks.md
    python benchmarks/gpu_throughput.py --smoke                               # CPU, tiny: the test suite's check

Synthetic rows: median of interleaved steps; peak memory with one model resident at a time. JPEG rows: images/s
over ``--reps`` steps after a warm-up, the loader running ahead. A variant that fails to build is a row with its
error, so one failure does not cost the run."""

from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import interleaved_medians, measure_memory, sync, synthetic_batch, training_step  # noqa: E402
from data_throughput import write_jpegs  # noqa: E402

import biocircuits as bc  # noqa: E402
from biocircuits.data.device_decode import EncodedCollate, ReadBytes  # noqa: E402
from biocircuits.data.imagefolder import image_folder, reference_transforms  # noqa: E402
from biocircuits.models import build_model  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RULES = ("bp", "sign_symmetry", "fa", "kolen_pollack", "weight_mirror", "dfa")
PRESETS = {f"preset {p.stem}": str(p) for p in sorted((ROOT / "constraints").glob("dale*.yaml"))}
# weight_mirror with its phase after every step (its defaults run it every 8th step after a warm-up, which a median of
# single steps would hide)
OPTIONS: dict[str, dict] = {"weight_mirror": {"samples": 32, "mirror_every": 1}}
VARIANTS: dict[str, Any] = {
    "plain autograd": None,
    **{r: {"feedback": {"rule": r, "options": OPTIONS.get(r, {})}} for r in RULES},
    **PRESETS,
}
DEFAULT_COMPILED = "plain autograd,bp,sign_symmetry,fa"
DEFAULT_JPEG = "plain autograd,bp,sign_symmetry,fa"


def parts(model: torch.nn.Module, ns: argparse.Namespace, spec: Any) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    """``model`` converted by ``spec`` (None: plain autograd), on the device, channels_last and compiled as asked,
    with SGD (momentum, weight decay) bound to it: (what the step calls, the optimiser)."""
    if spec is not None:
        bc.apply(model, spec)
    model.to(ns.device)
    if ns.channels_last:
        model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    if spec is not None:
        bc.bind(opt, model)
    return (torch.compile(model) if ns.compile else model), opt


def built(model: torch.nn.Module, ns: argparse.Namespace, names: list[str]) -> tuple[dict, dict]:
    """({variant: (run, opt)}, {variant: error}) for ``names``, each on its own copy of ``model``."""
    out, errors = {}, {}
    for name in names:
        try:
            out[name] = parts(copy.deepcopy(model), ns, VARIANTS[name])
        except Exception as err:  # noqa: BLE001 -- recorded as the variant's row
            errors[name] = f"{type(err).__name__}: {str(err)[:200]}"
    return out, errors


def on_batch(run_opt: tuple, x: torch.Tensor, y: torch.Tensor, amp: bool):
    return lambda: training_step(*run_opt, x, y, amp)


def synthetic_rows(model_name: str, compiled: bool, names: list[str], args) -> dict[str, dict]:
    """Images/s (median of interleaved steps) and peak memory of each variant on one fixed batch."""
    ns = argparse.Namespace(
        device=args.device,
        channels_last=args.channels_last,
        compile=compiled,
        batch=args.batch,
        size=args.size,
        amp=args.amp,
    )
    torch.manual_seed(0)
    base = build_model(model_name, (3, args.size, args.size), 1000, {})
    device = torch.device(args.device)
    x, y = synthetic_batch(ns, device)
    models, errors = built(base, ns, names)
    steps = {name: on_batch(m, x, y, args.amp) for name, m in models.items()}
    medians = interleaved_medians(steps, device, args.warmup, args.reps) if steps else {}
    del steps, models
    rows: dict[str, dict] = {name: {"error": err} for name, err in errors.items()}
    for name in medians:
        step = on_batch(built(base, ns, [name])[0][name], x, y, args.amp)
        step()
        rows[name] = {"images_per_s": args.batch / medians[name], "peak_mem_gib": measure_memory(step, device) / 2**30}
        del step
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return rows


def jpeg_loader(root: Path, args, decode: str) -> torch.utils.data.DataLoader:
    """The training loader of an image folder run at ``args.size``: PIL in ``args.workers`` workers (``cpu``) or
    file bytes only, decoded on the device (``gpu``); pinned memory, 4 batches prefetched, persistent workers."""
    train_tf, _ = reference_transforms(args.size)
    on_device = decode == "gpu"
    dataset = image_folder(root / "train", None if on_device else train_tf, *([ReadBytes()] if on_device else []))
    extra = {"prefetch_factor": 4, "persistent_workers": True} if args.workers else {}
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=args.batch,
        shuffle=True,
        drop_last=True,
        num_workers=args.workers,
        pin_memory=args.device == "cuda",
        collate_fn=EncodedCollate(args.size) if on_device else None,
        **extra,
    )


def forever(loader: torch.utils.data.DataLoader):
    """The loader's batches, epoch after epoch (each one loaded afresh: nothing replayed from memory)."""
    while True:
        yield from loader


def jpeg_rows(model_name: str, names: list[str], root: Path, decode: str, args) -> dict[str, dict]:
    """Images/s of whole steps fed by the real data path (load, decode, augment, copy, train), per variant."""
    ns = argparse.Namespace(
        device=args.device,
        channels_last=args.channels_last,
        compile=False,
        batch=args.batch,
        size=args.size,
        amp=args.amp,
    )
    device = torch.device(args.device)
    torch.manual_seed(0)
    base = build_model(model_name, (3, args.size, args.size), 1000, {})
    batches = forever(jpeg_loader(root, args, decode))
    rows: dict[str, dict] = {}
    for name in names:
        models, errors = built(base, ns, [name])
        if name in errors:
            rows[name] = {"error": errors[name]}
            continue
        run, opt = models[name]

        def step(run: torch.nn.Module = run, opt: torch.optim.Optimizer = opt) -> None:
            x, y = next(batches)
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            if args.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            training_step(run, opt, x, y, args.amp)

        for _ in range(args.warmup):
            step()
        sync(device)
        t0 = time.perf_counter()
        for _ in range(args.reps):
            step()
        sync(device)
        rows[name] = {"images_per_s": args.batch * args.reps / (time.perf_counter() - t0)}
    return rows


def table(results: list[dict]) -> str:
    """The rows of docs/benchmarks.md: model, mode, data, variant, images/s, ratios to plain autograd and to bp
    (same model, mode and data), peak GiB and memory ratio to bp (synthetic rows)."""
    lines = [
        "| model | mode | data | variant | images/s | vs plain | vs bp | peak GiB | memory vs bp |",
        "| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for res in results:
        rows = res["rows"]
        plain, bp = rows.get("plain autograd", {}), rows.get("bp", {})
        for name, r in rows.items():
            head = f"| {res['model']} | {res['mode']} | {res['data']} | {name} |"
            if "error" in r:
                lines.append(f"{head} failed: {r['error'][:80]} | | | | |")
                continue
            ips = r["images_per_s"]
            ratio = [f"{ips / ref['images_per_s']:.3f}" if ref.get("images_per_s") else "-" for ref in (plain, bp)]
            mem = r.get("peak_mem_gib")
            mem_bp = f"{mem / bp['peak_mem_gib']:.3f}" if mem and bp.get("peak_mem_gib") else "-"
            lines.append(
                f"{head} {ips:.0f} | {ratio[0]} | {ratio[1]} | {'-' if mem is None else f'{mem:.2f}'} | {mem_bp} |"
            )
    return "\n".join(lines) + "\n"


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="resnet18,alexnet_bn")
    p.add_argument("--compile-models", default="resnet18", help="models also timed compiled ('' for none)")
    p.add_argument("--compile-variants", default=DEFAULT_COMPILED, help="variants timed compiled")
    p.add_argument("--jpeg-models", default="resnet18", help="models timed on the JPEG data path ('' for none)")
    p.add_argument("--jpeg-variants", default=DEFAULT_JPEG, help="variants timed on the JPEG data path")
    p.add_argument("--jpeg-images", type=int, default=2048, help="generated 500x375 JPEGs")
    p.add_argument("--workers", type=int, default=8, help="CPU loader workers of the JPEG path")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--reps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--no-amp", dest="amp", action="store_false", help="float32 instead of bf16 autocast")
    p.add_argument("--no-channels-last", dest="channels_last", action="store_false")
    p.add_argument("--device", default="cuda", help="cpu only with --smoke")
    p.add_argument("--smoke", action="store_true", help="CPU, convnet at 16x16, batch 2, one rep, no compile")
    p.add_argument("--json")
    p.add_argument("--markdown", help="write the table rows here")
    args = p.parse_args(argv)
    if args.smoke:
        args.device, args.models, args.jpeg_models, args.compile_models = "cpu", "convnet", "convnet", ""
        args.size, args.batch = 16, 2
        args.reps, args.warmup, args.jpeg_images, args.workers, args.amp = 1, 0, 4, 0, False
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("gpu_throughput.py needs a CUDA GPU (--smoke checks the script on the CPU)")
    torch.backends.cudnn.benchmark = args.device == "cuda"
    device = torch.cuda.get_device_name() if args.device == "cuda" else "cpu (smoke test)"
    print(
        f"{device}  torch {torch.__version__}  batch {args.batch}  {args.size}x{args.size}  amp {args.amp}  "
        f"channels_last {args.channels_last}",
        flush=True,
    )
    every = list(VARIANTS)
    plan = [(m, "eager", "synthetic", every) for m in args.models.split(",") if m]
    plan += [
        (m, "compiled", "synthetic", args.compile_variants.split(",")) for m in args.compile_models.split(",") if m
    ]
    decodes = ["cpu", "gpu"] if args.device == "cuda" else ["cpu"]
    plan += [
        (m, "eager", f"jpeg decode {d}", args.jpeg_variants.split(","))
        for m in args.jpeg_models.split(",")
        if m
        for d in decodes
    ]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        jpegs = None
        for model_name, mode, data, names in plan:
            t0 = time.perf_counter()
            if data == "synthetic":
                rows = synthetic_rows(model_name, mode == "compiled", names, args)
            else:
                jpegs = jpegs or write_jpegs(
                    Path(tmp) / "jpegs", args.jpeg_images, (500, 375) if not args.smoke else (64, 48)
                )
                rows = jpeg_rows(model_name, names, jpegs, data.split()[-1], args)
            results.append(
                {"model": model_name, "mode": mode, "data": data, "seconds": time.perf_counter() - t0, "rows": rows}
            )
            print(f"{model_name} {mode} {data}: {time.perf_counter() - t0:.0f} s", flush=True)
    text = table(results)
    print(text)
    out = {"device": device, "torch": torch.__version__, "args": vars(args), "results": results}
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    if args.markdown:
        Path(args.markdown).write_text(text)
    return out


if __name__ == "__main__":
    main()
