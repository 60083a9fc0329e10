"""The clip format every network reads, and the checks that guard it (light: no data loaders).

A batch of clips is float32 in [0, 1] with shape (B, T, C, H, W); stored clips are uint8 pixels,
channel-last (N, T, H, W, C), which is 4x smaller.
"""

from __future__ import annotations

import numpy as np
import torch

SIZE = 64  # Sprites' frame side, in pixels


class DataError(ValueError):
    """Clips or labels that the library cannot use; the message names the problem and the fix."""


def check_clips(x, name: str = "clips") -> np.ndarray | torch.Tensor:
    """Validate clips for the library; returns them unchanged or raises DataError.

    Accepts uint8 (N, T, 64, 64, 3) pixels, or float tensors/arrays (N, T, 3, 64, 64) in [0, 1].
    """
    if not hasattr(x, "shape") or not hasattr(x, "dtype"):
        raise DataError(f"{name} is not an array but {type(x).__name__}; save clips with "
                        "dsae_pyro.data.save_npz or `dsae data`")
    shape = tuple(x.shape)
    if x.dtype in (np.uint8, torch.uint8):
        if len(shape) != 5 or shape[2:] != (SIZE, SIZE, 3):
            raise DataError(f"{name}: uint8 clips must be (N, T, 64, 64, 3) channel-last, got "
                            f"{shape}")
        return x
    if not (x.is_floating_point() if torch.is_tensor(x) else np.issubdtype(x.dtype, np.floating)):
        raise DataError(f"{name}: dtype {x.dtype} is not supported; give uint8 pixels in 0..255 "
                        "(e.g. x.astype(np.uint8)) or float32 in [0, 1]")
    if len(shape) != 5 or shape[2:] != (3, SIZE, SIZE):
        hint = (" (channel-last? use x.permute(0, 1, 4, 2, 3))" if len(shape) == 5
                and shape[-1] == 3 else "")
        raise DataError(f"{name}: expected float clips of shape (N, T, 3, 64, 64), got {shape}"
                        f"{hint}")
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
                        "(B, T, H, W, 3) pixels")


def to_tensor(x_uint8, device=None) -> torch.Tensor:
    """uint8 (B, T, H, W, 3) -> float32 (B, T, 3, H, W) in [0, 1] on `device`."""
    x = torch.as_tensor(x_uint8)
    if device is not None:
        x = x.to(device, non_blocking=True)  # move the compact uint8 before widening it
    return x.permute(0, 1, 4, 2, 3).float().div_(255.0)
