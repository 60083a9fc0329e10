"""The real Sprites data of Li & Mandt, built from the LPC sprite sheets by their recipe.

Recipe: for each character (body, bottom, top, hair) composite, on an opaque black canvas, the sheets
body, bottomwear, topwear, hair and shoes/1.png with Pillow's `Image.alpha_composite`; cut 64x64 cells
of the rows and columns below. Sheets come from a local folder or are downloaded from a base URL, each
checked against its SHA-256. The built arrays are cached as an .npz keyed by the sheets' checksums.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import urllib.request
from pathlib import Path

import numpy as np
from PIL import Image

from .._io import atomic_write
from ..clips import SIZE
from .labels import (
    ACTIONS,
    DIRECTIONS,
    N_FRAMES,
    N_VALUES,
    Split,
    character_index,
    motion_label,
    split_characters,
)

DEFAULT_BASE_URL = "https://raw.githubusercontent.com/YingzhenLi/Sprites/master/"
LAYERS = ("body", "bottomwear", "topwear", "hair")
SHOES = "shoes/1.png"
SHEET_SIZE = (832, 1344)  # 13 columns x 21 rows of 64x64 cells
# First row of each action's group of four (back, left, front, right); offsets of our directions.
ACTION_ROW = {"walk": 8, "spellcast": 0, "slash": 12}
DIRECTION_OFFSET = {"front": 2, "left": 1, "right": 3}
FRAME_COLUMNS = {"walk": [8, 1, 2, 3, 4, 5, 6, 7], "spellcast": [0, 1, 2, 3, 4, 5, 4, 6],
                 "slash": [0, 1, 2, 3, 4, 5, 4, 0]}


class SheetError(RuntimeError):
    """A sprite sheet is missing, has the wrong size, or fails its checksum."""


def sheet_files() -> list[str]:
    """Relative paths of the 25 sheets the dataset uses."""
    return [f"{layer}/{i}.png" for layer in LAYERS for i in range(N_VALUES)] + [SHOES]


def expected_sha256() -> dict[str, str]:
    """SHA-256 of each sheet of YingzhenLi/Sprites (commit 3ce4048), shipped with the package."""
    table = {}
    for line in (Path(__file__).parent / "sprites_sha256.txt").read_text().splitlines():
        if line.strip():
            digest, name = line.split()
            table[name.removeprefix("./")] = digest
    return table


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def download_sheets(dest: str | os.PathLike, base_url: str = DEFAULT_BASE_URL,
                    timeout: float = 60.0) -> Path:
    """Fetch the sheets into `dest` (skipping ones already there and correct) and verify them."""
    dest = Path(dest)
    sums = expected_sha256()
    for name in sheet_files():
        target = dest / name
        if target.is_file() and _sha256(target) == sums[name]:
            continue
        url = base_url.rstrip("/") + "/" + name
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp:
                atomic_write(target, lambda fh, resp=resp: shutil.copyfileobj(resp, fh))
        except OSError as e:
            raise SheetError(f"could not download {url}: {e}. Check the network or pass "
                             "--sheets DIR with a local copy of the sheets") from e
    verify_sheets(dest)
    return dest


def verify_sheets(folder: str | os.PathLike) -> None:
    """Check that every sheet is present, 832x1344 RGBA and matches its SHA-256."""
    folder = Path(folder)
    sums = expected_sha256()
    for name in sheet_files():
        path = folder / name
        if not path.is_file():
            raise SheetError(f"missing sprite sheet {path}; the folder needs body/, bottomwear/, "
                             "topwear/, hair/ (0-5.png each) and shoes/1.png "
                             "(or use the download option)")
        with Image.open(path) as im:
            if im.size != SHEET_SIZE:
                raise SheetError(f"sprite sheet {path} is {im.size[0]}x{im.size[1]}, expected "
                                 f"{SHEET_SIZE[0]}x{SHEET_SIZE[1]} (13x21 cells of 64x64)")
        digest = _sha256(path)
        if digest != sums[name]:
            raise SheetError(f"checksum mismatch for {path}: got {digest[:16]}..., expected "
                             f"{sums[name][:16]}...; the file is corrupt or not the original "
                             "sheet. Delete it and download again.")


def _load(folder: Path, name: str) -> Image.Image:
    with Image.open(folder / name) as im:
        return im.convert("RGBA")


def _cells(sheet: np.ndarray) -> np.ndarray:
    """(9 motions, T, 64, 64, 3) cells of one composited sheet, motion = 3*action + direction."""
    out = np.empty((9, N_FRAMES, SIZE, SIZE, 3), np.uint8)
    for a, action in enumerate(ACTIONS):
        for d, direction in enumerate(DIRECTIONS):
            row = ACTION_ROW[action] + DIRECTION_OFFSET[direction]
            for t, col in enumerate(FRAME_COLUMNS[action]):
                out[motion_label(a, d), t] = sheet[row * SIZE:(row + 1) * SIZE,
                                          col * SIZE:(col + 1) * SIZE, :3]
    return out


def build_sprites(folder: str | os.PathLike, characters=None, progress: bool = False
                  ) -> dict[str, Split]:
    """Build the dataset from a folder of sheets; `characters` limits it to some indices (tests).

    Clips are ordered by character (train or test order of the split), then motion 0..8.
    """
    folder = Path(folder)
    verify_sheets(folder)
    sheets = {name: _load(folder, name) for name in sheet_files()}
    train_chars, test_chars = split_characters(423)
    wanted = set(range(6**4) if characters is None else np.asarray(characters).tolist())
    black = Image.new("RGBA", SHEET_SIZE, (0, 0, 0, 255))
    clips: dict[int, np.ndarray] = {}
    # Composite in nested order so shared prefixes (body, body+bottom, ...) are done once; the
    # sequence of alpha_composite calls per character is exactly the recipe's.
    bar = _progress(len(wanted), progress)
    for b in range(N_VALUES):
        im_b = Image.alpha_composite(black, sheets[f"body/{b}.png"])
        for lo in range(N_VALUES):
            im_lo = Image.alpha_composite(im_b, sheets[f"bottomwear/{lo}.png"])
            for tp in range(N_VALUES):
                im_t = Image.alpha_composite(im_lo, sheets[f"topwear/{tp}.png"])
                for hr in range(N_VALUES):
                    c = int(character_index([b, lo, tp, hr]))
                    if c not in wanted:
                        continue
                    im = Image.alpha_composite(im_t, sheets[f"hair/{hr}.png"])
                    im = Image.alpha_composite(im, sheets[SHOES])
                    clips[c] = _cells(np.asarray(im))
                    bar.update(1)
    bar.close()
    out = {}
    for name, chars in (("train", train_chars), ("test", test_chars)):
        chars = np.array([c for c in chars if c in wanted], np.int64)
        x = (np.stack([clips[c] for c in chars]).reshape(-1, N_FRAMES, SIZE, SIZE, 3)
             if len(chars) else np.zeros((0, N_FRAMES, SIZE, SIZE, 3), np.uint8))
        char = np.repeat(chars, 9)
        attrs = np.stack(np.unravel_index(char, (6, 6, 6, 6)), axis=1).astype(np.int64)
        out[name] = Split(x=x, attributes=attrs, motion=np.tile(np.arange(9), len(chars)),
                          character=char)
    return out


def _progress(total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc="compositing characters", unit="char", disable=not enabled)


def load_npy_layout(folder: str | os.PathLike) -> dict[str, Split]:
    """Read the original npy layout of Li & Mandt's script, as used by later papers' loaders.

    One pair of files per motion and split: `{action}_{direction}_frames_{split}.npy` (N, 8, 64, 64,
    3; uint8, or float32 = uint8/256) and `{action}_{direction}_attributes_{split}.npy` (one-hot,
    (N, 8, 4, 6) or (N, 4, 6)).
    """
    folder = Path(folder)
    out = {}
    for split in ("train", "test"):
        xs, attrs, motions = [], [], []
        for a, action in enumerate(ACTIONS):
            for d, direction in enumerate(DIRECTIONS):
                stem = folder / f"{action}_{direction}"
                frames_path = Path(f"{stem}_frames_{split}.npy")
                attr_path = Path(f"{stem}_attributes_{split}.npy")
                for path in (frames_path, attr_path):
                    if not path.is_file():
                        raise SheetError(f"missing {path}; the npy layout has "
                                         "{action}_{direction}_frames_{split}.npy and "
                                         "{action}_{direction}_attributes_{split}.npy per motion")
                frames = np.load(frames_path)
                if frames.ndim != 5 or frames.shape[1:] != (N_FRAMES, SIZE, SIZE, 3):
                    raise SheetError(f"{frames_path} has shape {frames.shape}, expected "
                                     f"(N, {N_FRAMES}, {SIZE}, {SIZE}, 3)")
                if frames.dtype != np.uint8:
                    frames = np.clip(np.round(frames * 256), 0, 255).astype(np.uint8)
                onehot = np.load(attr_path)
                onehot = onehot[:, 0] if onehot.ndim == 4 else onehot
                xs.append(frames)
                attrs.append(onehot.argmax(-1).astype(np.int64))
                motions.append(np.full(len(frames), motion_label(a, d)))
        attributes = np.concatenate(attrs)
        out[split] = Split(x=np.concatenate(xs), attributes=attributes,
                           motion=np.concatenate(motions), character=character_index(attributes))
    return out
