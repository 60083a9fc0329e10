"""The training objectives of the beta-VAE, all computed from Pyro traces.

H (Higgins et al. 2017): maximise E_q[log p(x | z)] - beta KL(q(z | x) || p(z)). The model and guide
    scale their z site by beta (poutine.scale), so this is plain `Trace_ELBO`.
B (Burgess et al. 2018): minimise -E_q[log p(x | z)] + gamma |KL(q(z | x) || p(z)) - C|, with the
    capacity C raised linearly from 0 to c_max over c_steps. Not a rescaled ELBO: `CapacityLoss`
    traces the guide, replays the model and builds the loss from the two traces' sites.
tc (beta-TCVAE, Chen et al. 2018): the ELBO with the total correlation of the aggregate posterior,
    KL(q(z) || prod_d q(z_d)), weighted by beta instead of 1: -ELBO + (beta - 1) TC, with TC
    estimated from the batch (`aggregate.total_correlation`). `TCLoss`.
factorvae (Kim & Mnih 2018): -ELBO + gamma TC, with TC read from a discriminator that tells samples
    of q(z) from samples with each coordinate permuted across the batch (the density-ratio trick:
    TC ~ E[logit D(z)]); the discriminator trains beside the VAE with its own Adam. `FactorVAELoss`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pyro import poutine
from torch import nn
from torch.distributions import kl_divergence

from ..aggregate import total_correlation


def traces(model, guide, x: torch.Tensor):
    """The guide's trace for x and the model's, replayed on the guide's z."""
    g = poutine.trace(guide).get_trace(x)
    return g, poutine.trace(poutine.replay(model, trace=g)).get_trace(x)


def trace_terms(model, guide, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(log p(x | z) per image (B,), KL(q(z | x) || p(z)) per image and latent (B, D)) for one
    draw z ~ q(z | x); the KL is analytic (both sites are diagonal Gaussians)."""
    g, m = traces(model, guide, x)
    return _terms(g, m, x)


def _terms(g, m, x):
    log_lik = m.nodes["x"]["fn"].log_prob(x)
    kl = kl_divergence(g.nodes["z"]["fn"].base_dist, m.nodes["z"]["fn"].base_dist)
    return log_lik, kl


def ramp(step: int, steps: int) -> float:
    """A linear warm-up: 0 at step 0, 1 from `steps` on (1 throughout when steps is 0)."""
    return min(1.0, step / steps) if steps else 1.0


def capacity(step: int, c_max: float, c_steps: int) -> float:
    """C at a training step: linear from 0 to c_max over c_steps, then constant."""
    return c_max * ramp(step, c_steps)


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


class TCLoss:
    """beta-TCVAE as a loss for `SVI(model, guide, optim, loss=TCLoss(beta, dataset_size))`:
    -ELBO + (beta - 1) TC, summed over the batch like Trace_ELBO (equal to it at beta = 1).
    With `warmup` > 0 the TC weight rises linearly from 0 (the plain ELBO) over that many steps.
    On dSprites it did not help: the code forms rotated before the weight arrives
    (experiments/README.md, "The TC weight warmed up").
    The training loop sets `step`; `terms` holds the last step's TC (nats) for the history."""

    def __init__(self, beta: float = 6.0, dataset_size: int = 737_280, sampling: str = "mss",
                 warmup: int = 0):
        self.beta, self.dataset_size, self.sampling, self.warmup = beta, dataset_size, sampling, warmup
        self.step = 0
        self.terms: dict[str, float] = {}

    @property
    def weight(self) -> float:
        """The TC weight at this step: (beta - 1), warmed up."""
        return (self.beta - 1) * ramp(self.step, self.warmup)

    def __call__(self, model, guide, x: torch.Tensor, **kwargs) -> torch.Tensor:
        g, m = traces(model, guide, x)
        log_lik, kl = _terms(g, m, x)
        q = g.nodes["z"]["fn"].base_dist
        tc = total_correlation(g.nodes["z"]["value"], q.loc, q.scale, self.dataset_size,
                               self.sampling)
        self.terms = {"tc": tc.item()}
        return (-log_lik + kl.sum(-1)).sum() + self.weight * tc * len(x)


class Discriminator(nn.Module):
    """Logits of "a sample of q(z)" against "coordinates permuted across the batch" (Kim & Mnih
    use 6 layers of 1000 units; `hidden` and `layers` scale it down for a CPU)."""

    def __init__(self, latents: int, hidden: int = 256, layers: int = 3):
        super().__init__()
        sizes = [latents] + [hidden] * layers
        body = [m for a, b in zip(sizes[:-1], sizes[1:], strict=True)
                for m in (nn.Linear(a, b), nn.LeakyReLU(0.2))]
        self.net = nn.Sequential(*body, nn.Linear(hidden, 2))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


def permute_dims(z: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Each coordinate shuffled across the batch independently: samples of prod_d q(z_d)."""
    idx = torch.stack([torch.randperm(len(z), generator=generator) for _ in range(z.shape[1])], 1)
    return z.gather(0, idx.to(z.device))


class FactorVAELoss:
    """FactorVAE as a loss for `SVI(model, guide, optim, loss=FactorVAELoss(gamma, latents))`:
    -ELBO + gamma TC with TC ~ E[logit_0 D(z) - logit_1 D(z)] (the density-ratio trick), summed
    over the batch. Each call first takes one step of the discriminator (its own Adam, outside
    Pyro's param store) on the batch's z against its dimension-permuted copy, then reads TC from
    the updated discriminator. `warmup` ramps gamma up from 0 as in `TCLoss`."""

    def __init__(self, gamma: float = 35.0, latents: int = 10, lr: float = 1e-4,
                 hidden: int = 256, layers: int = 3, warmup: int = 0):
        self.gamma, self.warmup, self.step = gamma, warmup, 0
        self.discriminator = Discriminator(latents, hidden, layers)
        self.optim = torch.optim.Adam(self.discriminator.parameters(), lr=lr, betas=(0.5, 0.9))
        self.generator: torch.Generator | None = None
        self.terms: dict[str, float] = {}

    def to(self, device) -> FactorVAELoss:
        self.discriminator.to(device)
        return self

    def __call__(self, model, guide, x: torch.Tensor, **kwargs) -> torch.Tensor:
        g, m = traces(model, guide, x)
        log_lik, kl = _terms(g, m, x)
        z = g.nodes["z"]["value"].to(next(self.discriminator.parameters()).dtype)
        # the discriminator's step: real (label 0) against permuted (label 1), on detached z
        real = z.detach()
        labels = torch.cat([torch.zeros(len(z)), torch.ones(len(z))]).long().to(z.device)
        d_loss = F.cross_entropy(
            self.discriminator(torch.cat([real, permute_dims(real, self.generator)])), labels)
        self.optim.zero_grad()
        d_loss.backward()
        self.optim.step()
        self.optim.zero_grad()
        logits = self.discriminator(z)
        tc = (logits[:, 0] - logits[:, 1]).mean()
        self.terms = {"tc": tc.item(), "d_loss": d_loss.item()}
        return (-log_lik + kl.sum(-1)).sum() + self.weight * tc * len(x)

    @property
    def weight(self) -> float:
        """The TC weight at this step: gamma, warmed up."""
        return self.gamma * ramp(self.step, self.warmup)
