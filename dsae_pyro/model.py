"""The Disentangled Sequential Autoencoder's generative model (Li & Mandt, 2018) as a Pyro function.

    f ~ N(0, I)                                   static latent: who the sprite is
    z_t | z_<t ~ N(mu(h_t), sigma(h_t)),          dynamics: what it does, h_t = LSTM(z_{t-1}, h_{t-1})
    x_t | f, z_t ~ p(x_t | decoder(f, z_t))       frames

Either prior may instead be a mixture of Gaussians (model.f_prior_components, model.prior_components;
priors.py), as `dsae refit-prior` fits them to the posteriors after training.

Sample sites: "f", "z_1" ... "z_T" and the observation "x". Every guide in `guides.py` uses the same
names, so swapping guides, `poutine.condition` and `poutine.replay` need no glue.
"""

from __future__ import annotations

import math

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from torch import nn

from ._naming import unique_name
from .clips import check_batch, commonest_colours
from .config import ModelConfig
from .distributions import PaletteMixture
from .nets import make_decoder
from .priors import StaticPrior, make_prior


def z_site(t: int) -> str:
    """Name of the sample site of z_t, t = 1..T."""
    return f"z_{t}"


class DSAE(nn.Module):
    """Networks of the generative model; `model` is the Pyro model function."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.decoder = make_decoder(cfg)
        self.f_prior = StaticPrior(cfg.f_dim, cfg.f_prior_components)
        self.prior = make_prior(cfg.prior, cfg.z_dim, cfg.hidden, cfg.prior_components)
        if cfg.likelihood == "gaussian_learned":
            self.log_x_scale = nn.Parameter(torch.tensor(math.log(cfg.x_scale)))
        self.pyro_name = unique_name("dsae")

    def start_from_clips(self, x_uint8) -> None:
        """Starting values read from the training clips (N, T, H, W, C) of a new run: the global
        colour palette (model.colour_table = "global") at their commonest colours."""
        if self.cfg.decoder_colours and self.cfg.colour_table == "global":
            self.decoder.start_palette(commonest_colours(x_uint8, self.cfg.decoder_colours))

    # --- the likelihood ------------------------------------------------------------------------
    def likelihood(self, f: torch.Tensor, z: torch.Tensor) -> dist.Distribution:
        """p(x_1:T | f, z_1:T) for f (B, F) and z (B, T, Z), one event over (T, C, H, W)."""
        if self.cfg.likelihood == "palette_mixture":
            # every pixel a mixture over the colour-mix decoder's K colours (distributions.py)
            return PaletteMixture(*self.decoder.mixture(f, z), self.cfg.x_scale)
        out = self.decoder(f, z)
        if self.cfg.likelihood == "bernoulli":
            # pixels in [0, 1] are treated as Bernoulli probabilities (cross-entropy), as is usual
            return dist.Bernoulli(logits=out, validate_args=False).to_event(4)
        if self.cfg.likelihood == "gaussian_learned":
            scale = self.log_x_scale.exp()
        else:  # l2: Das & Dandi's sum of squared errors is a Gaussian of variance 1/2
            s = math.sqrt(0.5) if self.cfg.likelihood == "l2" else self.cfg.x_scale
            scale = torch.tensor(s, device=out.device)
        if self.cfg.likelihood == "laplace":
            # -log p = |x - mean| / b + log 2b per value: minimised by the median of the pixels a
            # decoder input may stand for, where the Gaussian's mean averages two close tones
            return dist.Laplace(self.mean_of(out), scale.expand_as(out)).to_event(4)
        return dist.Normal(self.mean_of(out), scale.expand_as(out)).to_event(4)

    def mean_of(self, out: torch.Tensor) -> torch.Tensor:
        """The pixel means of the decoder's output: its sigmoid, widened by model.mean_margin."""
        m = self.cfg.mean_margin
        return torch.sigmoid(out) * (1 + 2 * m) - m if m else torch.sigmoid(out)

    def picture(self, px: dist.Distribution) -> torch.Tensor:
        """The frames (B, T, C, H, W) in [0, 1] that p(x_1:T | f, z_1:T) shows: its mean, or under
        the palette mixture each pixel's likeliest colour (a mean of two close colours is neither)."""
        return px.mode if isinstance(px, PaletteMixture) else px.mean.clamp(0, 1)

    def decode(self, f: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """The frames that f (B, F) and z (B, T, Z) show (`picture`)."""
        return self.picture(self.likelihood(f, z))

    # --- the model -----------------------------------------------------------------------------
    def model(self, x: torch.Tensor | None = None, kl_weight: float = 1.0,
              batch_size: int | None = None, x_f: torch.Tensor | None = None,
              x_z: torch.Tensor | None = None) -> torch.Tensor:
        """Pyro model of a batch of clips x (B, T, C, H, W); x=None samples clips instead.
        `x_f` and `x_z` are the guide's (what q(f) and q(z) read); the model ignores them."""
        if x is not None:
            check_batch(x, self.cfg.image_shape)
        pyro.module(self.pyro_name, self)
        batch = x.shape[0] if x is not None else batch_size
        frames = x.shape[1] if x is not None else self.cfg.frames
        like = next(self.parameters())
        with pyro.plate("batch", batch):
            with poutine.scale(scale=kl_weight):
                # KL(q(f | .) || p(f)), with p(f) = N(0, I) (or a mixture: priors.StaticPrior)
                f = pyro.sample("f", self.f_prior(like))
                z_prev, state = self.prior.initial(batch, like)
                zs = []
                for t in pyro.markov(range(1, frames + 1)):
                    p_t, state = self.prior.step(z_prev, state)
                    # KL(q(z_t | .) || p(z_t | z_<t)): the prior is fed the z sampled at the
                    # previous site, which under SVI is the guide's sample
                    z_prev = pyro.sample(z_site(t), p_t)
                    zs.append(z_prev)
            # E_q[log p(x_1:T | f, z_1:T)] = sum_t log p(x_t | f, z_t): one site over all frames
            # because the decoder (and its BatchNorm) runs on every frame of the batch at once
            return pyro.sample("x", self.likelihood(f, torch.stack(zs, dim=1)), obs=x)
