"""The mixture prior over z_1:T and its refit to the posteriors (dsae_pyro/prior_fit.py)."""

import math
import re

import pyro
import pytest
import torch
from conftest import tiny_config, tiny_split
from pyro import poutine
from test_cli import TINY

from dsae_pyro.cli import main
from dsae_pyro.clips import to_tensor
from dsae_pyro.config import ConfigError
from dsae_pyro.guides import make_guide
from dsae_pyro.model import DSAE, z_site
from dsae_pyro.posterior import Posterior, decode, encode
from dsae_pyro.prior_fit import (
    BEFORE,
    _refit,
    fit_prior,
    likelihood_nats,
    readback_nats,
    refit_prior,
)
from dsae_pyro.priors import PRIORS, MixtureHead, StaticPrior, make_prior
from dsae_pyro.runs import load_checkpoint
from dsae_pyro.train import load_run


@pytest.mark.parametrize("prior", sorted(PRIORS))
@pytest.mark.parametrize("components", [1, 3])
def test_log_prob_is_what_the_model_scores(prior, components):
    """log p(z_1:T) of the prior, summed by hand over its steps, equals the sum of the log
    probabilities at the model's z_t sites replayed on the guide's draws."""
    pyro.set_rng_seed(0)
    cfg = tiny_config(prior=prior, prior_components=components).model
    model, guide = DSAE(cfg), make_guide(cfg)
    x = torch.rand(5, cfg.frames, 3, 64, 64)
    g = poutine.trace(guide).get_trace(x)
    m = poutine.trace(poutine.replay(model.model, trace=g)).get_trace(x)
    z = torch.stack([g.nodes[z_site(t)]["value"] for t in range(1, cfg.frames + 1)], 1)
    by_sites = sum(m.nodes[z_site(t)]["fn"].log_prob(z[:, t - 1]) for t in range(1, cfg.frames + 1))
    assert torch.allclose(model.prior.log_prob(z), by_sites, atol=1e-5)


def test_mixture_head_is_a_mixture_of_its_gaussians():
    """log p(z) = log sum_k pi_k N(z; mu_k, sigma_k), computed here from the head's layers."""
    torch.manual_seed(0)
    head = MixtureHead(6, 2, 4)
    h, z = torch.randn(3, 6), torch.randn(3, 2)
    pi = head.logits(h).softmax(-1)
    mu, sigma = head.loc(h).reshape(3, 4, 2), torch.exp(0.5 * head.logvar(h)).reshape(3, 4, 2)
    density = (pi * torch.exp(-0.5 * ((z[:, None] - mu) / sigma) ** 2).prod(-1)
               / (2 * math.pi * sigma ** 2).sqrt().prod(-1)).sum(-1)
    assert torch.allclose(head(h).log_prob(z), density.log(), atol=1e-5)


def clusters(n=600, t=3):
    """Sequences that start at -3 or +3 (in each of 2 dimensions) and stay there, with q's
    scale 0.1: four tight clusters, which one Gaussian can only cover from between them."""
    g = torch.Generator().manual_seed(0)
    start = (torch.randint(0, 2, (n, 1, 2), generator=g) * 6.0 - 3.0).expand(n, t, 2)
    return start.contiguous(), torch.full((n, t, 2), 0.1)


@torch.no_grad()
def near_a_cluster(prior, n=2000):
    """Share of the prior's draws of z_1 within 1 of one of the four cluster centres."""
    z_prev, state = prior.initial(n, torch.zeros(1))
    z1 = prior.step(z_prev, state)[0].sample()
    return float(((z1.abs() - 3).abs() < 1).all(-1).float().mean())


def test_a_mixture_fitted_to_clustered_posteriors_draws_on_the_clusters():
    loc, scale = clusters()
    torch.manual_seed(0)
    one, mixture = make_prior("lstm", 2, 16, 1), make_prior("lstm", 2, 16, 8)
    nats_one = fit_prior(one, loc, scale, epochs=40, lr=1e-2, progress=False)
    nats_mix = fit_prior(mixture, loc, scale, epochs=40, lr=1e-2, progress=False)
    assert nats_mix[-1] < nats_mix[0] and nats_one[-1] < nats_one[0]
    # one Gaussian can at best be N(0, 3^2) per dimension: about 10% of its draws fall within 1 of
    # a centre, against all of them for the four clusters' own mixture
    assert near_a_cluster(mixture) > 0.9
    assert near_a_cluster(one) < 0.25
    assert nats_mix[-1] < nats_one[-1] - 5


def test_meanfield_refuses_a_mixture_prior():
    cfg = tiny_config(prior_components=4)
    cfg.train.elbo = "meanfield"
    with pytest.raises(ConfigError, match="prior_components = 4 makes p"):
        cfg.validate()


def test_refit_prior_from_the_command_line(tmp_path, tiny_npz, capsys):
    """`dsae refit-prior` swaps the run's z prior for a fitted mixture and keeps its p(f), which
    q(f) of a one-epoch run on 27 clips does not leave (no mixture scores better than N(0, I)
    there); it keeps the run as trained beside it and leaves a run that generates and resumes
    only with its new prior."""
    out = tmp_path / "run"
    assert main(["train", "--data", "npz", "--data-path", str(tiny_npz), "--epochs", "1",
                 "--out", str(out), "--no-report", *TINY]) == 0
    trained = load_checkpoint(out / "checkpoint.pt")
    (out / "evaluation.md").write_text("the run as trained")  # what `dsae evaluate` leaves
    assert not (out / "report.html").exists()
    assert main(["refit-prior", str(out), "--z-components", "3", "--f-components", "4",
                 "--epochs", "2", "--quiet"]) == 0
    said = capsys.readouterr().out
    assert "p(z_1:T) as a mixture of 3" in said and "adopted" in said
    assert "p(f) as a mixture of 4" in said and "which is kept" in said
    assert (out / BEFORE).is_file()
    # the old evaluation is set aside with the checkpoint it scored; the report is redrawn
    assert not (out / "evaluation.md").exists()
    assert (out / "evaluation_before_prior_fit.md").read_text() == "the run as trained"
    assert (out / "report.html").is_file() and "evaluation" not in (out / "report.html").read_text()
    ckpt = load_checkpoint(out / "checkpoint.pt")
    fit = ckpt["prior_fit"]
    assert fit["z"]["adopted"] and fit["z"]["nats_after"] < fit["z"]["nats_before"]
    assert not fit["f"]["adopted"] and len(fit["z"]["nats"]) == 2
    assert ckpt["config"]["model"]["prior_components"] == 3
    assert ckpt["config"]["model"]["f_prior_components"] == 1
    assert 'prior_components = 3' in (out / "config.toml").read_text()
    # everything but the z prior is the run as trained
    changed = [k for k, v in ckpt["model"].items()
               if k not in trained["model"] or not torch.equal(v, trained["model"][k])]
    assert changed and all(k.startswith("prior.") for k in changed), changed
    assert all(torch.equal(v, trained["guide"][k]) for k, v in ckpt["guide"].items())
    run = load_run(out)
    assert run.model.prior.components == 3 and run.model.f_prior.components == 1
    assert main(["generate", str(out), "--out", str(tmp_path / "g")]) == 0
    # a resumed run keeps the saved settings, so it trains on with the mixture; asking for the
    # single Gaussian again is refused by name
    assert main(["train", "--out", str(out), "--resume", "--epochs", "2", "--no-report",
                 "--quiet"]) == 0
    assert load_run(out).model.prior.components == 3 and load_run(out).epoch == 2
    assert main(["train", "--out", str(out), "--resume", "--epochs", "3", "--no-report",
                 "--set", "model.prior_components=1", "--quiet"]) == 2
    assert "model.prior_components" in capsys.readouterr().err


def test_refit_prior_keeps_a_trained_prior_that_scores_better(tmp_path, tiny_npz, capsys):
    """A p(f) left at its fresh start (Adam's rate 0) scores worse on q than N(0, I): it is not
    adopted and the run is left as it was."""
    out = tmp_path / "run"
    assert main(["train", "--data", "npz", "--data-path", str(tiny_npz), "--epochs", "1",
                 "--out", str(out), "--no-report", *TINY]) == 0
    trained = (out / "checkpoint.pt").read_bytes()
    assert main(["refit-prior", str(out), "--z-components", "0", "--f-components", "4",
                 "--epochs", "1", "--lr", "0", "--quiet"]) == 0
    said = capsys.readouterr().out
    assert "p(f) as a mixture of 4" in said and "worse than the trained prior, which is kept" in said
    assert "nothing written" in said
    assert (out / "checkpoint.pt").read_bytes() == trained and not (out / BEFORE).exists()


def test_refit_prior_refuses_a_mixture_for_a_meanfield_run(tmp_path, tiny_npz, capsys):
    out = tmp_path / "run"
    assert main(["train", "--data", "npz", "--data-path", str(tiny_npz), "--epochs", "1",
                 "--out", str(out), "--no-report", "--set", "train.elbo=meanfield", *TINY]) == 0
    assert main(["refit-prior", str(out), "--z-components", "3", "--quiet"]) == 2
    assert "model.prior_components = 3 makes p(z_t | z_<t) a mixture" in capsys.readouterr().err
    assert not (out / BEFORE).exists()


def test_train_refits_the_prior_when_asked(tmp_path, tiny_npz, capsys):
    """train.refit_z_components makes `dsae train` end with the refit: the same checkpoint as
    training without it and then running `dsae refit-prior` with the same settings, done once
    per run folder (a resumed run is not refitted again), and the report drawn from it."""
    data = ["--data", "npz", "--data-path", str(tiny_npz), "--epochs", "1", *TINY]
    refit = ["--set", "train.refit_z_components=3", "--set", "train.refit_epochs=2"]
    assert main(["train", *data, "--out", str(tmp_path / "by_hand"), "--no-report"]) == 0
    assert main(["refit-prior", str(tmp_path / "by_hand"), "--z-components", "3", "--epochs",
                 "2", "--quiet"]) == 0
    out = tmp_path / "run"
    capsys.readouterr()
    assert main(["train", *data, *refit, "--out", str(out)]) == 0
    assert "p(z_1:T) as a mixture of 3" in capsys.readouterr().out
    by_hand, ckpt = (load_checkpoint(d) for d in (tmp_path / "by_hand", out))
    assert ckpt["config"]["model"]["prior_components"] == 3 and (out / BEFORE).is_file()
    assert ckpt["prior_fit"]["z"]["nats_after"] == by_hand["prior_fit"]["z"]["nats_after"]
    assert all(torch.equal(v, by_hand["model"][k]) for k, v in ckpt["model"].items())
    assert (out / "report.html").is_file()
    refitted = (out / "checkpoint.pt").read_bytes()
    assert main(["train", "--out", str(out), "--resume", "--no-report", "--quiet"]) == 0
    assert (out / "checkpoint.pt").read_bytes() == refitted


def test_meanfield_refuses_a_refit_to_a_mixture():
    cfg = tiny_config()
    cfg.train.elbo, cfg.train.refit_z_components = "meanfield", 8
    with pytest.raises(ConfigError, match="train.refit_z_components = 8 refits"):
        cfg.validate()


@pytest.mark.parametrize("args, says", [(["--z-components", "0"], "give p(z_1:T), p(f) or the decoder"),
                                        (["--f-components", "1"], "f_components = 1 is p(f)")])
def test_refit_prior_refuses_nothing_to_fit(tmp_path, args, says, capsys):
    assert main(["refit-prior", str(tmp_path), *args]) == 2
    assert says in capsys.readouterr().err


def test_f_mixture_is_what_the_model_scores():
    """p(f) as a mixture: the model's f site is log sum_k pi_k N(f; mu_k, sigma_k), computed here
    from the prior's parameters, and a mixture fitted to two clusters draws on them."""
    pyro.set_rng_seed(0)
    cfg = tiny_config(f_prior_components=3).model
    model = DSAE(cfg)
    tr = poutine.trace(model.model).get_trace(batch_size=5)
    f, p = tr.nodes["f"]["value"], model.f_prior
    pi, sigma = p.logits.softmax(-1), p.log_scale.exp()
    density = (pi * torch.exp(-0.5 * ((f[:, None] - p.loc) / sigma) ** 2).prod(-1)
               / (2 * math.pi * sigma ** 2).sqrt().prod(-1)).sum(-1)
    assert torch.allclose(tr.nodes["f"]["fn"].log_prob(f), density.log(), atol=1e-4)


def test_an_f_mixture_fitted_to_clusters_draws_on_them():
    """Refitting N(0, I) on four tight clusters: the mixture is adopted and draws on them."""
    loc, scale = clusters(t=1)
    loc, scale = loc[:, 0], scale[:, 0]
    torch.manual_seed(0)
    prior = StaticPrior(2, 8)
    prior.start_at(loc)
    record = _refit(StaticPrior(2), prior, loc, scale, epochs=60, lr=5e-2, seed=0,
                    progress=False)
    # the four clusters' own mixture scores 2 x (-0.88) + log 4 = -0.38 nats (the entropy of q
    # plus the choice of cluster); N(0, I) scores 2 x (0.92 + (9 + 0.01) / 2) = 10.85
    assert record["adopted"] and record["nats_after"] < 0
    assert record["nats_before"] == pytest.approx(10.85, abs=0.3)
    with torch.no_grad():
        draws = prior(loc).sample((2000,))
    assert float(((draws.abs() - 3).abs() < 1).all(-1).float().mean()) > 0.9


def test_likelihood_nats_is_what_the_model_scores():
    """-E_q[log p(x | f, z_1:T)] of the decoder's refit, at q's means (scale 0), equals minus the
    log probability of the model's x site with f and z_1:T conditioned on those means, per clip."""
    pyro.set_rng_seed(0)
    cfg = tiny_config().model
    model, guide = DSAE(cfg).eval(), make_guide(cfg)
    split = tiny_split([0, 259])
    x = to_tensor(split.x)
    post = encode(guide, x)
    q = Posterior(post.f, post.z, post.f, torch.zeros_like(post.f), post.z, torch.zeros_like(post.z))
    values = {"f": post.f, **{z_site(t): post.z[:, t - 1] for t in range(1, cfg.frames + 1)}}
    tr = poutine.trace(poutine.condition(model.model, data=values)).get_trace(x)
    by_site = -float(tr.nodes["x"]["fn"].log_prob(x).sum().detach()) / len(x)
    assert likelihood_nats(model, split, q, batch_size=5) == pytest.approx(by_site, rel=1e-6)
    # at="means" reads q's means whatever its scales: the same number with q's noise switched on
    noisy = Posterior(post.f, post.z, post.f, torch.ones_like(post.f), post.z, torch.ones_like(post.z))
    assert likelihood_nats(model, split, noisy, batch_size=5, at="means") == pytest.approx(
        by_site, rel=1e-6)
    assert abs(likelihood_nats(model, split, noisy, batch_size=5) - by_site) > 1  # draws differ


def test_refit_decoder_from_the_command_line(tmp_path, tiny_npz, capsys):
    """`dsae refit-prior --decoder-epochs` fits the decoder alone: the likelihood of q's draws
    rises, only the decoder's weights (and batch statistics) change, its optimiser state is
    dropped and the rest of the run is as trained."""
    out = tmp_path / "run"
    assert main(["train", "--data", "npz", "--data-path", str(tiny_npz), "--epochs", "1",
                 "--out", str(out), "--no-report", *TINY]) == 0
    trained = load_checkpoint(out / "checkpoint.pt")
    assert main(["refit-prior", str(out), "--z-components", "0", "--decoder-epochs", "3",
                 "--decoder-lr", "1e-2", "--quiet", "--no-report"]) == 0
    said = capsys.readouterr().out
    assert "the decoder, 3 passes" in said and "adopted" in said
    ckpt = load_checkpoint(out / "checkpoint.pt")
    fit = ckpt["prior_fit"]["decoder"]
    assert fit["adopted"] and fit["nats_after"] < fit["nats_before"] and len(fit["nats"]) == 3
    assert "z" not in ckpt["prior_fit"] and (out / BEFORE).is_file()
    changed = {k for k, v in ckpt["model"].items() if not torch.equal(v, trained["model"][k])}
    assert changed and all(k.startswith("decoder.") for k in changed), changed
    assert any(k.endswith("weight") for k in changed)
    assert all(torch.equal(v, trained["guide"][k]) for k, v in ckpt["guide"].items())
    assert not any(k.startswith("model/decoder.") for k in ckpt["optim"])
    assert any(k.startswith("model/decoder.") for k in trained["optim"])
    assert ckpt["config"] == trained["config"]
    # a second refit keeps the checkpoint it replaces beside the evaluation that scored it, and
    # leaves the first pair (the run as trained) as it was
    once = (out / "checkpoint.pt").read_bytes()
    (out / "evaluation.md").write_text("once refitted")
    assert main(["refit-prior", str(out), "--z-components", "0", "--decoder-epochs", "1",
                 "--decoder-lr", "1e-2", "--quiet", "--no-report"]) == 0
    assert load_checkpoint(out / "checkpoint.pt")["prior_fit"]["decoder"]["adopted"]
    assert (out / "checkpoint_before_prior_fit2.pt").read_bytes() == once
    assert (out / "evaluation_before_prior_fit2.md").read_text() == "once refitted"
    assert not (out / "evaluation_before_prior_fit.md").exists()
    first = load_checkpoint(out / BEFORE)["model"]
    assert all(torch.equal(v, trained["model"][k]) for k, v in first.items())
    assert main(["train", "--out", str(out), "--resume", "--epochs", "2", "--no-report",
                 "--quiet"]) == 0


def test_train_refits_the_decoder_when_asked(tmp_path, tiny_npz, capsys):
    out = tmp_path / "run"
    assert main(["train", "--data", "npz", "--data-path", str(tiny_npz), "--epochs", "1",
                 "--out", str(out), "--no-report", "--set", "train.refit_decoder_epochs=1",
                 "--set", "train.refit_decoder_lr=1e-2", "--set", "train.refit_decoder_at=means",
                 "--set", "train.refit_decoder_readback=2", *TINY]) == 0
    assert ("the decoder, 1 passes: -log p(x | f, z_1:T) at q's means + 2 x read-back"
            in capsys.readouterr().out)
    fit = load_checkpoint(out / "checkpoint.pt")["prior_fit"]
    assert "decoder" in fit and "z" not in fit and (out / BEFORE).is_file()
    assert fit["decoder"]["at"] == "means" and fit["decoder"]["readback"] == 2


def test_the_decoder_refit_names_a_bad_source(tmp_path, capsys):
    with pytest.raises(ValueError, match="decoder_at = 'mean'"):
        refit_prior(tmp_path, 0, decoder_epochs=1, decoder_at="mean")
    with pytest.raises(SystemExit) as exited:  # argparse's usage error
        main(["refit-prior", str(tmp_path), "--decoder-at", "mean"])
    assert exited.value.code == 2
    assert "invalid choice: 'mean'" in capsys.readouterr().err


@pytest.mark.parametrize("z_encoder", ["frames", "silhouette"])
def test_readback_nats_by_hand(z_encoder):
    """The read-back term, computed again through the public helpers: f drawn from p(f), frames
    decoded by conditioning the model on (f, z_1:T), q's means read back by tracing the guide,
    and half the squared distance in units of q's scales summed by hand."""
    cfg = tiny_config(z_encoder=z_encoder).model
    pyro.set_rng_seed(0)
    model, guide = DSAE(cfg).eval(), make_guide(cfg).eval()
    x = to_tensor(tiny_split([0, 259]).x[:6])
    z, scale = torch.randn(6, cfg.frames, cfg.z_dim), torch.rand(6, cfg.frames, cfg.z_dim) + 0.5
    torch.manual_seed(1)
    got = readback_nats(model, guide, x, z, scale).detach()
    torch.manual_seed(1)
    f = model.f_prior(z).sample((6,))
    drawn = decode(model, {"f": f, **{z_site(t): z[:, t - 1] for t in range(1, cfg.frames + 1)}})
    read = encode(guide, drawn).z
    want = [0.5 * sum(float((read[i, t, d] - z[i, t, d]) / scale[i, t, d]) ** 2
                      for t in range(cfg.frames) for d in range(cfg.z_dim)) for i in range(6)]
    assert got.tolist() == pytest.approx(want, rel=1e-5)
    assert min(want) > 0


def test_readback_gradient_reaches_the_decoder_alone():
    """The term trains the decoder: its gradient reaches the decoder's weights, none is kept for
    the guide's (which stay trainable afterwards)."""
    cfg = tiny_config(z_encoder="silhouette").model
    pyro.set_rng_seed(0)
    model, guide = DSAE(cfg).eval(), make_guide(cfg)
    x = to_tensor(tiny_split([0]).x[:4])
    readback_nats(model, guide, x, torch.randn(4, cfg.frames, cfg.z_dim),
                  torch.ones(4, cfg.frames, cfg.z_dim)).sum().backward()
    grads = [p.grad for n, p in model.named_parameters() if n.startswith("decoder.")]
    assert grads and all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads)
    assert all(p.grad is None and p.requires_grad for p in guide.parameters())


def test_the_refit_objective_adds_the_readback_term():
    """What the refit minimises and scores (`likelihood_nats` with a weight) is the likelihood
    term plus the weight times the read-back term on the same draws of p(f)."""
    cfg = tiny_config().model
    pyro.set_rng_seed(0)
    model, guide = DSAE(cfg).eval(), make_guide(cfg).eval()
    split = tiny_split([0, 259])
    x = to_tensor(split.x)
    post = encode(guide, x)
    # q's widths small enough that the read-back term is not lost beside the pixels' nats
    q = Posterior(post.f, post.z, post.f, torch.ones_like(post.f), post.z,
                  torch.full_like(post.z, 1e-5))
    plain = likelihood_nats(model, split, q, batch_size=7)
    with torch.random.fork_rng():
        torch.manual_seed(0)  # the draws of p(f) likelihood_nats makes
        with torch.no_grad():
            term = float(torch.cat([readback_nats(model, guide, x[b], q.z_loc[b], q.z_scale[b])
                                    for b in torch.arange(len(x)).split(7)]).mean())
    assert term > 100
    both = likelihood_nats(model, split, q, batch_size=7, readback=3.0, guide=guide)
    assert both - plain == pytest.approx(3.0 * term, rel=1e-3)


def test_refit_with_readback_from_the_command_line(tmp_path, tiny_npz, capsys):
    """`dsae refit-prior --decoder-readback` fits the decoder to the ELBO's term plus the
    read-back term: adopted only as the sum falls, the record and the terminal say which
    objective was fitted, and only the decoder's weights change (its batch statistics are left
    as trained: frames drawn from p(f) must not move them)."""
    out = tmp_path / "run"
    assert main(["train", "--data", "npz", "--data-path", str(tiny_npz), "--epochs", "1",
                 "--out", str(out), "--no-report", *TINY]) == 0
    trained = load_checkpoint(out / "checkpoint.pt")
    assert main(["refit-prior", str(out), "--z-components", "0", "--decoder-epochs", "3",
                 "--decoder-lr", "1e-2", "--decoder-readback", "1e5", "--quiet", "--no-report"]) == 0
    said = capsys.readouterr().out
    assert "+ 100000 x read-back of z_1:T under f from p(f)" in said and "adopted" in said
    ckpt = load_checkpoint(out / "checkpoint.pt")
    fit = ckpt["prior_fit"]["decoder"]
    assert fit["readback"] == 1e5 and fit["nats_after"] < fit["nats_before"]
    changed = {k for k, v in ckpt["model"].items() if not torch.equal(v, trained["model"][k])}
    assert changed and all(k.startswith("decoder.") for k in changed), changed
    assert not any(k.endswith(("running_mean", "running_var")) for k in changed), changed
    assert all(torch.equal(v, trained["guide"][k]) for k, v in ckpt["guide"].items())


def test_the_readback_weight_is_checked(tmp_path, capsys):
    with pytest.raises(ValueError, match="decoder_readback = -1"):
        refit_prior(tmp_path, 0, decoder_epochs=1, decoder_readback=-1)
    with pytest.raises(SystemExit):
        main(["refit-prior", str(tmp_path), "--decoder-readback", "-1"])
    assert "--decoder-readback: must be at least 0" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="train.refit_decoder_readback"):
        tiny_config().override(["train.refit_decoder_readback=-0.5"])
    # the decoder's options without the refit they set would be ignored in silence
    with pytest.raises(SystemExit, match="--decoder-readback sets the decoder's refit, which runs "
                       "only with --decoder-epochs N"):
        main(["refit-prior", str(tmp_path), "--decoder-readback", "1"])
    with pytest.raises(SystemExit, match="--decoder-lr and --decoder-at set"):
        main(["refit-prior", str(tmp_path), "--decoder-lr", "1e-3", "--decoder-at", "means"])


def test_refit_under_another_likelihood(tmp_path, tiny_npz, capsys):
    """`--decoder-likelihood laplace --decoder-x-scale B --decoder-mean-margin M` refits a
    Gaussian run's decoder under a Laplace with a widened mean: the trained decoder is scored under
    them too (its nats_before is what the run as trained scores with model.likelihood and
    model.mean_margin swapped by hand), and the adopted run keeps them."""
    from dsae_pyro.data import load_dataset
    from dsae_pyro.prior_fit import posterior_params

    out = tmp_path / "run"
    assert main(["train", "--data", "npz", "--data-path", str(tiny_npz), "--epochs", "1",
                 "--out", str(out), "--no-report", *TINY]) == 0
    assert main(["refit-prior", str(out), "--z-components", "0", "--decoder-epochs", "3",
                 "--decoder-lr", "1e-2", "--decoder-likelihood", "laplace",
                 "--decoder-x-scale", "0.2", "--decoder-mean-margin", "0.05", "--quiet",
                 "--no-report"]) == 0
    said = capsys.readouterr().out
    assert "under model.likelihood = laplace, x_scale 0.2, mean_margin 0.05" in said
    assert "adopted" in said
    ckpt = load_checkpoint(out / "checkpoint.pt")
    fit = ckpt["prior_fit"]["decoder"]
    assert (fit["likelihood"], fit["x_scale"], fit["mean_margin"]) == ("laplace", 0.2, 0.05)
    assert fit["adopted"]
    m = ckpt["config"]["model"]
    assert (m["likelihood"], m["x_scale"], m["mean_margin"]) == ("laplace", 0.2, 0.05)
    run = load_run(out)
    px = run.model.likelihood(torch.zeros(2, run.cfg.model.f_dim),
                              torch.zeros(2, run.cfg.model.frames, run.cfg.model.z_dim))
    assert isinstance(px.base_dist, torch.distributions.Laplace)
    assert torch.all(px.base_dist.scale == 0.2)
    assert px.base_dist.loc.min() >= -0.05 and px.base_dist.loc.max() <= 1.05
    # the trained decoder under the Laplace, scored again here by hand
    before = load_run(out / BEFORE)
    assert (before.cfg.model.likelihood, before.cfg.model.mean_margin) == ("gaussian", 0)
    before.cfg.model.likelihood, before.cfg.model.x_scale = "laplace", 0.2
    before.cfg.model.mean_margin = 0.05
    pyro.set_rng_seed(0)
    train = load_dataset("npz", str(tiny_npz))["train"]
    q = posterior_params(before.guide, train, progress=False)
    before.model.eval()
    assert likelihood_nats(before.model, train, q) == pytest.approx(fit["nats_before"], rel=1e-5)


def test_the_likelihood_swap_is_checked(tmp_path, capsys):
    with pytest.raises(ValueError, match="'gaussian_learned' is not one"):
        refit_prior(tmp_path, 0, decoder_epochs=1, decoder_likelihood="gaussian_learned")
    with pytest.raises(ValueError, match="runs only with decoder_epochs >= 1"):
        refit_prior(tmp_path, 64, decoder_likelihood="laplace")
    with pytest.raises(SystemExit):  # argparse's usage error names the choices
        main(["refit-prior", str(tmp_path), "--decoder-likelihood", "palette_mixture"])
    assert "invalid choice: 'palette_mixture'" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="--decoder-x-scale sets the decoder's refit"):
        main(["refit-prior", str(tmp_path), "--decoder-x-scale", "5"])


@pytest.mark.parametrize("likelihood, swap, says", [
    ("gaussian_learned", {"decoder_likelihood": "laplace"}, "'gaussian_learned' (the run's own) is"),
    ("gaussian_learned", {"decoder_x_scale": 0.2}, "'gaussian_learned' (the run's own) is"),
    ("bernoulli", {"decoder_x_scale": 0.2}, "'bernoulli' has no pixel scale"),
    ("gaussian", {"decoder_likelihood": "l2", "decoder_x_scale": 0.2}, "'l2' has no pixel scale"),
    ("bernoulli", {"decoder_mean_margin": 0.05}, "'bernoulli' reads the decoder's logits"),
])
def test_the_swap_is_checked_against_the_run(tmp_path, tiny_npz, likelihood, swap, says):
    """A run whose likelihood holds parameters keeps it; a scale that the likelihood does not read
    is refused, naming the likelihood, before any work."""
    out = tmp_path / "run"
    assert main(["train", "--data", "npz", "--data-path", str(tiny_npz), "--epochs", "1",
                 "--out", str(out), "--no-report", "--set", f"model.likelihood={likelihood}",
                 *TINY]) == 0
    with pytest.raises(ValueError, match=re.escape(says)):
        refit_prior(out, 0, decoder_epochs=1, progress=False, **swap)
    assert not (out / BEFORE).exists()  # nothing written


def test_refit_with_a_refiner(tmp_path, tiny_npz, capsys):
    """`--decoder-refine W` gives the trained decoder a full-resolution head before its refit:
    the trained decoder scores the same with it (it starts as the identity: nats_before is what
    the run as trained scores, by hand), the adopted run keeps it (model.decoder_refine = W, its
    weights moved off zero), loads, resumes training, and refuses a second one."""
    from dsae_pyro.data import load_dataset
    from dsae_pyro.nets import Refiner
    from dsae_pyro.prior_fit import posterior_params

    out = tmp_path / "run"
    assert main(["train", "--data", "npz", "--data-path", str(tiny_npz), "--epochs", "1",
                 "--out", str(out), "--no-report", *TINY]) == 0
    assert main(["refit-prior", str(out), "--z-components", "0", "--decoder-epochs", "3",
                 "--decoder-lr", "1e-2", "--decoder-refine", "3", "--quiet",
                 "--no-report"]) == 0
    said = capsys.readouterr().out
    assert "with a refiner of 3 channels at full resolution" in said and "adopted" in said
    ckpt = load_checkpoint(out / "checkpoint.pt")
    fit = ckpt["prior_fit"]["decoder"]
    assert fit["adopted"] and fit["refine"] == 3 and ckpt["config"]["model"]["decoder_refine"] == 3
    out_weight = [v for k, v in ckpt["model"].items() if "refine.out.weight" in k]
    assert len(out_weight) == 1 and out_weight[0].abs().sum() > 0
    run = load_run(out)
    assert sum(isinstance(m, Refiner) for m in run.model.modules()) == 1
    before = load_run(out / BEFORE)
    assert before.cfg.model.decoder_refine == 0
    pyro.set_rng_seed(0)
    train = load_dataset("npz", str(tiny_npz))["train"]
    q = posterior_params(before.guide, train, progress=False)
    before.model.eval()
    assert likelihood_nats(before.model, train, q) == pytest.approx(fit["nats_before"], rel=1e-5)
    with pytest.raises(ValueError, match="has a refiner already"):
        refit_prior(out, 0, decoder_epochs=1, decoder_refine=3, progress=False)
    with pytest.raises(SystemExit, match="--decoder-refine sets the decoder's refit"):
        main(["refit-prior", str(out), "--decoder-refine", "4"])
    with pytest.raises(SystemExit):
        main(["refit-prior", str(out), "--decoder-epochs", "1", "--decoder-refine", "0"])
    assert "--decoder-refine: must be at least 1" in capsys.readouterr().err
    assert main(["train", "--out", str(out), "--resume", "--epochs", "2", "--no-report",
                 "--quiet"]) == 0
