"""beta-TCVAE and FactorVAE: the total-correlation estimators against closed forms on Gaussians,
each objective equal to the ELBO at its neutral weight, and DCI/SAP on representations with known
answers."""

import math

import numpy as np
import pyro
import pytest
import torch
from pyro.infer import TraceMeanField_ELBO

from dsae_pyro.aggregate import total_correlation
from dsae_pyro.betavae.config import BetaModelConfig
from dsae_pyro.betavae.model import BetaVAE
from dsae_pyro.betavae.objectives import Discriminator, FactorVAELoss, TCLoss, permute_dims
from dsae_pyro.metrics.disentanglement import dci, sap


def gaussian_tc(cov: torch.Tensor) -> float:
    """TC of N(0, cov): 0.5 (sum_d log cov_dd - log det cov)."""
    return 0.5 * float(torch.log(torch.diagonal(cov)).sum() - torch.logdet(cov))


def aggregate_of(cov_mu: torch.Tensor, s: float, n: int, seed: int = 0):
    """n posteriors N(mu_i, s^2 I) with mu ~ N(0, cov_mu): their aggregate tends to
    N(0, cov_mu + s^2 I); one sample z_i from each."""
    g = torch.Generator().manual_seed(seed)
    chol = torch.linalg.cholesky(cov_mu)
    mu = torch.randn(n, len(cov_mu), generator=g, dtype=torch.float64) @ chol.T
    scale = torch.full_like(mu, s)
    z = mu + s * torch.randn(mu.shape, generator=g, dtype=torch.float64)
    return z, mu, scale


@pytest.mark.parametrize("sampling", ["mss", "mws"])
@pytest.mark.parametrize("rho", [0.0, 0.8])
def test_tc_estimate_matches_the_gaussian_closed_form(rho, sampling):
    cov_mu = torch.tensor([[1.0, rho], [rho, 1.0]], dtype=torch.float64)
    s = 0.3
    truth = gaussian_tc(cov_mu + s**2 * torch.eye(2, dtype=torch.float64))
    z, mu, scale = aggregate_of(cov_mu, s, 3000)
    est = float(total_correlation(z, mu, scale, dataset_size=3000, sampling=sampling))
    assert abs(est - truth) < 0.06, (est, truth)


def test_the_discriminator_reads_a_known_tc():
    """Kim & Mnih's density-ratio trick: a classifier of q(z) against its dimension-permuted copy
    gives E[logit_real - logit_permuted] = TC once trained."""
    torch.manual_seed(0)
    rho = 0.8
    truth = -0.5 * math.log(1 - rho**2)  # 0.51 nats
    chol = torch.linalg.cholesky(torch.tensor([[1.0, rho], [rho, 1.0]]))
    disc = Discriminator(2, hidden=64, layers=2)
    optim = torch.optim.Adam(disc.parameters(), lr=3e-3)
    for _ in range(600):
        z = torch.randn(512, 2) @ chol.T
        logits = disc(torch.cat([z, permute_dims(z)]))
        labels = torch.cat([torch.zeros(512), torch.ones(512)]).long()
        loss = torch.nn.functional.cross_entropy(logits, labels)
        optim.zero_grad()
        loss.backward()
        optim.step()
    with torch.no_grad():
        logits = disc(torch.randn(20_000, 2) @ chol.T)
        est = float((logits[:, 0] - logits[:, 1]).mean())
    assert abs(est - truth) < 0.12, (est, truth)


def test_permute_dims_keeps_each_column_and_breaks_the_rows():
    z = torch.arange(40.0).reshape(20, 2)
    p = permute_dims(z, torch.Generator().manual_seed(0))
    for d in range(2):
        assert sorted(p[:, d].tolist()) == z[:, d].tolist()
    assert not torch.equal(p, z)


def _elbo_and(loss_fn, seed=0):
    pyro.set_rng_seed(seed)
    vae = BetaVAE(BetaModelConfig(arch="mlp", latents=3)).double()
    x = torch.bernoulli(torch.full((8, 1, 64, 64), 0.3, dtype=torch.float64),
                        generator=torch.Generator().manual_seed(1))
    pyro.set_rng_seed(seed)
    ref = TraceMeanField_ELBO().differentiable_loss(vae.model, vae.guide, x)  # analytic KL, like the losses
    ref_grads = torch.autograd.grad(ref, list(vae.parameters()))
    pyro.set_rng_seed(seed)
    val = loss_fn(vae.model, vae.guide, x)
    grads = torch.autograd.grad(val, list(vae.parameters()))
    return ref, ref_grads, val, grads


@pytest.mark.parametrize("loss", [lambda: TCLoss(beta=1.0, dataset_size=1000),
                                  lambda: FactorVAELoss(gamma=0.0, latents=3)],
                         ids=["tc at beta 1", "factorvae at gamma 0"])
def test_each_objective_is_the_elbo_at_its_neutral_weight(loss):
    ref, ref_grads, val, grads = _elbo_and(loss())
    assert torch.allclose(val, ref, rtol=1e-5)
    for a, b in zip(ref_grads, grads, strict=True):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-6)


def test_the_tc_term_changes_the_loss_by_beta_minus_one_times_tc():
    loss = TCLoss(beta=5.0, dataset_size=1000)
    ref, _, val, _ = _elbo_and(loss)
    assert float((val - ref).detach()) == pytest.approx(4.0 * loss.terms["tc"] * 8, rel=1e-6, abs=1e-6)


@pytest.mark.parametrize("make", [lambda w: TCLoss(beta=5.0, dataset_size=1000, warmup=w),
                                  lambda w: FactorVAELoss(gamma=4.0, latents=3, warmup=w)],
                         ids=["tc", "factorvae"])
def test_the_tc_warmup_starts_at_the_elbo_and_reaches_the_full_weight(make):
    loss = make(100)
    ref, _, val, _ = _elbo_and(loss)  # step 0: weight 0, the plain ELBO
    assert loss.weight == 0.0 and torch.allclose(val, ref, rtol=1e-6)
    loss.step = 25
    assert loss.weight == pytest.approx(0.25 * make(0).weight)
    for step in (100, 5000):  # from the end of the warm-up on, the same as no warm-up
        loss.step = step
        assert loss.weight == make(0).weight == 4.0


def _factors(n=6000, seed=0):
    rng = np.random.RandomState(seed)
    return rng, np.stack([rng.randint(3, size=n), rng.randint(6, size=n), rng.randint(8, size=n)], 1)


def test_dci_and_sap_score_the_true_factors_high_noise_low_and_a_rotation_lower():
    rng, factors = _factors()
    true = factors + 0.1 * rng.randn(*factors.shape)
    noise = rng.randn(*factors.shape)
    t = np.pi / 4
    rotation = np.array([[np.cos(t), -np.sin(t), 0], [np.sin(t), np.cos(t), 0], [0, 0, 1]])
    rotated = (factors / factors.std(0)) @ rotation.T + 0.05 * rng.randn(*factors.shape)
    scores = {name: (dci(r, factors, num_train=1500, num_test=800),
                     sap(r, factors, num_train=1500, num_test=800))
              for name, r in (("true", true), ("noise", noise), ("rotated", rotated))}
    d_true, s_true = scores["true"]
    d_noise, s_noise = scores["noise"]
    d_rot, s_rot = scores["rotated"]
    assert d_true["disentanglement"] > 0.95 and d_true["completeness"] > 0.95
    assert d_true["informativeness_test"] > 0.95
    assert d_noise["disentanglement"] < 0.1 and d_noise["informativeness_test"] < 0.5
    assert d_rot["disentanglement"] < 0.8 * d_true["disentanglement"]
    assert d_rot["completeness"] < 0.8 * d_true["completeness"]
    assert s_true["sap"] > 0.3 and s_noise["sap"] < 0.05 and s_rot["sap"] < 0.5 * s_true["sap"]
