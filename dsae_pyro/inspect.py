"""Looking inside a trained posterior with poutine: encode clips, decode swapped latents."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from pyro import poutine
from pyro.poutine.messenger import Messenger
from pyro.poutine.subsample_messenger import _Subsample

from .model import z_site


class use_mean(Messenger):  # noqa: N801 - a handler, used like poutine's
    """Replace every latent sample by its distribution's mean (downstream sites see the mean)."""

    def _pyro_sample(self, msg):
        if not msg["is_observed"] and not isinstance(msg["fn"], _Subsample):  # not plates
            msg["value"] = msg["fn"].mean
            msg["done"] = True


@dataclass
class Posterior:
    """Posterior values of one batch: f (B, F) and z (B, T, Z), with their scales."""

    f: torch.Tensor
    z: torch.Tensor
    f_scale: torch.Tensor
    z_scale: torch.Tensor


@torch.no_grad()
def encode(guide, x: torch.Tensor, mean: bool = True) -> Posterior:
    """Trace the guide on clips x; mean=True takes posterior means at every site, else samples."""
    fn = use_mean()(guide) if mean else guide
    tr = poutine.trace(fn).get_trace(x)
    frames = x.shape[1]
    z_nodes = [tr.nodes[z_site(t)] for t in range(1, frames + 1)]
    return Posterior(
        f=tr.nodes["f"]["value"], z=torch.stack([n["value"] for n in z_nodes], 1),
        f_scale=tr.nodes["f"]["fn"].base_dist.scale,
        z_scale=torch.stack([n["fn"].base_dist.scale for n in z_nodes], 1))
