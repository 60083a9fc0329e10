"""Figures: clip grids with row labels, loss curves, and the evaluation protocol's scores.

Built with matplotlib's object API (no pyplot state, any backend): the CLI saves them, and in a
notebook a returned Figure displays itself.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure

from .data.labels import Schema
from .metrics.similarity import cosine_matrix, relation_masks
from .objectives import ContrastiveLoss


def clip_rows(videos: torch.Tensor, gap: int = 2) -> np.ndarray:
    """(R, T, C, H, W) in [0, 1] -> one image, a clip per row, frames left to right."""
    v = videos.detach().float().clamp(0, 1).cpu().numpy()
    if v.shape[2] == 1:  # grayscale: drawn as gray
        v = v.repeat(3, axis=2)
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


def write_gif(path: str | Path, frames: list[np.ndarray], ms: int = 150, scale: int = 2,
              comment: str = "") -> Path:
    """An animated, looping GIF of float images (H, W) or (H, W, 3) in [0, 1], enlarged `scale`x."""
    from PIL import Image

    images = []
    for f in frames:
        img = Image.fromarray((np.clip(f, 0, 1) * 255).astype(np.uint8))
        images.append(img.resize((img.width * scale, img.height * scale), Image.NEAREST))
    images[0].save(path, save_all=True, append_images=images[1:], duration=ms, loop=0,
                   comment=comment.encode())
    return Path(path)


def clip_gif(path: str | Path, videos: torch.Tensor, columns: int, ms: int = 150) -> Path:
    """The clips (R, T, C, H, W) playing together, `columns` to a row, as a GIF."""
    from torchvision.utils import make_grid

    v = videos.detach().float().clamp(0, 1).cpu()
    frames = [make_grid(v[:, t], nrow=columns, padding=2, pad_value=1.0).permute(1, 2, 0).numpy()
              for t in range(v.shape[1])]  # make_grid repeats one channel to three
    return write_gif(path, frames, ms)


def save_clip_grid(path: str | Path, videos: torch.Tensor, labels: list[str], title: str,
                   groups: int = 0) -> Path:
    """The labelled PNG grid at `path`, and beside it (same name, .gif) the clips playing, one
    group (or every clip) to a row."""
    clip_figure(videos, labels, title, groups).savefig(path, bbox_inches="tight")
    clip_gif(Path(path).with_suffix(".gif"), videos, groups or len(videos))
    return Path(path)


def history_figure(history: list[dict]) -> Figure:
    """Train and test -ELBO per clip against epochs, and beside it the test KL of f and of z_1:T
    (where the history records them): a KL near 0 says the latents carry nothing."""
    terms = "test_kl_f" in history[-1]
    extra = [k for k in ContrastiveLoss.TERMS if f"train_{k}" in history[-1]]
    panels = 1 + terms + bool(extra)
    fig = Figure(figsize=(4.5 * panels, 3.2), dpi=100)
    axes = fig.subplots(1, panels, squeeze=False)[0]
    epochs = [h["epoch"] for h in history]
    axes[0].plot(epochs, [h["train_loss"] for h in history], "o-",
                 label="train objective" if extra else "train")
    axes[0].plot(epochs, [h["test_loss"] for h in history], "s--", label="test")
    axes[0].set_ylabel("-ELBO per clip (nats)")
    if terms:
        with_terms = [h for h in history if "test_kl_f" in h]  # runs begun before they were kept
        for key, label in (("test_kl_f", "KL(q(f) || p(f))"), ("test_kl_z", "KL of z_1:T")):
            axes[1].plot([h["epoch"] for h in with_terms], [h[key] for h in with_terms], "o-",
                         label=label)
        axes[1].set_ylabel("test KL per clip (nats)")
        axes[1].set_ylim(bottom=0)
    if extra:  # the contrastive objective's terms (objectives.ContrastiveLoss)
        rows = [h for h in history if f"train_{extra[0]}" in h]
        for key in extra:
            axes[-1].plot([h["epoch"] for h in rows], [h[f"train_{key}"] for h in rows], "o-",
                          label=ContrastiveLoss.TERMS[key])
        axes[-1].set_ylabel("train, nats per clip")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    return fig


def plot_history(path: str | Path, history: list[dict]) -> Path:
    history_figure(history).savefig(path)
    return Path(path)


def scores_figure(scores: dict, schema: Schema, published_motion: float | None = None,
                  training: str = "") -> Figure:
    """Judge accuracies of `dsae evaluate` (mean ± std over judges x draws, each judge's mean as a
    dot) against chance, for the heads of the clips' label `schema`; `training` names what the
    run read (objective, views, labels) under the title."""
    keys = [k for k in scores if k.endswith("_acc")]
    chance = {"motion_acc": 1 / schema.motions,
              **{f"{p}_acc": 1 / len(values) for p, values in schema.parts},
              **{f"{a}_acc": 1 / n for a, n in schema.attributes}}
    fig = Figure(figsize=(7.5, 3.6), dpi=100)
    ax = fig.subplots()
    x = np.arange(len(keys))
    kept_motion = 1 + len(schema.parts)
    ax.bar(x, [100 * scores[k]["mean"] for k in keys], yerr=[100 * scores[k]["std"] for k in keys],
           color=["tab:blue"] * kept_motion + ["tab:orange"] * (len(keys) - kept_motion), capsize=3)
    judges = scores[keys[0]].get("judges", 1)
    if judges > 1:
        for j in range(judges):
            ax.scatter(x + 0.25 * (j / (judges - 1) - 0.5), [100 * scores[k]["per_judge"][j]
                                                           for k in keys],
                       s=10, color="0.15", zorder=3, label="each judge" if j == 0 else None)
    ax.scatter(x, [100 * chance[k] for k in keys], marker="_", s=300, color="k",
               label="chance", zorder=3)
    if published_motion is not None:
        ax.scatter([0], [published_motion], marker="*", s=120, color="tab:red", zorder=3,
                   label="DSVAE published\n(unsupervised,\nown judge)")
    ax.set_xticks(x, [k.removesuffix("_acc") for k in keys])
    ax.set_ylim(0, 105)
    ax.set_ylabel("judge accuracy (%)")
    # wrapped: a long description of the run would run off both sides of the figure
    what_run = textwrap.wrap(f"this run: {training}", 90) if training else []
    ax.set_title("\n".join(["Fix z, sample f: motion kept? (blue)   "
                            "fix f, sample z: appearance kept? (orange)", *what_run]), fontsize=8.5)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))  # beside the bars, never on them
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    return fig


def cosine_figure(f: torch.Tensor, z: torch.Tensor, character: np.ndarray, motion: np.ndarray,
                  bins: int = 40) -> Figure:
    """Histograms of cos(f) and cos(z) per relation: disentangled means the f panel separates
    'same appearance' from the rest and the z panel 'same motion' from the rest."""
    cf, cz = cosine_matrix(f), cosine_matrix(z)
    fig = Figure(figsize=(10, 3.4), dpi=100)
    axes = fig.subplots(1, 2, sharey=False)
    masks = relation_masks(np.asarray(character), np.asarray(motion))
    for ax, c, name in zip(axes, (cf, cz), ("f", "z_1:T"), strict=True):
        for rel, mask in masks.items():
            if mask.any():
                ax.hist(c[mask], bins=bins, range=(-1, 1), density=True, histtype="step",
                        lw=1.5, label=rel)
        ax.set_title(f"cosine similarity of {name} between test clips", fontsize=10)
        ax.set_xlabel("cosine")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("density")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    return fig
