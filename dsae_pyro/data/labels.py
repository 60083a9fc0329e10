"""What a dataset's labels mean (`Schema`), the Sprites schema shared by the real and the synthetic
data, and `Split`, one split of labelled clips."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import numpy as np

N_FRAMES, N_VALUES = 8, 6
N_CHARACTERS = N_VALUES**4  # 1296
ATTRIBUTES = ("body", "bottom", "top", "hair")
ACTIONS = ("walk", "spellcast", "slash")
DIRECTIONS = ("front", "left", "right")
N_TRAIN_CHARACTERS = 1000


def motion_label(action, direction):
    """Motion class 0..8 = 3*action + direction (actions walk/spellcast/slash; front/left/right)."""
    return 3 * np.asarray(action) + np.asarray(direction)


def split_characters(seed: int = 423) -> tuple[np.ndarray, np.ndarray]:
    """Li & Mandt's split: RandomState(423).permutation(1296), the first 1000 train."""
    perm = np.random.RandomState(seed).permutation(N_CHARACTERS)
    return perm[:N_TRAIN_CHARACTERS], perm[N_TRAIN_CHARACTERS:]


@dataclass(frozen=True)
class Schema:
    """The labels of a dataset of clips: a motion class per clip, the product of its `parts` (each a
    name and the names of its values, the last part fastest), and static `attributes` (each a name
    and its number of values). A character is one combination of attribute values.

    The judge gets a head per attribute and one for motion; the protocol reports the accuracy of
    the motion and of each of its parts."""

    parts: tuple[tuple[str, tuple[str, ...]], ...]
    attributes: tuple[tuple[str, int], ...]

    @property
    def attribute_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.attributes)

    @property
    def motions(self) -> int:
        return math.prod(len(values) for _, values in self.parts)

    @property
    def heads(self) -> dict[str, int]:
        """Classes per judge head: motion, then each attribute."""
        return {"motion": self.motions, **dict(self.attributes)}

    def part_labels(self, motion) -> dict[str, np.ndarray]:
        """Each part's value index of the motion classes `motion`."""
        index = np.unravel_index(np.asarray(motion), [len(v) for _, v in self.parts])
        return {name: i for (name, _), i in zip(self.parts, index, strict=True)}

    def motion_name(self, m: int) -> str:
        return "-".join(values[int(i)] for (_, values), i in
                        zip(self.parts, self.part_labels(m).values(), strict=True))

    def character(self, attributes) -> np.ndarray:
        """Index of each row's combination of attribute values (the first attribute slowest)."""
        a = np.asarray(attributes, np.int64)
        return np.ravel_multi_index(tuple(np.moveaxis(a, -1, 0)), [n for _, n in self.attributes])

    def to_json(self) -> str:
        return json.dumps({"parts": self.parts, "attributes": self.attributes})

    @classmethod
    def from_json(cls, text: str) -> Schema:
        try:
            d = json.loads(text)
            return cls(tuple((str(name), tuple(map(str, values))) for name, values in d["parts"]),
                       tuple((str(name), int(n)) for name, n in d["attributes"]))
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"not a label schema: {text[:80]!r}") from e


SPRITES = Schema(parts=(("action", ACTIONS), ("direction", DIRECTIONS)),
                 attributes=tuple((a, N_VALUES) for a in ATTRIBUTES))


def character_index(attributes) -> np.ndarray:
    """c = body*216 + bottom*36 + top*6 + hair for rows of (body, bottom, top, hair)."""
    return SPRITES.character(attributes)


@dataclass
class Split:
    """One split of a Sprites-like dataset, stored compactly as the original pixels.

    x: (N, T, H, W, C) uint8, channel-last; attributes: (N, A); motion: (N,); character: (N,),
    as `schema` describes them (Sprites' by default: A = 4). `labelled` is False for clips that came
    without labels (their label arrays are zeros).
    """

    x: np.ndarray
    attributes: np.ndarray
    motion: np.ndarray
    character: np.ndarray
    labelled: bool = True
    schema: Schema = field(default=SPRITES)

    def __len__(self) -> int:
        return len(self.x)

    def subset(self, index) -> Split:
        return Split(self.x[index], self.attributes[index], self.motion[index],
                     self.character[index], self.labelled, self.schema)
