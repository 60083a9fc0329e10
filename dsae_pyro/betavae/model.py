"""The beta-VAE as a Pyro model and guide (Higgins et al. 2017).

    z ~ N(0, I_10)                       latents
    x | z ~ Bernoulli(decoder(z))        64x64 binary pixels

`beta` scales the latent site in both model and guide through poutine.scale, so Trace_ELBO returns
-(E_q[log p(x | z)] - beta KL(q || p)): objective H with no custom loss.
"""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from torch import nn

from .._naming import unique_name
from .config import BetaModelConfig
from .nets import betavae_nets


class BetaVAE(nn.Module):
    """Encoder and decoder networks; `model` and `guide` are the Pyro functions."""

    def __init__(self, cfg: BetaModelConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder, self.decoder = betavae_nets(cfg.arch, cfg.latents, cfg.init)
        self.pyro_name = unique_name("betavae")

    def model(self, x: torch.Tensor | None = None, beta: float = 1.0,
              batch_size: int | None = None) -> torch.Tensor:
        """p(z) p(x | z) for images x (B, 1, 64, 64) in {0, 1}; x=None samples images."""
        pyro.module(self.pyro_name, self)
        n = len(x) if x is not None else batch_size
        zeros = next(self.parameters()).new_zeros(self.cfg.latents)
        with pyro.plate("batch", n):
            with poutine.scale(scale=beta):
                # beta * KL(q(z | x) || N(0, I))
                z = pyro.sample("z", dist.Normal(zeros, 1.0).to_event(1))
            # E_q[log p(x | z)]: independent Bernoulli pixels
            logits = self.decoder(z)
            return pyro.sample("x", dist.Bernoulli(logits=logits, validate_args=False)
                               .to_event(3), obs=x)

    def guide(self, x: torch.Tensor, beta: float = 1.0, batch_size: int | None = None):
        """q(z | x) = N(mu(x), sigma(x)): the encoder gives the mean and log standard deviation."""
        pyro.module(self.pyro_name, self)
        loc, log_scale = self.encoder(x).chunk(2, dim=-1)
        with pyro.plate("batch", len(x)), poutine.scale(scale=beta):
            # q(z | x): its log-density enters the (beta-weighted) KL term
            return pyro.sample("z", dist.Normal(loc, log_scale.exp()).to_event(1))

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior mean and standard deviation (B, latents)."""
        loc, log_scale = self.encoder(x).chunk(2, dim=-1)
        return loc, log_scale.exp()

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Pixel probabilities (B, 1, 64, 64) for latents z (B, latents)."""
        return torch.sigmoid(self.decoder(z))
