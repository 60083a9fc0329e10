"""PaletteMixture against torch's own mixture of Gaussians, pixel by pixel."""

import pytest
import torch
import torch.distributions as td
from conftest import tiny_config

from dsae_pyro.distributions import PaletteMixture
from dsae_pyro.model import DSAE, z_site
from dsae_pyro.posterior import decode

B, T, K, C, H, W = 2, 3, 4, 3, 5, 6


def _random_mixture(scale=0.1):
    torch.manual_seed(0)
    return PaletteMixture(torch.randn(B, T, K, H, W) * 2, torch.rand(B, K, C), scale)


def test_log_prob_is_torchs_mixture_of_gaussians_summed_over_pixels():
    p = _random_mixture()
    x = torch.rand(B, T, C, H, W)
    # torch's mixture, one (T, H, W) grid of independent pixels per clip
    mix = td.Categorical(logits=p.logits.permute(0, 1, 3, 4, 2))  # (B, T, H, W) over K
    comp = td.Independent(td.Normal(p.colours[:, None, None, None], 0.1), 1)  # (B, 1, 1, 1, K) of C
    pixels = td.MixtureSameFamily(mix, comp)
    want = pixels.log_prob(x.permute(0, 1, 3, 4, 2)).sum((1, 2, 3))
    assert p.batch_shape == (B,) and p.event_shape == (T, C, H, W)
    assert torch.allclose(p.log_prob(x), want, rtol=1e-5)


def test_one_colour_is_a_gaussian():
    c = torch.rand(B, 1, C)
    p = PaletteMixture(torch.zeros(B, T, 1, H, W), c, 0.3)
    x = torch.rand(B, T, C, H, W)
    want = td.Normal(c[:, :, :, None, None].expand(B, T, C, H, W), 0.3).log_prob(x).sum((1, 2, 3, 4))
    assert torch.allclose(p.log_prob(x), want, rtol=1e-5)


def test_a_pixel_of_one_table_colour_scores_higher_than_its_average_with_another():
    """What a Gaussian around the mixed colour gets wrong: under even weights over two colours,
    the mixture prefers either colour to their average; a Gaussian at the mean, the reverse."""
    c = torch.tensor([[[0.9, 0.8, 0.7], [0.8, 0.7, 0.5]]])  # two close skin tones
    p = PaletteMixture(torch.zeros(1, 1, 2, 1, 1), c, 0.02)
    exact, average = c[0, 0].reshape(1, 1, 3, 1, 1), c[0].mean(0).reshape(1, 1, 3, 1, 1)
    assert p.log_prob(exact) > p.log_prob(average) + 10
    gauss = td.Normal(p.mean, 0.02)
    assert gauss.log_prob(exact).sum() < gauss.log_prob(average).sum()


def test_samples_draw_each_colour_as_often_as_its_weight():
    logits = torch.log(torch.tensor([0.25, 0.75]))[None, None, :, None, None].expand(1, 1, 2, 200, 100)
    c = torch.tensor([[[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]]])
    torch.manual_seed(1)
    x = PaletteMixture(logits, c, 1e-4).sample()
    assert x.shape == (1, 1, 3, 200, 100)
    white = (x[0, 0, 0] > 0.5).float().mean()
    assert abs(float(white) - 0.75) < 0.015  # 20,000 draws: std 0.003
    assert torch.cdist(x[0, 0].reshape(3, -1).T, c[0]).min(-1).values.max() < 1e-3


def test_mode_is_the_likeliest_colour_and_mean_the_mix():
    p = _random_mixture()
    k = p.logits.argmax(2)  # (B, T, H, W)
    b, t, i, j = 1, 2, 3, 4
    assert torch.equal(p.mode[b, t, :, i, j], p.colours[b, k[b, t, i, j]])
    w = torch.softmax(p.logits[b, t, :, i, j], 0)
    assert torch.allclose(p.mean[b, t, :, i, j], w @ p.colours[b], atol=1e-6)


def test_mismatched_table_names_both_shapes():
    with pytest.raises(ValueError, match=r"\(B, K, C\)"):
        PaletteMixture(torch.zeros(B, T, K, H, W), torch.rand(B, K + 1, C), 0.1)


def test_the_model_draws_every_pixel_in_a_table_colour():
    """model.likelihood = "palette_mixture": `decode` shows each pixel's likeliest colour, so a
    reconstruction holds only colours of the table; "x" is scored by the mixture."""
    cfg = tiny_config(decoder_colours=3, colour_table="global", likelihood="palette_mixture")
    torch.manual_seed(0)
    m = DSAE(cfg.model).eval()
    f, z = torch.randn(2, cfg.model.f_dim), torch.randn(2, cfg.model.frames, cfg.model.z_dim)
    table = m.decoder.colour_table(f)[0]
    fixed = {"f": f, **{z_site(t + 1): z[:, t] for t in range(cfg.model.frames)}}
    for x in (m.decode(f, z), decode(m, fixed)):  # the model's and poutine's way to draw
        gap = torch.cdist(x.permute(0, 1, 3, 4, 2).reshape(-1, 3), table).min(-1).values
        assert gap.max() < 1e-6
    assert torch.equal(m.decode(f, z), decode(m, fixed))
    assert isinstance(m.likelihood(f, z), PaletteMixture)
