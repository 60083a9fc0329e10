"""The beta-VAE run report: every figure of `figures.py` and the evaluation, on one HTML page."""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np

from ..report import markdown_html, run_header, write_page
from .figures import (
    base_images,
    kl_figure,
    reconstruction_figure,
    save_traversal_gifs,
    traversal_figure,
    traversals,
)
from .train import BetaVAERun

TRAVERSAL_VALUES = np.linspace(-3, 3, 9)
GIF_VALUES = np.linspace(-3, 3, 25)


def write_betavae_report(run: BetaVAERun, data, run_dir) -> Path:
    """traversals.png, gifs/traversal_z*.gif, reconstructions.png, kl.png and report.html."""
    run_dir = Path(run_dir)
    kl = run.history[-1]["kl_per_latent"]
    factor_of = None
    if (run_dir / "evaluation.json").exists():
        latents = json.loads((run_dir / "evaluation.json").read_text())["latents"]
        factor_of = [r["factor"] for r in latents]
    x = data.images(base_images(data), run.device)
    traversal_figure(traversals(run.vae, x, TRAVERSAL_VALUES), TRAVERSAL_VALUES, kl,
                     factor_of).savefig(run_dir / "traversals.png", bbox_inches="tight")
    gifs = save_traversal_gifs(traversals(run.vae, x, GIF_VALUES), run_dir / "gifs", kl,
                               factor_of)
    sample = np.random.RandomState(1).choice(len(data), 10, replace=False)
    reconstruction_figure(run.vae, data.images(sample, run.device)).savefig(
        run_dir / "reconstructions.png", bbox_inches="tight")
    kl_figure(run.history).savefig(run_dir / "kl.png")
    last = run.history[-1]
    t = run.cfg.train
    objective = {"H": f"H, beta = {t.beta}",
                 "B": f"B, gamma = {t.gamma}, C 0 -> {t.c_max} nats over {t.c_steps} steps",
                 "tc": f"beta-TCVAE, beta = {t.beta} ({t.sampling})",
                 "factorvae": f"FactorVAE, gamma = {t.factor_gamma}"}[t.objective]
    body = [f"<h1>beta-VAE {html.escape(run_dir.name)}</h1>",
            run_header(run.cfg, {"data": f"dSprites {run.cfg.data.path or '(drawn by the package)'}",
                                 "networks": f"{run.cfg.model.arch}, {run.cfg.model.latents} latents",
                                 "training": f"objective {objective}; {run.step} steps of "
                                             f"{t.batch_size} images on {run.device}"}),
            f"<p>Last: -log p(x|z) {last['recon']:.1f}, KL {last['kl']:.2f} nats per image.</p>"]
    if (run_dir / "evaluation.md").exists():
        body.append("<h2>Disentanglement (<code>dsae betavae evaluate</code>)</h2>"
                    + markdown_html((run_dir / "evaluation.md").read_text()))
    body += ["<h2>Latent traversals</h2><img src='traversals.png'>",
             "<h2>Traversal GIFs</h2>" + "".join(
                 f"<figure style='display:inline-block'><img src='gifs/{g.name}'><figcaption>"
                 f"{g.stem.removeprefix('traversal_')}</figcaption></figure>" for g in gifs),
             "<h2>Reconstructions</h2><img src='reconstructions.png'>",
             "<h2>KL per latent over training</h2><img src='kl.png'>",
             f"<h2>Configuration</h2><pre>{html.escape(run.cfg.to_toml())}</pre>"]
    return write_page(run_dir / "report.html", f"beta-VAE {run_dir.name}", body)

