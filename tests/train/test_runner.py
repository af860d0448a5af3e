"""The runner end to end: files written, exact resume after SIGTERM, atomic checkpoints, NaN stops, bad input."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from biocircuits.app.cli import main
from biocircuits.errors import CheckpointError
from biocircuits.train.checkpoint import load_checkpoint, save_checkpoint
from biocircuits.train.trainer import run_experiment

from .helpers import tiny_experiment

ROOT = Path(__file__).resolve().parents[2]


def test_run_writes_the_documented_files(tmp_path):
    summary = run_experiment(tiny_experiment(tmp_path, probe_every=10), tmp_path / "run")
    run = tmp_path / "run"
    for name in ("config.yaml", "metrics.jsonl", "checkpoint.pt", "summary.json"):
        assert (run / name).is_file(), name
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert all("step" in r and "kind" in r for r in rows)
    kinds = {r["kind"] for r in rows}
    assert kinds == {"train", "val", "probe"}
    train = [r for r in rows if r["kind"] == "train"][0]
    for key in ("loss", "acc1", "acc5", "lr", "images_per_s", "compute_images_per_s", "data_s", "wall_s"):
        assert key in train
    for key in ("val_acc1", "val_loss", "epochs", "steps", "wall_s", "rule"):
        assert key in summary
    assert summary["steps"] == 30 and summary["rule"] == "sign_symmetry"
    assert json.loads((run / "summary.json").read_text())["val_acc1"] == summary["val_acc1"]


RESUME_SCRIPT = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, {tests!r})
    from pathlib import Path
    from biocircuits.phases.step import PhaseCallback
    from biocircuits.train.trainer import run_experiment
    from train.helpers import tiny_experiment

    class Kill(PhaseCallback):
        def on_update_end(self, ctx):
            if ctx.step == {k} - 1:  # the update that makes step k
                os.kill(os.getpid(), signal.SIGTERM)

    exp = tiny_experiment(Path({tmp!r}), **{train!r})
    resume = sys.argv[1] == "resume"
    print(run_experiment(exp, Path({tmp!r}) / "run", resume=resume, callbacks=[] if resume else [Kill()]))
""")


# grad_accum 3 over 2 epochs: 44 batches an epoch make 14 steps and 2 micro-batches whose gradients carry into the
# next step; the signal comes mid-epoch 2, so the resumed run starts from the sampler's skip
RESUMES = {
    "plain": ({}, 13),
    "accumulated": ({"grad_accum": 3, "steps": None, "epochs": 2, "eval_every": None, "checkpoint_every": None}, 17),
}


@pytest.mark.parametrize("train,stop_at", RESUMES.values(), ids=RESUMES)
def test_sigterm_then_resume_is_bit_identical(tmp_path, train, stop_at):
    script = tmp_path / "job.py"
    script.write_text(RESUME_SCRIPT.format(tests=str(ROOT / "tests"), k=stop_at, tmp=str(tmp_path), train=train))
    first = subprocess.run([sys.executable, str(script), "start"], capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    assert f"stopped by signal at step {stop_at}" in first.stderr
    assert load_checkpoint(tmp_path / "run" / "checkpoint.pt")["step"] == stop_at
    second = subprocess.run([sys.executable, str(script), "resume"], capture_output=True, text=True, timeout=120)
    assert second.returncode == 0, second.stderr
    resumed = load_checkpoint(tmp_path / "run" / "checkpoint.pt")["model"]
    whole = tmp_path / "whole"
    whole.mkdir()
    run_experiment(tiny_experiment(whole, **train), whole / "run")
    straight = load_checkpoint(whole / "run" / "checkpoint.pt")["model"]
    assert resumed.keys() == straight.keys()
    for k in straight:
        assert torch.equal(resumed[k], straight[k]), k
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in rows if r["kind"] == "train"]
    assert steps == sorted(set(steps))  # no duplicated rows after resume


KILL_SCRIPT = textwrap.dedent("""
    import sys, torch
    from biocircuits.train.checkpoint import save_checkpoint
    i = 0
    while True:
        i += 1
        save_checkpoint(sys.argv[1], {"i": i, "big": torch.full((4_000_000,), float(i))})
""")


def test_kill_9_during_save_leaves_previous_checkpoint_loadable(tmp_path):
    path = tmp_path / "checkpoint.pt"
    script = tmp_path / "saver.py"
    script.write_text(KILL_SCRIPT)
    for delay in (0.3, 0.55, 0.8):
        proc = subprocess.Popen([sys.executable, str(script), str(path)])
        deadline = time.time() + 30
        while not path.exists() and time.time() < deadline:
            time.sleep(0.02)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        data = load_checkpoint(path)
        assert torch.equal(data["big"], torch.full((4_000_000,), float(data["i"])))


def test_truncated_and_foreign_checkpoints_give_clear_errors(tmp_path):
    good = tmp_path / "good.pt"
    save_checkpoint(good, {"x": torch.ones(1000)})
    trunc = tmp_path / "trunc.pt"
    trunc.write_bytes(good.read_bytes()[:500])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(trunc)
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(CheckpointError, match="not a biocircuits checkpoint"):
        load_checkpoint(foreign)
    with pytest.raises(CheckpointError, match="no checkpoint here"):
        load_checkpoint(tmp_path / "none.pt")


def test_nan_stops_with_exit_1_and_keeps_last_checkpoint(tmp_path, capsys):
    exp = ROOT / "experiments" / "quickstart.yaml"
    code = main(
        [
            "run",
            str(exp),
            "--output",
            str(tmp_path / "run"),
            "--set",
            "optim.lr=1e25",
            "--set",
            "optim.momentum=0",
            "--set",
            "train.checkpoint_every=1",
            "--set",
            "train.steps=20",
            "--set",
            "data.name=digits",
            "--set",
            "model.name=mlp",
            "--set",
            "model.kwargs={}",
        ]
    )
    err = capsys.readouterr().err
    assert code == 1 and "training diverged" in err and "Traceback" not in err
    ckpt = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert 1 <= ckpt["step"] < 20
    assert all(bool(torch.isfinite(v).all()) for v in ckpt["model"].values() if v.is_floating_point())


BAD_EXPERIMENTS = [  # (yaml text or None, --set values, fragment)
    ("name: x\ndata: {name: digitz}\n", [], "did you mean 'digits'"),
    ("name: x\nmodel: {name: resnet19}\n", [], "did you mean"),
    ("name: x\noptim: {name: rmsprop}\n", [], "optim.name"),
    ("name: x\noptim: {lr: -1}\n", [], "optim.lr"),
    ("name: x\ntrain: {epochs: 0}\n", [], "train.epochs"),
    ("name: x\ntrain: {batchsize: 3}\n", [], "did you mean 'batch_size'"),
    ("name: x\nschedule: {name: exp}\n", [], "schedule.name"),
    ("name: x\nconstraints: no_such.yaml\n", [], "constraint spec not found"),
    ("name: x\nconstraints: {feedback: {rule: fb}}\n", [], "constraints.feedback.rule"),
    ("data: {name: digits}\n", [], "name"),
    ("name: 'has space'\n", [], "name"),
    ("name: x\ntrain: {amp: fp8}\n", [], "train.amp"),
    ("name: x\n", ["train.batch_size=big"], "train.batch_size"),
    ("name: x\n", ["train.epochs"], "--set"),
    ("name: x\n", ["trian.epochs=3"], "did you mean 'train'"),
    ("name: x\n", ["data.val_fraction=2"], "data.val_fraction"),
]


@pytest.mark.parametrize("text,sets,fragment", BAD_EXPERIMENTS, ids=[str(i) for i in range(len(BAD_EXPERIMENTS))])
def test_bad_experiment_or_set_exit_2_one_message(tmp_path, capsys, text, sets, fragment):
    path = tmp_path / "exp.yaml"
    path.write_text(text)
    argv = ["run", str(path), "--output", str(tmp_path / "out")]
    for s in sets:
        argv += ["--set", s]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and fragment in err and "Traceback" not in err, err


def test_resume_without_checkpoint_is_exit_2(tmp_path, capsys):
    code = main(["run", str(ROOT / "experiments" / "quickstart.yaml"), "--output", str(tmp_path / "r"), "--resume"])
    assert code == 2 and "no checkpoint here" in capsys.readouterr().err


@pytest.mark.skipif(not hasattr(os, "fork"), reason="posix")
def test_python_m_biocircuits_is_the_cli():
    out = subprocess.run([sys.executable, "-m", "biocircuits", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "compare" in out.stdout


def test_compare_rules_and_constraints_write_table_and_plots(tmp_path, capsys):
    exp = tmp_path / "exp.yaml"
    exp.write_text(
        "name: cmp\nconstraints: dale.yaml\ndata: {name: digits}\n"
        "model: {name: mlp, kwargs: {hidden: [16]}}\n"
        "train: {steps: 4, batch_size: 32, log_every: 2, probe_every: 2, plots: false}\n"
    )
    assert main(["compare", str(exp), "--rules", "bp,fa", "--output", str(tmp_path / "r")]) == 0
    table = (tmp_path / "r" / "compare.md").read_text()
    assert "| bp | bp | yes |" in table and "| fa | fa | yes |" in table  # the rule changes, Dale is kept
    data = json.loads((tmp_path / "r" / "compare.json").read_text())
    assert set(data) == {"bp", "fa"} and all(v["steps"] == 4 for v in data.values())
    assert (tmp_path / "r" / "plots" / "curves.png").is_file()
    assert (tmp_path / "r" / "plots" / "angles_fa.png").is_file()
    assert (
        main(["compare", str(exp), "--constraints", "bp.yaml", "sign_symmetry.yaml", "--output", str(tmp_path / "c")])
        == 0
    )
    assert set(json.loads((tmp_path / "c" / "compare.json").read_text())) == {"bp", "sign_symmetry"}
    assert main(["compare", str(exp), "--rules", "bp,feedback_alignment", "--output", str(tmp_path / "x")]) == 2
    assert "unknown feedback rule" in capsys.readouterr().err
