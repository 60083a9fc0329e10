"""Amortised guides q(f, z_1:T | x_1:T) for `DSAE.model`; swap one for another with no other change.

    factorized  q(f | x_1:T) prod_t q(z_t | x_t)           (Li & Mandt)
    full        q(f | x_1:T) q(z_1:T | x_1:T, f)           bi-LSTM over [v_t, f], then an RNN
    causal      q(f | x_1:T) prod_t q(z_t | x_1:t, z_<t)   (Das & Dandi) an LSTM cell over [v_t, z_t-1];
                its state carries the earlier frames, so z_t reads x_1..x_t, never a later frame

All share a frame encoder v_t = enc(x_t) and q(f | x_1:T): a bi-LSTM over v_1:T whose last forward and
first backward states feed two affine heads; or, with `model.f_encoder = "palette"`, the same heads
on an affine layer (BatchNorm, LeakyReLU) of which colours the clip holds (`nets.PaletteEncoder`),
blind to where each colour is and so to pose and facing direction. With `model.z_encoder =
"silhouette"` the frame encoder reads, for q(z_1:T), only each frame's foreground
(`silhouette`): blind to what the sprite wears.
"""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from torch import nn

from ._naming import unique_name
from .clips import DataError, check_batch
from .config import ModelConfig
from .model import z_site
from .nets import FrameEncoder, GaussianHead, PaletteEncoder, fc_layers

# under the darkest LPC sprite pixel (14/255, outlines) dimmed by the recolour view (gain 0.6)
SILHOUETTE_EDGE = 0.03


def silhouette(x: torch.Tensor, edge: float = SILHOUETTE_EDGE, width: float = 0.1) -> torch.Tensor:
    """Each frame's foreground, 1 where the brightest channel is above `edge` and 0 elsewhere,
    repeated in every channel so the frame encoder reads it like a clip. On real sprites that is
    the sprite on its black canvas, recoloured or not. Its gradient is a logistic ramp's of the
    given width about the edge (straight-through, Bengio et al. 2013), so a loss on what
    q(z_1:T) reads from frames the decoder drew (the contrastive swap term) reaches the decoder,
    which a sigmoid makes grey, never black, where it is unsure."""
    level = x.amax(dim=2, keepdim=True)
    ramp = torch.sigmoid((level - edge) / width)
    return ((level > edge).to(x.dtype) + (ramp - ramp.detach())).expand_as(x)


class Guide(nn.Module):
    """Base guide: subclasses say which per-frame features z_t's posterior is read from
    (`z_features`) and, if z_t also depends on z_<t, how (`z_step`)."""

    name = "base"
    z_reads_f = False  # whether q(z_1:T) is read given f (then it depends on what q(f) reads)
    z_reads_samples = False  # whether q(z_t) is read given a sampled f or z_<t (not x alone)

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = FrameEncoder.of(cfg)
        if cfg.f_encoder == "palette":
            self.palette = PaletteEncoder(image_channels=cfg.image_channels)
            # BatchNorm: the presences are sparse in [0, 1]; without it f stays near the prior
            self.f_mlp = fc_layers([self.palette.out_dim, cfg.hidden])
            self.f_head = GaussianHead(cfg.hidden, cfg.f_dim)
        else:
            self.f_lstm = nn.LSTM(self.encoder.out_dim, cfg.hidden, batch_first=True,
                                  bidirectional=True)
            self.f_head = GaussianHead(2 * cfg.hidden, cfg.f_dim)
        self.z_head = GaussianHead(cfg.hidden, cfg.z_dim)  # reads z_t's posterior off features
        self.pyro_name = unique_name(f"{self.name}_guide")

    def f_features(self, x: torch.Tensor) -> torch.Tensor:
        """What `q_f` reads of the clips x: per frame (B, T, D) from the frame encoder, or per
        clip (B, D) from the palette encoder."""
        return self.palette(x) if self.cfg.f_encoder == "palette" else self.encoder(x)

    @property
    def f_reads_apart(self) -> bool:
        """Whether q(f) may read other clips than q(z_1:T) (`x_f`) without moving z_1:T: q(z_1:T)
        does not read f, and q(f) has a network of its own (the palette encoder; the frame
        encoder's BatchNorm would see both)."""
        return not self.z_reads_f and self.cfg.f_encoder == "palette"

    @property
    def f_ignores_layout(self) -> bool:
        """Whether q(f) reads which colours a clip holds and not where (the palette encoder, a
        network of its own): clips whose pixels are only moved about (frames shuffled, mirrored,
        tiled) then get exactly the clip's own q(f)."""
        return self.cfg.f_encoder == "palette"

    def z_input(self, x: torch.Tensor) -> torch.Tensor:
        """What q(z_1:T)'s frame encoder reads of clips x: their silhouettes, or x itself."""
        return silhouette(x) if self.cfg.z_encoder == "silhouette" else x

    def same_z_means(self, x: torch.Tensor, view: torch.Tensor) -> bool:
        """Whether q(z_1:T) of `view`, read in a pass of its own, has exactly the means it has for
        x: q(z_t) reads no sample, the frame encoder's BatchNorm sees q(z)'s input alone (q(f)
        has its own network: `f_reads_apart`), and that input is the same (recolouring keeps the
        silhouette)."""
        return (not self.z_reads_samples and self.f_reads_apart
                and torch.equal(self.z_input(view), self.z_input(x)))

    def q_f(self, v: torch.Tensor):
        """(loc, scale) of q(f | x_1:T) from the clips' `f_features`."""
        if self.cfg.f_encoder == "palette":  # the colours that appear in any frame
            return self.f_head(self.f_mlp(v))
        out, _ = self.f_lstm(v)
        h = self.cfg.hidden
        summary = torch.cat([out[:, -1, :h], out[:, 0, h:]], dim=-1)  # last fwd, first bwd
        return self.f_head(summary)

    def z_features(self, v: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
        """Per-frame features (B, T, D) from which z_t's posterior is read."""
        raise NotImplementedError

    def z_step(self, h_t: torch.Tensor, z_prev: torch.Tensor, state):
        """(loc, scale, state) of q(z_t | ...) from frame features h_t (and z_{t-1})."""
        return (*self.z_head(h_t), None)

    def features(self, x: torch.Tensor, x_f: torch.Tensor | None = None,
                 x_z: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """What q(f) (`f_features`) and q(z_1:T) (per frame, (B, T, D)) read: of x, or of the
        stand-ins x_f and x_z when given (training views, see `data.views`), in one encoder pass
        so that BatchNorm sees one batch."""
        for name, view in (("x_f", x_f), ("x_z", x_z)):
            if view is not None and view.shape != x.shape:
                raise DataError(f"{name} {tuple(view.shape)} must have the shape of x "
                                f"{tuple(x.shape)}")
        x_f, x_z = (x if x_f is None else x_f), (x if x_z is None else x_z)
        x_z = self.z_input(x_z)
        if self.cfg.f_encoder == "palette":  # q(f) has a network of its own
            return self.f_features(x_f), self.encoder(x_z)
        if x_f is x_z:
            v = self.encoder(x)
            return v, v
        return self.encoder(torch.cat([x_f, x_z])).chunk(2)

    def forward(self, x: torch.Tensor, kl_weight: float = 1.0, batch_size: int | None = None,
                x_f: torch.Tensor | None = None, x_z: torch.Tensor | None = None):
        """The Pyro guide: same arguments and site names as `DSAE.model`. q(f) reads `x_f` and
        q(z_1:T) reads `x_z` when given (train.f_source, train.z_source), else x."""
        if x is None:
            raise ValueError("a guide needs the clips x it encodes; to sample from the prior, "
                             "run the model alone")
        check_batch(x, self.cfg.image_shape)
        pyro.module(self.pyro_name, self)
        v_f, v = self.features(x, x_f, x_z)
        batch, frames = v.shape[:2]
        with pyro.plate("batch", batch), poutine.scale(scale=kl_weight):
            loc, scale = self.q_f(v_f)
            # q(f | x_1:T): its log-density enters the f term of the ELBO
            f = pyro.sample("f", dist.Normal(loc, scale).to_event(1))
            h = self.z_features(v, f)
            z_prev, state = v.new_zeros(batch, self.cfg.z_dim), None
            for t in pyro.markov(range(1, frames + 1)):
                loc, scale, state = self.z_step(h[:, t - 1], z_prev, state)
                # q(z_t | .): its log-density enters the z_t term of the ELBO
                z_prev = pyro.sample(z_site(t), dist.Normal(loc, scale).to_event(1))
        return f


class FactorizedGuide(Guide):
    """q(z_t | x_t): affine 512 + LeakyReLU on v_t, then two affine heads."""

    name = "factorized"

    def __init__(self, cfg: ModelConfig):
        super().__init__(cfg)
        self.z_mlp = nn.Sequential(nn.Linear(self.encoder.out_dim, cfg.hidden), nn.LeakyReLU(0.2))

    def z_features(self, v, f):
        return self.z_mlp(v)


class FullGuide(Guide):
    """q(z_t | x_1:T, f): bi-LSTM over [v_t, f], an RNN over its outputs, two affine heads."""

    name = "full"
    z_reads_f = True
    z_reads_samples = True

    def __init__(self, cfg: ModelConfig):
        super().__init__(cfg)
        self.z_lstm = nn.LSTM(self.encoder.out_dim + cfg.f_dim, cfg.hidden, batch_first=True,
                              bidirectional=True)
        self.z_rnn = nn.RNN(2 * cfg.hidden, cfg.hidden, batch_first=True)

    def z_features(self, v, f):
        fv = torch.cat([v, f.unsqueeze(1).expand(-1, v.shape[1], -1)], dim=-1)
        return self.z_rnn(self.z_lstm(fv)[0])[0]


class CausalGuide(FactorizedGuide):
    """q(z_t | x_1:t, z_<t) (Das & Dandi): the factorized guide made recurrent over the sampled z;
    the LSTM state carries x_1..x_t-1 too, so it is causal in time rather than per frame."""

    name = "causal"
    z_reads_samples = True  # z_<t

    def __init__(self, cfg: ModelConfig):
        super().__init__(cfg)
        self.z_cell = nn.LSTMCell(cfg.hidden + cfg.z_dim, cfg.hidden)

    def z_step(self, h_t, z_prev, state):
        h, c = self.z_cell(torch.cat([h_t, z_prev], dim=-1), state)
        return (*self.z_head(h), (h, c))


GUIDES = {g.name: g for g in (FactorizedGuide, FullGuide, CausalGuide)}


def make_guide(cfg: ModelConfig) -> Guide:
    """The guide named by `cfg.guide`."""
    if cfg.guide not in GUIDES:
        raise ValueError(f"unknown guide {cfg.guide!r}; choose one of {sorted(GUIDES)}")
    return GUIDES[cfg.guide](cfg)
