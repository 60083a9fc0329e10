"""Fitting p(z_1:T) to the posteriors after training: the ELBO's prior term E_q[log p(z_1:T)],
maximised over the prior's parameters alone, with q and the decoder fixed.

Generation draws z_1:T from the prior, so its samples must land where q puts the clips. On real
Sprites q(z_1:T) of the clips sits in tight, separate clusters (one per motion and phase), and
the LSTM prior's one Gaussian per step covers them with a wide bell whose samples fall mostly
between them; the decoder draws such z with the wrong skin tone. A prior refitted as a mixture
(`model.prior_components`) after training puts its samples on the clusters. Fitting a richer
prior to the aggregate posterior after training is the second stage of Dai & Wipf (ICLR 2019)
and Ghosh et al.'s ex-post density estimation (ICLR 2020); here it is the same ELBO term the
training maximised, over the same prior family, only with more components.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .data import Split, load_dataset, to_tensor
from .posterior import encode, evaluating
from .priors import make_prior
from .runs import CHECKPOINT, atomic_write, load_checkpoint

BEFORE = "checkpoint_before_prior_fit.pt"  # the run as trained, kept beside the refitted one


@torch.no_grad()
def posterior_steps(guide, split: Split, batch_size: int = 128, device="cpu",
                    progress: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """loc and scale (N, T, Z) of q(z_t | ...) along one draw of q per clip, the guide in eval
    mode. For the factorized guide, loc + scale * noise is a fresh exact draw of q(z_1:T | x);
    for the guides whose q(z_t) reads z_<t it re-noises the steps of that one draw."""
    locs, scales = [], []
    with evaluating(guide):
        for i in tqdm(range(0, len(split), batch_size), disable=not progress, unit="batch",
                      desc="q(z_1:T) of the training clips"):
            post = encode(guide, to_tensor(split.x[i:i + batch_size], device), mean=False)
            locs.append(post.z_loc)
            scales.append(post.z_scale)
    return torch.cat(locs), torch.cat(scales)


def fit_prior(prior: torch.nn.Module, loc: torch.Tensor, scale: torch.Tensor, epochs: int = 30,
              lr: float = 1e-3, batch_size: int = 64, seed: int = 0, progress: bool = True
              ) -> list[float]:
    """Maximise E_q[log p(z_1:T)] over the prior's parameters by Adam, with z = loc + scale *
    noise drawn afresh each epoch; returns -E_q[log p(z_1:T)] (nats per clip) of each epoch."""
    g = torch.Generator(device=loc.device).manual_seed(seed)
    opt = torch.optim.Adam(prior.parameters(), lr=lr)
    prior.train()
    history = []
    bar = tqdm(range(epochs), disable=not progress, unit="epoch", desc="fitting p(z_1:T)")
    for _ in bar:
        total = 0.0
        for b in torch.randperm(len(loc), generator=g, device=loc.device).split(batch_size):
            z = loc[b] + scale[b] * torch.randn(scale[b].shape, generator=g, device=loc.device)
            nll = -prior.log_prob(z).mean()
            opt.zero_grad(set_to_none=True)
            nll.backward()
            opt.step()
            total += nll.item() * len(b)
        history.append(total / len(loc))
        bar.set_postfix(nats=f"{history[-1]:.2f}")
    prior.eval()
    return history


def refit_prior(path: str | os.PathLike, components: int = 32, epochs: int = 30,
                lr: float = 1e-3, seed: int = 0, data: str | None = None,
                data_path: str | None = None, progress: bool = True) -> dict:
    """Refit the z prior of the run in `path` (a run folder) as a mixture of `components`
    Gaussians per step on q(z_1:T) of its training clips, and save it in the run's checkpoint
    (the run as trained stays beside it, as checkpoint_before_prior_fit.pt). Returns the fit's
    record, also kept in the checkpoint: components, epochs, nats per clip before and after."""
    from .train import Run

    run_dir = Path(path)
    if run_dir.is_file():
        run_dir = run_dir.parent
    ckpt = load_checkpoint(run_dir / CHECKPOINT, Run.CONFIG.KIND)
    run = Run.load(run_dir / CHECKPOINT)
    cfg = run.cfg
    if cfg.train.elbo == "meanfield" and components > 1:
        raise ValueError(f"{run_dir} was trained with train.elbo = 'meanfield', whose closed-form "
                         "KL a mixture prior has not; refit with components=1")
    start = time.perf_counter()
    train = load_dataset(data or cfg.data.name, data_path or cfg.data.path, cfg.data.seed,
                         progress=progress)["train"]
    loc, scale = posterior_steps(run.guide, train, device=run.device, progress=progress)
    with torch.no_grad():
        noise = torch.randn(scale.shape, generator=torch.Generator(loc.device).manual_seed(seed),
                            device=loc.device)
        before = -float(run.model.prior.log_prob(loc + scale * noise).mean())
    prior = make_prior(cfg.model.prior, cfg.model.z_dim, cfg.model.hidden, components)
    prior.to(run.device)
    # start from the trained prior wherever the shapes agree (its recurrence; all of it for K = 1)
    start_at = prior.state_dict()
    start_at.update({k: v for k, v in run.model.prior.state_dict().items()
                     if k in start_at and start_at[k].shape == v.shape})
    prior.load_state_dict(start_at)
    nats = fit_prior(prior, loc, scale, epochs, lr, seed=seed, progress=progress)
    record = {"components": components, "epochs": epochs, "lr": lr, "clips": len(train),
              "nats_before": before, "nats": nats, "seconds": time.perf_counter() - start,
              "replaced_components": cfg.model.prior_components}
    # the checkpoint as trained, with the new prior: the model's other weights, the guide and the
    # optimiser's state of every other parameter are the saved ones, untouched
    run.model.prior = prior
    cfg.override([f"model.prior_components={components}"])
    ckpt["model"] = run.model.state_dict()
    ckpt["optim"] = {k: v for k, v in ckpt["optim"].items() if not k.startswith("model/prior.")}
    ckpt["config"] = cfg.to_dict()
    ckpt["prior_fit"] = record
    if not (run_dir / BEFORE).exists():
        shutil.copyfile(run_dir / CHECKPOINT, run_dir / BEFORE)
    atomic_write(run_dir / CHECKPOINT, lambda fh: torch.save(ckpt, fh))
    atomic_write(run_dir / "config.toml", lambda fh: fh.write(cfg.to_toml().encode()))
    return record
