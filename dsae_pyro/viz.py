"""Figures: clip grids with row labels, and loss curves.

Built with matplotlib's object API (no pyplot state, any backend): the CLI saves them, and in a
notebook a returned Figure displays itself.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure


def clip_rows(videos: torch.Tensor, gap: int = 2) -> np.ndarray:
    """(R, T, C, H, W) in [0, 1] -> one image, a clip per row, frames left to right."""
    v = videos.detach().float().clamp(0, 1).cpu().numpy()
    r, t, c, h, w = v.shape
    img = np.ones((r * (h + gap) - gap, t * (w + gap) - gap, 3), np.float32)
    for i in range(r):
        for j in range(t):
            img[i * (h + gap):i * (h + gap) + h, j * (w + gap):j * (w + gap) + w] = \
                v[i, j].transpose(1, 2, 0)
    return img


def clip_figure(videos: torch.Tensor, labels: list[str] | None = None, title: str = "",
                groups: int = 0) -> Figure:
    """Clips as labelled rows; `groups` > 0 draws a red line after every `groups` rows."""
    img = clip_rows(videos)
    h = videos.shape[-2] + 2
    fig = Figure(figsize=(1.6 + img.shape[1] / 80, 0.5 + img.shape[0] / 80), dpi=100)
    ax = fig.subplots()
    ax.imshow(img, interpolation="nearest")
    ax.set_yticks([i * h + h / 2 - 1 for i in range(len(labels or []))], labels or [], fontsize=8)
    ax.set_xticks([])
    if groups:
        for i in range(groups, len(videos), groups):
            ax.axhline(i * h - 1.5, color="red", lw=1)
    ax.set_title(title, fontsize=10)
    return fig


def save_clip_grid(path: str | Path, videos: torch.Tensor, labels: list[str], title: str,
                   groups: int = 0) -> Path:
    clip_figure(videos, labels, title, groups).savefig(path, bbox_inches="tight")
    return Path(path)


def history_figure(history: list[dict]) -> Figure:
    """Train and test -ELBO per clip against epochs."""
    fig = Figure(figsize=(5, 3.2), dpi=100)
    ax = fig.subplots()
    epochs = [h["epoch"] for h in history]
    ax.plot(epochs, [h["train_loss"] for h in history], "o-", label="train")
    ax.plot(epochs, [h["test_loss"] for h in history], "s--", label="test")
    ax.set_xlabel("epoch")
    ax.set_ylabel("-ELBO per clip (nats)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


def plot_history(path: str | Path, history: list[dict]) -> Path:
    history_figure(history).savefig(path)
    return Path(path)
