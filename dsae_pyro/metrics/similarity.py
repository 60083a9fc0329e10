"""Report 002's cosine-similarity table: do clips that share appearance have similar f, and clips
that share motion similar z_1:T, whatever the other factor?"""

from __future__ import annotations

import numpy as np
import torch

RELATIONS = ("same appearance, other motion", "other appearance, same motion",
             "both differ", "both shared")


def cosine_matrix(v: torch.Tensor) -> np.ndarray:
    """Pairwise cosine similarity of the rows of v (N, D) (flattened past the first axis)."""
    v = torch.nn.functional.normalize(v.reshape(len(v), -1).double(), dim=1)
    return (v @ v.T).numpy()


def relation_masks(character: np.ndarray, motion: np.ndarray) -> dict[str, np.ndarray]:
    """Masks over pairs i < j, one per relation of RELATIONS."""
    same_c = character[:, None] == character[None, :]
    same_m = motion[:, None] == motion[None, :]
    upper = np.triu(np.ones_like(same_c), k=1)
    masks = dict(zip(RELATIONS, (same_c & ~same_m, ~same_c & same_m, ~same_c & ~same_m,
                                 same_c & same_m), strict=True))
    return {k: m & upper for k, m in masks.items()}


def cosine_table(f: torch.Tensor, z: torch.Tensor, character: np.ndarray, motion: np.ndarray
                 ) -> dict[str, dict]:
    """Mean and std of cos(f_i, f_j) and cos(z_i, z_j) over every pair in each relation (z_1:T
    flattened); relations with no pair are left out."""
    cf, cz = cosine_matrix(f), cosine_matrix(z)
    out = {}
    for name, mask in relation_masks(np.asarray(character), np.asarray(motion)).items():
        if mask.any():
            out[name] = {"pairs": int(mask.sum()),
                         "f": {"mean": float(cf[mask].mean()), "std": float(cf[mask].std())},
                         "z": {"mean": float(cz[mask].mean()), "std": float(cz[mask].std())}}
    return out


def cosine_markdown(table: dict) -> str:
    rows = ["| pairs | count | cos(f_i, f_j) | cos(z_i, z_j) |", "|---|---|---|---|"]
    rows += [f"| {k} | {v['pairs']} | {v['f']['mean']:.3f} ± {v['f']['std']:.3f} | "
             f"{v['z']['mean']:.3f} ± {v['z']['std']:.3f} |" for k, v in table.items()]
    return "\n".join(rows) + "\n"
