"""Bounds on log p(x) for any Pyro model/guide pair whose sites sit in one batch plate.

    log w_k = log p(x, latents_k) - log q(latents_k | x),   latents_k ~ q(. | x)
    ELBO    = E_q[log w]                       (what SVI with Trace_ELBO maximises)
    IWAE_K  = E[log (1/K) sum_k w_k] >= ELBO   (Burda et al. 2016), tighter as K grows
"""

from __future__ import annotations

import math

import torch
from pyro import poutine
from pyro.poutine.util import site_is_subsample


def _per_item_log_prob(trace, batch: int) -> torch.Tensor:
    """Sum of log-densities of every sample site, kept per batch element (B,)."""
    total = 0.0
    for site in trace.nodes.values():
        if site["type"] == "sample" and not site_is_subsample(site):
            lp = site["fn"].log_prob(site["value"])
            total = total + lp.reshape(batch, -1).sum(-1)
    return total


@torch.no_grad()
def log_weights(model, guide, x: torch.Tensor, num_samples: int, **kwargs) -> torch.Tensor:
    """log w of `num_samples` guide draws per clip, shape (num_samples, B); the model is replayed
    against each guide trace, as Trace_ELBO does, with no KL weight (the true joint)."""
    rows = []
    for _ in range(num_samples):
        g = poutine.trace(guide).get_trace(x, **kwargs)
        m = poutine.trace(poutine.replay(model, trace=g)).get_trace(x, **kwargs)
        rows.append(_per_item_log_prob(m, len(x)) - _per_item_log_prob(g, len(x)))
    return torch.stack(rows)


def importance_bound(model, guide, x: torch.Tensor, num_samples: int = 16, **kwargs
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """(IWAE_K, ELBO) per clip, both estimated from the same K draws."""
    lw = log_weights(model, guide, x, num_samples, **kwargs)
    return torch.logsumexp(lw, 0) - math.log(num_samples), lw.mean(0)
