"""The two training objectives of the beta-VAE, both computed from Pyro traces.

H (Higgins et al. 2017): maximise E_q[log p(x | z)] - beta KL(q(z | x) || p(z)). The model and guide
    scale their z site by beta (poutine.scale), so this is plain `Trace_ELBO`.
B (Burgess et al. 2018): minimise -E_q[log p(x | z)] + gamma |KL(q(z | x) || p(z)) - C|, with the
    capacity C raised linearly from 0 to c_max over c_steps. Not a rescaled ELBO: `CapacityLoss`
    traces the guide, replays the model and builds the loss from the two traces' sites.
"""

from __future__ import annotations

import torch
from pyro import poutine
from torch.distributions import kl_divergence


def trace_terms(model, guide, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(log p(x | z) per image (B,), KL(q(z | x) || p(z)) per image and latent (B, D)) for one
    draw z ~ q(z | x); the KL is analytic (both sites are diagonal Gaussians)."""
    g = poutine.trace(guide).get_trace(x)
    m = poutine.trace(poutine.replay(model, trace=g)).get_trace(x)
    log_lik = m.nodes["x"]["fn"].log_prob(x)
    kl = kl_divergence(g.nodes["z"]["fn"].base_dist, m.nodes["z"]["fn"].base_dist)
    return log_lik, kl


def capacity(step: int, c_max: float, c_steps: int) -> float:
    """C at a training step: linear from 0 to c_max over c_steps, then constant."""
    return c_max * min(1.0, step / c_steps)


class CapacityLoss:
    """Objective B as a loss for `pyro.infer.SVI(model, guide, optim, loss=CapacityLoss(...))`.

    The training loop sets `step` before each SVI step; checkpoints store it, so a resumed run
    continues the schedule where it stopped."""

    def __init__(self, gamma: float = 1000.0, c_max: float = 25.0, c_steps: int = 100_000):
        self.gamma, self.c_max, self.c_steps = gamma, c_max, c_steps
        self.step = 0

    @property
    def capacity(self) -> float:
        return capacity(self.step, self.c_max, self.c_steps)

    def __call__(self, model, guide, x: torch.Tensor, **kwargs) -> torch.Tensor:
        """Summed over the batch like Trace_ELBO: B * (mean recon + gamma |mean KL - C|)."""
        log_lik, kl = trace_terms(model, guide, x)
        per_item = -log_lik.mean() + self.gamma * (kl.sum(-1).mean() - self.capacity).abs()
        return per_item * len(x)
