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


@pytest.mark.parametrize("guide", ["factorized", "causal"])
def test_one_sync_elbo_has_trace_elbos_value_and_gradients(guide):
    """The sync-free ELBO of the GPU bench is Pyro's Trace_ELBO, value and gradients."""
    from dsae_pyro.bench import OneSyncTrace_ELBO

    cfg = tiny_config(guide=guide, prior="improved" if guide == "causal" else "lstm")
    model, g = fresh(cfg, torch.device("cpu"))
    x = torch.rand(2, 8, 3, 64, 64)
    params = [*model.parameters(), *g.parameters()]
    out = {}
    for cls in (Trace_ELBO, OneSyncTrace_ELBO):
        pyro.clear_param_store()
        pyro.set_rng_seed(7)
        for p in params:
            p.grad = None
        loss = cls().loss_and_grads(model.model, g, x, kl_weight=0.5)
        out[cls] = float(loss), [p.grad.clone() for p in params]
    (want, want_grads), (got, got_grads) = out[Trace_ELBO], out[OneSyncTrace_ELBO]
    assert got == pytest.approx(want, rel=1e-6)
    assert all(torch.allclose(a, b, rtol=1e-5, atol=1e-6) for a, b in
               zip(want_grads, got_grads, strict=True))
    assert any(a.abs().sum() > 0 for a in got_grads)


def test_one_sync_elbo_refuses_score_function_sites():
    import pyro.distributions as dist

    from dsae_pyro.bench import OneSyncTrace_ELBO

    def model():
        pyro.sample("c", dist.Bernoulli(0.5))

    def guide():
        pyro.sample("c", dist.Bernoulli(torch.tensor(0.3, requires_grad=True)))

    with pytest.raises(ValueError, match="'c' is not reparameterized"):
        OneSyncTrace_ELBO().loss_and_grads(model, guide)


def test_objective_bench_times_the_elbo_the_contrastive_objective_and_its_swap_term(monkeypatch):
    """`dsae bench --objectives`: each row's step runs the loss it names."""
    from dsae_pyro import bench
    from dsae_pyro.objectives import ContrastiveLoss

    cfg = tiny_config(f_encoder="palette", z_encoder="silhouette")
    cfg.train.objective = "contrastive"
    losses = []
    real_step = bench._svi_step

    def spy(svi, x, validate=False):
        losses.append(getattr(svi.loss, "__self__", svi.loss))  # SVI keeps an ELBO's bound .loss
        return real_step(svi, x, validate)

    x = (torch.rand(2, 8, 3, 64, 64) * 4).round() / 4  # few colours, like sprite clips
    monkeypatch.setattr(bench, "_svi_step", spy)
    t = bench.bench_objectives(cfg, torch.device("cpu"), x, repeats=1)
    assert list(t) == ["ELBO (Trace_ELBO)", "contrastive (InfoNCE f, z; I(f; z))",
                       "contrastive + swap term (weight 10)"] and min(t.values()) > 0
    elbo, contrastive, swap = losses[:3]
    assert isinstance(elbo, Trace_ELBO)
    assert isinstance(contrastive, ContrastiveLoss) and contrastive.swap_weight == 0
    assert isinstance(swap, ContrastiveLoss) and swap.swap_weight == 10


def test_refine_bench_times_each_step_with_the_head_it_names(monkeypatch):
    """`dsae bench --refine`: each width's training and refit steps run a decoder with a head of
    that width (none for 0), the refit with the preset's read-back term."""
    from conftest import tiny_split

    from dsae_pyro import bench, prior_fit

    cfg = tiny_config()
    cfg.train.refit_decoder_readback = 1.0
    widths, real_fit = [], prior_fit.fit_decoder

    def spy(model, *args, **kwargs):
        refine = model.decoder.refine
        widths.append((refine.out.in_channels if refine else 0, kwargs["readback"]))
        return real_fit(model, *args, **kwargs)

    monkeypatch.setattr(prior_fit, "fit_decoder", spy)
    t = bench.bench_refine(cfg, torch.device("cpu"), tiny_split([0, 1]).subset(slice(0, 3)), [2],
                           repeats=1)
    assert list(t) == [("training step", 0), ("decoder refit step", 0), ("training step", 2),
                       ("decoder refit step", 2)] and min(t.values()) > 0
    assert set(widths) == {(0, 1.0), (2, 1.0)}
