"""Moving digits: grayscale clips of one digit gliding across the frame, in the spirit of Moving MNIST
(Srivastava, Mansimov & Salakhutdinov, ICML 2015), drawn by the package.

The digit is what stays (static attributes: which digit, and the font it is drawn in); where it is
and where it goes is what changes (the motion class: left/still/right times up/still/down, 9
classes, at a fixed speed, from a random start that keeps the digit inside the frame for the whole
clip). A DSAE should put the digit in f and the motion in z_1:T.

The glyphs come from the fonts matplotlib ships (no download), or from MNIST's handwritten digits
when torchvision's MNIST files are at hand (`mnist=` a folder torchvision can read without
downloading); then the only static attribute is the digit.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..clips import DataError
from .labels import Schema, Split

# Part of the data's identity: bump when a change alters the pixels.
VERSION = 1

SIZE, FRAMES, GLYPH, SPEED = 32, 8, 14, 2  # frame side, clip length, glyph box, pixels per frame
FONTS = {"sans-bold": "DejaVuSans-Bold.ttf", "serif-italic": "DejaVuSerif-Italic.ttf",
         "typewriter": "cmtt10.ttf"}
PARTS = (("horizontal", ("left", "still", "right")), ("vertical", ("up", "still", "down")))
SCHEMA = Schema(parts=PARTS, attributes=(("digit", 10), ("font", len(FONTS))))
MNIST_SCHEMA = Schema(parts=PARTS, attributes=(("digit", 10),))


def font_glyphs(size: int = GLYPH, supersample: int = 4) -> np.ndarray:
    """(fonts, 10, size, size) float glyphs in [0, 1]: each digit of each font fitted into the box
    (aspect kept, centred), anti-aliased by averaging a supersampled inside-the-outline test."""
    import matplotlib
    from matplotlib.font_manager import FontProperties
    from matplotlib.textpath import TextPath

    folder = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    n = size * supersample
    yy, xx = np.mgrid[0:n, 0:n] + 0.5
    out = np.zeros((len(FONTS), 10, size, size), np.float32)
    for i, file in enumerate(FONTS.values()):
        prop = FontProperties(fname=str(folder / file))
        for d in range(10):
            path = TextPath((0, 0), str(d), size=100, prop=prop)
            lo, hi = path.vertices.min(0), path.vertices.max(0)
            scale = (n - 2 * supersample) / (hi - lo).max()
            centre = (lo + hi) / 2
            # pixel (row, col) -> glyph coordinates (y up in the font, down in the image)
            pts = np.stack([(xx - n / 2) / scale + centre[0], (n / 2 - yy) / scale + centre[1]], -1)
            inside = path.contains_points(pts.reshape(-1, 2)).reshape(n, n)
            out[i, d] = inside.reshape(size, supersample, size, supersample).mean((1, 3))
    return out


def mnist_glyphs(root: str | os.PathLike, train: bool, size: int = GLYPH):
    """MNIST digits from torchvision's files under `root` (never downloaded here), cropped to their
    ink and resized into the glyph box: (N, size, size) floats in [0, 1] and their digit labels."""
    import torch.nn.functional as F
    from torchvision.datasets import MNIST

    try:
        ds = MNIST(str(root), train=train, download=False)
    except RuntimeError as e:
        raise DataError(f"no MNIST under {root}: torchvision finds no MNIST/raw files there. Give "
                        "the folder that holds MNIST/raw (--mnist for `dsae data digits`, "
                        "--data-path for `dsae train --data digits`; torchvision.datasets.MNIST(DIR, "
                        "download=True) fetches it), or leave it out for the built-in font digits"
                        ) from e
    x = ds.data.float()[:, None] / 255  # (N, 1, 28, 28); MNIST's digits sit in a 20x20 box
    glyphs = F.interpolate(x[..., 4:24, 4:24], size=(size, size), mode="area")[:, 0]
    return glyphs.clamp(0, 1).numpy(), ds.targets.numpy().astype(np.int64)


def draw_clips(glyphs: np.ndarray, motion: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(N, FRAMES, SIZE, SIZE, 1) uint8: glyph n moving with velocity SPEED * (dx, dy) of its
    motion class, from a random start that keeps it inside the frame."""
    n, g = len(glyphs), glyphs.shape[-1]
    dx, dy = np.unravel_index(motion, (3, 3))
    velocity = SPEED * (np.stack([dy, dx], 1) - 1)  # (row, col) per frame
    travel = velocity * (FRAMES - 1)
    room = SIZE - g - np.abs(travel)
    start = (rng.random((n, 2)) * (room + 1)).astype(np.int64) + np.maximum(0, -travel)
    clips = np.zeros((n, FRAMES, SIZE, SIZE), np.float32)
    clip, span = np.arange(n)[:, None, None], np.arange(g)
    for t in range(FRAMES):
        r0, c0 = (start + t * velocity).T
        clips[clip, t, (r0[:, None] + span)[:, :, None], (c0[:, None] + span)[:, None, :]] = glyphs
    return np.round(clips * 255).astype(np.uint8)[..., None]


def make_moving_digits(seed: int = 0, n_train: int = 6000, n_test: int = 1200,
                       mnist: str | os.PathLike | None = None) -> dict[str, Split]:
    """{'train', 'test'} clips of moving digits. Font digits by default: digit, font, motion and
    start drawn uniformly from `seed` (at the default sizes every (digit, font) pair appears in
    both splits); with `mnist`, MNIST's training digits for the train split and its test digits
    for the test split (each image used at most once)."""
    rng = np.random.default_rng(seed)
    fonts = None if mnist else font_glyphs()
    out = {}
    for name, n in (("train", n_train), ("test", n_test)):
        if mnist:
            pool, digit = mnist_glyphs(mnist, train=name == "train")
            pick = rng.permutation(len(pool))[:n]
            glyphs, attributes, schema = pool[pick], digit[pick, None], MNIST_SCHEMA
        else:
            attributes = np.stack([rng.integers(0, 10, n), rng.integers(0, len(FONTS), n)], 1)
            glyphs, schema = fonts[attributes[:, 1], attributes[:, 0]], SCHEMA
        motion = rng.integers(0, 9, len(glyphs))
        out[name] = Split(x=draw_clips(glyphs, motion, rng), attributes=attributes, motion=motion,
                          character=schema.character(attributes), schema=schema)
    return out
