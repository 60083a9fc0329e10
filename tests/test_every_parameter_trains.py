"""Every parameter trains: after one SVI step from a fixed start, each parameter that requires grad
has a nonzero gradient and a changed value, for every guide, prior, decoder, likelihood, ELBO and
training view. This is what channels_last conv weights broke silently (Pyro's param store trained a
`.contiguous()` copy that the forward pass never read), so the step goes through `Run.create`, the
code path `dsae train` uses.

The learning test beside it has teeth: the bar sits between the loss reached with working conv
weights and the loss reached with frozen ones (both measured, see the constants)."""

import itertools

import numpy as np
import pyro
import pytest
import torch
from conftest import tiny_config, tiny_split

from dsae_pyro.config import LIKELIHOODS
from dsae_pyro.data import to_tensor
from dsae_pyro.data.views import other_clips, recolour
from dsae_pyro.guides import GUIDES
from dsae_pyro.nets import DECODERS
from dsae_pyro.priors import PRIORS
from dsae_pyro.train import Run, TrainingError, check_trained_by_store, collapse_warning

IMPROVED_DECODER = {"decoder_hidden": 16, "decoder_channels": 4}
CASES = [{"guide": g, "prior": p, "decoder": d, **(IMPROVED_DECODER if d == "improved" else {})}
         for g, p, d in itertools.product(GUIDES, PRIORS, DECODERS)]
CASES += [{"likelihood": lik, **({"decoder_colours": 3} if lik == "palette_mixture" else {})}
          for lik in LIKELIHOODS if lik != "gaussian"]
CASES += [{"f_encoder": "palette"}, {"z_encoder": "silhouette"}, {"decoder_colours": 3},
          {"decoder_colours": 3, "colour_table": "global"},
          {"decoder_colours": 3, "colour_table": "global", "likelihood": "palette_mixture"},
          {"decoder_colours": 3, "decoder": "improved", **IMPROVED_DECODER},
          {"decoder_film": True}, {"decoder_film": True, "decoder": "improved", **IMPROVED_DECODER},
          {"decoder_widths": [6, 5, 7, 8]}, {"decoder_refine": 3}, {"prior_components": 3},
          {"f_prior_components": 3},
          {"prior": "improved", "prior_components": 3}]


def named_parameters(run):
    return [(f"{owner}.{name}", p) for owner, m in (("model", run.model), ("guide", run.guide))
            for name, p in m.named_parameters() if p.requires_grad]


def assert_one_step_moves_everything(run, x, **views):
    """Gradient of the -ELBO w.r.t. every module parameter is nonzero; one svi.step changes each."""
    run.model.train()
    run.guide.train()
    params = named_parameters(run)
    pyro.set_rng_seed(1)
    loss = run.elbo.differentiable_loss(run.model.model, run.guide, x, **views)
    grads = torch.autograd.grad(loss, [p for _, p in params], allow_unused=True)
    no_grad = [n for (n, _), g in zip(params, grads, strict=True) if g is None or not g.abs().sum()]
    assert not no_grad, f"no gradient reaches {no_grad}"
    before = [p.detach().clone() for _, p in params]
    pyro.set_rng_seed(1)
    run.svi.step(x, **views)
    frozen = [n for (n, p), b in zip(params, before, strict=True) if torch.equal(p.detach(), b)]
    assert not frozen, f"one SVI step left these parameters unchanged: {frozen}"


@pytest.fixture(scope="module")
def clips():
    split = tiny_split([0, 259])
    return split, to_tensor(split.x[:6])


@pytest.mark.parametrize("model", CASES, ids=lambda m: "-".join(str(v) for v in m.values())[:40])
def test_one_step_moves_every_parameter(model, clips):
    run = Run.create(tiny_config(**model), torch.device("cpu"))
    assert_one_step_moves_everything(run, clips[1])


@pytest.mark.parametrize("train", [{"elbo": "meanfield"}, {"kl_weight": 0.5},
                                   {"f_source": "sibling", "z_source": "recolour"},
                                   {"objective": "contrastive", "nce_f_view": "shuffle_tiles"},
                                   {"objective": "contrastive", "swap_weight": 1.0},
                                   {"objective": "contrastive", "swap_weight": 1.0,
                                    "swap_f": "batch", "swap_recolour": True}])
def test_one_step_moves_every_parameter_with_each_objective_and_view(train, clips):
    cfg = tiny_config()
    vars(cfg.train).update(train)
    run = Run.create(cfg, torch.device("cpu"))
    split, x = clips
    views = {"kl_weight": cfg.train.kl_weight}
    if cfg.train.f_source == "sibling":
        partner = other_clips(split.character, np.random.default_rng(0))[:6]
        views["x_f"] = to_tensor(split.x[partner])
        views["x_z"] = recolour(x, torch.Generator().manual_seed(0))
    assert_one_step_moves_everything(run, x, **views)


def test_a_channels_last_module_is_caught():
    """The old defect, reproduced: the guard names the frozen weights instead of training on."""
    run = Run.create(tiny_config(), torch.device("cpu"))
    run.model.to(memory_format=torch.channels_last)
    x = to_tensor(tiny_split([0]).x[:4])
    run.svi.step(x)
    with pytest.raises(TrainingError, match="decoder.*would never change|would never change"):
        check_trained_by_store(run.model, run.guide)
    check_trained_by_store(run.guide)  # the untouched guide is fine


def test_a_short_run_reaches_a_loss_frozen_conv_weights_cannot():
    """80 steps (batches of 8 from 24 clips, tiny networks, x_scale 0.1), mean -ELBO per clip of
    the last 20 steps. Measured with seeds 0, 1, 2: 37.7k, 30.2k, 43.1k with every weight training,
    763k, 752k, 770k with the conv weights frozen (channels_last, the old defect). Bar: 200k."""
    pyro.set_rng_seed(0)
    cfg = tiny_config()
    cfg.train.lr = 3e-3
    run = Run.create(cfg, torch.device("cpu"))
    x = to_tensor(tiny_split([0, 259, 518, 777]).x[:24])
    order = torch.Generator().manual_seed(0)
    losses = []
    with pyro.validation_enabled(False):
        for _ in range(80):
            losses.append(run.svi.step(x[torch.randperm(24, generator=order)[:8]]) / 8)
    assert sum(losses[-20:]) / 20 < 200_000


def test_collapse_warning_names_a_decoder_that_draws_the_mean():
    """Numbers measured on tiny networks after 150 steps: with frozen conv weights KL(f) 7.30,
    KL(z) 0.35 nats and a reconstruction worse than the batch's mean clip; trained, 22.0 and 27.7."""
    frozen = {"kl_f": 7.30, "kl_z": 0.35, "explained": -10.8}
    assert "drawing the mean" in collapse_warning(frozen, frames=8)
    assert collapse_warning({"kl_f": 22.0, "kl_z": 27.7, "explained": -2.2}, frames=8) is None
    assert collapse_warning({**frozen, "explained": 0.9}, frames=8) is None  # sharp, no latents


def test_history_splits_the_test_loss_into_its_terms(tmp_path, tiny_data):
    from dsae_pyro.train import fit

    cfg = tiny_config()
    cfg.train.epochs = 1
    (h,) = fit(cfg, tiny_data, tmp_path, progress=False).history
    assert h["test_loss"] == pytest.approx(h["test_recon"] + h["test_kl_f"] + h["test_kl_z"])
    assert h["test_kl_f"] > 0 and h["test_kl_z"] > 0 and h["test_explained"] <= 1
