"""torchrun on the CPU (gloo): 2 processes equal 1 process on the same global batch, feedback buffers agree
on every rank, and a 2-rank checkpoint resumes in one process."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from biocircuits.train.checkpoint import load_checkpoint

ROOT = Path(__file__).resolve().parents[2]
TOL = 1e-5  # all-reduce sums the ranks' gradients in another order than one process: float32 rounding only


# every per-stream phases setting: each rank holds every second stream; checkpoints hold them all
STREAMS = (
    "{feedback: {rule: sign_symmetry}, phases: {error_delay: 2, backward_state: trace, trace_decay: 0.5, "
    "error_filter: 2, interference: 0.1}}"
)


def write_exp(tmp: Path, constraints: str) -> Path:
    path = tmp / "exp.yaml"
    path.write_text(f"""
name: ddp
constraints: {constraints}
data: {{name: digits}}
model: {{name: mlp, kwargs: {{hidden: [32, 16]}}}}
optim: {{name: sgd, lr: 0.05, momentum: 0.9, weight_decay: 0.0001}}
train: {{steps: 6, batch_size: 32, seed: 0, deterministic: true, log_every: 2, eval_every: 3}}
""")
    return path


def torchrun(args: list[str], nproc: int) -> subprocess.CompletedProcess:
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={nproc}",
        "-m",
        "biocircuits",
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=240, cwd=ROOT)


def single(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "biocircuits", *args], capture_output=True, text=True, timeout=240, cwd=ROOT
    )


@pytest.mark.xdist_group("torchrun")
@pytest.mark.parametrize(
    "constraints",
    [
        "bp.yaml",
        "sign_symmetry.yaml",
        "feedback_alignment.yaml",
        "dale_random_sign_symmetry.yaml",
        "{feedback: {rule: kolen_pollack}}",
        "{feedback: {rule: weight_mirror}}",
        STREAMS,
    ],
)
def test_two_ranks_equal_one_process(tmp_path, constraints):
    exp = write_exp(tmp_path, constraints)
    two = torchrun(["run", str(exp), "--output", str(tmp_path / "two")], 2)
    assert two.returncode == 0, two.stderr[-3000:]
    one = single(["run", str(exp), "--output", str(tmp_path / "one")])
    assert one.returncode == 0, one.stderr[-3000:]
    summary = json.loads((tmp_path / "two" / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["ranks_identical"] is True
    a = load_checkpoint(tmp_path / "two" / "checkpoint.pt")["model"]
    b = load_checkpoint(tmp_path / "one" / "checkpoint.pt")["model"]
    for k in b:
        assert torch.allclose(a[k].float(), b[k].float(), atol=TOL, rtol=0), k
        learned = "kolen_pollack" in constraints or "weight_mirror" in constraints  # B follows W's rounding
        if ("feedback" in k or "dale_sign" in k) and not learned:
            assert torch.equal(a[k], b[k]), k


@pytest.mark.xdist_group("torchrun")
@pytest.mark.parametrize("constraints", ["feedback_alignment.yaml", STREAMS])
def test_two_rank_checkpoint_resumes_in_one_process(tmp_path, constraints):
    exp = write_exp(tmp_path, constraints)
    two = torchrun(["run", str(exp), "--output", str(tmp_path / "run")], 2)
    assert two.returncode == 0, two.stderr[-3000:]
    more = single(["run", str(exp), "--output", str(tmp_path / "run"), "--resume", "--set", "train.steps=12"])
    assert more.returncode == 0, more.stderr[-3000:]
    straight = single(["run", str(exp), "--output", str(tmp_path / "straight"), "--set", "train.steps=12"])
    assert straight.returncode == 0
    a = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    b = load_checkpoint(tmp_path / "straight" / "checkpoint.pt")
    assert a["step"] == b["step"] == 12
    for k in b["model"]:
        assert torch.allclose(a["model"][k].float(), b["model"][k].float(), atol=TOL, rtol=0), k
