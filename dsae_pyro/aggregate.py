"""The aggregate posterior q(v) = 1/N sum_n q(v | x_n), estimated from one batch (Chen et al.,
NeurIPS 2018): the estimator behind the DSAE's I(f; z_1:T) penalty and the beta-TCVAE's total
correlation.

For B samples v_i ~ q(v | x_i) of a batch drawn from N data points, log q(v_i) is a weighted
log-sum-exp over the batch's B posteriors q(v_i | x_j):
- minibatch-weighted sampling ("mws"): every weight 1 / B, the batch's posteriors standing in for
  the dataset's (Chen et al. write 1 / (N B), which shifts log q by the constant log N and changes
  no gradient; without it the estimate keeps its scale);
- stratified ("mss", the default): the point's own posterior 1 / N, each of the B - 1 others
  (N - 1) / (N (B - 1)), so that the sum inside the log is an unbiased estimate of q(v_i) (the
  others are a uniform draw from the remaining N - 1 points); the spirit of Chen et al.'s
  minibatch-stratified sampling.
"""

from __future__ import annotations

import math

import torch
from torch.distributions import Normal

SAMPLINGS = ("mss", "mws")


def log_q_aggregate(value: torch.Tensor, loc: torch.Tensor, scale: torch.Tensor,
                    dataset_size: int, per_dim: bool = False, sampling: str = "mss"
                    ) -> torch.Tensor:
    """log q(v_i) for each of B samples v_i (B, D) with v_i ~ q(v | x_i), from the batch's diagonal
    Gaussian posteriors (loc, scale (B, D)): shape (B,), or (B, D) with `per_dim` (the marginal of
    each coordinate, log q(v_id))."""
    if sampling not in SAMPLINGS:
        raise ValueError(f"sampling must be one of {SAMPLINGS}, got {sampling!r}")
    b, n = len(value), max(dataset_size, len(value))
    log_q = Normal(loc.unsqueeze(0), scale.unsqueeze(0)).log_prob(value.unsqueeze(1))  # (B, B, D)
    if sampling == "mws":
        log_w = torch.full((b, b), -math.log(b), device=value.device)
    else:
        own = torch.eye(b, dtype=torch.bool, device=value.device)
        others = math.log(n - 1) - math.log(n * (b - 1)) if b > 1 else -math.inf
        log_w = torch.where(own, -math.log(n), others)
    if per_dim:
        return torch.logsumexp(log_q + log_w.unsqueeze(-1), dim=1)
    return torch.logsumexp(log_q.sum(-1) + log_w, dim=1)


def mws_mutual_information(f: torch.Tensor, f_loc: torch.Tensor, f_scale: torch.Tensor,
                           z: torch.Tensor, z_loc: torch.Tensor, z_scale: torch.Tensor,
                           dataset_size: int) -> torch.Tensor:
    """I(f; z) under the aggregate posterior, E[log q(f, z) - log q(f) - log q(z)], from one sample
    (f_i, z_i) ~ q(. | x_i) per data point and the batch's posteriors q(f | x_j) q(z | x_j)
    (Gaussian, diagonal, each flattened to (B, D))."""
    joint = log_q_aggregate(torch.cat([f, z], -1), torch.cat([f_loc, z_loc], -1),
                            torch.cat([f_scale, z_scale], -1), dataset_size)
    return (joint - log_q_aggregate(f, f_loc, f_scale, dataset_size)
            - log_q_aggregate(z, z_loc, z_scale, dataset_size)).mean()


def total_correlation(z: torch.Tensor, loc: torch.Tensor, scale: torch.Tensor, dataset_size: int,
                      sampling: str = "mss") -> torch.Tensor:
    """TC(z) = KL(q(z) || prod_d q(z_d)) = E[log q(z) - sum_d log q(z_d)] under the aggregate
    posterior, from one sample z_i ~ q(z | x_i) (B, D) per data point."""
    joint = log_q_aggregate(z, loc, scale, dataset_size, sampling=sampling)
    marginals = log_q_aggregate(z, loc, scale, dataset_size, per_dim=True, sampling=sampling)
    return (joint - marginals.sum(-1)).mean()
