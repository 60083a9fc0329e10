"""dSprites (Matthey et al. 2017): every combination of 6 factors, drawn procedurally.

    color        1 value (white)
    shape        square, ellipse, heart                  (values 1, 2, 3)
    scale        linspace(0.5, 1, 6)
    orientation  linspace(0, 2 pi, 40)
    posX, posY   linspace(0, 1, 32)                      (posY fastest)

737,280 binary 64x64 images in the official index order, with `latents_values` and `latents_classes`
(N x 6, color first). The official npz cannot be fetched here, so the images are drawn: each of the
720 (shape, scale, orientation) sprites is rasterised once at pixel centres on a 32x32 patch, then
pasted at the 32 x 32 positions (one pixel apart, sprite centre 16..47). The factor grid and order
match the official file; the exact pixels do not. Users with the official file load it with
`load_dsprites_npz`. Images are held bit-packed (377 MB instead of 3 GB) and unpacked per batch.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .._io import atomic_write, cache_dir, open_npz
from ..clips import DataError

FACTORS = ("color", "shape", "scale", "orientation", "posX", "posY")
SIZES = (1, 3, 6, 40, 32, 32)
SHAPES = ("square", "ellipse", "heart")
N_IMAGES = math.prod(SIZES)  # 737,280
SIDE, PATCH = 64, 32
HALF_WIDTH = 10.0  # half the side of a square at scale 1, in pixels: fits the patch at any angle


def factor_values() -> list[np.ndarray]:
    """The values of each factor, as in the official `metadata['latents_possible_values']`."""
    return [np.array([1.0]), np.array([1.0, 2.0, 3.0]), np.linspace(0.5, 1, 6),
            np.linspace(0, 2 * np.pi, 40), np.linspace(0, 1, 32), np.linspace(0, 1, 32)]


def latents_classes() -> np.ndarray:
    """(N, 6) int64 class of every factor, in index order (the last factor fastest)."""
    grids = np.meshgrid(*[np.arange(s) for s in SIZES], indexing="ij")
    return np.stack([g.ravel() for g in grids], axis=1).astype(np.int64)


def latents_values(classes: np.ndarray) -> np.ndarray:
    return np.stack([v[classes[:, i]] for i, v in enumerate(factor_values())], axis=1)


def index_of(classes: np.ndarray) -> np.ndarray:
    """Image index of rows of factor classes (the inverse of `latents_classes`)."""
    return np.ravel_multi_index(tuple(np.asarray(classes).T), SIZES)


def sprite_masks() -> np.ndarray:
    """(3, 6, 40, PATCH, PATCH) bool: each (shape, scale, orientation) centred on the patch."""
    c = np.arange(PATCH) + 0.5 - PATCH / 2  # pixel centres, sprite centre at 0
    y, x = np.meshgrid(c, c, indexing="ij")
    scales = factor_values()[2][:, None, None, None]
    angles = factor_values()[3][None, :, None, None]
    # rotate the pixel grid by -angle (the sprite by +angle), in units of the sprite's half-width
    r = HALF_WIDTH * scales
    u = (np.cos(angles) * x + np.sin(angles) * y) / r
    v = (-np.sin(angles) * x + np.cos(angles) * y) / r
    square = np.maximum(np.abs(u), np.abs(v)) <= 1
    ellipse = u**2 + (v / 0.5) ** 2 <= 1
    hu, hv = 1.15 * u, -1.15 * v - 0.2  # heart curve (x^2 + y^2 - 1)^3 <= x^2 y^3, point down
    heart = (hu**2 + hv**2 - 1) ** 3 - hu**2 * hv**3 <= 0
    return np.stack([square, ellipse, heart])


def render_packed() -> np.ndarray:
    """All images bit-packed along rows: (N, 64, 8) uint8, in index order."""
    masks = sprite_masks().reshape(-1, PATCH, PATCH)  # (720, P, P), (shape, scale, orient) order
    out = np.zeros((len(masks), 32, 32, SIDE, SIDE // 8), np.uint8)
    canvas = np.zeros((32, SIDE, SIDE), np.uint8)  # one posX column of images at a time
    for i, m in enumerate(masks):
        for px in range(32):
            canvas[:] = 0
            for py in range(32):  # pixel offset = position class: centre at 16 + class
                canvas[py, py:py + PATCH, px:px + PATCH] = m
            out[i, px] = np.packbits(canvas, axis=-1)
    return out.reshape(N_IMAGES, SIDE, SIDE // 8)


@dataclass
class DSprites:
    """dSprites held bit-packed: `images(index)` returns float tensors (n, 1, 64, 64) in {0, 1}."""

    packed: np.ndarray  # (N, 64, 8) uint8
    classes: np.ndarray  # (N, 6) int64
    values: np.ndarray  # (N, 6) float64

    def __len__(self) -> int:
        return len(self.packed)

    def images(self, index, device="cpu") -> torch.Tensor:
        bits = np.unpackbits(self.packed[np.asarray(index)], axis=-1)
        return torch.from_numpy(bits).to(device=device, dtype=torch.float32).unsqueeze(1)

    @property
    def factors(self) -> np.ndarray:
        """(N, 5) classes of the factors that vary (color is constant), as metrics use them."""
        return self.classes[:, 1:]


def make_dsprites() -> DSprites:
    classes = latents_classes()
    return DSprites(render_packed(), classes, latents_values(classes))


def load_dsprites_npz(path: str | Path) -> DSprites:
    """The official `dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz` (keys imgs, latents_values,
    latents_classes), or a file written by `save_dsprites`."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"no dSprites file at {path}; build one with `dsae data dsprites --out "
                        f"{path}` or pass the official npz")
    with open_npz(path, f"dsae data dsprites --out {path}") as z:
        missing = {"latents_classes", "latents_values"} - set(z.files)
        if missing or not ({"imgs", "packed"} & set(z.files)):
            raise DataError(f"{path} lacks dSprites keys {sorted(missing) or ['imgs']}; "
                            f"found {z.files}")
        packed = z["packed"] if "packed" in z.files else np.packbits(z["imgs"], axis=-1)
        data = DSprites(packed, z["latents_classes"].astype(np.int64), z["latents_values"])
    if data.packed.shape[1:] != (SIDE, SIDE // 8) or data.classes.shape[1] != len(FACTORS):
        raise DataError(f"{path}: images {data.packed.shape} / classes {data.classes.shape} are not "
                        "dSprites' (N, 64, 64) / (N, 6)")
    return data


def save_dsprites(path: str | Path, data: DSprites) -> None:
    """Write `data` as an npz that `load_dsprites_npz` reads, atomically."""
    atomic_write(path, lambda fh: np.savez(fh, packed=data.packed, latents_classes=data.classes,
                                           latents_values=data.values), suffix=".npz")


def load_dsprites(path: str | Path = "", progress: bool = True) -> DSprites:
    """dSprites from `path` (official or our npz), else drawn once and cached."""
    if path:
        return load_dsprites_npz(path)
    cached = cache_dir() / "dsprites-v1.npz"
    if cached.is_file():
        return load_dsprites_npz(cached)
    start = time.perf_counter()
    data = make_dsprites()
    save_dsprites(cached, data)
    if progress:
        print(f"drew dSprites ({len(data)} images) in {time.perf_counter() - start:.0f}s; "
              f"cached at {cached}")
    return data
