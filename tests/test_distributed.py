"""Data-parallel training with DistributedDataParallel on 2 CPU processes (gloo on 127.0.0.1)."""

import os
import socket
import subprocess
import sys

import pyro
import torch
import torch.multiprocessing as mp
from conftest import tiny_config
from pyro.infer import SVI, Trace_ELBO
from pyro.optim import Adam

from dsae_pyro.distributed import DistributedLoss, World, all_equal, setup, teardown
from dsae_pyro.guides import make_guide
from dsae_pyro.model import DSAE
from dsae_pyro.posterior import use_mean

STEPS, GLOBAL_BATCH = 3, 4


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def deterministic_setup():
    """Networks in eval mode (BatchNorm uses fixed statistics) and a guide that returns its means:
    the loss is then a deterministic sum over clips, so sharding must not change the result."""
    cfg = tiny_config()
    torch.manual_seed(0)
    model, guide = DSAE(cfg.model).eval(), make_guide(cfg.model).eval()
    x = torch.rand(GLOBAL_BATCH, 8, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    return model, guide, x


def params(model, guide):
    return [p.detach().clone() for p in [*model.parameters(), *guide.parameters()]]


def worker(rank, port, out):
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE="2", LOCAL_RANK=str(rank))
    world = setup("cpu")
    pyro.clear_param_store()
    model, guide, x = deterministic_setup()
    shard = x[world.shard(torch.arange(GLOBAL_BATCH))]
    svi = SVI(model.model, use_mean()(guide), Adam({"lr": 1e-2}),
              DistributedLoss(Trace_ELBO(), model, guide, world=world))
    for _ in range(STEPS):
        svi.step(shard)
    same = all_equal(params(model, guide))
    if world.main:
        torch.save({"params": params(model, guide), "same": same, "shard": len(shard)}, out)
    teardown(world)


def test_two_ranks_match_one_process_on_the_combined_batch(tmp_path):
    out = tmp_path / "ddp.pt"
    mp.spawn(worker, args=(free_port(), str(out)), nprocs=2)
    ddp = torch.load(out)
    assert ddp["same"] and ddp["shard"] == GLOBAL_BATCH // 2  # identical ranks, half batch each
    pyro.clear_param_store()
    model, guide, x = deterministic_setup()
    start = params(model, guide)
    svi = SVI(model.model, use_mean()(guide), Adam({"lr": 1e-2}), Trace_ELBO())
    for _ in range(STEPS):
        svi.step(x)
    single = params(model, guide)
    # every parameter trained, in one process and under DDP (none frozen by the param store)
    assert all(not torch.equal(a, b) for a, b in zip(start, single, strict=True))
    assert all(not torch.equal(a, b) for a, b in zip(start, ddp["params"], strict=True))
    for a, b in zip(ddp["params"], single, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_sharding_splits_every_global_batch():
    batch = torch.arange(10)
    parts = [World(r, 3).shard(batch) for r in range(3)]
    assert [p.tolist() for p in parts] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


def test_dsae_train_under_torchrun(tmp_path, tiny_npz):
    """The real entry point: 2 processes, checkpoints by rank 0, ranks checked equal at the end."""
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
           "--master_addr", "127.0.0.1", "--master_port", str(free_port()),
           "-m", "dsae_pyro.cli", "train", "--data", "npz", "--data-path", str(tiny_npz),
           "--epochs", "2", "--out", str(run), "--no-report", "--quiet",
           "--set", "train.batch_size=3", "--set", "model.f_dim=4", "--set", "model.z_dim=3",
           "--set", "model.hidden=8", "--set", "model.conv_channels=[4,4,4,4]",
           "--set", "model.conv_features=[16]", "--set", "train.eval_clips=6",
           "--set", "train.device=cpu"]  # gloo on CPU, also where a GPU is present
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    history = (run / "history.csv").read_text().splitlines()
    assert len(history) == 3  # header + 2 epochs, written once (by rank 0)
    assert (run / "checkpoint.pt").exists() and not list(run.glob("*.tmp*"))

