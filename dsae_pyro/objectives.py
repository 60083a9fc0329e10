"""Training objectives of the DSAE beyond the plain ELBO, as losses `pyro.infer.SVI` takes.

`ContrastiveLoss` (train.objective = "contrastive") is the ELBO plus two InfoNCE bounds and a
penalty, in the spirit of C-DSVAE (Bai, Wang & Gomes 2021), with no labels of any kind:

    loss = -ELBO - w_f B I_nce(f; f of the clip with its frames shuffled)
                 - w_z B I_nce(z_1:T; z_1:T of the clip recoloured)
                 + w_mi B I_mws(f; z_1:T)
                 - w_swap B I_nce(z_1:T; z_1:T read back from frames drawn with z_1:T and a new f)

- shuffling frames keeps the appearance and destroys the motion, so the f of a clip must match the
  f of its shuffled self and differ from the other clips' f; the direction a sprite faces survives
  shuffling, so `f_view="shuffle_mirror"` also mirrors that view left-right (left <-> right), and
  `f_view="shuffle_tiles"` cuts every frame into 8x8-pixel tiles put back in a random order (the
  colours survive; whether the sprite faces the viewer or the side does not);
- recolouring (`data.views.recolour`) keeps the motion and destroys the colours, so z_1:T must match
  across the two and differ between clips;
- I(f; z_1:T) under the aggregate posterior, estimated from the batch by minibatch sampling
  (Chen et al. 2018), is penalised so that the two latents do not carry the same thing;
- the swap term is the motion protocol made a loss: frames decoded from a clip's z_1:T with a new f
  must give back that z_1:T to the guide (InfoNCE against the batch), meant to keep a new f from
  turning the sprite around. The new f is drawn from p(f) (`swap_f="prior"`) or is another clip's
  posterior f (`swap_f="batch"`, the batch rolled by one), which turns the sprite around more often
  than p(f) does. With `swap_recolour` the guide reads the drawn frames recoloured, so that z_1:T
  gains nothing there by carrying the colours. Off by default (w_swap = 0); it costs a decoder and
  a guide pass.

Where the guide reads a view exactly as it reads the clip (the palette q(f) under any f view, which
only moves pixels about; the factorized guide's silhouette q(z_1:T) under recolouring), the clip's
own q means are the positives, with no guide pass on the view: the same value and gradients, and
that InfoNCE term then only spreads the clips apart.

B is the batch size: the terms are summed over clips like the ELBO. With every weight 0 the loss is
`Trace_ELBO`'s, value and gradients (tests/test_objectives.py).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from pyro import poutine

from .aggregate import mws_mutual_information
from .config import NCE_F_VIEWS, SWAP_F
from .data.views import mirror, recolour, shuffle_frames, shuffle_tiles
from .posterior import Posterior, read_back


def info_nce(a: torch.Tensor, b: torch.Tensor, temperature: float = 0.5) -> torch.Tensor:
    """InfoNCE lower bound (nats) on I(a; b) from B paired rows, with the cosine critic
    cos(a_i, b_j) / temperature: log B minus the cross-entropy of finding each row's partner among
    the B candidates. Never above log B (van den Oord et al. 2018)."""
    logits = F.normalize(a.flatten(1), dim=-1) @ F.normalize(b.flatten(1), dim=-1).T / temperature
    target = torch.arange(len(a), device=a.device)
    return math.log(len(a)) - F.cross_entropy(logits, target)


class ContrastiveLoss:
    """The contrastive objective as a loss for `SVI(model, guide, optim, loss=ContrastiveLoss(...))`.

    `terms` holds the last step's parts (nats per clip) for the training history, named as in
    `TERMS`; `dataset_size` (the training split's size) scales the aggregate-posterior estimate."""

    TERMS = {"nce_f": "InfoNCE(f; shuffled frames)", "nce_z": "InfoNCE(z; recoloured)",
             "mi_fz": "I(f; z) estimate", "swap": "InfoNCE(z; re-read with a new f)"}

    def __init__(self, f_weight: float = 1.0, z_weight: float = 1.0, mi_weight: float = 1.0,
                 temperature: float = 0.5, dataset_size: int = 9000,
                 generator: torch.Generator | None = None, f_view: str = "shuffle",
                 swap_weight: float = 0.0, swap_f: str = "prior", swap_recolour: bool = False):
        for name, value, choices in (("f_view", f_view, NCE_F_VIEWS), ("swap_f", swap_f, SWAP_F)):
            if value not in choices:
                raise ValueError(f"{name}={value!r}: choose one of {', '.join(choices)}")
        self.f_weight, self.z_weight, self.mi_weight = f_weight, z_weight, mi_weight
        self.swap_weight, self.swap_f, self.swap_recolour = swap_weight, swap_f, swap_recolour
        self.temperature, self.dataset_size = temperature, dataset_size
        self.generator, self.f_view = generator, f_view
        self.terms: dict[str, float] = {}

    def active_terms(self) -> list[str]:
        """The names in `TERMS` whose weight is not 0 (what a step reports)."""
        weights = (self.f_weight, self.z_weight, self.mi_weight, self.swap_weight)
        return [name for name, w in zip(self.TERMS, weights, strict=True) if w]

    def __call__(self, model, guide, x: torch.Tensor, **kwargs) -> torch.Tensor:
        return self.differentiable_loss(model, guide, x, **kwargs)

    def differentiable_loss(self, model, guide, x: torch.Tensor, **kwargs) -> torch.Tensor:
        """Summed over the batch, like Trace_ELBO's loss."""
        g = poutine.trace(guide).get_trace(x, **kwargs)
        m = poutine.trace(poutine.replay(model, trace=g)).get_trace(x, **kwargs)
        loss = g.log_prob_sum() - m.log_prob_sum()  # -ELBO (scales from poutine.scale applied)
        batch, frames = x.shape[:2]
        self.terms = {"neg_elbo": loss.item() / batch}
        if not self.active_terms():
            return loss
        # q's parameters and samples, z_1:T flattened to (B, T * Z); for the full and causal
        # guides q(z_t) is read given the sampled f and z_<t
        post = Posterior.of_trace(g, frames)
        if self.f_weight:  # I(x; f): positives are the clip with its frames shuffled (and more)
            if kwargs.get("x_f") is None and getattr(guide, "f_ignores_layout", False):
                # every f view only moves pixels about, so q(f) of the view is the clip's own:
                # the same values and gradients as a second guide pass, without it
                positive = post.f_loc
            else:
                view = shuffle_frames(x, self.generator)
                if self.f_view == "shuffle_mirror":
                    view = mirror(view)
                elif self.f_view == "shuffle_tiles":
                    view = shuffle_tiles(view, generator=self.generator)
                with poutine.block():
                    positive = poutine.trace(guide).get_trace(view).nodes["f"]["fn"].base_dist.loc
            nce_f = info_nce(post.f_loc, positive, self.temperature)
            loss = loss - self.f_weight * batch * nce_f
            self.terms["nce_f"] = nce_f.item()
        if self.z_weight:  # I(x; z_1:T): positives are the clip recoloured
            view = recolour(x, self.generator)
            read = x if kwargs.get("x_z") is None else kwargs["x_z"]
            if getattr(guide, "same_z_means", lambda *_: False)(read, view):
                positive = post.z_loc  # e.g. silhouettes: recolouring leaves them as they are
            else:
                with poutine.block():
                    coloured = poutine.trace(guide).get_trace(view)
                positive = Posterior.of_trace(coloured, frames).z_loc
            nce_z = info_nce(post.z_loc, positive, self.temperature)
            loss = loss - self.z_weight * batch * nce_z
            self.terms["nce_z"] = nce_z.item()
        if self.mi_weight:  # I(f; z_1:T) under the aggregate posterior
            mi = mws_mutual_information(post.f, post.f_loc, post.f_scale, post.z.flatten(1),
                                        post.z_loc.flatten(1), post.z_scale.flatten(1),
                                        dataset_size=self.dataset_size)
            loss = loss + self.mi_weight * batch * mi
            self.terms["mi_fz"] = mi.item()
        if self.swap_weight:  # z_1:T survives a new f: decode it with that f, read it back
            new = post.z_data()
            if self.swap_f == "batch":  # each clip gets the f of the one before it; else p(f)
                new["f"] = post.f.roll(1, dims=0)
            with poutine.block():
                drawn = poutine.trace(poutine.condition(model, data=new)).get_trace(
                    batch_size=batch, **kwargs)
                frames_drawn = drawn.nodes["x"]["fn"].mean
                if self.swap_recolour:
                    frames_drawn = recolour(frames_drawn, self.generator)
                read = read_back(guide, frames_drawn, x)
            swap = info_nce(post.z_loc, read, self.temperature)
            loss = loss - self.swap_weight * batch * swap
            self.terms["swap"] = swap.item()
        return loss
