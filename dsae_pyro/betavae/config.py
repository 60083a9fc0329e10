"""The beta-VAE's configuration: the networks of Higgins et al. / Burgess et al. and the two
objectives, H (recon + beta KL) and B (recon + gamma |KL - C|); presets in presets/betavae/."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from ..aggregate import SAMPLINGS
from ..config import DEVICES, PRESET_DIR, Sectioned
from .nets import INITS

OBJECTIVES = ("H", "B", "tc", "factorvae")
ARCHS = ("conv", "mlp")


@dataclass
class BetaModelConfig:
    arch: str = "conv"  # conv | mlp (as in the beta-VAE papers' reimplementations)
    latents: int = 10
    init: str = "torch"  # torch (PyTorch's default) | he (no early plateau; rotated x/y at beta 16)


@dataclass
class BetaTrainConfig:
    # H: recon + beta KL (Higgins); B: recon + gamma |KL - C| (Burgess); tc: -ELBO + (beta - 1) TC
    # (beta-TCVAE, Chen et al.); factorvae: -ELBO + factor_gamma TC by a discriminator (Kim & Mnih)
    objective: str = "B"
    beta: float = 4.0  # objectives H and tc
    gamma: float = 1000.0  # objective B
    c_max: float = 25.0  # objective B: capacity C rises linearly 0 -> c_max nats ...
    c_steps: int = 100_000  # ... over this many steps, then stays
    sampling: str = "mss"  # objective tc: the aggregate-posterior estimator (mss | mws)
    factor_gamma: float = 35.0  # objective factorvae: weight of TC
    disc_lr: float = 1e-4  # objective factorvae: the discriminator's Adam
    disc_hidden: int = 256  # objective factorvae: discriminator width (Kim & Mnih: 1000) ...
    disc_layers: int = 3  # ... and depth (Kim & Mnih: 6)
    tc_warmup: int = 0  # objectives tc and factorvae: the TC weight rises from 0 over these steps
    beta_warmup: int = 0  # objective H: beta rises linearly from 1 (the ELBO) over these steps
    steps: int = 100_000
    batch_size: int = 64
    lr: float = 5e-4
    seed: int = 0
    log_every: int = 1000  # steps between history points and checkpoints
    keep: int = 0  # earlier checkpoints kept beside the latest (checkpoint_s<step>.pt)
    device: str = "auto"


@dataclass
class BetaDataConfig:
    path: str = ""  # the official dSprites npz, or empty: draw it (and cache)


@dataclass
class BetaVAEConfig(Sectioned):
    """The beta-VAE's configuration."""

    KIND: ClassVar[str] = "betavae"
    PRESET_DIR: ClassVar[Path] = PRESET_DIR / "betavae"
    model: BetaModelConfig = field(default_factory=BetaModelConfig)
    train: BetaTrainConfig = field(default_factory=BetaTrainConfig)
    data: BetaDataConfig = field(default_factory=BetaDataConfig)
    preset: str = "custom"

    def validate(self) -> None:
        self.check(choices={"model.arch": ARCHS, "model.init": INITS, "train.objective": OBJECTIVES,
                            "train.device": DEVICES, "train.sampling": SAMPLINGS},
                   positive=("train.beta", "train.lr", "train.gamma", "train.disc_lr"),
                   at_least_one=("train.steps", "train.batch_size", "train.log_every",
                                 "train.c_steps", "model.latents", "train.disc_hidden",
                                 "train.disc_layers"),
                   at_least_zero=("train.c_max", "train.factor_gamma", "train.keep",
                                  "train.tc_warmup", "train.beta_warmup"))
