"""Training the beta-VAE with SVI, by steps: history every `log_every` steps, atomic checkpoints,
exact resume (batches drawn from a generator seeded by (seed, step); the capacity schedule of
objective B restarts from the saved step)."""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyro
import torch
from pyro.infer import SVI, Trace_ELBO
from pyro.optim import Adam
from tqdm import tqdm

from ..config import BetaVAEConfig
from ..data.dsprites import DSprites
from ..train import (
    CHECKPOINT,
    TrainingError,
    check_trained_by_store,
    load_checkpoint,
    optim_state,
    pick_device,
    refuse_overwrite,
    rng_state,
    save_checkpoint,
    set_optim_state,
    set_rng_state,
    write_history,
)
from .model import BetaVAE
from .objectives import CapacityLoss, capacity, trace_terms

EVAL_IMAGES = 2048  # a fixed sample of dSprites scored at every log point


def data_identity(path: str) -> str:
    return f"dsprites:{Path(path).resolve() if path else 'drawn-v1'}"


@dataclass
class BetaVAERun:
    """A beta-VAE, its SVI object (objective H or B), the step count and the history."""

    cfg: BetaVAEConfig
    vae: BetaVAE
    svi: SVI
    device: torch.device
    capacity_loss: CapacityLoss | None = None  # objective B only
    step: int = 0
    history: list[dict] = field(default_factory=list)
    checked: bool = False  # every parameter confirmed to be the param store's own tensor

    @classmethod
    def create(cls, cfg: BetaVAEConfig, device: torch.device | None = None) -> BetaVAERun:
        pyro.set_rng_seed(cfg.train.seed)
        device = device or pick_device(cfg.train.device)
        vae = BetaVAE(cfg.model).to(device)
        t = cfg.train
        optim = Adam({"lr": t.lr})
        capacity_loss = None
        if t.objective == "B":
            capacity_loss = CapacityLoss(t.gamma, t.c_max, t.c_steps)
            svi = SVI(vae.model, vae.guide, optim, loss=capacity_loss)
        else:
            svi = SVI(vae.model, vae.guide, optim, Trace_ELBO())
        return cls(cfg, vae, svi, device, capacity_loss)

    @property
    def beta(self) -> float:
        """The KL weight passed to model and guide: beta under H, 1 under B."""
        return self.cfg.train.beta if self.cfg.train.objective == "H" else 1.0

    # --- checkpoints ---------------------------------------------------------------------------
    def state(self, data_id: str) -> dict:
        return {"format": 1, "kind": "betavae", "config": self.cfg.to_dict(), "step": self.step,
                "history": self.history, "data": data_id, "model": self.vae.state_dict(),
                "optim": optim_state(self.svi, {self.vae.pyro_name: "model"}),
                "rng": rng_state()}

    def restore(self, ckpt: dict) -> None:
        self.vae.load_state_dict(ckpt["model"])
        set_optim_state(self.svi, ckpt["optim"], {self.vae.pyro_name: "model"},
                        lr=self.cfg.train.lr)
        set_rng_state(ckpt["rng"])
        self.step, self.history = ckpt["step"], list(ckpt["history"])

    # --- steps ---------------------------------------------------------------------------------
    def batch(self, n: int, step: int) -> np.ndarray:
        g = torch.Generator().manual_seed(self.cfg.train.seed * 1_000_003 + step)
        return torch.randint(n, (self.cfg.train.batch_size,), generator=g).numpy()

    def train_step(self, data: DSprites) -> float:
        """One SVI step on a random batch; returns the loss per image."""
        x = data.images(self.batch(len(data), self.step), self.device)
        if self.capacity_loss is not None:
            self.capacity_loss.step = self.step
        loss = self.svi.step(x, beta=self.beta) / len(x)
        if not self.checked:  # the first step of this process registered the networks
            check_trained_by_store(self.vae)
            self.checked = True
        if not math.isfinite(loss):
            raise TrainingError(f"the loss became {loss} at step {self.step}; the last good "
                                "checkpoint is kept. Try a smaller train.lr, then --resume")
        self.step += 1
        return loss

    @torch.no_grad()
    def measure(self, data: DSprites) -> dict:
        """Reconstruction log-likelihood and KL per latent (nats per image) on a fixed sample."""
        self.vae.eval()
        rng = rng_state()
        pyro.set_rng_seed(12345)
        idx = np.random.RandomState(0).choice(len(data), min(EVAL_IMAGES, len(data)), replace=False)
        log_lik, kl = [], []
        for i in range(0, len(idx), 512):
            ll, k = trace_terms(self.vae.model, self.vae.guide, data.images(idx[i:i + 512],
                                                                            self.device))
            log_lik.append(ll)
            kl.append(k)
        set_rng_state(rng)
        self.vae.train()
        kl = torch.cat(kl).mean(0)
        return {"recon": -float(torch.cat(log_lik).mean()), "kl": float(kl.sum()),
                "kl_per_latent": [round(float(v), 4) for v in kl]}


def load_betavae(path: str | os.PathLike, device: torch.device | None = None) -> BetaVAERun:
    """A beta-VAE run rebuilt from a checkpoint (file or run folder)."""
    ckpt = load_checkpoint(path)
    if ckpt.get("kind") != "betavae":
        raise TrainingError(f"{path} is a DSAE checkpoint; use it with `dsae` commands, not "
                            "`dsae betavae`")
    run = BetaVAERun.create(BetaVAEConfig.from_dict(ckpt["config"]), device or pick_device("auto"))
    run.restore(ckpt)
    run.vae.eval()
    return run


def fit_betavae(cfg: BetaVAEConfig, data: DSprites, run_dir: str | os.PathLike,
                resume: bool = False, progress: bool = True) -> BetaVAERun:
    """Train for cfg.train.steps; every log_every steps append to the history and checkpoint."""
    run_dir = Path(run_dir)
    ckpt_path = run_dir / CHECKPOINT
    data_id = data_identity(cfg.data.path)
    refuse_overwrite(run_dir, resume)
    run = BetaVAERun.create(cfg)
    if resume and ckpt_path.exists():
        ckpt = load_checkpoint(ckpt_path)
        saved = BetaVAEConfig.from_dict(ckpt["config"])
        if saved.model != cfg.model or saved.train.objective != cfg.train.objective:
            raise TrainingError(f"the checkpoint in {run_dir} was trained with {saved.model} and "
                                f"objective {saved.train.objective}; resume with the same options")
        if ckpt["data"] != data_id:
            raise TrainingError(f"the checkpoint was trained on {ckpt['data']}, not {data_id}")
        run.restore(ckpt)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.toml").write_text(cfg.to_toml())
    t = cfg.train
    bar = tqdm(total=t.steps, initial=run.step, disable=not progress, unit="step", desc="beta-VAE")
    run.vae.train()
    with pyro.validation_enabled(False):
        while run.step < t.steps:
            start, total, n = time.perf_counter(), 0.0, 0
            while run.step < t.steps and (n == 0 or run.step % t.log_every):
                total, n = total + run.train_step(data), n + 1
                bar.update(1)
            seconds = time.perf_counter() - start
            point = {"step": run.step, "train_loss": total / n, **run.measure(data),
                     "capacity": capacity(run.step, t.c_max, t.c_steps) if t.objective == "B" else None,
                     "seconds": round(seconds, 2),
                     "images_per_s": round(n * t.batch_size / seconds, 1)}
            run.history.append(point)
            save_checkpoint(ckpt_path, run.state(data_id))
            write_history(run_dir, run.history)
            bar.set_postfix(recon=f"{point['recon']:.1f}", kl=f"{point['kl']:.2f}")
    bar.close()
    return run
