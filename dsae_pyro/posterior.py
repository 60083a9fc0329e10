"""Looking inside a trained posterior with poutine (dsae_pyro.posterior): thin helpers that return
plain tensors.

    encode      trace the guide: posterior loc/scale and values of f and every z_t
    read_back   q's means of z_1:T from frames the decoder drew (differentiable)
    decode      condition the model on latent values (poutine.condition) and read p(x | f, z)'s mean
    swap        decode f of one clip with z_1:T of another
    intervene   poutine.do on f or chosen z_t; later z_t follow the prior from the forced values
    predictive  prior or posterior predictive samples with pyro.infer.Predictive
    diagnose    log-density and KL per site and per time step, active units, the ELBO's split f vs z

`model` below is a `DSAE` (its `.model` is the Pyro function) and `guide` any guide of `guides.py`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from pyro import poutine
from pyro.infer import Predictive
from pyro.poutine.messenger import Messenger
from pyro.poutine.util import site_is_subsample
from torch.distributions import kl_divergence

from .model import z_site


class use_mean(Messenger):  # noqa: N801 - a handler, used like poutine's
    """Replace every latent sample by its distribution's mean (downstream sites see the mean)."""

    def _pyro_sample(self, msg):
        if not msg["is_observed"] and not site_is_subsample(msg):  # not plates
            msg["value"] = msg["fn"].mean
            msg["done"] = True


@contextmanager
def evaluating(*modules) -> Iterator[None]:
    """Modules in eval mode inside (BatchNorm uses, and leaves alone, its running statistics);
    each gets its own mode back after, so inspecting mid-training changes nothing."""
    modules = [m for m in modules if isinstance(m, torch.nn.Module)]
    modes = [m.training for m in modules]
    for m in modules:
        m.eval()
    try:
        yield
    finally:
        for m, mode in zip(modules, modes, strict=True):
            m.train(mode)


def latent_sites(frames: int) -> list[str]:
    return ["f"] + [z_site(t) for t in range(1, frames + 1)]


@dataclass
class Posterior:
    """Posterior of one batch: values (means or samples) of f (B, F) and z (B, T, Z), and the
    parameters of q at each site."""

    f: torch.Tensor
    z: torch.Tensor
    f_loc: torch.Tensor
    f_scale: torch.Tensor
    z_loc: torch.Tensor
    z_scale: torch.Tensor

    @classmethod
    def of_trace(cls, tr, frames: int) -> Posterior:
        """Read off a guide's trace: the sampled values and q's parameters at every site."""
        z_nodes = [tr.nodes[z_site(t)] for t in range(1, frames + 1)]
        f_fn = tr.nodes["f"]["fn"].base_dist
        return cls(
            f=tr.nodes["f"]["value"], z=torch.stack([n["value"] for n in z_nodes], 1),
            f_loc=f_fn.loc, f_scale=f_fn.scale,
            z_loc=torch.stack([n["fn"].base_dist.loc for n in z_nodes], 1),
            z_scale=torch.stack([n["fn"].base_dist.scale for n in z_nodes], 1))

    def z_data(self) -> dict[str, torch.Tensor]:
        """The z_t site values alone: condition on them and f comes from the prior."""
        return {z_site(t + 1): self.z[:, t] for t in range(self.z.shape[1])}

    def as_data(self) -> dict[str, torch.Tensor]:
        """Site values as a dict for poutine.condition / poutine.do."""
        return {"f": self.f, **self.z_data()}


@torch.no_grad()
def encode(guide, x: torch.Tensor, mean: bool = True) -> Posterior:
    """Trace the guide on clips x; mean=True takes posterior means at every site, else samples."""
    fn = use_mean()(guide) if mean else guide
    with evaluating(guide):
        tr = poutine.trace(fn).get_trace(x)
    return Posterior.of_trace(tr, x.shape[1])


def read_back(guide, frames: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """q's means of z_1:T (B, T, Z) read from frames the decoder drew, differentiable in those
    frames. Where q(z_1:T) does not depend on it (`f_reads_apart`), q(f) reads the real clips x
    instead: the palette encoder is fast on their ~45 colours a clip, slow on drawn frames whose
    every pixel is a colour (6x the training step on Sprites)."""
    apart = getattr(guide, "f_reads_apart", False)
    back = poutine.trace(guide).get_trace(frames, **({"x_f": x} if apart else {}))
    return Posterior.of_trace(back, frames.shape[1]).z_loc


@torch.no_grad()
def decode(model, values: dict[str, torch.Tensor], batch_size: int | None = None,
           handler=poutine.condition) -> torch.Tensor:
    """The frames p(x | f, z) shows (`DSAE.picture`: its mean, or each pixel's likeliest colour
    under the palette mixture) with the given sites fixed; unfixed latents come from the prior.

    `values` maps site names ("f", "z_3", ...) to tensors of shape (B, dim).
    """
    if batch_size is None:
        batch_size = next(iter(values.values())).shape[0]
    with evaluating(model):
        tr = poutine.trace(handler(model.model, data=values)).get_trace(batch_size=batch_size)
    return model.picture(tr.nodes["x"]["fn"])


def swap(model, guide, x_appearance: torch.Tensor, x_motion: torch.Tensor) -> torch.Tensor:
    """Frames with f (posterior mean) of x_appearance and z_1:T of x_motion."""
    a, m = encode(guide, x_appearance), encode(guide, x_motion)
    return decode(model, {"f": a.f, **m.z_data()})


def intervene(model, values: dict[str, torch.Tensor], batch_size: int | None = None):
    """poutine.do: force sites to values; z_t after a forced one follows the prior from it."""
    return decode(model, values, batch_size, handler=poutine.do)


@torch.no_grad()
def predictive(model, guide=None, x: torch.Tensor | None = None, num_samples: int = 1,
               batch_size: int | None = None) -> dict[str, torch.Tensor]:
    """Prior (no guide) or posterior predictive samples of every site, shaped (num_samples, B, ...)."""
    sites = [*latent_sites(model.cfg.frames), "x"]
    with evaluating(model, guide):
        if guide is None:
            return Predictive(model.model, num_samples=num_samples, return_sites=sites)(
                batch_size=batch_size)

        def unobserved(x):  # x feeds the guide only; the model draws fresh frames from p(x | f, z)
            return model.model(None, batch_size=x.shape[0])

        return Predictive(unobserved, guide=guide, num_samples=num_samples, return_sites=sites)(x)


@dataclass
class Diagnosis:
    """Per-batch diagnostics, averaged over clips (nats per clip unless noted)."""

    log_p: dict[str, float]  # log p at every site of the model, including "x"
    log_q: dict[str, float]  # log q at every latent site of the guide
    kl: dict[str, float]  # KL(q || p) per latent site; for z_t, given the guide's z_<t
    kl_f: float
    kl_z: float  # summed over t
    elbo: float  # log p(x|f,z) - KL, one-sample
    active_f: torch.Tensor  # bool per dimension: Var_x[E_q f] > threshold
    active_z: torch.Tensor  # bool per dimension of z, over clips and frames
    posterior: Posterior  # posterior means of the batch, which the active units are read from

    @property
    def share_f(self) -> float:
        """The share of the ELBO's KL cost spent on f (the rest is spent on z_1:T)."""
        return self.kl_f / (self.kl_f + self.kl_z)


def _kl(q_site: dict, p_site: dict) -> torch.Tensor:
    """KL(q || p) at a site, in closed form where there is one; else (a mixture prior) its
    one-sample estimate log q(z) - log p(z) at the guide's sample."""
    try:
        return kl_divergence(q_site["fn"], p_site["fn"])
    except NotImplementedError:
        z = q_site["value"]
        return q_site["fn"].log_prob(z) - p_site["fn"].log_prob(z)


@torch.no_grad()
def diagnose(model, guide, x: torch.Tensor, active_threshold: float = 0.01) -> Diagnosis:
    """Replay the model on one guide sample and split the ELBO site by site."""
    with evaluating(model, guide):
        g = poutine.trace(guide).get_trace(x)
        m = poutine.trace(poutine.replay(model.model, trace=g)).get_trace(x)
    n = x.shape[0]
    sites = latent_sites(x.shape[1])
    log_p = {s: float(m.nodes[s]["fn"].log_prob(m.nodes[s]["value"]).sum()) / n
             for s in [*sites, "x"]}
    log_q = {s: float(g.nodes[s]["fn"].log_prob(g.nodes[s]["value"]).sum()) / n for s in sites}
    kl = {s: float(_kl(g.nodes[s], m.nodes[s]).sum()) / n for s in sites}
    kl_z = sum(v for k, v in kl.items() if k != "f")
    post = encode(guide, x)
    return Diagnosis(
        log_p=log_p, log_q=log_q, kl=kl, kl_f=kl["f"], kl_z=kl_z,
        elbo=log_p["x"] - kl["f"] - kl_z,
        active_f=post.f_loc.var(0) > active_threshold,
        active_z=post.z_loc.reshape(-1, post.z_loc.shape[-1]).var(0) > active_threshold,
        posterior=post)
