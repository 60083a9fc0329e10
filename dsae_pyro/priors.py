"""Priors over the dynamics z_1:T, each a step function (z_prev, state) -> (loc, scale, state)."""

from __future__ import annotations

import torch
from torch import nn

from .nets import GaussianHead


class LSTMPrior(nn.Module):
    """p(z_t | z_<t) = N(mu(h_t), sigma(h_t)), h_t = LSTMCell(z_{t-1}, h_{t-1}) (Li & Mandt).

    z_0 and the initial state are zeros. The caller feeds back whatever z was sampled at the previous
    site: under SVI that is the guide's sample, which is what the ELBO's KL terms need.
    """

    def __init__(self, z_dim: int, hidden: int):
        super().__init__()
        self.z_dim, self.hidden = z_dim, hidden
        self.cell = nn.LSTMCell(z_dim, hidden)
        self.head = GaussianHead(hidden, z_dim)

    def initial(self, batch_size: int, like: torch.Tensor):
        """z_0 and the LSTM state before the first frame."""
        zeros = like.new_zeros(batch_size, self.hidden)
        return like.new_zeros(batch_size, self.z_dim), (zeros, zeros)

    def step(self, z_prev: torch.Tensor, state):
        h, c = self.cell(z_prev, state)
        loc, scale = self.head(h)
        return loc, scale, (h, c)


def make_prior(name: str, z_dim: int, hidden: int) -> nn.Module:
    priors = {"lstm": LSTMPrior}
    if name not in priors:
        raise ValueError(f"unknown prior {name!r}; choose one of {sorted(priors)}")
    return priors[name](z_dim, hidden)
