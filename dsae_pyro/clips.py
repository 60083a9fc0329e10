"""The clip format every network reads, and the checks that guard it (light: no data loaders).

A batch of clips is float32 in [0, 1] with shape (B, T, C, H, W); stored clips are uint8 pixels,
channel-last (N, T, H, W, C), which is 4x smaller.
"""

from __future__ import annotations

import numpy as np
import torch

SIZE = 64  # Sprites' frame side, in pixels
CHANNELS = (1, 3)  # grayscale or RGB
SIDE_STEP = 16  # frame sides the conv stacks divide: 16, 32, 48, 64, ..., 128


def _frame_problem(t: int, h: int, w: int, c: int) -> str:
    """What is wrong with frames of T x H x W x C, or "" when the library can use them."""
    if c not in CHANNELS:
        return f"{c} channels (use 1 or 3)"
    if h != w or h % SIDE_STEP or h < SIDE_STEP:
        return f"{h} x {w} frames (square, a side that is a multiple of {SIDE_STEP})"
    if t < 2:
        return f"{t} frame per clip (a sequence needs at least 2)"
    return ""


class DataError(ValueError):
    """Clips or labels that the library cannot use; the message names the problem and the fix."""


def check_clips(x, name: str = "clips") -> np.ndarray | torch.Tensor:
    """Validate clips for the library; returns them unchanged or raises DataError.

    Accepts uint8 (N, T, H, W, C) pixels, or float tensors/arrays (N, T, C, H, W) in [0, 1]: any
    T >= 2, square frames with a side that is a multiple of 16, C = 1 or 3 (Sprites: 8 x 64 x 64 x 3).
    """
    if not hasattr(x, "shape") or not hasattr(x, "dtype"):
        raise DataError(f"{name} is not an array but {type(x).__name__}; save clips with "
                        "dsae_pyro.data.save_npz or `dsae data`")
    shape = tuple(x.shape)
    if x.dtype in (np.uint8, torch.uint8):
        problem = "not 5-D" if len(shape) != 5 else _frame_problem(*shape[1:])
        if problem:
            raise DataError(f"{name}: uint8 clips must be (N, T, H, W, C) channel-last, got "
                            f"{shape}: {problem}")
        return x
    if not (x.is_floating_point() if torch.is_tensor(x) else np.issubdtype(x.dtype, np.floating)):
        raise DataError(f"{name}: dtype {x.dtype} is not supported; give uint8 pixels in 0..255 "
                        "(e.g. x.astype(np.uint8)) or float32 in [0, 1]")
    problem = "not 5-D" if len(shape) != 5 else _frame_problem(shape[1], *shape[3:], shape[2])
    if problem:
        hint = (" (channel-last? use x.permute(0, 1, 4, 2, 3))" if len(shape) == 5
                and shape[-1] in CHANNELS and shape[2] not in CHANNELS else "")
        raise DataError(f"{name}: expected float clips of shape (N, T, C, H, W), got {shape}: "
                        f"{problem}{hint}")
    if x.dtype not in (np.float32, np.float64, torch.float32, torch.float64):
        raise DataError(f"{name}: dtype {x.dtype} is not supported; give float32 in [0, 1] or "
                        "uint8 pixels in 0..255")
    t = torch.as_tensor(x)
    if not torch.isfinite(t).all():
        raise DataError(f"{name}: contains {int((~torch.isfinite(t)).sum())} NaN or infinite "
                        "values; clean or drop those clips")
    lo, hi = float(t.min()), float(t.max())
    if lo < 0 or hi > 1:
        hint = " (pixels in 0..255? divide by 255)" if hi > 1.5 else ""
        raise DataError(f"{name}: values must lie in [0, 1], found [{lo:.3g}, {hi:.3g}]{hint}")
    return x


def check_batch(x: torch.Tensor, image_shape: tuple[int, int, int]) -> None:
    """Cheap per-call check of a model/guide input: a float (B, T, C, H, W) tensor."""
    if not torch.is_tensor(x) or not x.is_floating_point() or x.dim() != 5 or tuple(
            x.shape[2:]) != tuple(image_shape):
        got = f"{type(x).__name__} {tuple(x.shape)} {x.dtype}" if hasattr(x, "shape") else type(
            x).__name__
        raise DataError(f"clips must be a float tensor (B, T, {', '.join(map(str, image_shape))}) "
                        f"in [0, 1], got {got}; dsae_pyro.data.to_tensor converts uint8 "
                        "(B, T, H, W, C) pixels")


def to_tensor(x_uint8, device=None) -> torch.Tensor:
    """uint8 (B, T, H, W, C) -> float32 (B, T, C, H, W) in [0, 1] on `device`."""
    x = torch.as_tensor(x_uint8)
    if device is not None:
        x = x.to(device, non_blocking=True)  # move the compact uint8 before widening it
    return x.permute(0, 1, 4, 2, 3).float().div_(255.0)


def commonest_colours(x_uint8: np.ndarray, k: int, every: int = 20) -> torch.Tensor:
    """The k colours that cover most pixels of stored clips (N, T, H, W, C), as floats in [0, 1]
    (k, C), commonest first; counted on every `every`-th clip. Fewer distinct colours than k are
    repeated so the table always holds k rows."""
    pixels = np.asarray(x_uint8[::every]).reshape(-1, x_uint8.shape[-1])
    colours, counts = np.unique(pixels, axis=0, return_counts=True)
    top = colours[np.argsort(-counts, kind="stable")][:k]
    top = np.resize(top, (k, top.shape[1]))  # np.resize repeats rows when there are too few
    return torch.from_numpy(top.astype(np.float32) / 255.0)
