"""What knowing shape, then orientation, is worth to a beta-VAE's likelihood on dSprites.

An ideal decoder that knows a sprite's scale (and its position to +-r pixels) draws each pixel
with the probability that it is on over what it does not know; its Bernoulli NLL is the sum of
the pixels' entropies. Knowing shape too lowers it by the gain printed here (nats an image).
Objective H pays beta x KL for the latent that carries shape, at least beta x log 3 nats, so a
shape latent lowers the objective whenever gain > beta log 3: the table's "beta below" column.
Computed on the package's own rendering (`sprite_masks`), exactly, in seconds.

Usage: python experiments/dsprites_factor_gain.py [--shifts 0 1 2]
"""

import argparse

import numpy as np

from dsae_pyro.data.dsprites import SHAPES, factor_values, sprite_masks


def entropy_nats(p: np.ndarray) -> np.ndarray:
    """Bernoulli entropy of each pixel, summed over the last two axes."""
    q = np.clip(p, 1e-12, 1 - 1e-12)
    return -(q * np.log(q) + (1 - q) * np.log(1 - q)).sum((-1, -2))


def nll_terms(masks: np.ndarray, shift: int) -> tuple[float, float, float]:
    """For masks (shapes, orientations, P, P) of one scale, the ideal decoder's NLL knowing the
    scale, + the shape, + the orientation too, with the position known only to +-shift pixels."""
    moved = np.stack([np.roll(masks, (dy, dx), (-2, -1))
                      for dy in range(-shift, shift + 1) for dx in range(-shift, shift + 1)])
    given_scale = entropy_nats(moved.mean((0, 1, 2)))
    given_shape = entropy_nats(moved.mean((0, 2))).mean()
    given_orientation = entropy_nats(moved.mean(0)).mean()
    return float(given_scale), float(given_shape), float(given_orientation)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--shifts", type=int, nargs="+", default=[0, 1, 2],
                   help="how well position is known: +-r pixels, each r a row")
    args = p.parse_args()
    masks = sprite_masks().astype(np.float64)  # (shape, scale, orientation, P, P)
    scales = factor_values()[2]
    shape_nats = np.log(len(SHAPES))  # the least KL a latent that names the shape costs, per beta
    print(f"{len(SHAPES)} shapes, {masks.shape[2]} orientations; cost of a shape latent at least "
          f"beta x log {len(SHAPES)} = beta x {shape_nats:.2f} nats")
    print("| position known to | scale | NLL given scale | gain of shape | beta below | "
          "gain of orientation, shape known |")
    print("|---|---|---|---|---|---|")
    for r in args.shifts:
        rows = [nll_terms(masks[:, s], r) for s in range(len(scales))]
        for s, (a, b, c) in zip(scales, rows, strict=True):
            print(f"| +-{r} px | {s:.1f} | {a:.1f} | {a - b:.1f} | {(a - b) / shape_nats:.1f} | "
                  f"{b - c:.1f} |")
        a, b, c = np.mean(rows, 0)
        print(f"| +-{r} px | mean | {a:.1f} | {a - b:.1f} | {(a - b) / shape_nats:.1f} | {b - c:.1f} |")


if __name__ == "__main__":
    main()
