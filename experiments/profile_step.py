"""Where a training step's time goes on a GPU: the hand-written PyTorch step against Pyro's SVI
step and its levers (dsae_pyro.bench), under torch.profiler.

For each step: wall time, the time the GPU's kernels ran (their sum), the share of the wall time the
GPU sat idle, kernel launches and host-device syncs per step. A step whose GPU is busy all the time
is bound by the GPU; one with many syncs or launches and an idle GPU is bound by the host.

    python experiments/profile_step.py --preset paper --steps 5
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.profiler import ProfilerActivity, profile

from dsae_pyro.bench import step_variants
from dsae_pyro.config import load_preset

SYNCS = ("cudaStreamSynchronize", "cudaDeviceSynchronize", "cudaEventSynchronize")
LAUNCHES = ("cudaLaunchKernel", "cuLaunchKernel", "cudaLaunchKernelExC", "cuLaunchKernelEx")


def profile_variant(fn, steps: int) -> dict[str, float]:
    """Per-step figures of one step function (after two warm-up calls)."""
    for _ in range(2):
        fn()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        start = time.perf_counter()
        for _ in range(steps):
            fn()
        torch.cuda.synchronize()
        wall = (time.perf_counter() - start) / steps
    events = prof.events()
    gpu = sum(e.device_time for e in events if e.device_type.name == "CUDA") / 1e3 / steps
    count = {k: sum(e.name in names for e in events) / steps
             for k, names in (("syncs", SYNCS), ("launches", LAUNCHES))}
    return {"wall ms": 1e3 * wall, "GPU kernels ms": gpu,
            "GPU idle %": max(0.0, 100 * (1 - gpu / (1e3 * wall))), **count}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", default="paper")
    ap.add_argument("--steps", type=int, default=5)
    a = ap.parse_args(argv)
    if not torch.cuda.is_available():
        raise SystemExit("profile_step.py profiles GPU steps: no CUDA device here")
    cfg = load_preset(a.preset)
    device = torch.device("cuda")
    torch.manual_seed(0)
    x = torch.rand(cfg.train.batch_size, cfg.model.frames, *cfg.model.image_shape, device=device)
    variants = step_variants(cfg, device, x)
    cols = ("wall ms", "GPU kernels ms", "GPU idle %", "syncs", "launches")
    print(f"preset {a.preset}, batch {cfg.train.batch_size}, {torch.cuda.get_device_name(0)}")
    print("| step | " + " | ".join(cols) + " |\n|---|" + "---|" * len(cols))
    for name, fn in variants.items():
        r = profile_variant(fn, a.steps)
        print(f"| {name} | " + " | ".join(f"{r[c]:.1f}" for c in cols) + " |", flush=True)


if __name__ == "__main__":
    main()
