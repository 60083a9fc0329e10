"""Figures: clip grids with row labels, and loss curves. Matplotlib with the Agg backend."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402


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


def save_clip_grid(path: str | Path, videos: torch.Tensor, labels: list[str], title: str,
                   groups: int = 0) -> Path:
    """Save clips as labelled rows; `groups` > 0 draws a line after every `groups` rows."""
    img = clip_rows(videos)
    h = videos.shape[-2] + 2
    fig_w = 1.6 + img.shape[1] / 80
    fig, ax = plt.subplots(figsize=(fig_w, 0.5 + img.shape[0] / 80), dpi=100)
    ax.imshow(img, interpolation="nearest")
    ax.set_yticks([i * h + h / 2 - 1 for i in range(len(labels))], labels, fontsize=8)
    ax.set_xticks([])
    if groups:
        for i in range(groups, len(labels), groups):
            ax.axhline(i * h - 1.5, color="red", lw=1)
    ax.set_title(title, fontsize=10)
    fig.savefig(path, bbox_inches="tight")  # keep long row labels inside the image
    plt.close(fig)
    return Path(path)


def plot_history(path: str | Path, history: list[dict]) -> Path:
    """Train and test -ELBO per clip against epochs."""
    epochs = [h["epoch"] for h in history]
    fig, ax = plt.subplots(figsize=(5, 3.2), dpi=100)
    ax.plot(epochs, [h["train_loss"] for h in history], "o-", label="train")
    ax.plot(epochs, [h["test_loss"] for h in history], "s--", label="test")
    ax.set_xlabel("epoch")
    ax.set_ylabel("-ELBO per clip (nats)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)
