"""The model's priors: p(f) (`StaticPrior`) and p(z_1:T), each step of the latter a function
(z_prev, state) -> (p(z_t | z_<t), state).

p(f) is N(0, I) and p(z_t | z_<t) a diagonal Gaussian (Li & Mandt); with `components` K > 1 either
is a mixture of K diagonal Gaussians. Where the clips' posteriors sit in separate clusters (on
real Sprites, z_1:T: one per motion and phase), one Gaussian that covers them all puts much of its
mass between them, where the decoder has never been trained; a mixture can put it on them.
"""

from __future__ import annotations

import pyro.distributions as dist
import torch
from torch import nn

from .nets import GaussianHead


class MixtureHead(nn.Module):
    """h -> sum_k pi_k(h) N(mu_k(h), diag sigma_k(h)^2), a distribution over vectors of d_out."""

    def __init__(self, d_in: int, d_out: int, components: int):
        super().__init__()
        self.components, self.d_out = components, d_out
        self.logits = nn.Linear(d_in, components)
        self.loc = nn.Linear(d_in, components * d_out)
        self.logvar = nn.Linear(d_in, components * d_out)
        with torch.no_grad():  # components that start apart, so that they can part
            self.loc.bias.normal_()

    def forward(self, h: torch.Tensor) -> dist.Distribution:
        shape = (*h.shape[:-1], self.components, self.d_out)
        parts = dist.Normal(self.loc(h).reshape(shape),
                            torch.exp(0.5 * self.logvar(h)).reshape(shape)).to_event(1)
        return dist.MixtureSameFamily(dist.Categorical(logits=self.logits(h)), parts)


class StaticPrior(nn.Module):
    """p(f): N(0, I) (Li & Mandt; no parameters), or with `components` K > 1 the mixture
    sum_k pi_k N(mu_k, diag sigma_k^2) with learned weights, means and scales."""

    def __init__(self, dim: int, components: int = 1):
        super().__init__()
        self.dim, self.components = dim, components
        if components > 1:
            self.logits = nn.Parameter(torch.zeros(components))
            self.loc = nn.Parameter(torch.randn(components, dim))
            self.log_scale = nn.Parameter(torch.zeros(components, dim))

    @torch.no_grad()
    def start_at(self, points: torch.Tensor, seed: int = 0) -> None:
        """Components centred on `components` distinct rows of points (N, dim) (draws of q),
        each as wide as the points' spread over e, with equal weights: gradient fits started
        from N(0, I) leave one component straddling several clusters."""
        g = torch.Generator().manual_seed(seed)
        pick = torch.randperm(len(points), generator=g)[:self.components].to(points.device)
        self.loc.copy_(points[pick])
        self.log_scale.copy_(points.std(0).clamp_min(1e-3).log().expand_as(self.log_scale) - 1)
        self.logits.zero_()

    def forward(self, like: torch.Tensor) -> dist.Distribution:
        """p(f), one event of `dim` (batch shape ()), on the device and dtype of `like`."""
        if self.components == 1:
            return dist.Normal(like.new_zeros(self.dim), 1.0).to_event(1)
        parts = dist.Normal(self.loc, self.log_scale.exp()).to_event(1)
        return dist.MixtureSameFamily(dist.Categorical(logits=self.logits), parts)

    def log_prob(self, f: torch.Tensor) -> torch.Tensor:
        """log p(f) of vectors f (B, dim), per vector (B)."""
        return self(f).log_prob(f)


class LSTMPrior(nn.Module):
    """p(z_t | z_<t) = N(mu(h_t), sigma(h_t)), h_t = LSTMCell(z_{t-1}, h_{t-1}) (Li & Mandt), or
    a mixture of `components` such Gaussians.

    z_0 and the initial state are zeros. The caller feeds back whatever z was sampled at the previous
    site: under SVI that is the guide's sample, which is what the ELBO's KL terms need.
    """

    def __init__(self, z_dim: int, hidden: int, components: int = 1):
        super().__init__()
        self.z_dim, self.hidden, self.components = z_dim, hidden, components
        self.cell = nn.LSTMCell(z_dim, hidden)
        self.head = GaussianHead(hidden, z_dim) if components == 1 else MixtureHead(
            hidden, z_dim, components)

    def initial(self, batch_size: int, like: torch.Tensor):
        """z_0 and the LSTM state before the first frame."""
        zeros = like.new_zeros(batch_size, self.hidden)
        return like.new_zeros(batch_size, self.z_dim), (zeros, zeros)

    def density(self, h: torch.Tensor) -> dist.Distribution:
        """p(z_t | z_<t) from the recurrent output h_t."""
        if self.components > 1:
            return self.head(h)
        return dist.Normal(*self.head(h)).to_event(1)

    def step(self, z_prev: torch.Tensor, state):
        h, c = self.cell(z_prev, state)
        return self.density(h), (h, c)

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log p(z_1:T) = sum_t log p(z_t | z_<t) of sequences z (B, T, Z), per sequence (B)."""
        z_prev, state = self.initial(z.shape[0], z)
        total = z.new_zeros(z.shape[0])
        for t in range(z.shape[1]):
            p_t, state = self.step(z_prev, state)
            z_prev = z[:, t]
            total = total + p_t.log_prob(z_prev)
        return total


class RemixedLSTMPrior(LSTMPrior):
    """Yingzhen Li's more stable prior ("improved"): the LSTM state is remixed with z before each
    step.

        c_hat = tanh(MLP1[z_t, c_t])   phi = tanh(MLP2 z_t)   h_hat = tanh(MLP3[z_t, h_t])
        h_{t+1}, c_{t+1} = LSTMCell(phi, (h_hat, c_hat))
        mu, log sigma = MLP4(h_{t+1}) with layers [dimH, dimH (tanh), 2 dimZ (linear)]
    """

    def __init__(self, z_dim: int, hidden: int, components: int = 1):
        super().__init__(z_dim, hidden, components)
        self.mlp_c = nn.Linear(z_dim + hidden, hidden)
        self.mlp_phi = nn.Linear(z_dim, hidden)
        self.mlp_h = nn.Linear(z_dim + hidden, hidden)
        self.cell = nn.LSTMCell(hidden, hidden)
        last = (_LocLogScale(hidden, z_dim) if components == 1
                else MixtureHead(hidden, z_dim, components))
        self.head = nn.Sequential(nn.Linear(hidden, hidden), nn.Tanh(), last)

    def step(self, z_prev: torch.Tensor, state):
        h, c = state
        c_hat = torch.tanh(self.mlp_c(torch.cat([z_prev, c], -1)))
        h_hat = torch.tanh(self.mlp_h(torch.cat([z_prev, h], -1)))
        h, c = self.cell(torch.tanh(self.mlp_phi(z_prev)), (h_hat, c_hat))
        return self.density(h), (h, c)


class _LocLogScale(nn.Linear):
    """MLP4's linear layer: [mu, log sigma] -> (mu, sigma)."""

    def __init__(self, d_in: int, d_out: int):
        super().__init__(d_in, 2 * d_out)

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        loc, log_scale = super().forward(h).chunk(2, dim=-1)
        return loc, log_scale.exp()


PRIORS = {"lstm": LSTMPrior, "improved": RemixedLSTMPrior}


def make_prior(name: str, z_dim: int, hidden: int, components: int = 1) -> nn.Module:
    if name not in PRIORS:
        raise ValueError(f"unknown prior {name!r}; choose one of {sorted(PRIORS)}")
    return PRIORS[name](z_dim, hidden, components)
