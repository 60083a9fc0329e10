"""Views of a training batch that a guide may read in place of the clips it reconstructs.

Any q(f, z_1:T) gives a lower bound on log p(x), so what the guide reads is a choice about what
the latents can learn, not about the objective (see `train.f_source` and `train.z_source`):
- `other_clips`: another clip of the same character, for q(f): f can then hold only what a
  character's clips share (weak supervision by identity);
- `recolour`: the clip with its colours scrambled, for q(z): z_1:T then cannot learn colours, so
  skin and clothes colours must come from f (unsupervised, like C-DSVAE's motion augmentation).
`shuffle_frames` (optionally then `mirror` or `shuffle_tiles`) and `recolour` are also the positive
pairs of the contrastive objective (`objectives.ContrastiveLoss`): one keeps the appearance, the
other the motion.
"""

from __future__ import annotations

import itertools

import numpy as np
import torch

_PERMUTATIONS = torch.tensor([p for p in itertools.permutations(range(3)) if p != (0, 1, 2)])


def _new_orders(shape: tuple[int, ...], generator: torch.Generator | None) -> torch.Tensor:
    """Random permutations of range(shape[-1]), one per leading index, never the identity (for
    shape[-1] >= 2)."""
    order = torch.rand(*shape, generator=generator).argsort(-1)
    same = (order == torch.arange(shape[-1])).all(-1)
    order[same] = order[same].roll(1, -1)  # the identity, rolled by one, is never the identity
    return order


def other_clips(character: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """For every clip, the index of a uniformly drawn other clip of the same character (the clip
    itself where its character has no other clip)."""
    character = np.asarray(character)
    order = np.argsort(character, kind="stable")
    grouped = character[order]
    start = np.searchsorted(grouped, grouped, side="left")
    size = np.searchsorted(grouped, grouped, side="right") - start
    shift = np.where(size > 1, rng.integers(1, np.maximum(size, 2)), 0)  # 1..size-1 or 0
    out = np.empty_like(order)
    out[order] = order[start + (np.arange(len(order)) - start + shift) % size]
    return out


def shuffle_frames(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Clips (B, T, ...) with, per clip, the frames in a random order that is never the original
    one (for T >= 2): the appearance survives, the motion does not."""
    b, t = x.shape[:2]
    order = _new_orders((b, t), generator)
    return x[torch.arange(b)[:, None], order.to(x.device)]


def mirror(x: torch.Tensor) -> torch.Tensor:
    """Clips (B, T, C, H, W) flipped left-right: a sprite walking left now walks right, and the
    appearance of a (nearly symmetric) character survives."""
    return x.flip(-1)


def shuffle_tiles(x: torch.Tensor, tile: int = 8,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """Clips (B, T, C, H, W) with every frame cut into tile x tile squares and the squares put back
    in a random order drawn per frame (never the original one): the colours and small details
    survive, the pose and the facing direction do not. H and W must be multiples of `tile`."""
    b, t, c, h, w = x.shape
    if h % tile or w % tile:
        raise ValueError(f"shuffle_tiles: frames of {h}x{w} pixels do not split into {tile}x{tile} "
                         "tiles; pick a tile size that divides both")
    rows, cols = h // tile, w // tile
    tiles = (x.reshape(b, t, c, rows, tile, cols, tile).permute(0, 1, 3, 5, 2, 4, 6)
             .reshape(b, t, rows * cols, c, tile, tile))
    order = _new_orders((b, t, rows * cols), generator).to(x.device)
    order = order[..., None, None, None].expand_as(tiles)
    return (tiles.gather(2, order).reshape(b, t, rows, cols, c, tile, tile)
            .permute(0, 1, 4, 2, 5, 3, 6).reshape(b, t, c, h, w))


def recolour(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Clips (B, T, 3, H, W) with, per clip, the colour channels permuted (never left in place)
    and each channel scaled by a gain in [0.6, 1.4], clipped to [0, 1]. Grayscale clips
    (B, T, 1, H, W) get the gain only."""
    b = x.shape[0]
    if x.shape[2] == 1:
        gain = 0.6 + 0.8 * torch.rand(b, 1, 1, 1, 1, generator=generator)
        return (x * gain.to(x.device)).clamp(0, 1)
    perm = _PERMUTATIONS[torch.randint(len(_PERMUTATIONS), (b,), generator=generator)]
    gain = 0.6 + 0.8 * torch.rand(b, 1, 3, 1, 1, generator=generator)
    shuffled = x[torch.arange(b)[:, None], :, perm.to(x.device)].transpose(1, 2)
    return (shuffled * gain.to(x.device)).clamp_(0, 1)
