"""The Sprites label structure, shared by the real and the synthetic data."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

N_FRAMES, N_VALUES = 8, 6
N_CHARACTERS = N_VALUES**4  # 1296
ATTRIBUTES = ("body", "bottom", "top", "hair")
ACTIONS = ("walk", "spellcast", "slash")
DIRECTIONS = ("front", "left", "right")
N_TRAIN_CHARACTERS = 1000


def character_index(attributes) -> np.ndarray:
    """c = body*216 + bottom*36 + top*6 + hair for rows of (body, bottom, top, hair)."""
    a = np.asarray(attributes, np.int64)
    return ((a[..., 0] * N_VALUES + a[..., 1]) * N_VALUES + a[..., 2]) * N_VALUES + a[..., 3]


def motion_label(action, direction):
    """Motion class 0..8 = 3*action + direction (actions walk/spellcast/slash; front/left/right)."""
    return 3 * np.asarray(action) + np.asarray(direction)


def split_characters(seed: int = 423) -> tuple[np.ndarray, np.ndarray]:
    """Li & Mandt's split: RandomState(423).permutation(1296), the first 1000 train."""
    perm = np.random.RandomState(seed).permutation(N_CHARACTERS)
    return perm[:N_TRAIN_CHARACTERS], perm[N_TRAIN_CHARACTERS:]


@dataclass
class Split:
    """One split of a Sprites-like dataset, stored compactly as the original pixels.

    x: (N, T, H, W, C) uint8, channel-last; attributes: (N, 4); motion: (N,); character: (N,).
    `labelled` is False for clips that came without labels (their label arrays are zeros).
    """

    x: np.ndarray
    attributes: np.ndarray
    motion: np.ndarray
    character: np.ndarray
    labelled: bool = True

    def __len__(self) -> int:
        return len(self.x)

    def subset(self, index) -> Split:
        return Split(self.x[index], self.attributes[index], self.motion[index],
                     self.character[index], self.labelled)
