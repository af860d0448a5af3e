"""Multi-node on one machine: two torchrun launchers (``--nnodes 2``, c10d rendezvous on 127.0.0.1), one process
each, train exactly as one launcher with two processes; the SLURM templates in ``docs/slurm/`` parse
(``bash -n``)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest
import torch

from biocircuits.train.checkpoint import load_checkpoint

from ..train.test_distributed import ROOT, TOL, torchrun, write_exp

TEMPLATES = sorted((ROOT / "docs" / "slurm").glob("*.sbatch"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def two_nodes(args: list[str], run_id: str) -> list[subprocess.CompletedProcess]:
    """Two launchers as two nodes of one job would start them (SLURM: one ``srun`` task per node)."""
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nnodes=2",
        "--nproc_per_node=1",
        f"--rdzv_id={run_id}",
        "--rdzv_backend=c10d",
        f"--rdzv_endpoint=127.0.0.1:{port}",
        "--local_addr=127.0.0.1",
        "-m",
        "biocircuits",
        *args,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    nodes = [
        subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env)
        for _ in range(2)
    ]
    out = []
    for node in nodes:
        stdout, stderr = node.communicate(timeout=240)
        out.append(subprocess.CompletedProcess(cmd, node.returncode, stdout, stderr))
    return out


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda p: p.name)
def test_slurm_templates_parse(template):
    done = subprocess.run(["bash", "-n", str(template)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_templates_use_c10d_rendezvous_under_srun():
    text = (ROOT / "docs" / "slurm" / "torchrun_multinode.sbatch").read_text()
    for needed in ("srun", "torchrun", "--rdzv_backend=c10d", "--rdzv_endpoint=", "--nnodes=", "--resume"):
        assert needed in text


@pytest.mark.slow  # four processes start torch: ~20 s on an idle 2-core machine
@pytest.mark.xdist_group("torchrun")
def test_two_nodes_of_one_process_equal_one_node_of_two(tmp_path):
    exp = write_exp(tmp_path, "feedback_alignment.yaml")
    nodes = two_nodes(["run", str(exp), "--output", str(tmp_path / "nodes")], "bc-test")
    for node in nodes:
        assert node.returncode == 0, node.stderr[-3000:]
    one = torchrun(["run", str(exp), "--output", str(tmp_path / "one")], 2)
    assert one.returncode == 0, one.stderr[-3000:]
    summary = json.loads((tmp_path / "nodes" / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["ranks_identical"] is True
    a = load_checkpoint(tmp_path / "nodes" / "checkpoint.pt")["model"]
    b = load_checkpoint(tmp_path / "one" / "checkpoint.pt")["model"]
    assert a.keys() == b.keys()
    for k in b:
        assert torch.allclose(a[k].float(), b[k].float(), atol=TOL, rtol=0), k
        if "feedback" in k:
            assert torch.equal(a[k], b[k]), k
