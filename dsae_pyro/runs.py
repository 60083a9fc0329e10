"""The run layer both models share (the DSAE in train.py, the beta-VAE in betavae/train.py).

A run folder holds `config.toml`, `checkpoint.pt` and `history.json`/`.csv`. A checkpoint holds the
networks, the optimiser state, the config, the progress counter (epochs or steps), the history, the
data's identity and every RNG state, written atomically, so that a resumed run continues exactly where
an uninterrupted one would be (with the same number of CPU threads: float sums depend on it).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import shutil
import time
import warnings
from pathlib import Path
from typing import ClassVar

import pyro
import torch
from pyro.infer import SVI
from torch import nn

from ._io import atomic_write
from .config import ConfigError, Sectioned, load_preset

CHECKPOINT = "checkpoint.pt"


def default_run_dir(*parts: str) -> Path:
    """runs/<time>-<parts joined by ->, in the current folder: a new run's folder when none is
    given."""
    return Path("runs") / "-".join([time.strftime("%Y%m%d-%H%M%S"), *parts])

# what a run writes beside its checkpoint, never over a user's own files
RUN_FILES = ("config.toml", "history.json", "history.csv", "report.html")
# what `dsae evaluate` writes that scores the run's whole model, and what reads q alone
EVALUATION_FILES = ("evaluation.json", "evaluation.md", "evaluation.png")
Q_FILES = ("cosine.png",)
FORMAT = 1


def set_aside(run_dir: Path, names, suffix: str) -> None:
    """Rename those of `names` that `run_dir` holds to <stem><suffix>.<ext>: scores of a model the
    run no longer holds are kept under the name of the checkpoint they scored, not lost, and
    report.html shows none until `dsae evaluate` runs again."""
    for name in names:
        if (run_dir / name).exists():
            stem, ext = name.split(".")
            os.replace(run_dir / name, run_dir / f"{stem}{suffix}.{ext}")


class TrainingError(RuntimeError):
    """Training cannot go on (NaN loss, mismatched checkpoint); the message says what to do."""


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device = 'cuda' but no CUDA device is available; use auto or cpu")
    return torch.device(name)


def rng_state() -> dict:
    """Python's, numpy's, torch's and (when present) every CUDA device's RNG state."""
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


def check_trained_by_store(*modules: nn.Module) -> None:
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


def load_checkpoint(path: str | os.PathLike, kind: str | None = None) -> dict:
    """Read a checkpoint (file or run folder) on any machine: GPU checkpoints load on a CPU-only
    one. With `kind` ("dsae", "betavae"), a checkpoint of the other model is refused."""
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
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise TrainingError(f"{path} is not a dsae_pyro checkpoint")
    missing = {"config", "model", "optim", "rng", "history"} - set(ckpt)
    if missing:
        raise TrainingError(f"{path} is an incomplete dsae_pyro checkpoint (no {sorted(missing)}); "
                            "train again into a new --out folder")
    saved = ckpt.get("kind", "dsae")  # DSAE checkpoints of version 0.1 carry no kind
    if kind and saved != kind:
        name = {"dsae": "DSAE", "betavae": "beta-VAE"}
        use = {"dsae": "the `dsae` commands (swap, evaluate, ...), not `dsae betavae`",
               "betavae": "`dsae betavae evaluate` or `dsae betavae traverse`"}[saved]
        raise TrainingError(f"{path} is a {name[saved]} checkpoint, not a {name[kind]} one; use "
                            f"it with {use}")
    return ckpt


def write_history(run_dir: Path, history: list[dict]) -> None:
    """history.json and history.csv, each written atomically; the CSV's columns are every key any
    row has (a run resumed by a newer version records more per row)."""
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


def run_config(preset: str | None = None, overrides: list[str] | tuple[str, ...] = (),
               out: str | os.PathLike | None = None, resume: bool = False,
               data_path: str | os.PathLike | None = None, kind: type[Sectioned] | None = None
               ) -> Sectioned:
    """The config a run trains with: the preset's, or when resuming the one saved in the
    checkpoint of `out` (a resumed run keeps its own settings), then `overrides` ("section.key=
    value") and the data path, stored resolved so that the run can be reopened from any folder.
    `preset` defaults to "cpu"; a resumed run refuses another. `kind` is the config class (default:
    the DSAE's `Config`; `BetaVAEConfig` for the beta-VAE)."""
    if kind is None:
        from .config import Config as kind
    if resume:
        if not out or not (Path(out) / CHECKPOINT).exists():
            raise ConfigError(f"--resume: no checkpoint in {out or 'the --out folder'}; pass the "
                              "--out folder of the run")
        cfg = kind.from_dict(load_checkpoint(out, kind.KIND)["config"])
        if preset and load_preset(preset, kind).preset != cfg.preset:
            raise ConfigError(f"--resume: the run in {out} was trained with preset {cfg.preset!r} "
                              f"and keeps it; drop --preset {preset} (change single options with "
                              "--set), or train into a new --out folder")
    else:
        cfg = load_preset(preset or "cpu", kind)
    cfg.override(list(overrides))
    if data_path:
        cfg.data.path = str(Path(data_path).resolve())
    return cfg


def _differences(saved: Sectioned, now: Sectioned, fields: tuple[str, ...],
                 free: tuple[str, ...]) -> list[str]:
    """"section.key: checkpoint a vs now b" for each field named by `fields` ("model" for a whole
    section, "train.objective" for one key) that differs, except those in `free`."""
    out = []
    for name in fields:
        section, _, key = name.partition(".")
        a, b = getattr(saved, section), getattr(now, section)
        for k in [key] if key else [f.name for f in dataclasses.fields(a)]:
            if f"{section}.{k}" not in free and getattr(a, k) != getattr(b, k):
                out.append(f"{section}.{k}: checkpoint {getattr(a, k)!r} vs now {getattr(b, k)!r}")
    return out


class Checkpointed:
    """What a run dataclass (fields cfg, svi, history and its counter) gets from the run layer:
    checkpoint state, save, restore, resume with checks, the config record, loading.

    A subclass names its config class (whose KIND names the checkpoints), its counter ("epoch" or
    "step") and the config field that bounds it, the fields a resumed run must keep (FIXED) and
    those of them that may change anyway (FREE), and lists its networks in `networks()`."""

    CONFIG: ClassVar[type[Sectioned]]
    COUNTER: ClassVar[str]
    TARGET: ClassVar[str]
    FIXED: ClassVar[tuple[str, ...]] = ("model",)
    FREE: ClassVar[tuple[str, ...]] = ()

    cfg: Sectioned
    svi: SVI
    history: list[dict]

    def networks(self) -> dict[str, nn.Module]:
        raise NotImplementedError

    @classmethod
    def optimiser_settings(cls, cfg) -> dict:
        """Adam's settings from the config: they replace the saved ones on resume, so that a
        run resumed with another learning rate uses it (torch would restore the saved one).
        Fused Adam: Pyro gives every parameter its own optimiser, where torch's default multi-tensor
        path degenerates into a dozen kernels per tensor; the fused kernel is one (1.14x -> 1.06x
        the hand-written step on 2 CPU cores, 9 ms less GPU time a paper-preset step: BENCHMARKS.md)."""
        return {"lr": cfg.train.lr, "fused": True}

    @property
    def count(self) -> int:
        return getattr(self, self.COUNTER)

    @property
    def target(self) -> int:
        return getattr(self.cfg.train, self.TARGET)

    # --- checkpoint state ----------------------------------------------------------------------
    def _owners(self) -> dict[str, str]:
        """Pyro's names of the networks -> their checkpoint keys: Pyro keys the optimiser state by
        each instance's unique name, which differs between sessions."""
        return {net.pyro_name: key for key, net in self.networks().items()}

    def state(self, data_id: str) -> dict:
        owners = self._owners()
        optim = {}
        for name, value in self.svi.optim.get_state().items():
            prefix, local = name.split("$$$", 1)
            optim[f"{owners[prefix]}/{local}"] = value
        return {"format": FORMAT, "kind": self.CONFIG.KIND, "config": self.cfg.to_dict(),
                self.COUNTER: self.count, "history": self.history, "data": data_id,
                **{key: net.state_dict() for key, net in self.networks().items()},
                "optim": optim, "rng": rng_state(), "threads": torch.get_num_threads()}

    def save(self, path: str | os.PathLike, data_id: str) -> None:
        """Write the checkpoint atomically: a crash mid-write keeps the previous one."""
        state = self.state(data_id)
        atomic_write(path, lambda fh: torch.save(state, fh))

    def restore(self, ckpt: dict) -> None:
        for key, net in self.networks().items():
            net.load_state_dict(ckpt[key])
        names = {v: k for k, v in self._owners().items()}
        settings = self.optimiser_settings(self.cfg)
        optim = {}
        for k, v in ckpt["optim"].items():
            owner, local = k.split("/", 1)
            optim[f"{names[owner]}$$${local}"] = {
                **v, "param_groups": [{**g, **settings} for g in v["param_groups"]]}
        self.svi.optim.set_state(optim)
        set_rng_state(ckpt["rng"])
        setattr(self, self.COUNTER, ckpt[self.COUNTER])
        self.history = list(ckpt["history"])

    # --- run folders ---------------------------------------------------------------------------
    def check_compatible(self, ckpt: dict, data_id: str) -> None:
        """Refuse to resume a checkpoint whose networks, fixed settings or data differ."""
        saved = self.CONFIG.from_dict(ckpt["config"])
        diffs = _differences(saved, self.cfg, self.FIXED, self.FREE)
        if diffs:
            raise TrainingError(f"the checkpoint was trained with other settings (preset "
                                f"{saved.preset!r}): {'; '.join(diffs)}. Resume with the same "
                                "preset and options, or train into a new --out folder")
        if ckpt["data"] != data_id:
            raise TrainingError(f"the checkpoint was trained on {ckpt['data']}, this run uses "
                                f"{data_id}; pass the same data or use a new --out folder")

    def open_folder(self, run_dir: Path, resume: bool, data_id: str, write: bool = True) -> None:
        """Start or continue the run in `run_dir`. A folder holding a checkpoint is only continued
        (resume=True), after the compatibility checks, and its history files are repaired from the
        checkpoint's (a kill between the two writes leaves them behind); a folder holding a run's
        files without a checkpoint is the user's, and refused. `write=False` (the other ranks
        under torchrun) reads without writing."""
        ckpt_path = run_dir / CHECKPOINT
        if ckpt_path.exists() and not resume:
            raise TrainingError(f"{run_dir} already holds a run; pass --resume to continue it or "
                                "choose another --out folder")
        taken = [p.name for p in map(run_dir.joinpath, RUN_FILES) if p.exists()]
        if taken and not ckpt_path.exists():
            raise TrainingError(f"{run_dir} holds {', '.join(taken)} but no checkpoint: a new run "
                                "would replace them. Choose a new --out folder, or move them away")
        if resume and ckpt_path.exists():
            ckpt = load_checkpoint(ckpt_path, self.CONFIG.KIND)
            self.check_compatible(ckpt, data_id)
            self.restore(ckpt)
            threads = ckpt.get("threads", torch.get_num_threads())
            if threads != torch.get_num_threads():
                warnings.warn(f"the run was trained with {threads} CPU threads and resumes with "
                              f"{torch.get_num_threads()}: it continues correctly, but not bit for "
                              "bit as an uninterrupted run would (float sums depend on the thread "
                              "count; torch.set_num_threads or OMP_NUM_THREADS sets it)",
                              stacklevel=3)
            if write and self.history:
                write_history(run_dir, self.history)
            if write and self.count < self.target:  # training moves q and the model on
                set_aside(run_dir, EVALUATION_FILES + Q_FILES, f"_{self.COUNTER[0]}{self.count}")
        if self.count > self.target:  # config.toml keeps saying what ran
            warnings.warn(f"{run_dir} already holds {self.count} {self.COUNTER}s, more than the "
                          f"{self.target} asked for; nothing to train", stacklevel=3)

    def record(self, run_dir: Path, data_id: str) -> None:
        """Checkpoint, history files and config.toml, each atomic (written together, so that a
        folder with a config always holds the checkpoint it describes). With train.keep = N, the
        checkpoints of the last N records before this one stay too (checkpoint_e<epoch>.pt or
        checkpoint_s<step>.pt)."""
        keep = self.cfg.train.keep
        latest = run_dir / CHECKPOINT
        if keep and latest.exists() and len(self.history) > 1:  # keep the previous one, numbered
            previous = self.history[-2][self.COUNTER]
            copy = run_dir / f"checkpoint_{self.COUNTER[0]}{previous}.pt"
            try:
                os.link(latest, copy)  # the latest stays in place until its successor replaces it
            except FileExistsError:
                pass
            except OSError:  # a filesystem without hard links
                shutil.copyfile(latest, copy)
            numbered = sorted(run_dir.glob(f"checkpoint_{self.COUNTER[0]}*.pt"),
                              key=lambda p: int(p.stem.split("_")[1][1:]))
            for old in numbered[:-keep]:
                old.unlink()
        self.save(latest, data_id)
        write_history(run_dir, self.history)
        atomic_write(run_dir / "config.toml", lambda fh: fh.write(self.cfg.to_toml().encode()))

    @classmethod
    def load(cls, path: str | os.PathLike, device: torch.device | None = None):
        """A run rebuilt from a checkpoint (file or run folder), networks in eval mode."""
        ckpt = load_checkpoint(path, cls.CONFIG.KIND)
        run = cls.create(cls.CONFIG.from_dict(ckpt["config"]), device or pick_device("auto"))
        run.restore(ckpt)
        for net in run.networks().values():
            net.eval()
        return run
