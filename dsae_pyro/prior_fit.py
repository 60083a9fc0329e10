"""Fitting the generative model to the posteriors after training: the ELBO's prior terms
E_q[log p(f)] and E_q[log p(z_1:T)] maximised over the priors' parameters, and its
reconstruction term E_q[log p(x_1:T | f, z_1:T)] over the decoder's, each with q fixed.

Generation draws from the priors, so their samples must land where q puts the clips. On real
Sprites q(z_1:T) of the clips sits in tight, separate clusters (one per motion and phase), and
the LSTM prior's one Gaussian per step covers them with a wide bell whose samples fall mostly
between them; the decoder draws such z with the wrong skin tone. A prior refitted as a mixture
(`model.prior_components`) after training puts its samples on the clusters. p(f) can be refitted
the same way (`model.f_prior_components`), though on real Sprites q(f) of the clips proved as
well described by N(0, I) as by a mixture of 64 (experiments/README.md). Fitting a richer
prior to the aggregate posterior after training is the second stage of Dai & Wipf (ICLR 2019)
and Ghosh et al.'s ex-post density estimation (ICLR 2020); here it is the same ELBO terms the
training maximised, over the same prior families, only with more components.

The decoder's refit is the same step for the likelihood: with q fixed, E_q[log p(x | f, z_1:T)]
is the only ELBO term that depends on the decoder, so fitting it alone cannot lower the ELBO
(a coordinate-ascent step, as the M-step of variational EM). On real Sprites a few passes at a
low rate sharpen the colours of a decoder stopped early more per CPU minute than training on;
after the nolabel preset's 32 epochs it finds nothing left (experiments/README.md, "Refitting the
decoder").

The decoder's refit can also be asked to keep z_1:T's motion under a new f (`readback`): frames
drawn with a clip's z_1:T and an f from p(f), which is how the motion test generates, are read
back by q(z_1:T | x), and the distance of what it reads from the z_1:T they were drawn with is
added to the fit. q stays fixed, so the decoder can only lower it by drawing the pose that z_1:T
holds whatever f it is given. No label is read. It is a consistency term beside the ELBO's, not
an ELBO term (the latent cycle of Zhu et al.'s BicycleGAN, NeurIPS 2017).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pyro
import torch
from tqdm.auto import tqdm

from .config import REFIT_DECODER_AT, REFIT_LIKELIHOODS, SCALE_NAMES
from .data import Split, load_dataset, to_tensor
from .nets import add_refiner, remove_refiner
from .posterior import Posterior, encode, evaluating, read_back
from .priors import StaticPrior, make_prior
from .runs import CHECKPOINT, EVALUATION_FILES, atomic_write, load_checkpoint, set_aside

BEFORE_SUFFIX = "_before_prior_fit"
BEFORE = f"checkpoint{BEFORE_SUFFIX}.pt"  # the run as trained, kept beside the refitted one


def before_suffix(run_dir: Path) -> str:
    """The suffix under which a refit keeps the checkpoint it replaces and that checkpoint's
    evaluation, as a pair: _before_prior_fit for the first refit (the run as trained),
    _before_prior_fit<n> for the n-th, so no evaluation is kept beside a model it did not score."""
    n = 1
    while (run_dir / f"checkpoint{BEFORE_SUFFIX}{n if n > 1 else ''}.pt").exists():
        n += 1
    return f"{BEFORE_SUFFIX}{n if n > 1 else ''}"


@torch.no_grad()
def posterior_params(guide, split: Split, batch_size: int = 128, device="cpu",
                     progress: bool = True) -> Posterior:
    """q's parameters for every clip of `split` along one draw of q per clip, the guide in eval
    mode: f_loc, f_scale (N, F) and z_loc, z_scale (N, T, Z). For the factorized guide,
    loc + scale * noise is a fresh exact draw of q; for the guides whose q(z_t) reads z_<t (or f)
    it re-noises the steps of that one draw."""
    parts = []
    with evaluating(guide):
        for i in tqdm(range(0, len(split), batch_size), disable=not progress, unit="batch",
                      desc="q(f, z_1:T) of the training clips"):
            parts.append(encode(guide, to_tensor(split.x[i:i + batch_size], device), mean=False))
    return Posterior(*(torch.cat([getattr(p, k.name) for p in parts])
                       for k in dataclasses.fields(Posterior)))


def _draw(loc: torch.Tensor, scale: torch.Tensor, b: torch.Tensor, g: torch.Generator
          ) -> torch.Tensor:
    """A draw of q (loc + scale * noise) for the clips b."""
    return loc[b] + scale[b] * torch.randn(scale[b].shape, generator=g, device=loc.device)


def _adam_epochs(params, loss, n: int, epochs: int, lr: float, batch_size: int,
                 g: torch.Generator, desc: str, digits: int, progress: bool) -> list[float]:
    """Adam on `params` over `epochs` passes of n items in batches shuffled by `g`, minimising
    `loss(batch indices)` (a mean per item); returns each epoch's mean loss."""
    opt = torch.optim.Adam(params, lr=lr)
    history = []
    bar = tqdm(range(epochs), disable=not progress, unit="epoch", desc=desc)
    for _ in bar:
        total = 0.0
        for b in torch.randperm(n, generator=g, device=g.device).split(batch_size):
            nll = loss(b)
            opt.zero_grad(set_to_none=True)
            nll.backward()
            opt.step()
            total += nll.item() * len(b)
        history.append(total / n)
        bar.set_postfix(nats=f"{history[-1]:.{digits}f}")
    return history


def fit_prior(prior: torch.nn.Module, loc: torch.Tensor, scale: torch.Tensor, epochs: int = 30,
              lr: float = 1e-3, batch_size: int = 64, seed: int = 0, progress: bool = True
              ) -> list[float]:
    """Maximise E_q[log p(v)] over the prior's parameters by Adam, with v = loc + scale * noise
    drawn afresh each epoch (a prior with a `log_prob(v)` per data point: p(f) or p(z_1:T));
    returns -E_q[log p(v)] (nats per clip) of each epoch."""
    g = torch.Generator(device=loc.device).manual_seed(seed)
    prior.train()
    history = _adam_epochs(prior.parameters(),
                           lambda b: -prior.log_prob(_draw(loc, scale, b, g)).mean(),
                           len(loc), epochs, lr, batch_size, g, "fitting the prior", 2, progress)
    prior.eval()
    return history


def likelihood_parameters(model) -> dict[str, torch.nn.Parameter]:
    """The generative model's parameters other than its priors': the decoder's (and a learned
    pixel scale), everything that E_q[log p(x | f, z_1:T)] depends on."""
    return {n: p for n, p in model.named_parameters() if not n.startswith(("prior.", "f_prior."))}


def _draws(q: Posterior, b: torch.Tensor, g: torch.Generator, at: str = "draws"
           ) -> tuple[torch.Tensor, torch.Tensor]:
    """f and z_1:T of clips b: drawn from q, or q's means (at="means")."""
    if at == "means":
        return q.f_loc[b], q.z_loc[b]
    return _draw(q.f_loc, q.f_scale, b, g), _draw(q.z_loc, q.z_scale, b, g)


@contextmanager
def frozen(module: torch.nn.Module) -> Iterator[None]:
    """Gradients flow through `module` but none is kept for its parameters."""
    wanted = [(p, p.requires_grad) for p in module.parameters()]
    for p, _ in wanted:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in wanted:
            p.requires_grad_(flag)


def readback_nats(model, guide, x: torch.Tensor, z_loc: torch.Tensor, z_scale: torch.Tensor
                  ) -> torch.Tensor:
    """Per clip (B): frames drawn with z_1:T = `z_loc` (q's means of clips x) and f from p(f),
    read back by the guide; sum over steps and dimensions of ((read - z_loc) / z_scale)^2 / 2,
    the distance in units of q's own widths. 0 when the decoder draws the pose z_1:T holds
    whatever f it gets. Differentiable in the decoder (the guide's weights take no gradient)."""
    f = model.f_prior(z_loc).sample((len(z_loc),))
    drawn = model.decode(f, z_loc)
    with frozen(guide), evaluating(guide):
        read = read_back(guide, drawn, x)
    return (((read - z_loc) / z_scale) ** 2 / 2).sum((1, 2))


def _decoder_loss(model, clips: Split, q: Posterior, b: torch.Tensor, g: torch.Generator,
                  at: str, readback: float, guide) -> torch.Tensor:
    """The refit's objective per clip of b: -log p(x | f, z_1:T) at q's draws (or means), plus
    `readback` times `readback_nats`."""
    x = to_tensor(clips.x[b.cpu().numpy()], q.f_loc.device)
    loss = -model.likelihood(*_draws(q, b, g, at)).log_prob(x)
    if readback:
        loss = loss + readback * readback_nats(model, guide, x, q.z_loc[b], q.z_scale[b])
    return loss


def fit_decoder(model, clips: Split, q: Posterior, epochs: int = 4, lr: float = 1e-4,
                batch_size: int = 16, seed: int = 0, progress: bool = True, at: str = "draws",
                readback: float = 0.0, guide=None) -> list[float]:
    """Maximise E_q[log p(x_1:T | f, z_1:T)] over the likelihood's parameters by Adam, with f and
    z_1:T drawn afresh from q (`q`: its parameters for each clip of `clips`) at every step;
    returns -E_q[log p(x | f, z_1:T)] (nats per clip) of each epoch. With at="means", f and
    z_1:T are q's means instead (for guides whose q(z_t) reads z_<t, the locs along the draw that
    `q` holds): not the ELBO's term but the deterministic decoder of Ghosh et al. (ICLR 2020),
    which does not learn to hedge between what q's noise confuses. With `readback` > 0 (and the
    `guide` that gave q), that weight times `readback_nats` is added, and the returned losses
    include it."""
    if readback and guide is None:
        raise ValueError("the read-back term reads the drawn frames with the guide: pass guide=")
    g = torch.Generator(device=q.f_loc.device).manual_seed(seed)
    return _adam_epochs(likelihood_parameters(model).values(),
                        lambda b: _decoder_loss(model, clips, q, b, g, at, readback, guide).mean(),
                        len(clips), epochs, lr, batch_size, g, "fitting the decoder", 1,
                        progress)


@torch.no_grad()
def likelihood_nats(model, clips: Split, q: Posterior, seed: int = 0, batch_size: int = 64,
                    at: str = "draws", readback: float = 0.0, guide=None) -> float:
    """-E_q[log p(x | f, z_1:T)] in nats per clip on one fixed draw of q per clip (`seed`), or
    -log p(x | f, z_1:T) at q's means (at="means"); with `readback`, the refit's whole objective
    (the same draws of p(f) for every call with the same seed)."""
    g = torch.Generator(device=q.f_loc.device).manual_seed(seed)
    total = 0.0
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # p(f)'s draws of the read-back term
        for b in torch.arange(len(clips), device=q.f_loc.device).split(batch_size):
            total += float(_decoder_loss(model, clips, q, b, g, at, readback, guide).sum())
    return total / len(clips)


def _refit_decoder(model, clips: Split, q: Posterior, epochs: int, lr: float, seed: int,
                   progress: bool, at: str = "draws", check_clips: int = 512,
                   readback: float = 0.0, guide=None) -> dict:
    """Fit the model's likelihood to q (its draws or its means: `at`; with `readback`, plus the
    read-back term); the fit's record, whose "adopted" says whether it scores better than the
    trained decoder on the same draws (or means) of q for the first `check_clips` clips
    (otherwise the trained weights are put back)."""
    check = clips.subset(slice(0, check_clips))
    q_check = Posterior(*(getattr(q, k.name)[:check_clips] for k in dataclasses.fields(Posterior)))
    trained = {k: v.clone() for k, v in model.state_dict().items()}
    score = dict(at=at, readback=readback, guide=guide)
    model.eval()  # scored with the batch-norm statistics it generates with
    before = likelihood_nats(model, check, q_check, seed, **score)
    # fitted as trained (batch statistics, the running ones updated), except with the read-back
    # term: frames drawn from p(f) must not move the statistics that real clips are drawn with
    model.train(not readback)
    history = fit_decoder(model, clips, q, epochs, lr, seed=seed, progress=progress, **score)
    model.eval()
    after = likelihood_nats(model, check, q_check, seed, **score)
    if not after < before:
        model.load_state_dict(trained)
    return {"epochs": epochs, "lr": lr, "at": at, "readback": readback, "nats_before": before,
            "nats_after": after, "nats": history, "adopted": after < before}


def _check_swap(likelihood: str, whose: str = "") -> None:
    if likelihood not in REFIT_LIKELIHOODS:
        raise ValueError(f"the decoder's refit swaps likelihoods among {REFIT_LIKELIHOODS}, which "
                         "read the decoder's one output and hold no parameters; model.likelihood "
                         f"= {likelihood!r} {whose}is not one")


def _refit(old: torch.nn.Module, new: torch.nn.Module, loc: torch.Tensor, scale: torch.Tensor,
           epochs: int, lr: float, seed: int, progress: bool) -> dict:
    """Fit `new` (started from `old` wherever the shapes agree) to q; the fit's record, whose
    "adopted" says whether `new` scores better than `old` on the same draws of q."""
    noise = torch.randn(scale.shape, generator=torch.Generator(loc.device).manual_seed(seed),
                        device=loc.device)

    @torch.no_grad()
    def nats(prior):
        prior.eval()
        return -float(prior.log_prob(loc + scale * noise).mean())

    before = nats(old)
    start_at = new.state_dict()  # the trained prior's recurrence (all of it for z with K = 1)
    start_at.update({k: v for k, v in old.state_dict().items()
                     if k in start_at and start_at[k].shape == v.shape})
    new.load_state_dict(start_at)
    history = fit_prior(new, loc, scale, epochs, lr, seed=seed, progress=progress)
    after = nats(new)
    return {"components": new.components, "replaced_components": old.components,
            "nats_before": before, "nats_after": after, "nats": history,
            "adopted": after < before}


def refit_prior(path: str | os.PathLike, components: int = 64, f_components: int = 0,
                epochs: int = 60, lr: float = 1e-3, seed: int = 0, data: str | None = None,
                data_path: str | None = None, progress: bool = True,
                clips: Split | None = None, decoder_epochs: int = 0,
                decoder_lr: float = 1e-4, decoder_at: str = "draws",
                decoder_readback: float = 0.0, decoder_likelihood: str | None = None,
                decoder_x_scale: float | None = None,
                decoder_mean_margin: float | None = None,
                decoder_refine: int | None = None) -> dict:
    """Refit the priors of the run in `path` (a run folder) on q of its training clips and save
    them in the run's checkpoint (the run as trained stays beside it, as
    checkpoint_before_prior_fit.pt, and what a later refit replaces as
    checkpoint_before_prior_fit<n>.pt, each with its evaluation): p(z_1:T) as a mixture of
    `components` Gaussians per step, p(f) as a mixture of `f_components` (0 leaves a prior as it
    is), and the decoder for `decoder_epochs` passes at Adam's rate `decoder_lr` (0 leaves it as
    it is), on draws of q (the ELBO's term) or, with decoder_at="means", on q's means
    (`fit_decoder`), with `decoder_readback` times the read-back term added (`readback_nats`;
    0: none), under the run's likelihood or `decoder_likelihood` with pixel scale
    `decoder_x_scale` (one of REFIT_LIKELIHOODS) and the mean's margin `decoder_mean_margin`
    (model.mean_margin; the trained decoder is scored under them too, and the run keeps them
    only if the refit is adopted), the decoder given first a full-resolution head of
    `decoder_refine` channels that starts as the identity (model.decoder_refine, nets.Refiner;
    kept only if adopted).
    Returns the fit's record, also kept in the checkpoint: per part ("z", "f", "decoder"),
    -E_q[log p] in nats per clip before, after and at each epoch, and whether the fit was
    adopted: a fit that scores worse than what it would replace is not, and with none adopted
    nothing is written.
    `clips`: the training split when the caller holds it already (otherwise it is loaded)."""
    from .train import Run

    if min(components, f_components, decoder_epochs) < 0 or not (
            components or f_components or decoder_epochs):
        raise ValueError("give p(z_1:T), p(f) or the decoder something to refit (components >= 1, "
                         f"f_components >= 2 or decoder_epochs >= 1), got {components}, "
                         f"{f_components} and {decoder_epochs}")
    if not decoder_readback >= 0:
        raise ValueError(f"decoder_readback = {decoder_readback}: the read-back term's weight is "
                         "0 (none) or more")
    if decoder_at not in REFIT_DECODER_AT:
        raise ValueError(f"decoder_at = {decoder_at!r}: the decoder is refitted on q's "
                         f"'draws' (the ELBO's term) or its 'means'; give one of {REFIT_DECODER_AT}")
    swap = [f"model.{key}={value}" for key, value in
            (("likelihood", decoder_likelihood), ("x_scale", decoder_x_scale),
             ("mean_margin", decoder_mean_margin)) if value is not None]
    if (swap or decoder_refine is not None) and not decoder_epochs:
        raise ValueError("decoder_likelihood, decoder_x_scale, decoder_mean_margin and "
                         "decoder_refine set the decoder's refit, which runs only with "
                         "decoder_epochs >= 1")
    if decoder_refine is not None and not decoder_refine >= 1:
        raise ValueError(f"decoder_refine = {decoder_refine}: the refiner's width is 1 channel or "
                         "more; leave it out for none")
    if decoder_likelihood is not None:
        _check_swap(decoder_likelihood)
    if f_components == 1:
        raise ValueError("f_components = 1 is p(f) = N(0, I), which has nothing to fit; give "
                         "2 or more, or 0 to leave p(f) as it is")
    run_dir = Path(path)
    if run_dir.is_file():
        run_dir = run_dir.parent
    ckpt = load_checkpoint(run_dir / CHECKPOINT, Run.CONFIG.KIND)
    run = Run.load(run_dir / CHECKPOINT)
    cfg, model = run.cfg, run.model
    wanted = {key: f"model.{name}={k}" for key, name, k in
              (("z", "prior_components", components), ("f", "f_prior_components", f_components))
              if k}
    # the config's own checks (a mixture has no closed-form KL under meanfield, a scale is > 0),
    # before any work
    refine = [f"model.decoder_refine={decoder_refine}"] if decoder_refine else []
    Run.CONFIG.from_dict(cfg.to_dict()).override(list(wanted.values()) + swap + refine)
    if refine and cfg.model.decoder_refine:
        raise ValueError(f"the run's decoder has a refiner already (model.decoder_refine = "
                         f"{cfg.model.decoder_refine}); refit it without decoder_refine")
    if swap:
        _check_swap(cfg.model.likelihood, "(the run's own) ")
        target = decoder_likelihood or cfg.model.likelihood
        if decoder_x_scale is not None and target not in SCALE_NAMES:
            raise ValueError(f"decoder_x_scale = {decoder_x_scale:g} would change nothing: "
                             f"model.likelihood = {target!r} has no pixel scale; leave it out or "
                             f"refit under one that has ({SCALE_NAMES})")
        if decoder_mean_margin is not None and target == "bernoulli":
            raise ValueError(f"decoder_mean_margin = {decoder_mean_margin:g} would change nothing: "
                             "model.likelihood = 'bernoulli' reads the decoder's logits, not a "
                             "mean; leave it out or refit under 'gaussian', 'laplace' or 'l2'")
    start = time.perf_counter()
    pyro.set_rng_seed(seed)  # q's draws of the training clips
    train = clips if clips is not None else load_dataset(
        data or cfg.data.name, data_path or cfg.data.path, cfg.data.seed, progress=progress)["train"]
    q = posterior_params(run.guide, train, device=run.device, progress=progress)
    record = {"epochs": epochs, "lr": lr, "clips": len(train)}
    overrides, refitted = [], []
    if components:
        prior = make_prior(cfg.model.prior, cfg.model.z_dim, cfg.model.hidden, components)
        record["z"] = _refit(model.prior, prior.to(run.device), q.z_loc, q.z_scale, epochs, lr,
                             seed, progress)
        if record["z"]["adopted"]:
            model.prior = prior
            overrides.append(wanted["z"])
            refitted.append("model/prior.")
    if f_components:
        prior = StaticPrior(cfg.model.f_dim, f_components)
        prior.start_at(q.f_loc + q.f_scale * torch.randn_like(q.f_scale), seed)
        record["f"] = _refit(model.f_prior, prior.to(run.device), q.f_loc, q.f_scale, epochs, lr,
                             seed, progress)
        if record["f"]["adopted"]:
            model.f_prior = prior
            overrides.append(wanted["f"])
            refitted.append("model/f_prior.")
    if decoder_epochs:
        trained = [f"model.{key}={getattr(cfg.model, key)}"
                   for key in ("likelihood", "x_scale", "mean_margin", "decoder_refine")]
        cfg.override(swap + refine)  # the model reads cfg.model: the trained decoder is scored
        if decoder_refine:           # under it too, and the refiner starts as the identity
            add_refiner(model.decoder, decoder_refine)
        record["decoder"] = _refit_decoder(model, train, q, decoder_epochs, decoder_lr, seed,
                                           progress, decoder_at, readback=decoder_readback,
                                           guide=run.guide)
        if swap:
            record["decoder"].update(likelihood=cfg.model.likelihood, x_scale=cfg.model.x_scale,
                                     mean_margin=cfg.model.mean_margin)
        if refine:
            record["decoder"]["refine"] = decoder_refine
        if record["decoder"]["adopted"]:
            refitted += [f"model/{name}" for name in likelihood_parameters(model)]
            overrides += swap + refine
        else:
            cfg.override(trained)
            if decoder_refine:
                remove_refiner(model.decoder)
    record["seconds"] = time.perf_counter() - start
    if not refitted:
        return record
    # the checkpoint as trained, with what was refitted: the model's other weights, the guide
    # and the optimiser's state of every other parameter are the saved ones, untouched
    cfg.override(overrides)
    ckpt["model"] = model.state_dict()
    ckpt["optim"] = {k: v for k, v in ckpt["optim"].items() if not k.startswith(tuple(refitted))}
    ckpt["config"] = cfg.to_dict()
    ckpt["prior_fit"] = record
    suffix = before_suffix(run_dir)
    shutil.copyfile(run_dir / CHECKPOINT, run_dir / f"checkpoint{suffix}.pt")
    atomic_write(run_dir / CHECKPOINT, lambda fh: torch.save(ckpt, fh))
    atomic_write(run_dir / "config.toml", lambda fh: fh.write(cfg.to_toml().encode()))
    # q is untouched, so what reads q alone (cosine.png) still describes the run
    set_aside(run_dir, EVALUATION_FILES, suffix)
    return record


def describe(record: dict) -> str:
    """What a refit did, in lines for the terminal: per prior, its fit and whether it was kept."""
    lines = []
    for key, site in (("z", "p(z_1:T)"), ("f", "p(f)")):
        if key in record:
            r = record[key]
            said = (f"{site} as a mixture of {r['components']}: -E_q[log {site}] "
                    f"{r['nats_before']:.2f} -> {r['nats_after']:.2f} nats a clip")
            lines.append(f"{said}: adopted" if r["adopted"] else
                         f"{said}: worse than the trained prior, which is kept (try more epochs "
                         "or other components)")
    if "decoder" in record:
        r = record["decoder"]
        term = ("-log p(x | f, z_1:T) at q's means" if r.get("at") == "means" else
                "-E_q[log p(x | f, z_1:T)]")
        if r.get("readback"):
            term += f" + {r['readback']:g} x read-back of z_1:T under f from p(f)"
        if "likelihood" in r:
            term += f" under model.likelihood = {r['likelihood']}, x_scale {r['x_scale']:g}"
            if r.get("mean_margin"):
                term += f", mean_margin {r['mean_margin']:g}"
        if r.get("refine"):
            term += f", with a refiner of {r['refine']} channels at full resolution"
        said = (f"the decoder, {r['epochs']} passes: {term} "
                f"{r['nats_before']:.1f} -> {r['nats_after']:.1f} nats a clip")
        lines.append(f"{said}: adopted" if r["adopted"] else
                     f"{said}: worse than the trained decoder, which is kept (try a lower "
                     "rate)")
    lines.append(f"fitted on {record['clips']} training clips in {record['seconds']:.0f}s")
    return "\n".join(lines)


def adopted(record: dict) -> bool:
    """Whether a refit replaced a prior or the decoder (and so rewrote the run's checkpoint)."""
    return any(record.get(k, {}).get("adopted") for k in ("z", "f", "decoder"))
