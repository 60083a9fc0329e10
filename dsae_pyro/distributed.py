"""Data-parallel training under `torchrun --nproc_per_node N` with PyTorch's DistributedDataParallel.

The ELBO is computed inside a module (`ELBOModule`) so that DDP can wrap it: each rank computes the
loss of its shard of the batch, DDP's backward hooks all-reduce the gradients, and Pyro's SVI then
steps the (identical) parameters on every rank. Everything else stays as in single-process training:
the same model and guide functions, SVI, Pyro's optimiser and checkpoints (written by rank 0 only).

One difference from a single process on the combined batch: in train mode each rank's BatchNorm
normalises with the statistics of its own shard (torch's SyncBatchNorm would share them, but runs on
GPUs only). With the networks in eval mode the two agree to rounding (tests/test_distributed.py).

    torchrun --nproc_per_node 2 -m dsae_pyro.cli train ...      # gloo on CPU, nccl on GPU
"""

from __future__ import annotations

import gc
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel


@dataclass(frozen=True)
class World:
    """This process's place among the training processes."""

    rank: int = 0
    size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        """Rank 0: the process that writes checkpoints, history and figures."""
        return self.rank == 0

    def noise_seed(self, seed: int, epoch: int = 0) -> int:
        """A seed for this rank's sampling noise, distinct per rank and per resumed epoch."""
        return seed + 7919 * self.rank + 104_729 * epoch

    def shard(self, batch: torch.Tensor) -> torch.Tensor:
        """This rank's part of a global batch of indices (a distributed sampler: the ranks draw
        the same seeded permutation and each takes its own contiguous slice of every batch)."""
        per_rank = -(-len(batch) // self.size)
        return batch[self.rank * per_rank:(self.rank + 1) * per_rank]


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def teardown(world: World, loss: object = None) -> None:
    """Leave the process group that `setup` joined: a process that exits holding it can abort in
    gloo's destructors ("terminate called without an active exception"), failing the launch.
    `loss`, the run's SVI loss: a `DistributedLoss` lets go of the group first (DDP's reducer keeps
    a reference to it), so the group's threads are joined here rather than at interpreter exit."""
    if world.size > 1 and dist.is_initialized():
        dist.barrier()  # no rank closes its connections while a peer still uses them
        if isinstance(loss, DistributedLoss):
            loss.close()
        dist.destroy_process_group()


def setup(device_name: str = "auto") -> World:
    """Join the process group torchrun describes in the environment (no-op for one process)."""
    if not launched_by_torchrun():
        return World()
    if not dist.is_initialized():
        use_cuda = torch.cuda.is_available() and device_name != "cpu"
        dist.init_process_group("nccl" if use_cuda else "gloo")
    rank, size = dist.get_rank(), dist.get_world_size()
    if torch.cuda.is_available() and device_name != "cpu":
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if local >= torch.cuda.device_count():
            raise RuntimeError(f"torchrun started local rank {local}, but this machine has "
                               f"{torch.cuda.device_count()} GPU(s): use --nproc_per_node "
                               f"{torch.cuda.device_count()}, or --set train.device=cpu")
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    else:
        device = torch.device("cpu")
    return World(rank, size, device)


class ELBOModule(nn.Module):
    """An ELBO as a module so that DDP can wrap it: forward(model_fn, guide_fn, *args) returns the
    differentiable loss. `networks` are the modules whose parameters the loss depends on."""

    def __init__(self, elbo, *networks: nn.Module):
        super().__init__()
        self.elbo = elbo
        self.networks = nn.ModuleList(networks)

    def forward(self, model_fn, guide_fn, *args, **kwargs) -> torch.Tensor:
        return self.elbo.differentiable_loss(model_fn, guide_fn, *args, **kwargs)


class DistributedLoss:
    """A loss for `pyro.infer.SVI(model, guide, optim, loss=DistributedLoss(...))`: the rank's
    ELBO through DDP, scaled by the world size so that the averaged gradient is the gradient of
    the whole global batch's -ELBO (what one process would compute on the combined batch)."""

    def __init__(self, elbo, *networks: nn.Module, world: World):
        self.world, self.elbo = world, elbo
        module = ELBOModule(elbo, *networks)
        ids = [world.device.index] if world.device.type == "cuda" else None
        self.ddp = DistributedDataParallel(module, device_ids=ids)

    def __call__(self, model_fn, guide_fn, *args, **kwargs) -> torch.Tensor:
        return self.ddp(model_fn, guide_fn, *args, **kwargs) * self.world.size

    def close(self) -> None:
        """Drop the DDP wrapper (and its reducer's hold on the process group); the networks stay."""
        self.ddp = None
        gc.collect()


def all_equal(tensors: list[torch.Tensor]) -> bool:
    """Whether every rank holds the same values (a check for tests and debugging)."""
    flat = torch.cat([t.detach().reshape(-1).float().cpu() for t in tensors])
    gathered = [torch.empty_like(flat) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, flat)
    return all(torch.equal(gathered[0], g) for g in gathered[1:])
