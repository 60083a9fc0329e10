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


class RemixedLSTMPrior(LSTMPrior):
    """Yingzhen Li's more stable prior ("improved"): the LSTM state is remixed with z before each
    step.

        c_hat = tanh(MLP1[z_t, c_t])   phi = tanh(MLP2 z_t)   h_hat = tanh(MLP3[z_t, h_t])
        h_{t+1}, c_{t+1} = LSTMCell(phi, (h_hat, c_hat))
        mu, log sigma = MLP4(h_{t+1}) with layers [dimH, dimH (tanh), 2 dimZ (linear)]
    """

    def __init__(self, z_dim: int, hidden: int):
        super().__init__(z_dim, hidden)
        self.mlp_c = nn.Linear(z_dim + hidden, hidden)
        self.mlp_phi = nn.Linear(z_dim, hidden)
        self.mlp_h = nn.Linear(z_dim + hidden, hidden)
        self.cell = nn.LSTMCell(hidden, hidden)
        self.head = nn.Sequential(nn.Linear(hidden, hidden), nn.Tanh(), nn.Linear(hidden, 2 * z_dim))

    def step(self, z_prev: torch.Tensor, state):
        h, c = state
        c_hat = torch.tanh(self.mlp_c(torch.cat([z_prev, c], -1)))
        h_hat = torch.tanh(self.mlp_h(torch.cat([z_prev, h], -1)))
        h, c = self.cell(torch.tanh(self.mlp_phi(z_prev)), (h_hat, c_hat))
        loc, log_scale = self.head(h).chunk(2, dim=-1)
        return loc, log_scale.exp(), (h, c)


PRIORS = {"lstm": LSTMPrior, "improved": RemixedLSTMPrior}


def make_prior(name: str, z_dim: int, hidden: int) -> nn.Module:
    if name not in PRIORS:
        raise ValueError(f"unknown prior {name!r}; choose one of {sorted(PRIORS)}")
    return PRIORS[name](z_dim, hidden)
