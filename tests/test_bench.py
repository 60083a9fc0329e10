import pyro
import pytest
import torch
from conftest import tiny_config
from pyro.infer import Trace_ELBO

from dsae_pyro.bench import fresh, manual_loss, side_by_side, step_variants


@pytest.mark.parametrize("guide", ["factorized", "full", "causal"])
def test_hand_written_loss_equals_trace_elbo(guide):
    """The benchmark's baseline computes the very same ELBO as Pyro, draw for draw."""
    cfg = tiny_config(guide=guide, prior="improved" if guide == "causal" else "lstm")
    model, g = fresh(cfg, torch.device("cpu"))
    model.eval()
    g.eval()
    x = torch.rand(2, 8, 3, 64, 64)
    pyro.set_rng_seed(4)
    want = Trace_ELBO().loss(model.model, g, x, kl_weight=0.5)
    pyro.set_rng_seed(4)
    got = manual_loss(model, g, x, kl_weight=0.5)
    assert got.item() == pytest.approx(want, rel=1e-5)


def test_every_step_variant_trains_the_same_networks():
    cfg = tiny_config()
    x = torch.rand(2, 8, 3, 64, 64)
    variants = step_variants(cfg, torch.device("cpu"), x)
    losses = {k: float(fn()) for k, fn in variants.items()}
    # same initial weights, one step each: all first losses are draws of one ELBO, same scale
    first = list(losses.values())
    assert max(first) / min(first) < 1.5
    times = side_by_side(variants, repeats=2, device=torch.device("cpu"), warmup=0)
    assert set(times) == set(variants) and all(t > 0 for t in times.values())
