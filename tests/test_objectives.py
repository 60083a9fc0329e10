"""The contrastive objective: its estimators against closed forms, its views, and that it is
Trace_ELBO when its weights are 0."""

import math

import pyro
import pytest
import torch
from conftest import tiny_config, tiny_split
from pyro import poutine
from pyro.infer import Trace_ELBO

from dsae_pyro.aggregate import mws_mutual_information
from dsae_pyro.config import NCE_F_VIEWS
from dsae_pyro.data import to_tensor
from dsae_pyro.data.views import recolour, shuffle_frames, shuffle_tiles
from dsae_pyro.guides import make_guide
from dsae_pyro.model import DSAE
from dsae_pyro.objectives import ContrastiveLoss, info_nce
from dsae_pyro.posterior import Posterior


def correlated(n, d, rho, seed=0):
    """n pairs of d-dim standard Gaussians, each coordinate pair with correlation rho:
    I(a; b) = -d/2 log(1 - rho^2)."""
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(n, d, generator=g)
    return a, rho * a + math.sqrt(1 - rho**2) * torch.randn(n, d, generator=g)


def test_info_nce_is_a_bound_below_the_true_information_and_log_batch():
    for rho, d in ((0.9, 8), (0.99, 2), (0.6, 4)):
        a, b = correlated(256, d, rho)
        true = -d / 2 * math.log(1 - rho**2)
        est = float(info_nce(a, b, temperature=0.2))
        assert est <= min(true, math.log(256)) + 0.1
        assert est > 0.3 * min(true, math.log(256))  # and not a vacuous one
    a, b = correlated(256, 8, 0.0)
    assert -0.5 < float(info_nce(a, b)) < 0.05  # independent: a lower bound on 0
    same = torch.randn(64, 8)
    assert float(info_nce(same, same, temperature=0.05)) <= math.log(64) + 1e-6


@pytest.mark.parametrize("rho,dataset", [(0.0, 1), (0.8, 1), (0.8, 20)])
def test_minibatch_weighted_mutual_information_matches_the_closed_form(rho, dataset):
    """q(f | x_n) = N(s_n, sigma), q(z | x_n) = N(t_n, sigma) with (s, t) correlated Gaussians:
    the aggregate posterior is Gaussian with corr(f, z) = rho / (1 + sigma^2). The batch is the
    whole dataset, or a 1/20 part of one (drawn from the same distribution)."""
    n, sigma = 3000, 0.5
    s, t = correlated(n, 1, rho, seed=1)
    g = torch.Generator().manual_seed(2)
    f = s + sigma * torch.randn(n, 1, generator=g)
    z = t + sigma * torch.randn(n, 1, generator=g)
    scale = torch.full((n, 1), sigma)
    est = float(mws_mutual_information(f, s, scale, z, t, scale, dataset_size=n * dataset))
    r = rho / (1 + sigma**2)
    assert est == pytest.approx(-0.5 * math.log(1 - r**2), abs=0.05)


def test_shuffled_frames_keep_the_frames_and_never_their_order():
    x = torch.arange(5 * 8, dtype=torch.float).reshape(5, 8, 1, 1, 1).expand(5, 8, 3, 2, 2)
    for seed in range(20):
        y = shuffle_frames(x, torch.Generator().manual_seed(seed))
        assert torch.equal(y.sort(dim=1).values, x)  # the same frames, each clip its own
        assert all(not torch.equal(y[i], x[i]) for i in range(5))
    two = x[:, :2]
    assert torch.equal(shuffle_frames(two), two.flip(1))  # T = 2: the only other order


def test_shuffled_tiles_keep_each_frames_tiles_and_never_their_order():
    """Every frame's tiles come back, in a new order drawn per frame; nothing crosses frames."""
    x = torch.rand(3, 4, 3, 16, 24)  # 2 x 3 tiles of 8 x 8 pixels

    def tiles(v):  # (B, T, tiles, C * 8 * 8)
        return v.unfold(3, 8, 8).unfold(4, 8, 8).permute(0, 1, 3, 4, 2, 5, 6).flatten(4).flatten(2, 3)

    for seed in range(10):
        y = shuffle_tiles(x, generator=torch.Generator().manual_seed(seed))
        a, b = tiles(x), tiles(y)
        for i in range(3):
            for t in range(4):
                assert not torch.equal(a[i, t], b[i, t])
                same = a[i, t][a[i, t, :, 0].argsort()], b[i, t][b[i, t, :, 0].argsort()]
                assert torch.equal(*same)  # the same tiles, whole
    two = torch.rand(1, 1, 1, 8, 16)  # two tiles: the only other order swaps them
    assert torch.equal(shuffle_tiles(two), two.roll(8, -1))
    with pytest.raises(ValueError, match="frames of 10x16 pixels do not split into 8x8 tiles"):
        shuffle_tiles(torch.rand(1, 1, 1, 10, 16))


def test_the_swap_term_reads_z_back_from_frames_drawn_with_a_new_f():
    """-ELBO - w B swap, the ELBO part unchanged by the term; swap is an InfoNCE bound (<= log B)
    between the clips' z_1:T and the z_1:T the guide reads from frames the model drew with those
    z_1:T and an f from p(f), the clips' own f playing no part."""
    cfg = tiny_config()
    torch.manual_seed(0)
    model, g = DSAE(cfg.model), make_guide(cfg.model)
    x = to_tensor(tiny_split([0, 259]).x[:4])
    pyro.set_rng_seed(5)
    elbo = Trace_ELBO().differentiable_loss(model.model, g, x)
    loss = ContrastiveLoss(0.0, 0.0, 0.0, swap_weight=2.0)
    assert loss.active_terms() == ["swap"]
    pyro.set_rng_seed(5)
    value = loss.differentiable_loss(model.model, g, x)
    assert loss.terms["neg_elbo"] * 4 == pytest.approx(elbo.item())
    assert value.item() == pytest.approx(elbo.item() - 2.0 * 4 * loss.terms["swap"], rel=1e-6)
    assert loss.terms["swap"] <= math.log(4)
    # by hand, with the f the model draws from its prior
    pyro.set_rng_seed(5)
    post = Posterior.of_trace(poutine.trace(g).get_trace(x), 8)
    drawn = poutine.trace(poutine.condition(model.model, data=post.z_data())).get_trace(batch_size=4)
    f_new = drawn.nodes["f"]["value"]
    assert not torch.allclose(f_new, post.f)
    back = Posterior.of_trace(poutine.trace(g).get_trace(model.decode(f_new, post.z)), 8)
    assert loss.terms["swap"] == pytest.approx(info_nce(post.z_loc, back.z_loc).item(), abs=1e-5)


def test_the_swap_term_with_batch_f_decodes_each_clip_with_the_previous_clips_f():
    """swap_f="batch": the new f is the posterior f of the clip before it in the batch (rolled by
    one), so every clip's z_1:T is drawn with another real clip's appearance."""
    cfg = tiny_config()
    torch.manual_seed(0)
    model, g = DSAE(cfg.model), make_guide(cfg.model)
    x = to_tensor(tiny_split([0, 259]).x[:4])
    loss = ContrastiveLoss(0.0, 0.0, 0.0, swap_weight=1.0, swap_f="batch")
    pyro.set_rng_seed(5)
    loss.differentiable_loss(model.model, g, x)
    pyro.set_rng_seed(5)
    post = Posterior.of_trace(poutine.trace(g).get_trace(x), 8)
    frames = model.decode(torch.cat([post.f[3:], post.f[:3]]), post.z)
    back = Posterior.of_trace(poutine.trace(g).get_trace(frames), 8)
    assert loss.terms["swap"] == pytest.approx(info_nce(post.z_loc, back.z_loc).item(), abs=1e-5)
    # swap_recolour: the guide reads those frames recoloured (the generator's first draw)
    loss = ContrastiveLoss(0.0, 0.0, 0.0, swap_weight=1.0, swap_f="batch", swap_recolour=True,
                           generator=torch.Generator().manual_seed(3))
    pyro.set_rng_seed(5)
    loss.differentiable_loss(model.model, g, x)
    seen = recolour(frames, torch.Generator().manual_seed(3))
    back = Posterior.of_trace(poutine.trace(g).get_trace(seen), 8)
    assert loss.terms["swap"] == pytest.approx(info_nce(post.z_loc, back.z_loc).item(), abs=1e-5)
    with pytest.raises(ValueError, match="swap_f='data'.*prior, batch"):
        ContrastiveLoss(swap_weight=1.0, swap_f="data")


@pytest.mark.parametrize("guide", ["factorized", "causal", "full"])
def test_the_swap_term_is_the_same_when_a_palette_q_f_reads_the_real_clips(guide):
    """With the palette q(f) and a q(z_1:T) that does not read f, the swap term lets q(f) read
    the real clips (fast) instead of the drawn frames; z_1:T read back, and so the term, are
    what reading the drawn frames alone gives, by hand, for every guide."""
    cfg = tiny_config(guide=guide, f_encoder="palette")
    torch.manual_seed(0)
    model, g = DSAE(cfg.model), make_guide(cfg.model)
    x = to_tensor(tiny_split([0, 259]).x[:4])
    loss = ContrastiveLoss(0.0, 0.0, 0.0, swap_weight=1.0)
    pyro.set_rng_seed(5)
    loss.differentiable_loss(model.model, g, x)
    pyro.set_rng_seed(5)
    post = Posterior.of_trace(poutine.trace(g).get_trace(x), 8)
    drawn = poutine.trace(poutine.condition(model.model, data=post.z_data())).get_trace(batch_size=4)
    back = Posterior.of_trace(poutine.trace(g).get_trace(drawn.nodes["x"]["fn"].mean), 8)
    assert loss.terms["swap"] == pytest.approx(info_nce(post.z_loc, back.z_loc).item(), abs=1e-5)


def test_the_swap_term_reaches_the_decoder_through_a_silhouette_q_z():
    """With model.z_encoder = "silhouette" the factorized guide reads only the drawn frames'
    foreground for z_1:T; the swap term must still train the decoder to draw the z_1:T it was
    given (the ELBO's gradient subtracted: same draws, the term's weight 1 against 0)."""
    cfg = tiny_config(guide="factorized", z_encoder="silhouette")
    torch.manual_seed(0)
    model, g = DSAE(cfg.model).double(), make_guide(cfg.model).double()  # no rounding noise
    x = to_tensor(tiny_split([0, 259]).x[:4]).double()
    decoder = list(model.decoder.parameters())

    def decoder_grads(weight):
        pyro.set_rng_seed(5)
        loss = ContrastiveLoss(0.0, 0.0, 0.0, swap_weight=weight).differentiable_loss(
            model.model, g, x)
        return torch.autograd.grad(loss, decoder)

    with_term, without = decoder_grads(1.0), decoder_grads(0.0)
    assert sum((a - b).abs().sum() for a, b in zip(with_term, without, strict=True)) > 1e-3


def test_views_a_palette_and_silhouette_guide_reads_alike_skip_their_guide_pass(monkeypatch):
    """With the palette q(f) and the factorized silhouette q(z_1:T), f's view (frames shuffled
    and mirrored) has the clip's own palette and the recoloured view its silhouettes, so the loss
    reuses the clip's own q means instead of two more guide passes: the same value and gradients
    as the passes give, and for the other guides, which read samples, nothing is reused."""
    cfg = tiny_config(guide="factorized", f_encoder="palette", z_encoder="silhouette")
    torch.manual_seed(0)
    model, g = DSAE(cfg.model).double(), make_guide(cfg.model).double()
    x = to_tensor(tiny_split([0, 259]).x[:4]).double()
    assert g.f_ignores_layout and g.same_z_means(x, recolour(x))
    for other in ("causal", "full"):
        assert not make_guide(tiny_config(guide=other, f_encoder="palette",
                                          z_encoder="silhouette").model).same_z_means(x, x)
    assert not make_guide(tiny_config(z_encoder="silhouette").model).same_z_means(x, x)
    params = [*model.parameters(), *g.parameters()]

    def loss_and_grads():
        pyro.set_rng_seed(3)
        loss = ContrastiveLoss(10.0, 10.0, 0.0, generator=torch.Generator().manual_seed(1),
                               f_view="shuffle_mirror")
        value = loss.differentiable_loss(model.model, g, x)
        return loss.terms, torch.autograd.grad(value, params, allow_unused=True)

    terms, grads = loss_and_grads()
    calls = []
    monkeypatch.setattr(type(g), "f_ignores_layout", False)
    monkeypatch.setattr(type(g), "same_z_means", lambda *_: calls.append(1) or False)
    want_terms, want_grads = loss_and_grads()
    assert calls and terms == pytest.approx(want_terms, rel=1e-9)
    assert terms["nce_f"] > 0 and terms["nce_z"] > 0
    for a, b in zip(grads, want_grads, strict=True):
        assert (a is None) == (b is None)
        if a is not None:
            torch.testing.assert_close(a, b)


@pytest.mark.parametrize("guide", ["factorized", "full"])
def test_with_zero_weights_it_is_trace_elbo_value_and_gradients(guide):
    cfg = tiny_config(guide=guide)
    torch.manual_seed(0)
    model, g = DSAE(cfg.model), make_guide(cfg.model)
    x = to_tensor(tiny_split([0, 259]).x[:4])
    params = [*model.parameters(), *g.parameters()]

    def loss_and_grads(loss_fn):
        pyro.set_rng_seed(3)
        loss = loss_fn(model.model, g, x, kl_weight=0.7)
        return loss.item(), torch.autograd.grad(loss, params, allow_unused=True)

    want, want_grads = loss_and_grads(Trace_ELBO().differentiable_loss)
    got, got_grads = loss_and_grads(ContrastiveLoss(0.0, 0.0, 0.0))
    assert got == pytest.approx(want, rel=1e-6)
    for a, b in zip(got_grads, want_grads, strict=True):
        assert (a is None) == (b is None)
        if a is not None:
            torch.testing.assert_close(a, b)


def test_each_term_moves_the_loss_and_training_logs_them(tmp_path, tiny_data):
    from dsae_pyro.train import fit

    cfg = tiny_config()
    cfg.train.objective, cfg.train.epochs = "contrastive", 1
    run = fit(cfg, tiny_data, tmp_path, progress=False)
    (h,) = run.history
    assert {"train_nce_f", "train_nce_z", "train_mi_fz"} <= set(h)
    assert all(math.isfinite(h[k]) for k in ("train_nce_f", "train_nce_z", "train_mi_fz"))
    assert h["train_nce_f"] <= math.log(cfg.train.batch_size) + 1e-6


def test_mirror_swaps_left_and_right_and_nothing_else():
    from dsae_pyro.data.views import mirror

    x = torch.rand(2, 3, 3, 4, 5)
    y = mirror(x)
    assert torch.equal(y[..., 0], x[..., 4]) and torch.equal(y[..., 2], x[..., 2])
    assert torch.equal(mirror(y), x) and torch.allclose(y.sum(-1), x.sum(-1))


def test_the_mirrored_view_changes_the_f_term_only():
    """train.nce_f_view picks f's positive view; the ELBO and the z term do not depend on it."""
    cfg = tiny_config()
    model, guide = DSAE(cfg.model), make_guide(cfg.model)
    x = torch.rand(4, 8, 3, 64, 64)
    terms = {}
    for view in NCE_F_VIEWS:
        pyro.set_rng_seed(0)
        loss = ContrastiveLoss(1.0, 1.0, 0.0, generator=torch.Generator().manual_seed(1),
                               f_view=view)
        loss.differentiable_loss(model.model, guide, x)
        terms[view] = loss.terms
    a = terms["shuffle"]
    for view in NCE_F_VIEWS[1:]:
        assert a["neg_elbo"] == terms[view]["neg_elbo"] and a["nce_f"] != terms[view]["nce_f"]
    # mirroring draws nothing, so the recolouring that follows is the same draw
    assert a["nce_z"] == pytest.approx(terms["shuffle_mirror"]["nce_z"])
    with pytest.raises(ValueError, match="f_view='mirror': choose one of shuffle, shuffle_mirror, "
                                         "shuffle_tiles"):
        ContrastiveLoss(f_view="mirror")
