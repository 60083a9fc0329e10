"""Scoring a trained beta-VAE: the three disentanglement metrics on posterior means, and the
per-latent table (mean posterior variance, KL, the factor each latent tracks best)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

from ..data.dsprites import FACTORS, DSprites
from ..metrics.disentanglement import disentanglement_markdown, disentanglement_scores
from .model import BetaVAE

FACTOR_NAMES = FACTORS[1:]  # color is constant
ACTIVE_VARIANCE = 0.5


@torch.no_grad()
def encode_images(vae: BetaVAE, data: DSprites, index: np.ndarray, device="cpu",
                  batch_size: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Posterior means and standard deviations (n, latents) of the images at `index`."""
    vae.eval()
    locs, scales = [], []
    for i in range(0, len(index), batch_size):
        loc, scale = vae.encode(data.images(index[i:i + batch_size], device))
        locs.append(loc.cpu())
        scales.append(scale.cpu())
    return torch.cat(locs).double().numpy(), torch.cat(scales).double().numpy()


def latent_table(mi: np.ndarray, entropy: np.ndarray, variance: np.ndarray,
                 kl: list[float]) -> list[dict]:
    """Per latent: mean posterior variance, KL, the factor with the largest normalised mutual
    information, and that information. A latent whose posterior variance stays near the prior's
    (> ACTIVE_VARIANCE) carries nothing; it is marked "-" (how the beta-VAE papers read such a table)."""
    nmi = mi / entropy[None, :]
    return [{"latent": f"z{i}", "variance": float(variance[i]), "kl": float(kl[i]),
             "factor": FACTOR_NAMES[int(nmi[i].argmax())] if variance[i] < ACTIVE_VARIANCE else "-",
             "nmi": float(nmi[i].max())} for i in range(len(variance))]


def latent_markdown(table: list[dict]) -> str:
    rows = ["| latent | mean posterior variance | KL (nats) | tracks best | normalised MI |",
            "|---|---|---|---|---|"]
    rows += [f"| {r['latent']} | {r['variance']:.4f} | {r['kl']:.2f} | {r['factor']} | "
             f"{r['nmi']:.2f} |" for r in table]
    return "\n".join(rows) + "\n"


def evaluate_betavae(vae: BetaVAE, data: DSprites, kl: list[float], images: int = 50_000,
                     seed: int = 0, num_train: int = 10_000, num_eval: int = 5_000,
                     device="cpu") -> dict:
    """Metrics on the posterior means of `images` random dSprites images (0: all of them)."""
    rng = np.random.RandomState(seed)
    index = np.sort(rng.choice(len(data), images, replace=False)) if images else np.arange(len(data))
    mu, sigma = encode_images(vae, data, index, device)
    scores = disentanglement_scores(mu, data.factors[index], seed, num_train, num_eval)
    m = scores["mig"]
    scores["latents"] = latent_table(np.array(m["mutual_info"]), np.array(m["entropy"]),
                                     (sigma**2).mean(0), kl)
    scores["images"] = len(index)
    return scores


def scores_markdown(scores: dict) -> str:
    return (disentanglement_markdown(scores, FACTOR_NAMES)
            + "\nPublished beta-VAE on dSprites (Locatello et al. 2019, other pixels): MIG ~0.21, FactorVAE "
            f"metric ~0.82. On the posterior means of {scores['images']} images.\n\n"
            + latent_markdown(scores["latents"]))


def evaluate_run(run, data: DSprites, out, images: int = 50_000, seed: int = 0,
                 num_train: int = 10_000, num_eval: int = 5_000) -> str:
    """`dsae betavae evaluate`: score a trained run (a `BetaVAERun`) and write evaluation.json and
    evaluation.md into the run folder `out`; returns the Markdown."""
    start = time.perf_counter()
    scores = evaluate_betavae(run.vae, data, run.history[-1]["kl_per_latent"], images, seed,
                              num_train, num_eval, run.device)
    out = Path(out)
    (out / "evaluation.json").write_text(json.dumps(scores, indent=1))
    table = scores_markdown(scores) + f"\n{time.perf_counter() - start:.0f}s.\n"
    (out / "evaluation.md").write_text(table)
    return table
