import math

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
from conftest import tiny_config
from pyro.infer import Trace_ELBO

from dsae_pyro.guides import make_guide
from dsae_pyro.metrics.bounds import importance_bound, log_weights
from dsae_pyro.metrics.similarity import RELATIONS, cosine_table
from dsae_pyro.model import DSAE


def toy_model(x):  # z ~ N(0, 1), x | z ~ N(z, 1): p(x) = N(0, 2), p(z | x) = N(x/2, 1/2)
    with pyro.plate("batch", len(x)):
        z = pyro.sample("z", dist.Normal(0.0, 1.0))
        pyro.sample("x", dist.Normal(z, 1.0), obs=x)


def toy_guide(x):  # right mean, variance 1 instead of 1/2
    with pyro.plate("batch", len(x)):
        pyro.sample("z", dist.Normal(x / 2, 1.0))


def test_bounds_on_a_model_with_a_known_evidence():
    x = torch.tensor([-1.5, 0.0, 2.0])
    log_px = dist.Normal(0.0, math.sqrt(2)).log_prob(x)
    kl = 0.5 * (1 / 0.5 - 1 + math.log(0.5))  # KL(N(m, 1) || N(m, 1/2)) by hand = 0.1534
    pyro.set_rng_seed(0)
    lw = log_weights(toy_model, toy_guide, x, 20000)
    assert lw.mean(0) == pytest.approx(log_px - kl, abs=0.02)  # ELBO = log p(x) - KL(q || p)
    pyro.set_rng_seed(1)
    iwae, elbo = importance_bound(toy_model, toy_guide, x, num_samples=5000)
    assert iwae == pytest.approx(log_px, abs=0.01)  # IWAE_K -> log p(x) as K grows
    assert (elbo < iwae).all()


def test_log_weights_equal_trace_elbo_on_the_dsae():
    """log w of one draw per clip is minus Trace_ELBO's one-particle loss on the same draw."""
    cfg = tiny_config(guide="causal", prior="improved")
    torch.manual_seed(0)
    model, guide = DSAE(cfg.model).eval(), make_guide(cfg.model).eval()
    x = torch.rand(1, 8, 3, 64, 64)
    pyro.set_rng_seed(3)
    lw = log_weights(model.model, guide, x, 3)[:, 0]
    pyro.set_rng_seed(3)
    losses = torch.tensor([Trace_ELBO().loss(model.model, guide, x) for _ in range(3)])
    assert lw.double() == pytest.approx(-losses.double(), rel=1e-5)
    assert len(set(losses.tolist())) == 3  # three different draws


def test_cosine_table_on_constructed_latents():
    # 4 characters x 3 motions; f encodes the character and z the motion along orthogonal axes,
    # rotated by a random orthogonal matrix so no coordinate is special
    character = np.repeat(np.arange(4), 3)
    motion = np.tile(np.arange(3), 4)
    q = torch.linalg.qr(torch.randn(8, 8, generator=torch.Generator().manual_seed(0)))[0]
    f = torch.eye(8)[character] @ q
    z = (torch.eye(8)[motion] @ q).unsqueeze(1).expand(-1, 5, -1)  # the same z_t every frame
    table = cosine_table(f, z, character, motion)
    assert list(table) == list(RELATIONS[:3])  # no two distinct clips share both here
    same_app, same_mot, neither = (table[k] for k in RELATIONS[:3])
    assert same_app["pairs"] == 4 * 3 and same_mot["pairs"] == 3 * 6 and neither["pairs"] == 36
    zero = pytest.approx(0, abs=1e-6)
    assert same_app["f"]["mean"] == pytest.approx(1) and same_app["z"]["mean"] == zero
    assert same_mot["f"]["mean"] == zero and same_mot["z"]["mean"] == pytest.approx(1)
    assert neither["f"]["mean"] == zero and neither["z"]["std"] == zero
    # entangled: f also carries motion -> cos(f) for same-motion pairs rises to 1/2
    f2 = torch.eye(8)[character] + torch.eye(8)[4 + motion]
    assert cosine_table(f2, z, character, motion)[RELATIONS[1]]["f"]["mean"] == pytest.approx(0.5)
