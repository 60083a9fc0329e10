"""Plain torch networks (no Pyro): the frame encoder and decoder and small heads.

Both conv stacks are built from one list of (channels, stride) so that a preset can describe Li & Mandt's
stack (256 channels, kernel 5, strides 1,2,2,2) or a small CPU stack with the same code; the decoder
mirrors the encoder.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from .config import ModelConfig
from .distributions import mix_colours


def _act():
    return nn.LeakyReLU(0.2)


_CHANNELS_LAST = {"cpu": True}  # per device type: conv stacks on channels_last activations


def fast_layout(h: torch.Tensor) -> torch.Tensor:
    """h (N, C, H, W) laid out as the conv stacks run it: channels_last on a CPU, where oneDNN
    runs the encoder's convs in about 0.8x and the full-resolution head's in 0.6-0.7x the time
    of the default layout, the transposed convs in the same (BENCHMARKS.md); as it is on other
    devices, where it is unmeasured. Activations only: a channels_last weight under pyro.module
    is trained as a contiguous copy and the weight itself stays frozen."""
    if _CHANNELS_LAST.get(h.device.type, False):
        return h.contiguous(memory_format=torch.channels_last)
    return h


@contextmanager
def default_layout() -> Iterator[None]:
    """Run the conv stacks on contiguous activations inside this block (what `dsae bench`
    compares `fast_layout` with)."""
    before = dict(_CHANNELS_LAST)
    _CHANNELS_LAST.clear()
    try:
        yield
    finally:
        _CHANNELS_LAST.update(before)


def _conv_padding(kernel: int, stride: int) -> tuple[int, int]:
    """Padding and output padding so a conv divides, and a transposed conv multiplies, by stride."""
    pad = (kernel - 1) // 2
    out_pad = stride - kernel + 2 * pad
    if out_pad < 0 or out_pad >= stride and stride > 1:
        raise ValueError(f"kernel {kernel} with stride {stride} cannot mirror exactly; "
                         "use an odd kernel with stride 1, or kernel 4 or 5 with stride 2")
    return pad, out_pad


def fc_layers(sizes: list[int]) -> nn.Sequential:
    """Affine + BatchNorm + LeakyReLU for each consecutive pair of sizes."""
    layers = []
    for a, b in zip(sizes[:-1], sizes[1:], strict=True):
        layers += [nn.Linear(a, b), nn.BatchNorm1d(b), _act()]
    return nn.Sequential(*layers)


class FrameEncoder(nn.Module):
    """x (B, T, C, H, W) -> v (B, T, features[-1]): conv stack (Conv + BatchNorm + LeakyReLU per
    (channels, stride)) then affine layers of `features`, applied per frame."""

    def __init__(self, channels: list[int], strides: list[int], kernel: int, features: list[int],
                 image_channels: int = 3, image_size: int = 64):
        super().__init__()
        layers, c_in = [], image_channels
        for c, s in zip(channels, strides, strict=True):
            pad, _ = _conv_padding(kernel, s)
            layers += [nn.Conv2d(c_in, c, kernel, s, pad), nn.BatchNorm2d(c), _act()]
            c_in = c
        self.conv = nn.Sequential(*layers)
        side = image_size // math.prod(strides)
        self.fc = fc_layers([channels[-1] * side * side, *features])
        self.out_dim = features[-1]

    @classmethod
    def of(cls, cfg: ModelConfig) -> FrameEncoder:
        """The DSAE's encoder as `cfg` (conv_* fields) describes it."""
        return cls(cfg.conv_channels, cfg.conv_strides, cfg.conv_kernel, cfg.conv_features,
                   cfg.image_channels, cfg.image_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t = x.shape[:2]
        h = self.conv(fast_layout(x.reshape(b * t, *x.shape[2:])))
        return self.fc(h.flatten(1)).reshape(b, t, -1)


class PaletteEncoder(nn.Module):
    """x (B, T, C, H, W) -> (B, levels^C): which colours each clip holds, and nothing of where.

    Feature k is the soft presence of reference colour c_k (a grid of `levels` values a channel):
    max over the clip's pixels of exp(-|x - c_k|^2 / 2 sigma^2), sigma = `width` grid steps. A
    q(f) that reads it cannot see a pose or which way a sprite faces. On real Sprites a logistic
    regression on these features (8 levels, width 0.35) names body, bottom, top and hair of
    unseen characters 99-100% of the time, so appearance survives the blindness.

    The max depends only on the set of colours, so it is taken over distinct (clip, colour)
    pairs, colours read at 8 bits a channel: a real Sprites clip holds ~45 colours, not 32,768
    pixels. No parameters: the network that reads it lives in the guide."""

    def __init__(self, levels: int = 8, width: float = 0.35, image_channels: int = 3):
        super().__init__()
        grid = torch.linspace(0, 1, levels)
        self.register_buffer("colours", torch.cartesian_prod(*[grid] * image_channels)
                             .reshape(-1, image_channels), persistent=False)
        self.sigma = width / (levels - 1)
        self.out_dim = len(self.colours)

    def presence(self, pixels: torch.Tensor) -> torch.Tensor:
        """(N, C) pixels -> (N, levels^C) soft presence of each reference colour."""
        exponent = torch.cdist(pixels, self.colours).square() / (2 * self.sigma ** 2)
        # far colours would give subnormal floats, which are ~20x slower on CPU: stop at e^-60
        return torch.exp(-exponent.clamp(max=60.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c = x.shape[0], x.shape[2]
        pixels = x.movedim(2, -1).reshape(-1, c)  # (B*T*H*W, C), clip-major
        # one integer key per (clip, colour); int32 sorts twice as fast when it fits
        key_type = torch.int32 if b < 2 ** (31 - 8 * c) else torch.int64
        levels = (pixels.detach().clamp(0, 1) * 255).round().to(key_type)
        colour = sum(levels[:, i] << (8 * i) for i in range(c))
        clip = torch.arange(b, device=x.device, dtype=key_type)
        pairs, which = torch.unique(clip.repeat_interleave(len(pixels) // b) << (8 * c) | colour,
                                    return_inverse=True)
        first = torch.full(pairs.shape, len(pixels), device=x.device).scatter_reduce(
            0, which, torch.arange(len(pixels), device=x.device), "amin")
        h = self.presence(pixels[first])  # one row per (clip, colour) pair
        index = (pairs >> (8 * c)).long().unsqueeze(1).expand_as(h)
        return h.new_zeros(b, h.shape[1]).scatter_reduce(0, index, h, "amax", include_self=False)


class FiLM(nn.Module):
    """Feature-wise modulation by f (Perez et al., AAAI 2018): h * (1 + gamma(f)) + beta(f) per
    channel. Starts as the identity (zero weights), so it only adds a path from f to the layer."""

    def __init__(self, f_dim: int, channels: int):
        super().__init__()
        self.affine = nn.Linear(f_dim, 2 * channels)
        nn.init.zeros_(self.affine.weight)
        nn.init.zeros_(self.affine.bias)

    def forward(self, h: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.affine(f)[..., None, None].chunk(2, dim=1)
        return h * (1 + gamma) + beta


class Refiner(nn.Module):
    """A head at the frames' own resolution on a decoder's output h (N, C, H, W):
    h + out(r), r from `layers` 3x3 convs of `width` channels on h, each modulated by f (FiLM).
    The decoder's last layer is a stride-2 transposed conv, so nothing it has sees the pixels
    it draws beside each other; this head does, and can redraw a pixel from the tones drawn
    beside it and f (on real Sprites it restored the palest skin's highlight and shadow more
    than its 1-pixel outline; experiments/README.md). `start_as_identity` zeroes `out`, so a trained
    decoder given one draws what it drew before (`add_refiner`)."""

    def __init__(self, channels: int, width: int, f_dim: int, layers: int = 2):
        super().__init__()
        self.hidden = nn.ModuleList(nn.Conv2d(channels if i == 0 else width, width, 3, padding=1)
                                    for i in range(layers))
        self.films = nn.ModuleList(FiLM(f_dim, width) for _ in range(layers))
        self.out = nn.Conv2d(width, channels, 3, padding=1)

    @torch.no_grad()
    def start_as_identity(self) -> Refiner:
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        return self

    def forward(self, h: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
        r = fast_layout(h)  # on a CPU 1.5-2.5x faster at these widths (`dsae bench --refine`)
        for conv, film in zip(self.hidden, self.films, strict=True):
            r = film(nn.functional.leaky_relu(conv(r), 0.2), f)
        return h + self.out(r)


class _Decoder(nn.Module):
    """(f, z_1:T) -> per-pixel output (B, T, C, H, W): `fc` on [f, z_t] reshaped to `grid`, then
    the upsampling stack `deconv`. With cfg.decoder_film, f also modulates the output of every
    activation of `deconv` (FiLM), so the late, high-resolution layers read the appearance
    directly rather than only through the 4x4 grid; with cfg.decoder_refine = W, a `Refiner` of
    W channels redraws the output at full resolution."""

    def _add_heads(self, cfg: ModelConfig) -> None:
        """The paths from f beside `fc`: FiLM after each activation of `deconv` (none without
        cfg.decoder_film; `film_at` maps a layer's index to its FiLM) and the `Refiner` on the
        output (None without cfg.decoder_refine)."""
        acts = [i for i, m in enumerate(self.deconv) if isinstance(m, (nn.LeakyReLU, nn.ReLU))
                ] if cfg.decoder_film else []
        widths = [next(m.out_channels for m in reversed(self.deconv[:i])
                       if isinstance(m, nn.ConvTranspose2d)) for i in acts]
        self.films = nn.ModuleList(FiLM(cfg.f_dim, w) for w in widths)
        self.film_at = {i: film for i, film in zip(acts, self.films, strict=True)}
        self.refine = (Refiner(cfg.image_channels, cfg.decoder_refine, cfg.f_dim)
                       if cfg.decoder_refine else None)

    def forward(self, f: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        b, t = z.shape[:2]
        f_t = f.unsqueeze(1).expand(b, t, f.shape[-1]).reshape(b * t, -1)
        h = self.fc(torch.cat([f_t, z.reshape(b * t, -1)], dim=-1)).reshape(b * t, *self.grid)
        h = fast_layout(h)
        for i, layer in enumerate(self.deconv):
            h = layer(h)
            if i in self.film_at:
                h = self.film_at[i](h, f_t)
        if self.refine is not None:
            h = self.refine(h, f_t)
        return h.contiguous().reshape(b, t, *self.cfg.image_shape)


class FrameDecoder(_Decoder):
    """The mirror of the encoder: affine layers then transposed convs.

    The last layer has no BatchNorm and no activation: the likelihood maps it to a mean or logits.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        hidden = cfg.decoder_features or list(reversed(cfg.conv_features))
        chans = cfg.decoder_widths or list(reversed(cfg.conv_channels))
        self.grid = (chans[0], *cfg.conv_out_shape[1:])
        self.fc = fc_layers([cfg.f_dim + cfg.z_dim, *hidden, math.prod(self.grid)])
        outs = chans[1:] + [cfg.image_channels]
        layers = []
        for i, (c_in, c_out, s) in enumerate(zip(chans, outs, reversed(cfg.conv_strides),
                                                 strict=True)):
            pad, out_pad = _conv_padding(cfg.conv_kernel, s)
            layers.append(nn.ConvTranspose2d(c_in, c_out, cfg.conv_kernel, s, pad, out_pad))
            if i < len(chans) - 1:
                layers += [nn.BatchNorm2d(c_out), _act()]
        self.deconv = nn.Sequential(*layers)
        self._add_heads(cfg)


class MLPDeconvDecoder(_Decoder):
    """Yingzhen Li's decoder ("improved"): MLP [f+z, hidden, 4x4xC] with ReLU, then kernel-3
    transposed convs 4 -> 8 -> 16 -> 32 -> 64 (C channels, ReLU) and a last one to 3 channels (no
    activation)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        c = cfg.decoder_channels
        self.cfg = cfg
        self.fc = nn.Sequential(nn.Linear(cfg.f_dim + cfg.z_dim, cfg.decoder_hidden), nn.ReLU(),
                                nn.Linear(cfg.decoder_hidden, c * 16), nn.ReLU())
        self.grid = (c, 4, 4)
        ups = []
        for _ in range(4):
            ups += [nn.ConvTranspose2d(c, c, 3, 2, 1, output_padding=1), nn.ReLU()]
        self.deconv = nn.Sequential(*ups, nn.ConvTranspose2d(c, cfg.image_channels, 3, 1, 1))
        self._add_heads(cfg)


class ColourMixDecoder(nn.Module):
    """Every pixel a convex mix of K colours: a colour table c (B, K, C) and, from any decoder
    drawing K channels, per-pixel softmax weights w(f, z_t) over it:
    x_t[c, i, j] = sum_k w_k(f, z_t)[i, j] c_k[c]. The Sprites frames are palette-quantised, so a
    colour is drawn exactly once the table holds it. With cfg.colour_table "f" the table is c(f),
    so z_1:T can move colours but never make one; with "global" it is one learned palette for
    every clip (c_k means the same colour in every clip). Returns the logit of that mean (clamped
    at 1e-4) so the likelihoods read it like any decoder's output."""

    def __init__(self, cfg: ModelConfig, base: type[nn.Module]):
        super().__init__()
        self.cfg = cfg
        self.colours = cfg.decoder_colours
        self.weights = base(dataclasses.replace(cfg, image_channels=self.colours))
        if cfg.colour_table == "global":  # logits of K colours spread over the RGB cube
            self.palette = nn.Parameter(torch.logit(
                torch.rand(self.colours, cfg.image_channels).mul(0.9).add(0.05)))
        else:
            self.table = nn.Linear(cfg.f_dim, self.colours * cfg.image_channels)

    @torch.no_grad()
    def start_palette(self, colours: torch.Tensor) -> None:
        """Start the global palette at these colours (K, C) in [0, 1], e.g. the data's commonest
        (clips.commonest_colours): from random colours Adam moves it too slowly to find black."""
        self.palette.copy_(torch.logit(colours.to(self.palette), eps=1e-3))

    def colour_table(self, f: torch.Tensor) -> torch.Tensor:
        """The K colours (B, K, C) in [0, 1] that the frames of each clip mix."""
        if self.cfg.colour_table == "global":
            return torch.sigmoid(self.palette).expand(f.shape[0], -1, -1)
        return torch.sigmoid(self.table(f)).reshape(f.shape[0], self.colours, -1)

    def mixture(self, f: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-pixel weight logits (B, T, K, H, W) and the colour table (B, K, C)."""
        return self.weights(f, z), self.colour_table(f)

    def forward(self, f: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return torch.logit(mix_colours(*self.mixture(f, z)), eps=1e-4)


DECODERS = {"conv": FrameDecoder, "improved": MLPDeconvDecoder}  # the names model.decoder accepts


def make_decoder(cfg: ModelConfig) -> nn.Module:
    """The decoder named by cfg.decoder: "conv" (mirror of the encoder) or "improved" (Yingzhen
    Li's); with cfg.decoder_colours = K > 0 it draws K mixing weights for a colour table (f's, or
    one global palette: cfg.colour_table)."""
    if cfg.decoder_colours:
        return ColourMixDecoder(cfg, DECODERS[cfg.decoder])
    return DECODERS[cfg.decoder](cfg)


def _drawing(decoder: nn.Module) -> _Decoder:
    """The decoder that draws the output channels (the colour-mix decoder's weights)."""
    return decoder.weights if isinstance(decoder, ColourMixDecoder) else decoder


def add_refiner(decoder: nn.Module, width: int) -> Refiner:
    """Give a trained decoder a `Refiner` of `width` channels that starts as the identity, on the
    same device; returns it (model.decoder_refine, `dsae refit-prior --decoder-refine`)."""
    inner = _drawing(decoder)
    if inner.refine is not None:
        raise ValueError("this decoder has a refiner already")
    like = next(inner.parameters())
    inner.refine = Refiner(inner.cfg.image_channels, width, inner.cfg.f_dim).to(like)
    return inner.refine.start_as_identity()


def remove_refiner(decoder: nn.Module) -> None:
    """Undo `add_refiner`."""
    _drawing(decoder).refine = None


class GaussianHead(nn.Module):
    """Two affine heads: mean and log-variance -> (loc, scale)."""

    def __init__(self, d_in: int, d_out: int):
        super().__init__()
        self.loc = nn.Linear(d_in, d_out)
        self.logvar = nn.Linear(d_in, d_out)

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.loc(h), torch.exp(0.5 * self.logvar(h))
