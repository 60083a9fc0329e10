"""Figures of a trained beta-VAE: latent traversals (a PNG grid and one GIF per latent),
reconstructions, and KL per latent over training."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure

from ..data.dsprites import N_IMAGES, SHAPES, DSprites, index_of
from ..viz import write_gif
from .model import BetaVAE


def base_images(data: DSprites) -> np.ndarray:
    """One image per shape (mid scale, orientation 0, centred, or the closest the data holds):
    the traversals' starting points."""
    targets = np.array([[0, s, 3, 0, 16, 16] for s in range(len(SHAPES))])
    if len(data) == N_IMAGES:
        return index_of(targets)
    return np.array([np.abs(data.classes - t).sum(1).argmin() for t in targets])


@torch.no_grad()
def traversals(vae: BetaVAE, x: torch.Tensor, values: np.ndarray) -> torch.Tensor:
    """(latents, len(values), B, 64, 64): decode the posterior mean of x with one latent set to
    each value in turn."""
    loc, _ = vae.encode(x)
    d = loc.shape[1]
    z = loc.repeat(d * len(values), 1).reshape(d, len(values), *loc.shape)
    for i in range(d):
        z[i, :, :, i] = torch.as_tensor(values, dtype=z.dtype, device=z.device)[:, None]
    return vae.decode(z.reshape(-1, d)).reshape(d, len(values), len(x), 64, 64).cpu()


def _labels(kl: list[float], factor_of: list[str] | None) -> list[str]:
    return [f"z{i}  KL {k:.2f}" + (f"  ({factor_of[i]})" if factor_of else "")
            for i, k in enumerate(kl)]


def traversal_figure(frames: torch.Tensor, values: np.ndarray, kl: list[float],
                     factor_of: list[str] | None = None) -> Figure:
    """One panel per base image: rows = latents (most informative first), columns = values."""
    d, n, b = frames.shape[:3]
    order = np.argsort(kl)[::-1]
    labels = _labels(kl, factor_of)
    fig = Figure(figsize=(0.5 * n * b + 1.5, 0.5 * d + 1.0), dpi=100)  # ~64 px per image
    axes = np.atleast_1d(fig.subplots(1, b))
    for j, ax in enumerate(axes):
        rows = [torch.cat(list(frames[i, :, j]), dim=1) for i in order]  # values side by side
        ax.imshow(torch.cat(rows, dim=0).numpy(), cmap="gray", vmin=0, vmax=1,
                  interpolation="nearest")
        ax.set_xticks([64 * k + 32 for k in range(n)], [f"{v:g}" for v in values], fontsize=6)
        ax.set_yticks([64 * k + 32 for k in range(d)],
                      [labels[i] for i in order] if j == 0 else [], fontsize=7)
        ax.set_title(f"{SHAPES[j] if b == len(SHAPES) else j}", fontsize=9)
    fig.suptitle("Latent traversals: each row moves one latent from -3 to 3 around the "
                 "posterior mean", fontsize=9)
    return fig


def save_traversal_gifs(frames: torch.Tensor, out_dir: Path, kl: list[float],
                        factor_of: list[str] | None = None, ms: int = 80) -> list[Path]:
    """One GIF per latent: the base images side by side as that latent sweeps -3 -> 3 -> -3."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, label in enumerate(_labels(kl, factor_of)):
        seq = frames[i]  # (n, B, 64, 64)
        seq = torch.cat([seq, seq.flip(0)[1:-1]])  # ping-pong
        rows = [torch.cat([torch.nn.functional.pad(f, (2, 2, 2, 2), value=0.5) for f in frame], 1)
                .numpy() for frame in seq]
        paths.append(write_gif(out_dir / f"traversal_z{i}.gif", rows, ms, comment=label))
    return paths


@torch.no_grad()
def reconstruction_figure(vae: BetaVAE, x: torch.Tensor) -> Figure:
    """Images (top row) and the Bernoulli means of their posterior-mean reconstructions."""
    recon = vae.decode(vae.encode(x)[0]).cpu()
    top, bottom = torch.cat(list(x.cpu()[:, 0]), 1), torch.cat(list(recon[:, 0]), 1)
    fig = Figure(figsize=(1.1 * len(x), 2.6), dpi=100)
    ax = fig.subplots()
    ax.imshow(torch.cat([top, bottom], 0).numpy(), cmap="gray", vmin=0, vmax=1)
    ax.set_xticks([])
    ax.set_yticks([32, 96], ["data", "reconstruction"], fontsize=8)
    return fig


def kl_figure(history: list[dict]) -> Figure:
    """KL per latent (nats per image) over training, with the total and the capacity C."""
    steps = [h["step"] for h in history]
    kl = np.array([h["kl_per_latent"] for h in history])
    fig = Figure(figsize=(8, 3.4), dpi=100)
    ax1, ax2 = fig.subplots(1, 2)
    for i in range(kl.shape[1]):
        ax1.plot(steps, kl[:, i], label=f"z{i}")
    ax1.set_title("KL per latent", fontsize=10)
    ax1.legend(fontsize=6, ncol=2)
    ax2.plot(steps, kl.sum(1), label="KL total")
    if history[0].get("capacity") is not None:
        ax2.plot(steps, [h["capacity"] for h in history], "--", label="capacity C")
    ax2.plot(steps, [h["recon"] / 100 for h in history], label="-log p(x|z) / 100")
    ax2.set_title("KL and reconstruction", fontsize=10)
    ax2.legend(fontsize=7)
    for ax in (ax1, ax2):
        ax.set_xlabel("step")
        ax.set_ylabel("nats per image")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def dsprites_sheet(data: DSprites, per_factor: int = 8) -> Figure:
    """A sample sheet of dSprites: each row sweeps one factor from a fixed start image."""
    from ..data.dsprites import FACTORS, SIZES

    start = np.array([0, 0, 5, 0, 16, 16])
    rows, labels = [], []
    for k in range(1, len(FACTORS)):
        values = np.linspace(0, SIZES[k] - 1, min(per_factor, SIZES[k])).round().astype(int)
        classes = np.repeat(start[None], len(values), 0)
        classes[:, k] = values
        if k == 1:  # shape: show each shape at the start's other factors
            classes = np.repeat(start[None], per_factor, 0)
            classes[:, 1] = np.arange(per_factor) % SIZES[1]
            classes[:, 3] = np.arange(per_factor) * 5
        imgs = data.images(index_of(classes))[:, 0]
        imgs = torch.cat([imgs, torch.zeros(per_factor - len(imgs), 64, 64)])
        rows.append(torch.cat([torch.nn.functional.pad(i, (1, 1, 1, 1), value=0.4) for i in imgs], 1))
        labels.append(FACTORS[k] if k > 1 else "shape (and orientation)")
    fig = Figure(figsize=(per_factor * 0.9 + 1.6, len(rows) * 0.9 + 0.4), dpi=100)
    ax = fig.subplots()
    ax.imshow(torch.cat(rows, 0).numpy(), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_yticks([66 * i + 33 for i in range(len(rows))], labels, fontsize=8)
    ax.set_xticks([])
    ax.set_title("dSprites, drawn by dsae_pyro: one factor varies per row", fontsize=9)
    return fig
