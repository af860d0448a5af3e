"""Scale-readiness: bf16 autocast on the CPU, torch.compile, channels_last and 2-process DDP (gloo)."""

import copy
import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

import biocircuits as bc

RULES = [
    ("bp", {}),
    ("fa", {}),
    ("sign_symmetry", {}),
    ("sign_symmetry", {"magnitude": "random_fixed"}),
    ("sign_symmetry", {"magnitude": "weight_rms", "centre": True}),
]


def small_convnet():
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(8 * 4 * 4, 5),
    )


def converted(rule, options):
    torch.manual_seed(0)
    return bc.apply(small_convnet(), {"feedback": {"rule": rule, "options": options}})


def grads_of(model, x, y):
    model.zero_grad()
    nn.functional.cross_entropy(model(x), y).backward()
    return [p.grad.clone() for p in model.parameters()]


@pytest.mark.parametrize("rule,options", RULES)
def test_bf16_autocast_cpu(rule, options):
    torch.manual_seed(0)
    model = bc.apply(small_convnet_nobn(), {"feedback": {"rule": rule, "options": options}})
    x, y = torch.randn(4, 3, 8, 8), torch.randint(0, 5, (4,))
    ref = grads_of(model, x, y)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x)
        assert out.dtype == torch.bfloat16
        loss = nn.functional.cross_entropy(out, y)
    model.zero_grad()
    loss.backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g.dtype == torch.float32 for g in grads)
    cos = nn.functional.cosine_similarity
    # bf16 keeps ~3 significant digits: the whole gradient agrees closely, each tensor (even an 8-element
    # bias) within rounding
    assert cos(torch.cat([g.flatten() for g in grads]), torch.cat([r.flatten() for r in ref]), 0) > 0.99
    for g, r in zip(grads, ref, strict=True):
        assert cos(g.flatten(), r.flatten(), 0) > 0.95


def test_bf16_bp_equals_plain_autocast():
    plain = small_convnet()
    conv = bc.apply(copy.deepcopy(plain), {"feedback": {"rule": "bp"}})
    x, y = torch.randn(4, 3, 8, 8), torch.randint(0, 5, (4,))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        a = grads_of(plain, x, y)
        b = grads_of(conv, x, y)
    for ga, gb in zip(a, b, strict=True):
        assert torch.allclose(ga, gb, atol=1e-6)


@pytest.mark.parametrize("rule,options", RULES)
def test_compile_matches_eager(rule, options):
    torch._dynamo.reset()
    model = converted(rule, options)
    x, y = torch.randn(4, 3, 8, 8), torch.randint(0, 5, (4,))
    eager = grads_of(model, x, y)
    compiled = torch.compile(model, backend="aot_eager")
    got = grads_of(compiled, x, y)
    for g, e in zip(got, eager, strict=True):
        assert torch.allclose(g, e, atol=1e-5, rtol=1e-5)


@pytest.mark.slow
def test_compile_inductor_sign_symmetry():
    torch._dynamo.reset()
    model = converted("sign_symmetry", {})
    x, y = torch.randn(4, 3, 8, 8), torch.randint(0, 5, (4,))
    eager = grads_of(model, x, y)
    got = grads_of(torch.compile(model), x, y)
    for g, e in zip(got, eager, strict=True):
        assert torch.allclose(g, e, atol=1e-4, rtol=1e-4)


def test_channels_last_matches_contiguous():
    model = converted("fa", {})
    x, y = torch.randn(4, 3, 8, 8), torch.randint(0, 5, (4,))
    ref = grads_of(model, x, y)
    cl = copy.deepcopy(model).to(memory_format=torch.channels_last)
    assert cl[0].feedback_weight.is_contiguous(memory_format=torch.channels_last)
    got = grads_of(cl, x.to(memory_format=torch.channels_last), y)
    for g, r in zip(got, ref, strict=True):
        assert torch.allclose(g, r, atol=1e-5)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank, world, port, rule, out_dir):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.manual_seed(rank + 100)  # ranks start from different RNG streams: feedback must not depend on them
    model = bc.apply(small_convnet_nobn(), {"feedback": {"rule": rule, "seed": 5}})
    torch.manual_seed(0)
    x, y = torch.randn(8, 3, 8, 8), torch.randint(0, 5, (8,))
    ddp = nn.parallel.DistributedDataParallel(model)
    nn.functional.cross_entropy(ddp(x[rank * 4 : (rank + 1) * 4]), y[rank * 4 : (rank + 1) * 4]).backward()
    torch.save(
        {
            "grads": [p.grad for p in model.parameters()],
            "buffers": {k: v for k, v in model.state_dict().items() if "feedback" in k},
        },
        os.path.join(out_dir, f"rank{rank}.pt"),
    )
    dist.destroy_process_group()


def small_convnet_nobn():
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(8 * 4 * 4, 5),
    )


@pytest.mark.parametrize("rule", ["fa", "sign_symmetry"])
def test_ddp_two_processes_gloo(tmp_path, rule):
    mp.spawn(_ddp_worker, args=(2, _free_port(), rule, str(tmp_path)), nprocs=2, join=True)
    r0, r1 = torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt")
    for k in r0["buffers"]:
        assert torch.equal(r0["buffers"][k], r1["buffers"][k])
    torch.manual_seed(3)
    single = bc.apply(small_convnet_nobn(), {"feedback": {"rule": rule, "seed": 5}})
    torch.manual_seed(0)
    x, y = torch.randn(8, 3, 8, 8), torch.randint(0, 5, (8,))
    single.load_state_dict(_initial_state(rule))
    nn.functional.cross_entropy(single(x), y).backward()
    for g0, g1, gs in zip(r0["grads"], r1["grads"], [p.grad for p in single.parameters()], strict=True):
        assert torch.equal(g0, g1)
        assert torch.allclose(g0, gs, atol=1e-6)
    assert all(torch.equal(v, single.state_dict()[k]) for k, v in r0["buffers"].items())


def _initial_state(rule):
    # DDP broadcasts rank 0's parameters at construction: rank 0 seeded 100 before building the model
    torch.manual_seed(100)
    return bc.apply(small_convnet_nobn(), {"feedback": {"rule": rule, "seed": 5}}).state_dict()
