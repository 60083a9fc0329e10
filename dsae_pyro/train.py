"""Training with SVI: one loop, per-epoch test ELBO and atomic checkpoints, exact resume.

A checkpoint holds the model, the guide, the optimiser, the config, the epoch, the history and every
RNG state; each epoch's batches are shuffled by a generator seeded from (seed, epoch), so a run resumed
from epoch k draws the same batches and the same noise as one that never stopped (tested on CPU).
"""

from __future__ import annotations

import csv
import io
import json
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

from ._io import atomic_write
from .config import PRESET_DIR, Config, ConfigError, Sectioned, load_preset
from .data import Split, dataset_identity, to_tensor
from .data.views import other_clips, recolour
from .distributed import DistributedLoss, World, all_equal, setup
from .guides import Guide, make_guide
from .model import DSAE
from .objectives import ContrastiveLoss

CHECKPOINT = "checkpoint.pt"


class CollapseWarning(UserWarning):
    """Training goes on, but the model has stopped using its latents (see `collapse_warning`)."""


class TrainingError(RuntimeError):
    """Training cannot go on (NaN loss, mismatched checkpoint); the message says what to do."""


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device = 'cuda' but no CUDA device is available; use auto or cpu")
    return torch.device(name)


# --- checkpoint pieces shared by every run (DSAE, beta-VAE) --------------------------------------
def optim_state(svi: SVI, owners: dict[str, str]) -> dict:
    """The optimiser state keyed by module-local names ("model/decoder.fc.0.weight"): Pyro keys
    it by the instance's unique Pyro name, which differs between sessions."""
    out = {}
    for name, value in svi.optim.get_state().items():
        prefix, local = name.split("$$$", 1)
        out[f"{owners[prefix]}/{local}"] = value
    return out


def set_optim_state(svi: SVI, state: dict, owners: dict[str, str], **hyper) -> None:
    """Restore the optimiser state; `hyper` (lr, betas) replaces the saved values, so a run
    resumed with another learning rate uses it (torch would restore the saved one)."""
    names = {v: k for k, v in owners.items()}
    restored = {}
    for k, v in state.items():
        v = {**v, "param_groups": [{**g, **hyper} for g in v["param_groups"]]}
        restored[f"{names[k.split('/', 1)[0]]}$$${k.split('/', 1)[1]}"] = v
    svi.optim.set_state(restored)


def rng_state() -> dict:
    rng = pyro.util.get_rng_state()
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    return rng


def set_rng_state(rng: dict) -> None:
    rng = dict(rng)
    cuda = rng.pop("cuda", None)
    pyro.util.set_rng_state(rng)
    if cuda is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)


def check_trained_by_store(*modules: torch.nn.Module) -> None:
    """Every parameter of `modules` must be the very tensor Pyro's param store optimises.

    `pyro.module` registers a parameter through the store, which keeps `.contiguous()` of it: for a
    non-contiguous parameter (channels_last conv weights, a transposed view) that is a copy the
    forward pass never reads, so the optimiser steps a tensor nobody uses and the weight stays frozen
    without a word. Call after the first step, once the modules are registered."""
    store = pyro.get_param_store()
    frozen = [name for m in modules for name, p in m.named_parameters()
              if p.requires_grad and store.param_name(p) is None]
    if frozen:
        raise TrainingError(
            f"{len(frozen)} parameters are not the tensors Pyro's param store trains, so they would "
            f"never change: {', '.join(frozen[:4])}{' ...' if len(frozen) > 4 else ''}. Keep module "
            "parameters contiguous (no .to(memory_format=torch.channels_last)) and register each "
            "module once with pyro.module")


def refuse_overwrite(run_dir: Path, resume: bool) -> None:
    """A run folder that holds a checkpoint is only continued (--resume), never trained over."""
    if (run_dir / CHECKPOINT).exists() and not resume:
        raise TrainingError(f"{run_dir} already holds a run; pass --resume to continue it or "
                            "choose another --out folder")


def save_checkpoint(path: Path, state: dict) -> None:
    """torch.save, atomically: a crash mid-write keeps the previous file."""
    atomic_write(path, lambda fh: torch.save(state, fh))


@dataclass
class Run:
    """Everything a training run holds: the model, the guide, the SVI object and its history."""

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
        optim = Adam({"lr": t.lr, "betas": (t.beta1, t.beta2)})
        elbo_cls = Trace_ELBO if t.elbo == "trace" else TraceMeanField_ELBO
        elbo = elbo_cls(num_particles=t.num_particles)
        objective = elbo
        if t.objective == "contrastive":
            objective = ContrastiveLoss(t.nce_f_weight, t.nce_z_weight, t.mi_weight, t.temperature)
        loss = (DistributedLoss(objective, model, guide, world=world) if world.size > 1
                else objective)
        svi = SVI(model.model, guide, optim, loss)
        if world.size > 1:
            pyro.set_rng_seed(world.noise_seed(t.seed))  # each rank draws its own noise
        return cls(cfg, model, guide, svi, device, elbo, world)

    # --- checkpoints ---------------------------------------------------------------------------
    def _owners(self) -> dict[str, str]:
        return {self.model.pyro_name: "model", self.guide.pyro_name: "guide"}

    def state(self, data_id: str) -> dict:
        return {"format": 1, "config": self.cfg.to_dict(), "epoch": self.epoch,
                "history": self.history, "data": data_id, "model": self.model.state_dict(),
                "guide": self.guide.state_dict(), "optim": optim_state(self.svi, self._owners()),
                "rng": rng_state()}

    def save(self, path: Path, data_id: str) -> None:
        """Write the checkpoint atomically: a crash mid-write keeps the previous one."""
        save_checkpoint(path, self.state(data_id))

    def restore(self, ckpt: dict) -> None:
        self.model.load_state_dict(ckpt["model"])
        self.guide.load_state_dict(ckpt["guide"])
        t = self.cfg.train
        set_optim_state(self.svi, ckpt["optim"], self._owners(), lr=t.lr, betas=(t.beta1, t.beta2))
        set_rng_state(ckpt["rng"])
        self.epoch, self.history = ckpt["epoch"], list(ckpt["history"])

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
            self.terms = dict.fromkeys(("nce_f", "nce_z", "mi_fz"), 0.0)
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
        for i, idx in enumerate(bar):
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
            bar.set_postfix(loss=f"{total / seen:.1f}")
        if contrastive is not None:
            self.terms = {k: v / seen for k, v in self.terms.items()}
        return total / seen

    @property
    def contrastive(self) -> ContrastiveLoss | None:
        """The contrastive objective when train.objective asks for it."""
        loss = self.svi.loss
        if isinstance(loss, DistributedLoss):
            loss = loss.ddp.module.elbo
        return loss if isinstance(loss, ContrastiveLoss) else None

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
        from .inspect import diagnose

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


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Read a checkpoint on any machine (GPU checkpoints load on a CPU-only one)."""
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT
    if not path.is_file():
        raise TrainingError(f"no checkpoint at {path}; train first with `dsae train --out DIR` "
                            "(or `dsae betavae train --out DIR`)")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # noqa: BLE001 - a torn or foreign file
        raise TrainingError(f"{path} is not a dsae_pyro checkpoint ({e})") from e
    if not isinstance(ckpt, dict) or ckpt.get("format") != 1:
        raise TrainingError(f"{path} is not a dsae_pyro checkpoint")
    missing = {"config", "model", "optim", "rng", "history"} - set(ckpt)
    if missing:
        raise TrainingError(f"{path} is an incomplete dsae_pyro checkpoint (no {sorted(missing)}); "
                            "train again into a new --out folder")
    return ckpt


def check_compatible(ckpt: dict, cfg: Config, data_id: str) -> None:
    """Refuse to resume a checkpoint whose networks or data differ from this run's."""
    saved = Config.from_dict(ckpt["config"])
    # x_scale shapes no network (a fixed pixel scale; a learned one is restored from the weights),
    # so a run may continue with another one: a sharper likelihood after a loose start
    diffs = [f"{k}: checkpoint {v!r} vs now {getattr(cfg.model, k)!r}"
             for k, v in vars(saved.model).items() if getattr(cfg.model, k) != v and k != "x_scale"]
    if diffs:
        raise TrainingError("the checkpoint was trained with another model/guide (preset "
                            f"{saved.preset!r}): {'; '.join(diffs)}. Resume with the same preset "
                            "and options, or train into a new --out folder")
    if ckpt["data"] != data_id:
        raise TrainingError(f"the checkpoint was trained on {ckpt['data']}, this run uses "
                            f"{data_id}; pass the same --data or use a new --out folder")


def load_run(path: str | os.PathLike, device: torch.device | None = None) -> Run:
    """A Run rebuilt from a checkpoint (file or run folder), ready to generate or resume."""
    ckpt = load_checkpoint(path)
    if ckpt.get("kind") == "betavae":
        raise TrainingError(f"{path} is a beta-VAE checkpoint; use `dsae betavae evaluate` or "
                            "`dsae betavae traverse`")
    cfg = Config.from_dict(ckpt["config"])
    run = Run.create(cfg, device or pick_device("auto"))
    run.restore(ckpt)
    run.model.eval()
    run.guide.eval()
    return run


def run_config(preset: str = "cpu", overrides: list[str] | tuple[str, ...] = (),
               out: str | os.PathLike | None = None, resume: bool = False,
               data_path: str | None = None, kind: type[Sectioned] = Config,
               preset_dir: Path = PRESET_DIR) -> Sectioned:
    """The config a run trains with: the preset's, or when resuming the one saved in the
    checkpoint of `out` (a resumed run keeps its own settings), then `overrides` ("section.key=
    value") and the data path. Serves the DSAE (kind=Config) and the beta-VAE (BetaVAEConfig)."""
    if resume:
        if not out or not (Path(out) / CHECKPOINT).exists():
            raise ConfigError(f"--resume: no checkpoint in {out or 'the --out folder'}; pass the "
                              "--out folder of the run")
        cfg = kind.from_dict(load_checkpoint(out)["config"])
    else:
        cfg = load_preset(preset, kind, preset_dir)
    cfg.override(list(overrides))
    if data_path:
        cfg.data.path = str(data_path)
    return cfg


def load_run_and_test(path: str | os.PathLike, data: str | None = None,
                      data_path: str | None = None) -> tuple[Run, Split]:
    """A trained run and the test split of its data (or of `data` / `data_path` when given), for
    figures and evaluation."""
    from .data import load_dataset

    run = load_run(path)
    d = run.cfg.data
    return run, load_dataset(data or d.name, data_path or d.path, d.seed, progress=False)["test"]


def write_history(run_dir: Path, history: list[dict]) -> None:
    """history.json and history.csv, each written atomically; the CSV's columns are every key any
    row has (a run resumed by a newer version records more per epoch)."""
    atomic_write(run_dir / "history.json", lambda fh: fh.write(json.dumps(history, indent=1).encode()))
    columns = list(dict.fromkeys(k for row in history for k in row))

    def write_csv(fh):
        text = io.TextIOWrapper(fh, newline="")
        w = csv.DictWriter(text, fieldnames=columns, restval="")
        w.writeheader()
        w.writerows(history)
        text.flush()
        text.detach()
    atomic_write(run_dir / "history.csv", write_csv)


def fit(cfg: Config, data: dict[str, Split], run_dir: str | os.PathLike, resume: bool = False,
        progress: bool = True) -> Run:
    """Train `cfg` on data['train'], scoring data['test'] each epoch; checkpoints in run_dir."""
    run_dir = Path(run_dir)
    ckpt_path = run_dir / CHECKPOINT
    data_id = dataset_identity(cfg.data.name, cfg.data.path, cfg.data.seed)
    refuse_overwrite(run_dir, resume)
    characters = len(np.unique(data["train"].character))
    if cfg.train.f_source == "sibling" and not 1 < characters < len(data["train"]):
        raise ConfigError(f"train.f_source = 'sibling' needs character labels with several clips "
                          f"per character; the training split has {characters} characters in "
                          f"{len(data['train'])} clips. Use train.f_source=self")
    world = setup(cfg.train.device)
    run = Run.create(cfg, world=world)
    if resume and ckpt_path.exists():
        ckpt = load_checkpoint(ckpt_path)
        check_compatible(ckpt, cfg, data_id)
        run.restore(ckpt)
        if world.main and run.history:  # the checkpoint's history is the true one: repair the files
            write_history(run_dir, run.history)
        if world.size > 1:  # the checkpoint holds rank 0's noise: give each rank its own again
            pyro.set_rng_seed(world.noise_seed(cfg.train.seed, run.epoch))
    if world.main:
        run_dir.mkdir(parents=True, exist_ok=True)
        if run.epoch > cfg.train.epochs:  # keep the record true: the run has more epochs than asked
            warnings.warn(f"{run_dir} already holds {run.epoch} epochs, more than the "
                          f"{cfg.train.epochs} asked for; nothing to train", stacklevel=2)
        else:
            atomic_write(run_dir / "config.toml", lambda fh: fh.write(cfg.to_toml().encode()))
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
            message = collapse_warning(scores, cfg.model.frames)
            if message:
                warnings.warn(f"epoch {run.epoch}: {message}", CollapseWarning, stacklevel=2)
            run.save(ckpt_path, data_id)
            write_history(run_dir, run.history)
            if progress:
                weighted = cfg.train.kl_weight != 1 or cfg.train.kl_warmup
                scored = min(len(data["test"]), cfg.train.eval_clips or len(data["test"]))
                tqdm.write(f"epoch {run.epoch}: train {'KL-weighted loss' if weighted else '-ELBO'} "
                           f"{train_loss:.1f}, -ELBO of {scored} test clips {test_loss:.1f} "
                           f"(nats per clip; {seconds:.0f}s)")
    if world.size > 1 and not all_equal([*run.model.parameters(), *run.guide.parameters()]):
        raise TrainingError("the ranks' parameters differ after training; this is a bug, please "
                            "report it with the command you ran")
    return run
