"""Training with SVI: one loop, per-epoch test ELBO and atomic checkpoints, exact resume.

A checkpoint holds the model, the guide, the optimiser, the config, the epoch, the history and every
RNG state; each epoch's batches are shuffled by a generator seeded from (seed, epoch), so a run resumed
from epoch k draws the same batches and the same noise as one that never stopped (tested on CPU).
"""

from __future__ import annotations

import math
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyro
import torch
from pyro.infer import SVI, Trace_ELBO, TraceMeanField_ELBO
from pyro.optim import Adam
from tqdm import tqdm

from .config import Config, ConfigError
from .data import DataError, Split, data_identity, to_tensor
from .data.views import other_clips, recolour
from .distributed import DistributedLoss, World, all_equal, setup
from .guides import Guide, make_guide
from .livelog import LiveLog
from .model import DSAE
from .objectives import ContrastiveLoss
from .runs import (
    CHECKPOINT,  # noqa: F401 - where a run folder keeps its checkpoint
    Checkpointed,
    TrainingError,
    check_trained_by_store,
    default_run_dir,
    pick_device,
    run_config,  # noqa: F401 - the DSAE's config for a run, as the CLI builds it
)


class CollapseWarning(UserWarning):
    """Training goes on, but the model has stopped using its latents (see `collapse_warning`)."""


@dataclass
class Run(Checkpointed):
    """Everything a training run holds: the model, the guide, the SVI object and its history."""

    CONFIG, COUNTER, TARGET = Config, "epoch", "epochs"
    # x_scale shapes no network (a fixed pixel scale; a learned one is restored from the weights),
    # so a resumed run may sharpen the likelihood after a loose start (experiments/push.sh)
    FREE = ("model.x_scale",)

    cfg: Config
    model: DSAE
    guide: Guide
    svi: SVI
    device: torch.device
    elbo: Trace_ELBO  # scores the test split (never through DDP: only rank 0 evaluates)
    world: World = World()
    epoch: int = 0
    history: list[dict] = field(default_factory=list)
    terms: dict[str, float] = field(default_factory=dict)  # the objective's extra terms, last epoch
    live: LiveLog | None = None  # TensorBoard curves when train.tensorboard

    @classmethod
    def create(cls, cfg: Config, device: torch.device | None = None,
               world: World | None = None) -> Run:
        """Model, guide and SVI; with a World of several processes the loss goes through
        DistributedDataParallel (see distributed.py)."""
        world = world or World()
        pyro.set_rng_seed(cfg.train.seed)  # the same initial weights on every rank
        device = device or (world.device if world.size > 1 else pick_device(cfg.train.device))
        # contiguous weights only: Pyro's param store trains a .contiguous() copy of any other
        # layout (channels_last), which the forward pass never reads (experiments/frozen_channels_last.py)
        model, guide = DSAE(cfg.model).to(device), make_guide(cfg.model).to(device)
        t = cfg.train
        elbo_cls = Trace_ELBO if t.elbo == "trace" else TraceMeanField_ELBO
        elbo = elbo_cls(num_particles=t.num_particles)
        objective = elbo
        if t.objective == "contrastive":
            objective = ContrastiveLoss(t.nce_f_weight, t.nce_z_weight, t.mi_weight, t.temperature,
                                        f_view=t.nce_f_view, swap_weight=t.swap_weight,
                                        swap_f=t.swap_f, swap_recolour=t.swap_recolour)
        loss = (DistributedLoss(objective, model, guide, world=world) if world.size > 1
                else objective)
        svi = SVI(model.model, guide, Adam(cls.optimiser_settings(cfg)), loss)
        if world.size > 1:
            pyro.set_rng_seed(world.noise_seed(t.seed))  # each rank draws its own noise
        return cls(cfg, model, guide, svi, device, elbo, world)

    # --- the run layer's hooks (runs.Checkpointed) -----------------------------------------
    def networks(self) -> dict[str, torch.nn.Module]:
        return {"model": self.model, "guide": self.guide}

    @classmethod
    def optimiser_settings(cls, cfg: Config) -> dict:
        return {**super().optimiser_settings(cfg), "betas": (cfg.train.beta1, cfg.train.beta2)}

    # --- one epoch -----------------------------------------------------------------------------
    def batches(self, n: int, epoch: int):
        """This process's batches of an epoch: train.batch_size clips per process, so a global
        batch holds world.size times as many, split between the ranks."""
        g = torch.Generator().manual_seed(self.cfg.train.seed * 100_003 + epoch)
        order = torch.randperm(n, generator=g)
        bs = self.cfg.train.batch_size * self.world.size
        last = n if self.world.size == 1 else n - bs + 1  # several ranks: whole batches only
        return [self.world.shard(order[i:i + bs]) for i in range(0, last, bs)]

    def train_epoch(self, train: Split, progress: bool = True) -> float:
        """One pass over the training split; returns the mean loss (-ELBO) per clip."""
        self.model.train()
        self.guide.train()
        total, seen = 0.0, 0
        t = self.cfg.train
        contrastive = self.contrastive
        if contrastive is not None:  # its views and its aggregate-posterior estimate
            contrastive.dataset_size = len(train)
            contrastive.generator = torch.Generator().manual_seed(t.seed * 100_003 + self.epoch + 11)
            self.terms = dict.fromkeys(contrastive.active_terms(), 0.0)
        partner = None
        if t.f_source == "sibling":  # q(f) reads another clip of each character
            partner = other_clips(train.character, np.random.default_rng([t.seed, self.epoch]))
        colours = None
        if t.z_source == "recolour":  # q(z) reads the clip with scrambled colours
            colours = torch.Generator().manual_seed(t.seed * 100_003 + self.epoch + 7)
        bar = tqdm(self.batches(len(train), self.epoch), disable=not (progress and self.world.main),
                   leave=False,
                   desc=f"epoch {self.epoch + 1}/{self.cfg.train.epochs}", unit="batch")
        first = self.epoch * len(bar)  # steps taken before this epoch
        lr = self.lr(self.epoch)
        self.set_lr(lr)
        for i, idx in enumerate(bar):
            start = time.perf_counter()
            kl = self.kl_weight(first + i)
            x = to_tensor(train.x[idx.numpy()], self.device)
            x_f = None if partner is None else to_tensor(train.x[partner[idx.numpy()]], self.device)
            x_z = None if colours is None else recolour(x, colours)
            loss = self.svi.step(x, kl_weight=kl, x_f=x_f, x_z=x_z) / self.world.size
            if not math.isfinite(loss):
                raise TrainingError(
                    f"the loss became {loss} in epoch {self.epoch + 1} after {seen} clips; the "
                    "last good checkpoint is kept. Try a smaller train.lr, a larger "
                    "model.x_scale, or --set train.elbo=meanfield, then --resume")
            if i == 0:
                check_trained_by_store(self.model, self.guide)
            total, seen = total + loss, seen + len(idx)
            if contrastive is not None:
                for k in self.terms:
                    self.terms[k] += contrastive.terms.get(k, 0.0) * len(idx)
            if self.live is not None:
                extra = contrastive.terms if contrastive is not None else {}
                self.live.step(first + i, {
                    "train/loss_per_clip": loss / len(idx), "train/kl_weight": kl, "train/lr": lr,
                    "train/clips_per_s": len(idx) / (time.perf_counter() - start),
                    **{f"train/{k}": v for k, v in extra.items()}})
            bar.set_postfix(loss=f"{total / seen:.1f}")
        if contrastive is not None:
            self.terms = {k: v / seen for k, v in self.terms.items()}
        return total / seen

    @property
    def contrastive(self) -> ContrastiveLoss | None:
        """The contrastive objective when train.objective asks for it."""
        loss = self.svi.loss
        if isinstance(loss, DistributedLoss):
            loss = loss.elbo
        return loss if isinstance(loss, ContrastiveLoss) else None

    def lr(self, epoch: int) -> float:
        """train.lr, times train.lr_decay in the last train.lr_decay_epochs epochs."""
        t = self.cfg.train
        late = t.lr_decay_epochs and epoch >= t.epochs - t.lr_decay_epochs
        return t.lr * t.lr_decay if late else t.lr

    def set_lr(self, lr: float) -> None:
        """Adam's rate for every parameter: Pyro gives each its own optimiser, made at its first
        step from the settings, or from a resumed checkpoint's state waiting for that step."""
        optim = self.svi.optim
        optim.pt_optim_args["lr"] = lr
        states = getattr(optim, "_state_waiting_to_be_consumed", {}).values()
        for groups in [o.param_groups for o in optim.optim_objs.values()] + [
                s["param_groups"] for s in states]:
            for g in groups:
                g["lr"] = lr

    def kl_weight(self, step: int) -> float:
        """train.kl_weight, raised linearly over the first train.kl_warmup steps (KL warm-up)."""
        t = self.cfg.train
        return t.kl_weight * min(1.0, (step + 1) / t.kl_warmup) if t.kl_warmup else t.kl_weight

    @torch.no_grad()
    def evaluate(self, split: Split, max_clips: int = 0) -> dict[str, float]:
        """The split's mean -ELBO per clip ("loss") and its terms: reconstruction -log p(x | f, z),
        KL(q(f) || p(f)) and the sum over t of KL(q(z_t) || p(z_t | z_<t)), nats per clip, plus
        "explained": the share of the pixel variance the posterior-mean reconstruction explains.
        BatchNorm in eval mode, fixed noise (training's is restored)."""
        from .posterior import diagnose

        self.model.eval()
        self.guide.eval()
        n = min(len(split), max_clips) if max_clips else len(split)
        rng = pyro.util.get_rng_state()  # evaluation must not shift the training noise
        pyro.set_rng_seed(12345)
        sums = dict.fromkeys(("loss", "recon", "kl_f", "kl_z", "sq_err", "sq_dev"), 0.0)
        for i in range(0, n, 2 * self.cfg.train.batch_size):
            x = to_tensor(split.x[i:min(n, i + 2 * self.cfg.train.batch_size)], self.device)
            d = diagnose(self.model, self.guide, x)
            post = d.posterior  # diagnose's posterior means: no second guide pass
            sums["loss"] += -d.elbo * len(x)
            sums["recon"] += -d.log_p["x"] * len(x)
            sums["kl_f"] += d.kl_f * len(x)
            sums["kl_z"] += d.kl_z * len(x)
            sums["sq_err"] += float((self.model.decode(post.f, post.z) - x).square().sum())
            sums["sq_dev"] += float((x - x.mean(0)).square().sum())
        pyro.util.set_rng_state(rng)
        out = {k: sums[k] / n for k in ("loss", "recon", "kl_f", "kl_z")}
        out["explained"] = 1 - sums["sq_err"] / max(sums["sq_dev"], 1e-12)
        return out


def collapse_warning(scores: dict[str, float], frames: int) -> str | None:
    """A message when the latents carry almost nothing (KL of f and z together under 1 nat per frame)
    while the reconstruction explains under half of the pixel variance: the decoder draws the mean
    clip whatever the latents say (posterior collapse, or a decoder that cannot learn)."""
    kl = scores["kl_f"] + scores["kl_z"]
    if kl >= frames or scores["explained"] >= 0.5:
        return None
    return (f"the latents carry almost nothing (KL(f) {scores['kl_f']:.2f} + KL(z) "
            f"{scores['kl_z']:.2f} nats per clip) and the reconstructions explain only "
            f"{max(0.0, 100 * scores['explained']):.0f}% of the pixel variance: the decoder is "
            "drawing the mean clip. Try a smaller model.x_scale (a sharper likelihood weighs "
            "pixels more against the KL), a KL warm-up (train.kl_warmup) or a smaller train.lr")


def load_run(path: str | os.PathLike, device: torch.device | None = None) -> Run:
    """A DSAE run rebuilt from a checkpoint (file or run folder), ready to generate or resume."""
    return Run.load(path, device)


def load_run_and_test(path: str | os.PathLike, data: str | None = None,
                      data_path: str | None = None) -> tuple[Run, Split]:
    """A trained run and the test split of its data (or of `data` / `data_path` when given), for
    figures and evaluation."""
    from .data import load_dataset

    run = load_run(path)
    d = run.cfg.data
    return run, load_dataset(data or d.name, data_path or d.path, d.seed, progress=False)["test"]


def clip_shape(split: Split) -> dict[str, int]:
    """The model settings that clips of `split` (uint8 (N, T, H, W, C)) need."""
    _, frames, size, _, channels = split.x.shape
    return {"frames": frames, "image_size": size, "image_channels": channels}


def fit_to_data(cfg: Config, split: Split) -> list[str]:
    """Set model.frames, image_size and image_channels to what the clips of `split` hold (any
    npz of clips trains); returns the "key=value" settings that changed."""
    changed = [f"model.{k}={v}" for k, v in clip_shape(split).items() if getattr(cfg.model, k) != v]
    if changed:
        cfg.override(changed)
    return changed


def check_fits(cfg: Config, data: dict[str, Split]) -> None:
    """Before any work: both splits hold clips, of the shape the model is built for."""
    for name in ("train", "test"):
        if name not in data or len(data[name]) == 0:
            raise DataError(f"the {name} split holds no clips; a run needs clips to train on and "
                            "to score (an npz needs non-empty x_train and x_test)")
        wrong = {k: v for k, v in clip_shape(data[name]).items() if getattr(cfg.model, k) != v}
        if wrong:
            raise ConfigError(
                f"the {name} clips need " + ", ".join(
                    f"model.{k}={v} (the model has {getattr(cfg.model, k)})" for k, v in wrong.items())
                + "; pass " + " ".join(f"--set model.{k}={v}" for k, v in wrong.items()))


def fit(cfg: Config, data: dict[str, Split], run_dir: str | os.PathLike, resume: bool = False,
        progress: bool = True) -> Run:
    """Train `cfg` on data['train'], scoring data['test'] each epoch; checkpoints in run_dir."""
    run_dir = Path(run_dir)
    data_id = data_identity(cfg.data.name, cfg.data.path, cfg.data.seed)
    check_fits(cfg, data)
    characters = len(np.unique(data["train"].character))
    if cfg.train.f_source == "sibling" and not 1 < characters < len(data["train"]):
        raise ConfigError(f"train.f_source = 'sibling' needs character labels with several clips "
                          f"per character; the training split has {characters} characters in "
                          f"{len(data['train'])} clips. Use train.f_source=self")
    world = setup(cfg.train.device)
    run = Run.create(cfg, world=world)
    run.open_folder(run_dir, resume, data_id, write=world.main)
    if run.epoch == 0:  # nothing restored: a new run starts from what the clips hold
        run.model.start_from_clips(data["train"].x)
    if cfg.train.tensorboard and world.main:
        run.live = LiveLog(run_dir)
    if resume and world.size > 1:  # the checkpoint holds rank 0's noise: give each its own again
        pyro.set_rng_seed(world.noise_seed(cfg.train.seed, run.epoch))
    progress = progress and world.main
    # inputs were checked when loaded: skip Pyro's per-step argument checks
    with pyro.validation_enabled(False):
        while run.epoch < cfg.train.epochs:
            start = time.perf_counter()
            train_loss = run.train_epoch(data["train"], progress)
            seconds = time.perf_counter() - start
            run.epoch += 1
            if not world.main:  # rank 0 scores, records and checkpoints for everyone
                continue
            scores = run.evaluate(data["test"], cfg.train.eval_clips)
            run.history.append({"epoch": run.epoch, "train_loss": train_loss,
                                "test_loss": scores["loss"], "test_recon": scores["recon"],
                                "test_kl_f": scores["kl_f"], "test_kl_z": scores["kl_z"],
                                "test_explained": round(scores["explained"], 4),
                                **{f"train_{k}": v for k, v in run.terms.items()},
                                "seconds": round(seconds, 2),
                                "clips_per_s": round(len(data["train"]) / seconds, 1)})
            test_loss = scores["loss"]
            if run.live is not None:
                run.live.epoch({f"test/{k}": v for k, v in scores.items()}, run, data["test"])
            message = collapse_warning(scores, cfg.model.frames)
            if message:
                warnings.warn(f"epoch {run.epoch}: {message}", CollapseWarning, stacklevel=2)
            run.record(run_dir, data_id)
            if progress:
                weighted = cfg.train.kl_weight != 1 or cfg.train.kl_warmup
                scored = min(len(data["test"]), cfg.train.eval_clips or len(data["test"]))
                tqdm.write(f"epoch {run.epoch}: train {'KL-weighted loss' if weighted else '-ELBO'} "
                           f"{train_loss:.1f}, -ELBO of {scored} test clips {test_loss:.1f} "
                           f"(nats per clip; {seconds:.0f}s)")
    if world.size > 1 and not all_equal([*run.model.parameters(), *run.guide.parameters()]):
        raise TrainingError("the ranks' parameters differ after training; this is a bug, please "
                            "report it with the command you ran")
    if run.live is not None:
        run.live.close()
    return run


def train(cfg: Config, out: str | os.PathLike | None = None, resume: bool = False,
          progress: bool = True, report: bool = True) -> Run:
    """`dsae train` in one call: load cfg's data, fit into `out` (a new folder by default) and
    write the figures and report.html. Under torchrun every rank calls it; rank 0 reports."""
    from .data import load_dataset
    from .distributed import launched_by_torchrun, teardown
    from .report import write_report

    if launched_by_torchrun() and not out:
        raise ConfigError("under torchrun pass --out DIR, so that every process uses one run folder")
    out = Path(out or default_run_dir(cfg.preset, cfg.model.guide, cfg.data.name))
    start = time.perf_counter()
    data = load_dataset(cfg.data.name, cfg.data.path, cfg.data.seed, progress=progress)
    print(f"data: {cfg.data.name}, {len(data['train'])} train / {len(data['test'])} test clips "
          f"({time.perf_counter() - start:.0f}s); run folder: {out}")
    if not resume and len(data["train"]):
        changed = fit_to_data(cfg, data["train"])  # a resumed run keeps its networks
        if changed:
            print(f"model fitted to the clips: {', '.join(changed)}")
    run = fit(cfg, data, out, resume=resume, progress=progress)
    teardown(run.world, run.svi.loss)  # this process owns the torchrun group: leave it before exiting
    if run.world.main:
        run = refit_after_training(run, data["train"], out, progress)
        if report:
            print(f"report: {write_report(run, data['test'], out)}")
        print(f"done in {time.perf_counter() - start:.0f}s")
    return run


def refit_after_training(run: Run, clips: Split, run_dir: str | os.PathLike,
                         progress: bool = True) -> Run:
    """The refit of p(z_1:T) and of the decoder that train.refit_z_components and
    train.refit_decoder_epochs ask for (prior_fit.refit_prior), once per run folder: a resumed
    run that was refitted already is returned as it is."""
    from .prior_fit import BEFORE, adopted, describe, refit_prior

    t, run_dir = run.cfg.train, Path(run_dir)
    if not (t.refit_z_components or t.refit_decoder_epochs) or (run_dir / BEFORE).exists():
        return run
    record = refit_prior(run_dir, t.refit_z_components, epochs=t.refit_epochs, seed=t.seed,
                         progress=progress, clips=clips, decoder_epochs=t.refit_decoder_epochs,
                         decoder_lr=t.refit_decoder_lr, decoder_at=t.refit_decoder_at,
                         decoder_readback=t.refit_decoder_readback)
    print(describe(record))
    return Run.load(run_dir, run.device) if adopted(record) else run
