import json

import numpy as np
import pyro
import pytest
import torch
from pyro import poutine
from pyro.infer import Trace_ELBO
from torch.distributions import Bernoulli, Normal

from dsae_pyro.betavae.config import BetaModelConfig, BetaVAEConfig
from dsae_pyro.betavae.model import BetaVAE
from dsae_pyro.betavae.objectives import CapacityLoss, capacity
from dsae_pyro.betavae.train import BetaVAERun, fit_betavae
from dsae_pyro.cli import main
from dsae_pyro.config import ConfigError
from dsae_pyro.data.dsprites import N_IMAGES, DSprites, make_dsprites, save_dsprites


@pytest.fixture(scope="module")
def small():
    """Every 97th dSprites image: 7,601 images covering every factor value."""
    full = make_dsprites()
    idx = np.arange(0, N_IMAGES, 97)
    return DSprites(full.packed[idx], full.classes[idx], full.values[idx])


@torch.no_grad()
def hand_terms(vae, x, seed):
    """log p(x | z), log p(z), log q(z | x) with torch.distributions for the guide's draw."""
    pyro.set_rng_seed(seed)
    z = poutine.trace(vae.guide).get_trace(x).nodes["z"]["value"]
    loc, log_scale = vae.encoder(x).chunk(2, -1)
    log_q = Normal(loc, log_scale.exp()).log_prob(z).sum()
    log_prior = Normal(0.0, 1.0).log_prob(z).sum()
    log_lik = Bernoulli(logits=vae.decoder(z)).log_prob(x).sum()
    return log_lik, log_prior, log_q, (loc, log_scale.exp())


@pytest.mark.parametrize("arch", ["conv", "mlp"])
def test_objective_h_is_the_beta_weighted_elbo(arch):
    torch.manual_seed(0)
    vae = BetaVAE(BetaModelConfig(arch=arch, latents=4))
    x = (torch.rand(3, 1, 64, 64) > 0.8).float()
    log_lik, log_prior, log_q, _ = hand_terms(vae, x, seed=5)
    pyro.set_rng_seed(5)
    loss = Trace_ELBO().loss(vae.model, vae.guide, x, beta=4.0)
    assert -loss == pytest.approx(float(log_lik + 4.0 * (log_prior - log_q)), rel=1e-5)


def test_objective_b_is_recon_plus_gamma_abs_kl_minus_capacity():
    torch.manual_seed(0)
    vae = BetaVAE(BetaModelConfig(latents=4))
    x = (torch.rand(3, 1, 64, 64) > 0.8).float()
    log_lik, _, _, (loc, scale) = hand_terms(vae, x, seed=7)
    # KL(N(m, s) || N(0, 1)) = (m^2 + s^2 - 1)/2 - log s, by hand, per image
    kl = ((loc**2 + scale**2 - 1) / 2 - scale.log()).sum(-1)
    objective = CapacityLoss(gamma=100.0, c_max=25.0, c_steps=1000)
    objective.step = 400  # C = 10 nats
    assert objective.capacity == pytest.approx(10.0)
    pyro.set_rng_seed(7)
    loss = objective(vae.model, vae.guide, x)
    want = 3 * (-log_lik / 3 + 100.0 * (kl.mean() - 10.0).abs())
    assert loss.item() == pytest.approx(float(want), rel=1e-5)
    loss.backward()  # differentiable through the traces
    assert vae.encoder[0].weight.grad.abs().sum() > 0
    assert [capacity(s, 25, 100) for s in (0, 50, 100, 500)] == [0, 12.5, 25, 25]


def tiny_cfg(objective, steps=6):
    cfg = BetaVAEConfig()
    cfg.model.latents = 3
    t = cfg.train
    t.objective, t.steps, t.batch_size, t.log_every, t.c_steps, t.lr = objective, steps, 8, 3, 10, 1e-3
    t.device = "cpu"  # exact resume is a CPU promise: cuDNN's conv backward is not deterministic
    cfg.validate()
    return cfg


@pytest.mark.parametrize("objective", ["H", "B", "tc", "factorvae"])
def test_resume_is_exact_and_continues_the_schedule(tmp_path, small, objective):
    """FactorVAE's discriminator (outside Pyro's param store) resumes too; tc records its TC."""
    straight = fit_betavae(tiny_cfg(objective), small, tmp_path / "a", progress=False)
    fit_betavae(tiny_cfg(objective, steps=3), small, tmp_path / "b", progress=False)
    pyro.clear_param_store()
    resumed = fit_betavae(tiny_cfg(objective), small, tmp_path / "b", resume=True, progress=False)
    assert resumed.step == straight.step == 6
    for (k, a), b in zip(straight.vae.state_dict().items(), resumed.vae.state_dict().values(),
                         strict=True):
        assert torch.equal(a, b), k
    assert [h["train_loss"] for h in straight.history] == [h["train_loss"] for h in resumed.history]
    if objective == "B":
        assert [h["capacity"] for h in resumed.history] == [7.5, 15.0]  # 25 * 3/10, 25 * 6/10
    if objective in ("tc", "factorvae"):
        assert all(np.isfinite(h["train_tc"]) for h in resumed.history)
    if objective == "factorvae":
        for a, b in zip(straight.svi.loss.discriminator.parameters(),
                        resumed.svi.loss.discriminator.parameters(), strict=True):
            assert torch.equal(a, b)
    with pytest.raises(RuntimeError, match="--resume"):
        fit_betavae(tiny_cfg(objective), small, tmp_path / "a", progress=False)


def test_the_beta_warmup_starts_at_the_elbo_and_reaches_beta(tmp_path, small):
    cfg = tiny_cfg("H")
    cfg.train.beta, cfg.train.beta_warmup = 16.0, 6
    run = BetaVAERun.create(cfg)
    x = small.images(np.arange(4))
    pyro.set_rng_seed(3)
    at_step_0 = run.svi.evaluate_loss(x, beta=run.beta)
    pyro.set_rng_seed(3)
    assert at_step_0 == pytest.approx(Trace_ELBO().loss(run.vae.model, run.vae.guide, x), rel=1e-6)
    betas = []
    for step in (0, 3, 6, 100):
        run.step = step
        betas.append(run.beta)
    assert betas == [1.0, 8.5, 16.0, 16.0]
    history = fit_betavae(cfg, small, tmp_path / "run", progress=False).history
    assert [h["beta"] for h in history] == [8.5, 16.0]  # logged every 3 of 6 steps
    cfg.train.beta_warmup = -1
    with pytest.raises(ConfigError, match="beta_warmup"):
        cfg.validate()


@pytest.mark.parametrize("objective,arch", [("H", "conv"), ("B", "conv"), ("H", "mlp"), ("B", "mlp"),
                                            ("tc", "conv"), ("factorvae", "conv")])
def test_one_step_moves_every_parameter(small, objective, arch):
    """Every objective trains every weight: none is a stale copy in Pyro's param store (the
    defect channels_last weights caused in the DSAE); FactorVAE's discriminator moves too."""
    cfg = tiny_cfg(objective)
    cfg.model.arch = arch
    run = BetaVAERun.create(cfg)
    nets = {"vae": run.vae}
    if objective == "factorvae":
        nets["discriminator"] = run.svi.loss.discriminator
    before = {(k, n): p.detach().clone() for k, m in nets.items() for n, p in m.named_parameters()}
    run.train_step(small)
    frozen = [(k, n) for k, m in nets.items() for n, p in m.named_parameters()
              if torch.equal(p.detach(), before[k, n])]
    assert not frozen and run.checked


def test_two_runs_in_one_session_do_not_share_parameters(small):
    a, b = BetaVAERun.create(tiny_cfg("H")), BetaVAERun.create(tiny_cfg("H"))
    a.train_step(small)
    b_before = [p.clone() for p in b.vae.parameters()]
    a.train_step(small)
    assert all(torch.equal(p, q) for p, q in zip(b.vae.parameters(), b_before, strict=True))


def test_cli_train_evaluate_traverse(tmp_path, small, capsys):
    data = tmp_path / "small.npz"
    save_dsprites(data, small)
    run = tmp_path / "run"
    args = ["betavae", "train", "--objective", "B", "--steps", "4", "--data-path", str(data),
            "--set", "train.log_every=2", "--set", "train.batch_size=8", "--out", str(run),
            "--quiet"]
    assert main(args) == 0
    assert main(["betavae", "evaluate", str(run), "--images", "2000", "--num-train", "300",
                 "--num-eval", "200"]) == 0
    scores = json.loads((run / "evaluation.json").read_text())
    assert {"beta_vae", "factor_vae", "mig", "latents"} <= set(scores) and len(scores["latents"]) == 10
    assert main(["betavae", "traverse", str(run)]) == 0
    for f in ("traversals.png", "reconstructions.png", "kl.png", "gifs/traversal_z9.gif"):
        assert (run / f).exists(), f
    html = (run / "report.html").read_text()
    assert "MIG" in html and "traversal_z0.gif" in html
    capsys.readouterr()
    assert main(["betavae", "train", "--set", "train.beta=0", "--out", str(tmp_path / "x")]) == 2
    assert "train.beta must be a finite number > 0" in capsys.readouterr().err
    assert main(["betavae", "evaluate", str(tmp_path / "nothing")]) == 2
    capsys.readouterr()
    assert main(["swap", str(run)]) == 2  # a DSAE command on a beta-VAE run: named, not a crash
    assert "beta-VAE checkpoint" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="model.arch"):
        BetaVAEConfig().override(["model.arch=resnet"])


@pytest.mark.parametrize("arch", ["conv", "mlp"])
def test_he_init_lets_the_encoder_see_the_image(small, arch):
    """At PyTorch's default init the ReLU layers shrink the signal, so q's means barely differ
    between images against its unit noise (the ELBO then sits on the mean image); He init keeps
    them apart, with weights of variance 2 / fan_in and zero biases."""
    x = small.images(np.arange(0, len(small), 29), torch.device("cpu"))
    spread = {}
    for init in ("he", "torch"):
        torch.manual_seed(0)
        vae = BetaVAE(BetaModelConfig(arch=arch, init=init))
        loc, scale = vae.encode(x)
        spread[init] = (loc.std(0) / scale.mean(0)).mean().item()
    assert spread["he"] > 0.05 and spread["he"] > 10 * spread["torch"], spread
    torch.manual_seed(0)
    he = BetaVAE(BetaModelConfig(arch=arch, init="he"))
    wide = [m for m in he.modules() if isinstance(m, torch.nn.Linear) and m.in_features >= 256]
    assert wide
    for m in wide:
        assert m.weight.var().item() == pytest.approx(2 / m.in_features, rel=0.1)
        assert not m.bias.any()
    with pytest.raises(ConfigError, match="model.init"):
        BetaVAEConfig().override(["model.init=xavier"])
