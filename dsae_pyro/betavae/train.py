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

from ..data import data_identity
from ..data.dsprites import DSprites
from ..runs import (
    Checkpointed,
    TrainingError,
    check_trained_by_store,
    default_run_dir,
    pick_device,
    rng_state,
    set_rng_state,
)
from .config import BetaVAEConfig
from .model import BetaVAE
from .objectives import CapacityLoss, FactorVAELoss, TCLoss, capacity, ramp, trace_terms

EVAL_IMAGES = 2048  # a fixed sample of dSprites scored at every log point


@dataclass
class BetaVAERun(Checkpointed):
    """A beta-VAE, its SVI object (objective H or B), the step count and the history."""

    CONFIG, COUNTER, TARGET = BetaVAEConfig, "step", "steps"
    FIXED = ("model", "train.objective")  # objective B's capacity schedule restarts from the step

    cfg: BetaVAEConfig
    vae: BetaVAE
    svi: SVI
    device: torch.device
    step: int = 0
    history: list[dict] = field(default_factory=list)
    checked: bool = False  # every parameter confirmed to be the param store's own tensor

    @classmethod
    def create(cls, cfg: BetaVAEConfig, device: torch.device | None = None) -> BetaVAERun:
        pyro.set_rng_seed(cfg.train.seed)
        device = device or pick_device(cfg.train.device)
        vae = BetaVAE(cfg.model).to(device)
        t = cfg.train
        loss = {"H": Trace_ELBO,
                "B": lambda: CapacityLoss(t.gamma, t.c_max, t.c_steps),
                "tc": lambda: TCLoss(t.beta, sampling=t.sampling, warmup=t.tc_warmup),
                "factorvae": lambda: FactorVAELoss(t.factor_gamma, cfg.model.latents, t.disc_lr,
                                                   t.disc_hidden, t.disc_layers,
                                                   t.tc_warmup).to(device),
                }[t.objective]()
        svi = SVI(vae.model, vae.guide, Adam(cls.optimiser_settings(cfg)), loss)
        return cls(cfg, vae, svi, device)

    @property
    def beta(self) -> float:
        """The KL weight passed to model and guide at this step: beta under H (warmed up from 1
        over train.beta_warmup steps), 1 otherwise. On dSprites the warm-up did worse than beta
        held from the start: the code forms rotated, or not until beta is high
        (experiments/README.md, "beta warmed up instead of annealed down")."""
        t = self.cfg.train
        return 1 + (t.beta - 1) * ramp(self.step, t.beta_warmup) if t.objective == "H" else 1.0

    def networks(self) -> dict[str, torch.nn.Module]:
        return {"model": self.vae}

    # FactorVAE's discriminator trains outside Pyro's param store: its weights and Adam state
    # travel in the checkpoint beside the run layer's state
    def state(self, data_id: str) -> dict:
        state = super().state(data_id)
        if isinstance(self.svi.loss, FactorVAELoss):
            state["discriminator"] = {"net": self.svi.loss.discriminator.state_dict(),
                                      "optim": self.svi.loss.optim.state_dict()}
        return state

    def restore(self, ckpt: dict) -> None:
        super().restore(ckpt)
        if isinstance(self.svi.loss, FactorVAELoss):
            self.svi.loss.discriminator.load_state_dict(ckpt["discriminator"]["net"])
            self.svi.loss.optim.load_state_dict(ckpt["discriminator"]["optim"])

    # --- steps ---------------------------------------------------------------------------------
    def batch(self, n: int, step: int) -> np.ndarray:
        g = torch.Generator().manual_seed(self.cfg.train.seed * 1_000_003 + step)
        return torch.randint(n, (self.cfg.train.batch_size,), generator=g).numpy()

    def train_step(self, data: DSprites) -> float:
        """One SVI step on a random batch; returns the loss per image."""
        x = data.images(self.batch(len(data), self.step), self.device)
        objective = self.svi.loss
        if hasattr(objective, "step"):  # schedules: B's capacity, the TC weight's warm-up
            objective.step = self.step
        if isinstance(objective, TCLoss):
            objective.dataset_size = len(data)
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
    return BetaVAERun.load(path, device)


def fit_betavae(cfg: BetaVAEConfig, data: DSprites, run_dir: str | os.PathLike,
                resume: bool = False, progress: bool = True) -> BetaVAERun:
    """Train for cfg.train.steps; every log_every steps append to the history and checkpoint."""
    run_dir = Path(run_dir)
    data_id = data_identity("dsprites", cfg.data.path)
    run = BetaVAERun.create(cfg)
    run.open_folder(run_dir, resume, data_id)
    t = cfg.train
    bar = tqdm(total=t.steps, initial=run.step, disable=not progress, unit="step", desc="beta-VAE")
    run.vae.train()
    with pyro.validation_enabled(False):
        while run.step < t.steps:
            start, total, n, terms = time.perf_counter(), 0.0, 0, {}
            while run.step < t.steps and (n == 0 or run.step % t.log_every):
                total, n = total + run.train_step(data), n + 1
                for k, v in getattr(run.svi.loss, "terms", {}).items():  # tc, d_loss
                    terms[k] = terms.get(k, 0.0) + v
                bar.update(1)
            seconds = time.perf_counter() - start
            point = {"step": run.step, "train_loss": total / n, **run.measure(data),
                     **{f"train_{k}": v / n for k, v in terms.items()},
                     "capacity": capacity(run.step, t.c_max, t.c_steps) if t.objective == "B" else None,
                     "tc_weight": getattr(run.svi.loss, "weight", None),
                     "beta": run.beta if t.objective == "H" else None,
                     "seconds": round(seconds, 2),
                     "images_per_s": round(n * t.batch_size / seconds, 1)}
            run.history.append(point)
            run.record(run_dir, data_id)
            bar.set_postfix(recon=f"{point['recon']:.1f}", kl=f"{point['kl']:.2f}")
    bar.close()
    return run


def train_betavae(cfg: BetaVAEConfig, out: str | os.PathLike | None = None, resume: bool = False,
                  progress: bool = True, report: bool = True) -> BetaVAERun:
    """`dsae betavae train` in one call: load dSprites, fit into `out` (a new folder by default)
    and write the figures and report.html."""
    from ..data.dsprites import load_dsprites
    from .report import write_betavae_report

    out = Path(out or default_run_dir("betavae", cfg.preset))
    data = load_dsprites(cfg.data.path, progress=progress)
    start = time.perf_counter()
    run = fit_betavae(cfg, data, out, resume=resume, progress=progress)
    print(f"trained {run.step} steps in {time.perf_counter() - start:.0f}s; run folder: {out}")
    if report:
        print(f"report: {write_betavae_report(run, data, out)}")
    return run
