"""Datasets of clips: load, validate, cache, and turn into float tensors.

Inside the library a batch of clips is float32 in [0, 1] with shape (B, T, C, H, W) (Sprites: T=8,
C=3, H=W=64). On disk and in memory a split keeps the original uint8 pixels, channel-last
(N, T, H, W, C), which is 4x smaller. Each split's `Schema` says what its labels mean.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import numpy as np

from .._io import atomic_write, cache_dir, file_digest, open_npz
from ..clips import DataError, check_batch, check_clips, to_tensor
from .digits import VERSION as DIGITS_VERSION
from .digits import make_moving_digits
from .labels import ACTIONS, ATTRIBUTES, DIRECTIONS, SPRITES, Schema, Split
from .sprites import (
    DEFAULT_BASE_URL,
    SheetError,
    build_sprites,
    download_sheets,
    expected_sha256,
    load_npy_layout,
)
from .synthetic import VERSION as SYNTHETIC_VERSION
from .synthetic import make_synthetic

__all__ = ["ACTIONS", "ATTRIBUTES", "DIRECTIONS", "DataError", "SPRITES", "Schema", "Split",
           "SheetError",
           "check_batch", "check_clips", "load_dataset", "load_npz", "save_npz", "to_tensor", "cache_dir"]


def check_split(split: Split, name: str) -> Split:
    check_clips(split.x, f"{name}.x")
    n, schema = len(split.x), split.schema
    for field, value, shape in (("attributes", split.attributes, (n, len(schema.attributes))),
                                ("motion", split.motion, (n,)),
                                ("character", split.character, (n,))):
        if tuple(np.shape(value)) != shape:
            raise DataError(f"{name}.{field} has shape {np.shape(value)}, expected {shape}")
    for label, values, top in (("motion labels", split.motion, schema.motions),
                               *((a, split.attributes[:, j], k)
                                 for j, (a, k) in enumerate(schema.attributes))):
        if n and (values.min() < 0 or values.max() >= top):
            raise DataError(f"{name}: {label} must be 0..{top - 1}, found {values.min()}.."
                            f"{values.max()}")
    return split


def save_npz(path: str | os.PathLike, data: dict[str, Split]) -> None:
    """Write x_train/x_test (uint8, (N, T, H, W, C)), their labels and the labels' schema,
    atomically."""
    arrays = {"schema": np.array(next(iter(data.values())).schema.to_json())}
    for split, s in data.items():
        arrays.update({f"x_{split}": s.x, f"attributes_{split}": s.attributes,
                       f"motion_{split}": s.motion, f"character_{split}": s.character})
    atomic_write(path, lambda fh: np.savez(fh, **arrays), suffix=".npz")


def load_npz(path: str | os.PathLike) -> dict[str, Split]:
    """Read a file written by `save_npz` / `dsae data ...` (labels optional except x)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"no dataset file {path}; build one with `dsae data sprites --out FILE` "
                        "or `dsae data synthetic --out FILE`")
    with open_npz(path) as z:
        schema = Schema.from_json(str(z["schema"])) if "schema" in z else SPRITES
        out = {}
        for split in ("train", "test"):
            if f"x_{split}" not in z:
                raise DataError(f"{path} has no array x_{split} (found {sorted(z.files)})")
            x = z[f"x_{split}"]
            check_clips(x, f"{path.name}:x_{split}")
            n = len(x)
            attrs = z.get(f"attributes_{split}", np.zeros((n, len(schema.attributes)), np.int64))
            out[split] = check_split(Split(
                x=x if x.dtype == np.uint8 else _to_uint8(x), attributes=attrs,
                motion=z.get(f"motion_{split}", np.zeros(n, np.int64)),
                character=z.get(f"character_{split}", _characters(schema, attrs)),
                labelled=f"attributes_{split}" in z or f"motion_{split}" in z, schema=schema),
                f"{path.name}:{split}")
    return out


def _characters(schema: Schema, attributes: np.ndarray) -> np.ndarray:
    """The schema's character index of each row, or zeros where the rows do not fit the schema
    (check_split then names the mismatch)."""
    if np.ndim(attributes) != 2 or np.shape(attributes)[1] != len(schema.attributes):
        return np.zeros(len(attributes), np.int64)
    return schema.character(np.clip(attributes, 0, [n - 1 for _, n in schema.attributes]))


def _to_uint8(x: np.ndarray) -> np.ndarray:
    """float (N, T, 3, H, W) in [0, 1] -> uint8 channel-last."""
    return np.round(np.moveaxis(x, 2, -1) * 255).astype(np.uint8)


def _sprites_cache_file() -> Path:
    key = hashlib.sha256("".join(sorted(expected_sha256().values())).encode()).hexdigest()[:12]
    return cache_dir() / f"sprites-{key}.npz"


def load_sprites(sheets: str = "", base_url: str = DEFAULT_BASE_URL,
                 progress: bool = True) -> dict[str, Split]:
    """Real Sprites, built once from `sheets` (or downloaded sheets) and cached."""
    cached = _sprites_cache_file()
    if cached.is_file():
        return load_npz(cached)
    folder = Path(sheets) if sheets else download_sheets(cache_dir() / "sprites-lpc", base_url)
    data = build_sprites(folder, progress=progress)
    save_npz(cached, data)
    return data


def load_dataset(name: str = "synthetic", path: str = "", seed: int = 423,
                 progress: bool = True) -> dict[str, Split]:
    """{'train': Split, 'test': Split} for `synthetic`, `sprites` (path: sheets), `digits` (path:
    optional MNIST folder) or `npz` (path)."""
    if name == "synthetic":
        return make_synthetic(seed)
    if name == "digits":
        return make_moving_digits(seed, mnist=path or None)
    if name == "sprites":
        return load_sprites(path, progress=progress)
    if name == "npz":
        if not path:
            raise DataError("data.name = 'npz' needs data.path, e.g. --data-path my_clips.npz")
        return load_npz(path)
    raise DataError(f"unknown dataset {name!r}; choose synthetic, sprites, digits or npz")


def data_identity(name: str, path: str | os.PathLike = "", seed: int = 423) -> str:
    """A short string naming the data a model or judge was trained on, stored with it and checked
    on resume and before scoring: the synthetic set's version and seed, real Sprites, or for a file
    (npz clips, dSprites) the SHA-256 of its content, so that other data under the same name is
    refused."""
    if name == "synthetic":
        return f"synthetic-v{SYNTHETIC_VERSION}(seed={seed})"  # v1 judges/runs are refused
    if name == "sprites":
        return "sprites(lpc)"
    if name == "digits":
        return f"digits-v{DIGITS_VERSION}({'mnist' if path else 'fonts'}, seed={seed})"
    if not path:
        return f"{name}(drawn-v1)"  # dSprites drawn by the package
    if not Path(path).is_file():  # clips handed over in memory: only the name is known
        return f"{name}({Path(path).name})"
    return f"{name}(sha256:{file_digest(path)[:16]})"


BUILDS = ("synthetic", "sprites", "sprites-npy", "digits", "dsprites")  # what build_dataset_file writes


def build_dataset_file(which: str, out: str | os.PathLike, sheets: str | None = None,
                       download: bool = False, base_url: str | None = None, seed: int = 423,
                       mnist: str | None = None) -> str:
    """`dsae data WHICH --out FILE`: build a dataset into an npz; returns a one-line summary.
    synthetic (drawn, `seed`), sprites (from the LPC `sheets`, or downloaded first), sprites-npy
    (the original per-action npy files in `sheets`), digits (drawn, `seed`; glyphs from fonts or
    from the `mnist` folder) or dsprites."""
    start = time.perf_counter()
    if which == "dsprites":
        from .dsprites import make_dsprites, save_dsprites

        data = make_dsprites()
        save_dsprites(out, data)
        return f"wrote {out}: {len(data)} images in {time.perf_counter() - start:.0f}s"
    if which == "synthetic":
        data = make_synthetic(seed)
    elif which == "digits":
        data = make_moving_digits(seed, mnist=mnist)
    elif which == "sprites-npy":
        if not sheets:
            raise DataError("sprites-npy needs --sheets DIR holding the original npy files")
        data = load_npy_layout(sheets)
    elif which == "sprites":
        if download:
            sheets = download_sheets(sheets or Path(out).with_suffix("") / "sheets",
                                     base_url or DEFAULT_BASE_URL)
        elif not sheets:
            raise DataError("sprites needs --sheets DIR (a folder of LPC sheets) or --download")
        data = build_sprites(sheets, progress=True)
    else:
        raise DataError(f"unknown dataset {which!r}; choose one of {list(BUILDS)}")
    save_npz(out, data)
    return (f"wrote {out}: {len(data['train'])} train / {len(data['test'])} test clips in "
            f"{time.perf_counter() - start:.0f}s")
