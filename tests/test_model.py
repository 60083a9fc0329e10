import math

import pyro
import pytest
import torch
import torch.nn.functional as F
from conftest import tiny_config
from pyro import poutine
from pyro.infer import SVI, Trace_ELBO, TraceMeanField_ELBO
from torch.distributions import Bernoulli, Normal

from dsae_pyro.config import ConfigError
from dsae_pyro.data import to_tensor
from dsae_pyro.data.views import mirror, recolour, shuffle_frames, shuffle_tiles
from dsae_pyro.guides import GUIDES, make_guide, silhouette
from dsae_pyro.model import DSAE, z_site
from dsae_pyro.nets import (
    FrameEncoder,
    PaletteEncoder,
    Refiner,
    add_refiner,
    default_layout,
    fast_layout,
    remove_refiner,
)
from dsae_pyro.posterior import use_mean
from dsae_pyro.priors import RemixedLSTMPrior

B, T = 3, 8


def build(guide="factorized", **model):
    cfg = tiny_config(guide=guide, **model)
    torch.manual_seed(0)
    return cfg, DSAE(cfg.model).eval(), make_guide(cfg.model).eval()


def test_sites_and_shapes():
    cfg, model, guide = build()
    x = torch.rand(B, T, 3, 64, 64)
    g = poutine.trace(guide).get_trace(x)
    m = poutine.trace(poutine.replay(model.model, trace=g)).get_trace(x)
    latents = ["f"] + [z_site(t) for t in range(1, T + 1)]
    assert [n for n in g.stochastic_nodes if n != "batch"] == latents
    assert [n for n in m.stochastic_nodes if n != "batch"] == latents
    assert m.observation_nodes == ["x"]
    assert g.nodes["f"]["value"].shape == (B, cfg.model.f_dim)
    assert g.nodes["z_5"]["value"].shape == (B, cfg.model.z_dim)
    assert m.nodes["x"]["fn"].batch_shape == (B,) and m.nodes["x"]["fn"].event_shape == (
        T, 3, 64, 64)
    # every site lives in the batch plate
    assert all(n["cond_indep_stack"][0].name == "batch" for k, n in m.nodes.items()
               if n["type"] == "sample" and k != "batch")
    # sampling from the model alone
    sample = model.model(batch_size=2)
    assert sample.shape == (2, T, 3, 64, 64)


def test_prior_is_fed_the_guides_samples():
    """p(z_t | z_<t) must be computed from the z the guide sampled, not from prior samples."""
    _, model, guide = build()
    x = torch.rand(B, T, 3, 64, 64)
    g = poutine.trace(guide).get_trace(x)
    m = poutine.trace(poutine.replay(model.model, trace=g)).get_trace(x)
    z_prev, state = model.prior.initial(B, x)
    for t in range(1, T + 1):
        p_t, state = model.prior.step(z_prev, state)
        fn = m.nodes[z_site(t)]["fn"].base_dist
        assert torch.allclose(fn.loc, p_t.base_dist.loc)
        assert torch.allclose(fn.scale, p_t.base_dist.scale)
        z_prev = g.nodes[z_site(t)]["value"]  # the guide's sample, as the ELBO needs
    # and a prior rolled on its own samples would differ
    prior_only = poutine.trace(model.model).get_trace(batch_size=B)
    assert not torch.allclose(prior_only.nodes["z_2"]["fn"].base_dist.loc,
                              m.nodes["z_2"]["fn"].base_dist.loc)


def hand_prior_step(prior, z_prev, state):
    """One prior step written out from the equations, with the module's weights."""
    h, c = state
    lin = torch.nn.functional.linear
    if isinstance(prior, RemixedLSTMPrior):  # Yingzhen Li's
        c_hat = torch.tanh(lin(torch.cat([z_prev, c], -1), prior.mlp_c.weight, prior.mlp_c.bias))
        phi = torch.tanh(lin(z_prev, prior.mlp_phi.weight, prior.mlp_phi.bias))
        h_hat = torch.tanh(lin(torch.cat([z_prev, h], -1), prior.mlp_h.weight, prior.mlp_h.bias))
        inp, h, c = phi, h_hat, c_hat
    else:
        inp = z_prev
    cell = prior.cell  # LSTM gates i, f, g, o
    gates = lin(inp, cell.weight_ih, cell.bias_ih) + lin(h, cell.weight_hh, cell.bias_hh)
    i, f, g, o = gates.chunk(4, -1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    h = torch.sigmoid(o) * torch.tanh(c)
    if isinstance(prior, RemixedLSTMPrior):
        mid = torch.tanh(lin(h, prior.head[0].weight, prior.head[0].bias))
        loc, log_scale = lin(mid, prior.head[2].weight, prior.head[2].bias).chunk(2, -1)
        return loc, log_scale.exp(), (h, c)
    return (lin(h, prior.head.loc.weight, prior.head.loc.bias),
            torch.exp(0.5 * lin(h, prior.head.logvar.weight, prior.head.logvar.bias)), (h, c))


@pytest.mark.parametrize("likelihood,prior", [("gaussian", "lstm"), ("gaussian_learned", "lstm"),
                                              ("laplace", "lstm"), ("bernoulli", "lstm"), ("l2", "lstm"),
                                              ("gaussian", "improved")])
@pytest.mark.parametrize("guide_name", sorted(GUIDES))
def test_elbo_matches_hand_computation(likelihood, prior, guide_name):
    """Trace_ELBO with one particle = -(log p(x|f,z) + log p(f) + sum_t log p(z_t|z_<t) - log q)."""
    _, model, guide = build(guide_name, likelihood=likelihood, x_scale=0.2, prior=prior,
                            decoder="improved" if prior == "improved" else "conv",
                            decoder_hidden=16, decoder_channels=4)
    x = torch.rand(B, T, 3, 64, 64)
    pyro.set_rng_seed(7)
    loss = Trace_ELBO().loss(model.model, guide, x)
    pyro.set_rng_seed(7)
    g = poutine.trace(guide).get_trace(x)  # the same latent draws as inside the loss
    with torch.no_grad():
        f = g.nodes["f"]["value"]
        zs = [g.nodes[z_site(t)]["value"] for t in range(1, T + 1)]
        # hand computation with torch.distributions only
        log_p = Normal(0.0, 1.0).log_prob(f).sum()
        z_prev, h = torch.zeros(B, model.cfg.z_dim), torch.zeros(B, model.cfg.hidden)
        state = (h, h)
        for z in zs:
            loc, scale, state = hand_prior_step(model.prior, z_prev, state)
            log_p += Normal(loc, scale).log_prob(z).sum()
            z_prev = z
        out = model.decoder(f, torch.stack(zs, 1))
        if likelihood == "bernoulli":
            log_p += Bernoulli(logits=out, validate_args=False).log_prob(x).sum()
        elif likelihood == "laplace":  # written out: -|x - mean| / b - log 2b
            log_p += (-(x - torch.sigmoid(out)).abs() / 0.2 - math.log(2 * 0.2)).sum()
        else:
            s = {"gaussian": 0.2, "l2": 0.5**0.5}.get(likelihood) or math.exp(
                model.log_x_scale.item())
            log_p += Normal(torch.sigmoid(out), s).log_prob(x).sum()
        log_q = sum(g.nodes[n]["fn"].base_dist.log_prob(g.nodes[n]["value"]).sum()
                    for n in ["f"] + [z_site(t) for t in range(1, T + 1)])
    assert loss == pytest.approx(-(log_p - log_q).item(), rel=1e-5)


def test_kl_weight_scales_only_the_latent_terms():
    _, model, guide = build()
    x = torch.rand(B, T, 3, 64, 64)
    parts = {}
    for w in (1.0, 0.25):
        pyro.set_rng_seed(3)
        g = poutine.trace(guide).get_trace(x, kl_weight=w)
        m = poutine.trace(poutine.replay(model.model, trace=g)).get_trace(x, kl_weight=w)
        m.compute_log_prob()
        g.compute_log_prob()
        kl = sum(m.nodes[n]["log_prob_sum"] - g.nodes[n]["log_prob_sum"]
                 for n in g.stochastic_nodes if n != "batch")
        parts[w] = (kl.item(), m.nodes["x"]["log_prob_sum"].item())
    assert parts[0.25][0] == pytest.approx(0.25 * parts[1.0][0], rel=1e-5)
    assert parts[0.25][1] == pytest.approx(parts[1.0][1], rel=1e-6)


@pytest.mark.parametrize("guide_name,elbo", [("factorized", Trace_ELBO),
                                             ("full", Trace_ELBO),
                                             ("factorized", TraceMeanField_ELBO)])
def test_guides_train_and_loss_falls(tiny_data, guide_name, elbo):
    """One model function, any guide: SVI(model.model, guide) learns on a few clips."""
    _, model, guide = build(guide_name)
    model.train()
    guide.train()
    svi = SVI(model.model, guide, pyro.optim.Adam({"lr": 3e-3}), elbo())
    x = to_tensor(tiny_data["train"].x[:12])
    pyro.set_rng_seed(0)
    losses = [svi.step(x) for _ in range(60)]
    assert sum(losses[-10:]) / 10 < 0.5 * sum(losses[:5]) / 5


def test_two_models_in_one_session_do_not_share_parameters(tiny_data):
    """The pyro.module pitfall: a second model must train its own tensors, not the first's."""
    x = to_tensor(tiny_data["train"].x[:6])
    for _ in range(2):
        _, model, guide = build()
        model.train()
        guide.train()
        before = model.decoder.fc[0].weight.detach().clone()
        svi = SVI(model.model, guide, pyro.optim.Adam({"lr": 1e-2}), Trace_ELBO())
        svi.step(x)
        assert not torch.equal(before, model.decoder.fc[0].weight)


def test_l2_likelihood_is_the_sum_of_squared_errors():
    cfg, model, _ = build(likelihood="l2")
    f, z = torch.randn(2, cfg.model.f_dim), torch.randn(2, T, cfg.model.z_dim)
    x = torch.rand(2, T, 3, 64, 64)
    log_p = model.likelihood(f, z).log_prob(x)
    sse = ((x - model.decode(f, z)) ** 2).flatten(1).sum(1)
    const = -0.5 * math.log(math.pi) * x[0].numel()  # log N with variance 1/2, per pixel
    assert torch.allclose(log_p, -sse + const, rtol=1e-5)


def test_laplace_likelihood_draws_the_median_not_the_mean():
    """Fitted to a pixel that is one tone in 8 clips of 9 and a close one in the ninth, the
    Laplace's picture lands on the majority's tone, the Gaussian's between the two."""
    pixels = torch.tensor([0.8] * 8 + [0.6])
    fitted = {}
    for likelihood in ("laplace", "gaussian"):
        cfg, model, _ = build(likelihood=likelihood, x_scale=0.5)
        logit = torch.zeros(1, requires_grad=True)
        model.decoder.forward = lambda f, z, logit=logit: logit.expand(9, T, 3, 64, 64)
        opt = torch.optim.Adam([logit], lr=0.02)
        x = pixels.view(9, 1, 1, 1, 1).expand(9, T, 3, 64, 64)
        f, z = torch.zeros(9, cfg.model.f_dim), torch.zeros(9, T, cfg.model.z_dim)
        for _ in range(600):
            opt.zero_grad()
            (-model.likelihood(f, z).log_prob(x).sum()).backward()
            opt.step()
        fitted[likelihood] = model.decode(f, z)[0, 0, 0, 0, 0].item()
    assert fitted["laplace"] == pytest.approx(0.8, abs=0.01)
    assert fitted["gaussian"] == pytest.approx(pixels.mean().item(), abs=0.01)  # 0.778


def test_mean_margin_widens_the_sigmoid_and_the_picture_stays_in_range():
    """m = 0.05: the mean is 1.1 sigmoid(out) - 0.05 (by hand at three logits), so a pixel of
    253 / 255 is the mean near logit 2.9, where the slope is about 6x that at the plain
    sigmoid's logit for it (4.8); the picture is clipped to [0, 1]."""
    cfg, model, _ = build(likelihood="laplace", x_scale=0.5, mean_margin=0.05)
    out = torch.tensor([0.0, 3.0, 10.0])
    assert torch.allclose(model.mean_of(out), 1.1 * torch.sigmoid(out) - 0.05)
    assert model.mean_of(out)[0] == pytest.approx(0.5)
    assert model.mean_of(torch.tensor(2.9)) == pytest.approx(253 / 255, abs=0.002)
    assert model.mean_of(torch.tensor(10.0)) > 1.04  # beyond the pixels' range ...
    model.decoder.forward = lambda f, z: torch.full((2, T, 3, 64, 64), 10.0)
    f, z = torch.zeros(2, cfg.model.f_dim), torch.zeros(2, T, cfg.model.z_dim)
    assert model.decode(f, z).max() == 1.0  # ... but not the picture's
    plain = build(likelihood="laplace", x_scale=0.5)[1]
    assert torch.equal(plain.mean_of(out), torch.sigmoid(out))  # m = 0: the sigmoid itself
    with pytest.raises(ConfigError, match="mean_margin"):
        tiny_config(mean_margin=-0.1).validate()


@pytest.mark.parametrize("guide_name,depends", [("causal", True), ("factorized", False),
                                                ("full", False)])
def test_only_the_causal_guide_feeds_back_z(guide_name, depends):
    """q(z_2 | .) moves with the value of z_1 only for the causal q(z_t | x_1:t, z_<t)."""
    _, _, guide = build(guide_name)
    x = torch.rand(2, T, 3, 64, 64)
    f = torch.zeros(2, 4)
    locs = []
    for value in (0.0, 3.0):
        data = {"f": f, "z_1": torch.full((2, 3), value)}
        tr = poutine.trace(poutine.condition(guide, data=data)).get_trace(x)
        locs.append(tr.nodes["z_2"]["fn"].base_dist.loc)
    assert (not torch.allclose(locs[0], locs[1])) == depends


def test_improved_decoder_shapes():
    _, model, guide = build(decoder="improved", decoder_hidden=16, decoder_channels=4)
    assert type(model.decoder).__name__ == "MLPDeconvDecoder"
    out = model.decoder(torch.zeros(2, 4), torch.zeros(2, T, 3))
    assert out.shape == (2, T, 3, 64, 64)


def test_decoder_widths_set_each_transposed_conv():
    """model.decoder_widths: the conv decoder's grid and each transposed conv take the widths
    given, the frame stays 64x64 with 3 channels; empty gives the encoder's mirror."""
    from dsae_pyro.nets import FrameDecoder

    def widths(cfg):
        decoder = FrameDecoder(cfg.model)
        convs = [m for m in decoder.deconv if isinstance(m, torch.nn.ConvTranspose2d)]
        out = decoder(torch.zeros(2, 4), torch.zeros(2, T, 3))
        assert out.shape == (2, T, 3, 64, 64)
        return decoder.grid, [(m.in_channels, m.out_channels) for m in convs]

    assert widths(tiny_config(conv_channels=[2, 3, 4, 5])) == (
        (5, 4, 4), [(5, 4), (4, 3), (3, 2), (2, 3)])
    assert widths(tiny_config(conv_channels=[2, 3, 4, 5], decoder_widths=[7, 6, 9, 8])) == (
        (7, 4, 4), [(7, 6), (6, 9), (9, 8), (8, 3)])
    with pytest.raises(ConfigError, match="model.decoder_channels"):  # not silently ignored
        tiny_config().override(["model.decoder=improved", "model.decoder_widths=[4, 4, 4, 4]"])


@pytest.mark.parametrize("decoder", ["conv", "improved"])
def test_film_decoder_starts_as_the_plain_one_and_lets_f_set_every_hidden_layer(decoder):
    """model.decoder_film: at initialisation the decoder draws exactly what the plain one with the
    same weights draws; once the FiLM weights move, f alone rescales each hidden layer's
    channels, so two f that the plain decoder's fc cannot tell apart draw different frames."""
    sizes = {"decoder_hidden": 8, "decoder_channels": 4}
    plain = DSAE(tiny_config(decoder=decoder, **sizes).model).decoder.eval()
    film = DSAE(tiny_config(decoder=decoder, decoder_film=True, **sizes).model).decoder.eval()
    missing, unexpected = film.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and missing and all(k.startswith("films.") for k in missing)
    assert len(film.films) == sum(isinstance(m, (torch.nn.LeakyReLU, torch.nn.ReLU))
                                  for m in film.deconv)
    torch.manual_seed(0)
    f, z = torch.randn(2, 4), torch.randn(2, 8, 3)
    with torch.no_grad():
        assert torch.equal(film(f, z), plain(f, z))
        for layer in (plain.fc, film.fc):  # the fc path no longer reads f (its first 4 inputs)
            first = next(m for m in layer if isinstance(m, torch.nn.Linear))
            first.weight[:, :4] = 0
        for m in film.films:
            torch.nn.init.normal_(m.affine.weight)
        g = f + 1.0
        assert torch.equal(plain(f, z), plain(g, z))
        assert not torch.allclose(film(f, z), film(g, z))


@pytest.mark.parametrize("sizes", [{}, {"decoder_colours": 3}])
def test_a_refiner_added_to_a_decoder_starts_as_the_identity_and_reads_neighbours(sizes):
    """add_refiner: the decoder draws exactly what it drew before, until the refiner's weights
    move; then a pixel's output depends on its neighbours' (a 3x3 conv at full resolution) and
    on f. A decoder built with model.decoder_refine = W has the same parameters, so its
    checkpoint loads into the refitted run."""
    torch.manual_seed(0)
    cfg = tiny_config(**sizes).model
    decoder = DSAE(cfg).decoder.eval()
    f, z = torch.randn(2, cfg.f_dim), torch.randn(2, T, cfg.z_dim)
    with torch.no_grad():
        before = decoder(f, z)
        refiner = add_refiner(decoder, 5)
        assert torch.equal(decoder(f, z), before)
        with pytest.raises(ValueError, match="has a refiner already"):
            add_refiner(decoder, 5)
        torch.nn.init.normal_(refiner.out.weight, std=0.1)
        for film in refiner.films:
            torch.nn.init.normal_(film.affine.weight)
        assert not torch.allclose(decoder(f, z), before)
        assert not torch.allclose(decoder(f + 1, z), decoder(f, z))
        # one input pixel changed moves its 3-layer neighbourhood (7x7), nothing further
        channels = before.shape[2]
        h = torch.randn(1, channels, 16, 16)
        g = h.clone()
        g[0, :, 8, 8] += 1
        moved = (refiner(g, f[:1]) - refiner(h, f[:1])).abs().sum(0)[0] > 0
        assert moved[8, 7] and moved[5, 8] and moved[11, 11]
        assert not moved[4, 8] and not moved[8, 12] and not moved[0, 0]
    built = DSAE(tiny_config(decoder_refine=5, **sizes).model).decoder
    assert built.state_dict().keys() == decoder.state_dict().keys()
    assert any(isinstance(m, Refiner) for m in built.modules())
    remove_refiner(decoder)
    assert not any(isinstance(m, Refiner) for m in decoder.modules())
    with torch.no_grad():
        assert torch.equal(decoder(f, z), before)
    with pytest.raises(ConfigError, match="model.decoder_refine must be a finite number >= 0"):
        tiny_config().override(["model.decoder_refine=-1"])


def test_the_refiner_computes_its_equations():
    """The Refiner is h + out(FiLM(lrelu(conv(FiLM(lrelu(conv(h))))))), written out here on
    contiguous tensors: its output and gradients, whatever layout it runs its convs in."""
    torch.manual_seed(0)
    refiner = Refiner(3, 6, 4)
    for p in refiner.parameters():
        torch.nn.init.normal_(p, std=0.3)
    h, f = torch.randn(5, 3, 12, 12, requires_grad=True), torch.randn(5, 4)

    def by_hand(h):
        r = h
        for conv, film in zip(refiner.hidden, refiner.films, strict=True):
            r = F.leaky_relu(F.conv2d(r, conv.weight, conv.bias, padding=1), 0.2)
            gamma, beta = (f @ film.affine.weight.T + film.affine.bias).chunk(2, dim=1)
            r = r * (1 + gamma[..., None, None]) + beta[..., None, None]
        return h + F.conv2d(r, refiner.out.weight, refiner.out.bias, padding=1)

    out, expected = refiner(h, f), by_hand(h)
    assert torch.allclose(out, expected, atol=1e-5)
    w = torch.randn_like(out)
    grads = torch.autograd.grad((out * w).sum(), [h, *refiner.parameters()])
    wanted = torch.autograd.grad((expected * w).sum(), [h, *refiner.parameters()])
    for got, want in zip(grads, wanted, strict=True):
        assert torch.allclose(got, want, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("sizes", [{}, {"decoder_film": True, "decoder_refine": 3},
                                   {"decoder_colours": 3}, {"decoder": "improved"}])
def test_the_conv_stacks_compute_the_same_in_either_layout(sizes):
    """nets.fast_layout runs the encoder's and decoder's convs on channels_last activations on a
    CPU: the same outputs and gradients as the default layout (nets.default_layout), in the same
    strides, and weights that stay contiguous (pyro.module trains a contiguous copy
    of any other weight and leaves the weight itself frozen)."""
    torch.manual_seed(0)
    cfg = tiny_config(**sizes).model
    encoder, decoder = FrameEncoder.of(cfg), DSAE(cfg).decoder
    for film in getattr(decoder, "films", []):
        torch.nn.init.normal_(film.affine.weight, std=0.3)
    if sizes.get("decoder_refine"):
        torch.nn.init.normal_(decoder.refine.out.weight, std=0.3)
    x, f, z = torch.rand(2, T, 3, 64, 64), torch.randn(2, cfg.f_dim), torch.randn(2, T, cfg.z_dim)
    params = [*encoder.parameters(), *decoder.parameters()]

    def run(training):
        encoder.train(training)
        decoder.train(training)
        for p in params:
            p.grad = None
        v, out = encoder(x), decoder(f, z)
        ((v * v).sum() + (out * out).sum()).backward()  # as SVI's step: grads land in .grad
        # in training mode the gradient of a conv's bias before a BatchNorm is zero but for
        # rounding, so gradients are compared in eval mode
        return [v, out, *([] if training else [p.grad for p in params])]

    for training in (True, False):
        got = run(training)
        with default_layout():
            plain = run(training)
        for a, b in zip(got, plain, strict=True):  # float32 sums in another order
            assert a.stride() == b.stride()
            assert torch.allclose(a, b, rtol=1e-4, atol=1e-4 * float(b.detach().abs().max()))
    assert all(p.is_contiguous() for p in params)
    h = torch.rand(4, 3, 8, 8)
    assert fast_layout(h).is_contiguous(memory_format=torch.channels_last)
    with default_layout():
        assert fast_layout(h) is h


def _last_weight_layer(decoder):
    """The colour-mix decoder's last transposed conv: scaling it up makes its weights one-hot."""
    return [mod for mod in decoder.weights.modules() if isinstance(mod, torch.nn.ConvTranspose2d)][-1]


@pytest.mark.parametrize("decoder", ["conv", "improved"])
def test_colour_mix_decoder_draws_only_colours_of_f(decoder):
    """With model.decoder_colours = K, a frame is a per-pixel convex mix of K colours read from f
    alone: every pixel lies in the box of f's table whatever z is, and with one-hot weights (the
    weight layer's output scaled up) every pixel is one of the K table colours, for any z."""
    cfg = tiny_config(decoder=decoder, decoder_colours=3, decoder_hidden=8, decoder_channels=4)
    torch.manual_seed(0)  # before the weights: near-tied weights at a pixel would mix two colours
    m = DSAE(cfg.model).eval()
    f = torch.randn(2, cfg.model.f_dim)
    table = torch.sigmoid(m.decoder.table(f)).reshape(2, 3, 3)  # (B, K, C)
    last = _last_weight_layer(m.decoder)
    with torch.no_grad():
        for scale in (1.0, 1e4):
            last.weight.mul_(scale)
            last.bias.mul_(scale)
            for _ in range(3):
                x = m.decode(f, torch.randn(2, cfg.model.frames, cfg.model.z_dim))  # (B, T, C, H, W)
                pixels = x.permute(0, 1, 3, 4, 2).reshape(2, -1, 3)
                lo, hi = table.min(1).values[:, None], table.max(1).values[:, None]
                assert (pixels >= lo - 1e-4).all() and (pixels <= hi + 1e-4).all()
        gap = torch.cdist(pixels, table).min(-1).values  # distance of each pixel to its nearest colour
        assert gap.max() < 1e-3
        assert len({tuple(c) for c in pixels.reshape(-1, 3).mul(1e3).round().tolist()}) <= 6


def test_global_colour_table_is_one_palette_for_every_clip():
    """model.colour_table = "global": the table does not read f, so with one-hot weights every
    pixel of every clip, whatever f and z, is one of the same K learned colours."""
    cfg = tiny_config(decoder_colours=3, colour_table="global")
    torch.manual_seed(0)
    m = DSAE(cfg.model).eval()
    f = torch.randn(4, cfg.model.f_dim) * 3
    table = m.decoder.colour_table(f)
    assert torch.equal(table[0], table[3]) and table.shape == (4, 3, 3)
    assert not hasattr(m.decoder, "table")  # no path from f to the colours
    last = _last_weight_layer(m.decoder)
    with torch.no_grad():
        last.weight.mul_(1e4)
        last.bias.mul_(1e4)
        x = m.decode(f, torch.randn(4, cfg.model.frames, cfg.model.z_dim))
    pixels = x.permute(0, 1, 3, 4, 2).reshape(-1, 3)
    assert torch.cdist(pixels, table[0]).min(-1).values.max() < 1e-3


@pytest.mark.parametrize("guide_name,f_encoder", [(g, "frames") for g in sorted(GUIDES)]
                         + [("factorized", "palette")])
def test_q_f_reads_x_f_and_q_z_reads_x_z(guide_name, f_encoder):
    """With x_f (train.f_source = sibling), f's posterior is the one of x_f alone; z's stays x's
    (given the same f); with x_z (train.z_source = recolour) the other way round."""
    _, _, guide = build(guide_name, f_encoder=f_encoder)
    x, y = torch.rand(2, T, 3, 64, 64), torch.rand(2, T, 3, 64, 64)

    def site(trace, name):
        return trace.nodes[name]["fn"].base_dist.loc

    paired = poutine.trace(guide).get_trace(x, x_f=y)
    of_y = poutine.trace(guide).get_trace(y)
    f = {"f": paired.nodes["f"]["value"]}
    of_x = poutine.trace(poutine.condition(guide, data=f)).get_trace(x)
    assert torch.allclose(site(paired, "f"), site(of_y, "f"), atol=1e-6)
    assert not torch.allclose(site(paired, "f"), site(of_x, "f"))
    assert torch.allclose(site(paired, "z_1"), site(of_x, "z_1"), atol=1e-6)
    with pytest.raises(ValueError, match="x_f"):
        guide(x, x_f=y[:1])

    # and q(z_1:T) reads x_z: z's posterior is the one of y (given the same f), f's stays x's
    crossed = poutine.trace(guide).get_trace(x, x_z=y)
    f = {"f": crossed.nodes["f"]["value"]}
    of_y = poutine.trace(poutine.condition(guide, data=f)).get_trace(y)
    of_x = poutine.trace(guide).get_trace(x)
    assert torch.allclose(site(crossed, "z_1"), site(of_y, "z_1"), atol=1e-6)
    assert torch.allclose(site(crossed, "f"), site(of_x, "f"), atol=1e-6)


def palette_clips(b=2, colours=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    palette = torch.randint(0, 256, (colours, 3), generator=g) / 255
    return palette[torch.randint(colours, (b, T, 64, 64), generator=g)].movedim(-1, 2)


def test_palette_encoder_is_the_presence_of_every_pixel_max_pooled():
    """The (clip, colour) shortcut gives what the max over all the clip's pixels gives, on palette
    clips and on continuous ones; a reference colour present in a clip scores 1 there."""
    enc = PaletteEncoder(levels=4)
    for x in (palette_clips(), torch.rand(2, 2, 3, 64, 64)):
        every_pixel = enc.presence(x.movedim(2, -1).reshape(-1, 3)).reshape(len(x), -1, 64)
        torch.testing.assert_close(enc(x), every_pixel.amax(dim=1), rtol=0, atol=0)
    x = torch.zeros(1, 2, 3, 64, 64)
    x[0, 1, 0, 5, 5] = 1.0  # one red pixel on black, in the second frame
    out = enc(x)[0]
    assert out.shape == (64,) and out.max() == 1 and (out == 1).sum() == 2  # black and red
    assert out[0] == 1 and out[3 * 16] == 1  # (r, g, b) on the grid, blue varying fastest
    big = palette_clips(b=130, colours=3)  # past int32 keys: the int64 path gives the same
    # up to rounding: with 2 threads exp is vectorised in other chunks for 130 clips than for 2
    torch.testing.assert_close(enc(big)[:2], enc(big[:2]), rtol=1e-4, atol=1e-7)


def test_palette_q_f_sees_colours_not_where_they_are():
    """q(f) of the palette encoder is the same for a clip shuffled in time, mirrored, cut into
    tiles or shifted, and differs once one colour changes; the frame encoder's q(f) does not stay put."""
    x = palette_clips()
    moved = [shuffle_frames(x), mirror(x), shuffle_tiles(x), x.roll(7, dims=-1)]
    recoloured = x.clone()
    recoloured[x == x[0, 0, 0, 0, 0]] = 0.5  # one channel level, wherever it occurs
    for f_encoder, invariant in (("palette", True), ("frames", False)):
        _, _, guide = build(f_encoder=f_encoder)
        with torch.no_grad():
            loc = guide.q_f(guide.f_features(x))[0]
            for view in moved:
                same = torch.allclose(guide.q_f(guide.f_features(view))[0], loc, atol=1e-6)
                assert same == invariant
            assert not torch.allclose(guide.q_f(guide.f_features(recoloured))[0], loc)



@pytest.mark.parametrize("guide_name", ["factorized", "causal"])
def test_silhouette_q_z_sees_where_not_what(guide_name):
    """With model.z_encoder = "silhouette", q(z_1:T) (at every site, via poutine.trace) is the
    same for a clip and the clip recoloured on its black canvas, and moves once the sprite moves;
    with the frames z encoder a recolouring moves it. q(f) still reads the colours. (The full
    guide's q(z_1:T | x, f) reads f as well, so it is not blind to colour.)"""
    g = torch.Generator().manual_seed(1)
    canvas = torch.rand(2, T, 1, 64, 64, generator=g) < 0.4  # black where the sprite is not
    x = palette_clips().clamp(min=0.1).masked_fill(canvas, 0)
    recoloured = recolour(x, g)
    moved = x.roll(3, dims=-1)

    def q(guide, clips):
        tr = poutine.trace(use_mean()(guide)).get_trace(clips)
        return torch.cat([tr.nodes[z_site(t)]["value"] for t in range(1, T + 1)], -1), \
            tr.nodes["f"]["value"]

    for z_encoder, invariant in (("silhouette", True), ("frames", False)):
        _, _, guide = build(guide_name, z_encoder=z_encoder, f_encoder="palette")
        with torch.no_grad():
            z, f = q(guide, x)
            z_re, f_re = q(guide, recoloured)
            assert torch.allclose(z_re, z, atol=1e-6) == invariant
            assert not torch.allclose(f_re, f)
            if invariant:
                assert not torch.allclose(q(guide, moved)[0], z)


def test_silhouette_is_exact_on_sprites_and_differentiable_on_drawn_frames():
    """On sprite pixels (the darkest LPC one is 14/255) on a black canvas, recoloured or not, the
    silhouette is the 0/1 foreground; on frames the decoder draws (a sigmoid, never exactly
    black) it passes a gradient back to the decoder's inputs, which a threshold at 0 did not."""
    g = torch.Generator().manual_seed(0)
    canvas = torch.rand(2, T, 1, 64, 64, generator=g) < 0.7
    canvas[0, 0, 0, 0, 0] = False
    x = (14 / 255 + (1 - 14 / 255) * torch.rand(2, T, 3, 64, 64, generator=g)).masked_fill(canvas, 0)
    x[0, 0, :, 0, 0] = torch.tensor([14 / 255, 0.0, 0.0])  # an outline pixel, dark in one channel
    foreground = (~canvas).to(x.dtype).expand_as(x)
    for clips in (x, recolour(x, g)):  # the recolour view dims a channel by 0.6 at most
        assert torch.equal(silhouette(clips), foreground)
    _, model, _ = build()
    f = torch.randn(2, model.cfg.f_dim, requires_grad=True)
    drawn = model.decode(f, torch.randn(2, T, model.cfg.z_dim))
    silhouette(drawn).sum().backward()
    assert f.grad.abs().sum() > 0


def test_paper_preset_has_li_and_mandts_layer_sizes():
    """Encoder: conv -> 4096 -> 2048; decoder: concat(f, z_t) (288) -> 4096 -> 8*8*256, as published."""
    from torch import nn

    from dsae_pyro.config import Config, load_preset
    from dsae_pyro.nets import FrameDecoder, FrameEncoder

    cfg = load_preset("paper").model
    linear = [(m.in_features, m.out_features) for m in FrameDecoder(cfg).fc if isinstance(m, nn.Linear)]
    assert linear == [(288, 4096), (4096, 8 * 8 * 256)]
    linear = [(m.in_features, m.out_features) for m in FrameEncoder.of(cfg).fc if isinstance(m, nn.Linear)]
    assert linear == [(8 * 8 * 256, 4096), (4096, 2048)]
    assert Config.from_dict(load_preset("paper").to_dict()).model.decoder_features == [4096]


@pytest.mark.parametrize("guide,reads_earlier,reads_later", [
    ("factorized", False, False), ("causal", True, False), ("full", True, True)])
def test_which_frames_each_guide_reads(guide, reads_earlier, reads_later):
    """q(z_3 | .): factorized reads x_3 alone, causal x_1..x_3, full every frame (through f too)."""
    from dsae_pyro.posterior import encode

    torch.manual_seed(0)
    g = make_guide(tiny_config(guide=guide).model).eval()
    x = torch.rand(2, 8, 3, 64, 64)
    first, last = x.clone(), x.clone()
    first[:, 0], last[:, -1] = torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64)
    z3 = [encode(g, v).z_loc[:, 2] for v in (x, first, last)]
    assert (not torch.allclose(z3[0], z3[1])) == reads_earlier
    assert (not torch.allclose(z3[0], z3[2])) == reads_later
