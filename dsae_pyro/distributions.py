"""Pixel distributions beyond torch's: each pixel a mixture over a table of colours."""

from __future__ import annotations

import math

import pyro.distributions as dist
import torch
from torch.distributions import constraints


def mix_colours(logits: torch.Tensor, colours: torch.Tensor) -> torch.Tensor:
    """Frames (B, T, C, H, W) whose every pixel is the softmax(logits)-weighted mean of the K
    colours, for logits (B, T, K, H, W) and colours (B, K, C)."""
    return torch.einsum("btkhw,bkc->btchw", torch.softmax(logits, dim=2), colours)


class PaletteMixture(dist.TorchDistribution):
    """Frames (B, T, C, H, W) whose pixels are independent mixtures over K colours:
    p(x_t[:, i, j]) = sum_k w_k[t, i, j] N(x_t[:, i, j]; c_k, scale^2 I_C).

    `logits` (B, T, K, H, W) are the unnormalised log-weights w, `colours` (B, K, C) the table in
    [0, 1]. Unlike a Gaussian around the mixed colour sum_k w_k c_k, a pixel held by two colours
    is not scored at their average: with a small scale the likelihood rewards weight on the exact
    colour, which suits palette-quantised frames such as the Sprites'. Batch shape (B,), event
    shape (T, C, H, W)."""

    arg_constraints = {"logits": constraints.real, "colours": constraints.unit_interval,
                       "scale": constraints.positive}
    support = constraints.real

    def __init__(self, logits: torch.Tensor, colours: torch.Tensor, scale: float | torch.Tensor,
                 validate_args=None):
        b, t, k, h, w = logits.shape
        if colours.shape[:2] != (b, k):
            raise ValueError(f"colours {tuple(colours.shape)} must be (B, K, C) = ({b}, {k}, C) "
                             f"for logits {tuple(logits.shape)}")
        self.logits, self.colours = logits, colours
        self.scale = torch.as_tensor(scale, dtype=logits.dtype, device=logits.device)
        event = (t, colours.shape[2], h, w)
        super().__init__(torch.Size((b,)), torch.Size(event), validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        batch_shape = torch.Size(batch_shape)
        if batch_shape == self.batch_shape:  # what a plate over the batch asks: nothing to do
            return self
        if len(batch_shape) != 1:
            return super().expand(batch_shape, _instance)
        return PaletteMixture(self.logits.expand(batch_shape + self.logits.shape[1:]),
                              self.colours.expand(batch_shape + self.colours.shape[1:]), self.scale)

    def component_log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log w_k + log N(x_pixel; c_k, scale^2 I) for every pixel and colour: (B, T, K, H, W)."""
        # |x - c_k|^2 = |x|^2 - 2 x.c_k + |c_k|^2, without a (B, T, K, C, H, W) tensor
        sq = (x.square().sum(2, keepdim=True)
              - 2 * torch.einsum("btchw,bkc->btkhw", x, self.colours)
              + self.colours.square().sum(2)[:, None, :, None, None]).clamp_min(0)
        c = self.colours.shape[2]
        log_norm = -0.5 * sq / self.scale**2 - c * (torch.log(self.scale) + 0.5 * math.log(2 * math.pi))
        return torch.log_softmax(self.logits, dim=2) + log_norm

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        return torch.logsumexp(self.component_log_prob(x), dim=2).sum((1, 2, 3))

    @property
    def mean(self) -> torch.Tensor:
        return mix_colours(self.logits, self.colours)

    @property
    def mode(self) -> torch.Tensor:
        """Each pixel drawn in its likeliest colour (the mixture's mode while the colours are
        further apart than a few scales)."""
        return self._colours_at(self.logits.argmax(2))

    def sample(self, sample_shape=()) -> torch.Tensor:
        if sample_shape:
            raise NotImplementedError("PaletteMixture draws one sample per call")
        with torch.no_grad():
            k = dist.Categorical(logits=self.logits.movedim(2, -1)).sample()  # (B, T, H, W)
            x = self._colours_at(k)
            return x + self.scale * torch.randn_like(x)

    def _colours_at(self, k: torch.Tensor) -> torch.Tensor:
        """The colours of slots k (B, T, H, W) as frames (B, T, C, H, W)."""
        b = torch.arange(k.shape[0], device=k.device)[:, None, None, None]
        return self.colours[b, k].movedim(-1, 2)
