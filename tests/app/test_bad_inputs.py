"""Every bad input a clear error: a table of bad configs, ``--set`` values, CLI arguments, files, folders,
checkpoints and data, each run in-process through ``biocircuits.app.cli.main``: exit 2, no traceback, one line
(argparse's own usage errors: two) naming the key; plus Ctrl-C and ``--debug`` anywhere, in subprocesses."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from biocircuits.app.cli import main
from biocircuits.train.checkpoint import save_checkpoint

GOOD = (
    "name: x\nconstraints: bp.yaml\ndata: {name: digits}\nmodel: {name: mlp, kwargs: {hidden: [8]}}\n"
    "train: {steps: 2, batch_size: 16, probe_every: null, plots: false}\n"
)
BOMB = "a: &a [l,l,l,l,l,l,l,l,l]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{','.join([f'*{chr(97 + i)}'] * 9)}]\n" for i in range(8)
)
RUN = ["run", "{t}/exp.yaml", "--output", "{t}/out"]


def good_with(**sections: str) -> str:
    """GOOD with some top-level lines replaced or added (``key: value`` text)."""
    lines = {ln.split(":", 1)[0]: ln for ln in GOOD.splitlines()}
    lines.update({k: f"{k}: {v}" for k, v in sections.items()})
    return "\n".join(lines.values()) + "\n"


def imagefolder_exp(t: Path, root: str) -> str:
    return good_with(data=f"{{name: imagefolder, root: {root}, image_size: 8}}")


def setup_empty_classes(t: Path) -> None:
    for split in ("train", "val"):
        (t / "img" / split / "a").mkdir(parents=True)
    (t / "exp.yaml").write_text(imagefolder_exp(t, str(t / "img")))


def setup_text_classes(t: Path) -> None:
    setup_empty_classes(t)
    for split in ("train", "val"):
        (t / "img" / split / "a" / "notes.txt").write_text("not an image")


def setup_symlink_include(t: Path) -> None:
    (t / "outside").mkdir()
    (t / "outside" / "evil.yaml").write_text("feedback: {rule: fa}\n")
    (t / "spec").mkdir()
    (t / "spec" / "link.yaml").symlink_to(t / "outside" / "evil.yaml")
    (t / "spec" / "exp.yaml").write_text("include: [link.yaml]\n")


def setup_checkpoint(payload: dict | None, raw: bytes | None = None):
    def setup(t: Path) -> None:
        (t / "exp.yaml").write_text(GOOD)
        (t / "out").mkdir()
        if raw is not None:
            (t / "out" / "checkpoint.pt").write_bytes(raw)
        elif payload is None:
            torch.save({"state_dict": {}}, t / "out" / "checkpoint.pt")
        else:
            save_checkpoint(t / "out" / "checkpoint.pt", payload)

    return setup


def setup_other_model(t: Path) -> None:
    from biocircuits.config.experiment import Experiment
    from biocircuits.train.state import run_state
    from biocircuits.train.trainer import Trainer

    (t / "exp.yaml").write_text(GOOD)
    other = Trainer(Experiment.from_yaml(t / "exp.yaml", {"model.kwargs.hidden": [4]}), t / "out")
    state = run_state(other)
    del state["config"]  # an old checkpoint: only the weights can tell
    save_checkpoint(t / "out" / "checkpoint.pt", state)


def setup_bad_metrics(t: Path) -> None:
    (t / "r").mkdir()
    (t / "r" / "config.yaml").write_text("name: r\n")
    (t / "r" / "metrics.jsonl").write_text('{"step": 1, "kind": "train"}\nnot json\n{"step": 2, "kind": "train"}\n')


def setup_run_folder(t: Path) -> None:
    (t / "exp.yaml").write_text(GOOD)
    (t / "out").mkdir()
    (t / "out" / "metrics.jsonl").write_text('{"step": 1, "kind": "train"}\n')


# (id, exp.yaml text or a setup function, argv ({t} = the test's folder), fragment the message must hold)
CASES = [
    ("name-dotdot", "name: '..'\n", RUN, "name"),
    ("name-dot", "name: '.'\n", RUN, "name"),
    ("name-hidden", "name: .hidden\n", RUN, "name"),
    ("name-slash", "name: a/b\n", RUN, "name"),
    ("name-long", f"name: {'a' * 300}\n", RUN, "name"),
    ("lr-inf", good_with(optim="{lr: .inf}"), RUN, "optim.lr"),
    ("lr-nan", good_with(optim="{lr: .nan}"), RUN, "optim.lr"),
    ("lr-inf-string", good_with(optim="{lr: 'inf'}"), RUN, "optim.lr"),
    ("weight-decay-inf", good_with(optim="{weight_decay: .inf}"), RUN, "optim.weight_decay"),
    ("warmup-inf", good_with(schedule="{warmup_epochs: .inf}"), RUN, "schedule.warmup_epochs"),
    ("error-noise-inf", good_with(constraints="{phases: {error_noise: .inf}}"), RUN, "constraints.phases.error_noise"),
    ("min-lr-above-lr", good_with(optim="{lr: 0.1}", schedule="{name: cosine, min_lr: 0.5}"), RUN, "schedule.min_lr"),
    ("betas", good_with(optim="{name: adam, betas: [0.9, 1.5]}"), RUN, "optim.betas"),
    ("train-size-huge", good_with(data="{name: digits, train_size: 1000000000000}"), RUN, "data.train_size"),
    ("val-size-huge", good_with(data="{name: digits, val_size: 1000000000000}"), RUN, "data.val_size"),
    ("workers-huge", good_with(data="{name: digits, num_workers: 10000}"), RUN, "data.num_workers"),
    ("workers-negative", good_with(data="{name: digits, num_workers: -1}"), RUN, "data.num_workers"),
    ("batch-huge", good_with(train="{batch_size: 10000000}"), RUN, "train.batch_size"),
    ("eval-batch-huge", good_with(train="{eval_batch_size: 10000000}"), RUN, "train.eval_batch_size"),
    ("probe-batch-huge", good_with(train="{probe_batch: 10000000}"), RUN, "train.probe_batch"),
    ("grad-accum-huge", good_with(train="{grad_accum: 100000000}"), RUN, "train.grad_accum"),
    ("image-size-huge", good_with(data="{name: digits, image_size: 100000}"), RUN, "data.image_size"),
    ("shape-negative", good_with(data="{name: synthetic, shape: [-3, 32, 32]}"), RUN, "data.shape"),
    ("shape-zero", good_with(data="{name: synthetic, shape: [3, 0, 32]}"), RUN, "data.shape"),
    ("shape-5d", good_with(data="{name: synthetic, shape: [1, 2, 3, 4, 5]}"), RUN, "data.shape"),
    (
        "synthetic-too-big",
        good_with(data="{name: synthetic, train_size: 50000000, shape: [3, 224, 224]}"),
        RUN,
        "data.train_size",
    ),
    ("num-classes-huge", good_with(model="{name: mlp, num_classes: 100000000}"), RUN, "model.num_classes"),
    ("num-classes-below-labels", good_with(model="{name: mlp, num_classes: 5}"), RUN, "model.num_classes"),
    ("seed-negative", good_with(train="{seed: -1}"), RUN, "train.seed"),
    ("source-key", GOOD + "source: other.yaml\n", RUN, "source"),
    ("constraints-source-key", good_with(constraints="{source: x, feedback: {rule: bp}}"), RUN, "constraints.source"),
    ("duplicate-key", GOOD + "name: y\n", RUN, "name"),
    ("duplicate-nested-key", good_with(train="{steps: 1, steps: 2}"), RUN, "train.steps"),
    ("alias-bomb", BOMB, RUN, "aliases are expanded"),
    ("recursive-alias", "name: x\ndescription: &a [1, *a]\n", RUN, "recursive"),
    ("too-many-aliases", "a: &a 1\nb: [" + ", ".join(["*a"] * 101) + "]\n", RUN, "aliases"),
    ("deep-nesting", "name: x\ndescription: " + "[" * 60 + "]" * 60 + "\n", RUN, "nested deeper"),
    ("many-keys", "".join(f"k{i}: {i}\n" for i in range(20_000)), RUN, "keys"),
    ("file-too-large", "name: x\n#" + "x" * (1 << 20) + "\n", RUN, "too large"),
    ("binary-file", b"name: x\n\x00\x01\x02", RUN, "binary"),
    ("latin-1-file", "name: caf\u00e9\n".encode("latin-1"), RUN, "UTF-8"),
    ("bad-timestamp", "name: x\ndescription: 2001-13-45\n", RUN, "quote the value"),
    ("yaml-syntax", "name: [x\n", RUN, "YAML syntax error"),
    ("top-level-list", "- a\n- b\n", RUN, "mapping"),
    ("unknown-key", good_with(train="{batchsize: 3}"), RUN, "train.batchsize"),
    ("include-absolute", "include: [/etc/hostname]\nname: x\n", RUN, "include[0]"),
    ("include-dotdot", "include: [../exp.yaml]\nname: x\n", RUN, "include[0]"),
    ("include-not-a-path", "include: [3]\nname: x\n", RUN, "include[0]"),
    ("include-mapping", "include: {a: 1}\nname: x\n", RUN, "include"),
    ("include-symlink-outside", setup_symlink_include, ["validate", "{t}/spec/exp.yaml"], "include[0]"),
    ("file-is-a-folder", None, ["run", "{t}", "--output", "{t}/out"], "file not found"),
    ("file-missing", None, ["validate", "{t}/nope.yaml"], "file not found"),
    ("set-empty-key", GOOD, [*RUN, "--set", "=3"], "--set"),
    ("set-no-equals", GOOD, [*RUN, "--set", "train.steps"], "--set"),
    ("set-source", GOOD, [*RUN, "--set", "source=x"], "source"),
    ("set-include", GOOD, [*RUN, "--set", "include=x"], "include"),
    ("set-inf", GOOD, [*RUN, "--set", "optim.lr=.inf"], "optim.lr"),
    ("set-nan", GOOD, [*RUN, "--set", "train.label_smoothing=.nan"], "train.label_smoothing"),
    ("set-unknown", GOOD, [*RUN, "--set", "train.x.y=1"], "train.x"),
    ("set-name-dotdot", GOOD, [*RUN, "--set", "name=.."], "name"),
    ("set-into-scalar", GOOD, [*RUN, "--set", "train=3", "--set", "train.steps=2"], "train"),
    ("set-bomb", GOOD, [*RUN, "--set", "description=" + BOMB.replace("\n", "\n")], "aliases are expanded"),
    ("imagefolder-no-root", good_with(data="{name: imagefolder}"), RUN, "data.root"),
    ("imagefolder-missing-root", good_with(data="{name: imagefolder, root: /nonexistent/x}"), RUN, "data.root"),
    ("imagefolder-empty-classes", setup_empty_classes, RUN, "data.root"),
    ("imagefolder-text-only", setup_text_classes, RUN, "data.root"),
    ("output-is-a-file", lambda t: ((t / "exp.yaml").write_text(GOOD), (t / "out").write_text("x")), RUN, "--output"),
    (
        "output-under-a-file",
        lambda t: ((t / "exp.yaml").write_text(GOOD), (t / "f").write_text("x")),
        ["run", "{t}/exp.yaml", "--output", "{t}/f/out"],
        "--output",
    ),
    ("output-holds-a-run", setup_run_folder, RUN, "--output"),
    ("resume-and-overwrite", setup_run_folder, [*RUN, "--resume", "--overwrite"], "--overwrite"),
    ("resume-nothing", GOOD, [*RUN, "--resume"], "no checkpoint here"),
    ("checkpoint-without-model", setup_checkpoint({"step": 1}), [*RUN, "--resume"], "no model"),
    ("checkpoint-foreign", setup_checkpoint(None), [*RUN, "--resume"], "not a biocircuits checkpoint"),
    ("checkpoint-truncated", setup_checkpoint(None, raw=b"PK\x03\x04trunc"), [*RUN, "--resume"], "truncated"),
    ("checkpoint-other-model", setup_other_model, [*RUN, "--resume"], "does not fit"),
    ("compare-empty-rules", GOOD, ["compare", "{t}/exp.yaml", "--rules", ",,,", "--output", "{t}/c"], "--rules"),
    ("compare-no-rules", GOOD, ["compare", "{t}/exp.yaml", "--output", "{t}/c"], "--rules"),
    ("compare-unknown-rule", GOOD, ["compare", "{t}/exp.yaml", "--rules", "bp,fb", "--output", "{t}/c"], "fb"),
    ("plot-not-a-run", None, ["plot", "{t}"], "not a run directory"),
    ("plot-bad-metrics-line", setup_bad_metrics, ["plot", "{t}/r"], "line 2"),
    ("check-pathway-patterns", None, ["check-pathway", "{t}", "--layer", "a", "--patterns", "-1"], "--patterns"),
    ("check-pathway-duration", None, ["check-pathway", "{t}", "--layer", "a", "--duration", "-2"], "--duration"),
    ("check-pathway-nan", None, ["check-pathway", "{t}", "--layer", "a", "--duration", "nan"], "--duration"),
    ("unknown-command", None, ["train", "x.yaml"], "invalid choice"),
]


@pytest.mark.parametrize("text,argv,fragment", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_exits_2_naming_the_key(tmp_path, capsys, text, argv, fragment):
    if callable(text):
        text(tmp_path)
    elif isinstance(text, bytes):
        (tmp_path / "exp.yaml").write_bytes(text)
    elif text is not None:
        (tmp_path / "exp.yaml").write_text(text)
    args = [a.replace("{t}", str(tmp_path)) for a in argv]
    start = time.perf_counter()
    try:
        code = main(args)
        usage = False
    except SystemExit as exit_:  # argparse's own errors
        code, usage = exit_.code, True
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert "Traceback" not in err and fragment in err, err
    assert len(err.splitlines()) <= (2 if usage else 1), err
    assert len(err) < 2000 and time.perf_counter() - start < 10, len(err)


def test_at_least_60_cases():
    assert len(CASES) >= 60 and len({c[0] for c in CASES}) == len(CASES)


def test_validate_checks_every_file(tmp_path, capsys):
    for name, text in (("a.yaml", "name: ..\n"), ("b.yaml", GOOD), ("c.yaml", "feedback: {rule: fb}\n")):
        (tmp_path / name).write_text(text)
    assert main(["validate", *(str(tmp_path / n) for n in ("a.yaml", "b.yaml", "c.yaml"))]) == 2
    captured = capsys.readouterr()
    assert "a.yaml: name" in captured.err and "c.yaml: feedback.rule" in captured.err
    assert "b.yaml: valid experiment" in captured.out


@pytest.mark.parametrize("where", ["top", "sub"])
def test_debug_is_honoured_wherever_placed(tmp_path, capsys, where):
    (tmp_path / "exp.yaml").write_text("name: ..\n")
    argv = ["run", str(tmp_path / "exp.yaml")]
    argv = ["--debug", *argv] if where == "top" else [*argv, "--debug"]
    assert main(argv) == 2
    assert "Traceback" in capsys.readouterr().err


@pytest.mark.skipif(not hasattr(signal, "SIGINT") or os.name != "posix", reason="posix signals")
def test_ctrl_c_during_start_up_and_validate_exits_130_quietly(tmp_path):
    """SIGINT while the command starts (imports torch) and while validate runs: exit 130, no traceback."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    script = tmp_path / "slow.py"
    script.write_text(
        "import time, sys\nsys.argv = ['biocircuits', 'validate', sys.argv[1]]\n"
        "import biocircuits.config.loading as L\n_read = L.read_yaml\n"
        "def slow(p):\n    print('ready', flush=True)\n    time.sleep(30)\n    return _read(p)\n"
        "L.read_yaml = slow\nfrom biocircuits.__main__ import entry\nentry()\n"
    )
    (tmp_path / "exp.yaml").write_text(GOOD)
    for cmd, wait_ready in (
        ([sys.executable, "-m", "biocircuits", "validate", str(tmp_path / "exp.yaml")], False),
        ([sys.executable, str(script), str(tmp_path / "exp.yaml")], True),
    ):
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        if wait_ready:
            assert proc.stdout.readline().strip() == "ready"
        else:
            time.sleep(0.3)  # still importing
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 130 and "Traceback" not in err, (proc.returncode, err)
