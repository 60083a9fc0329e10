"""How a run's decoder draws one body class's skin tones, and whether those drawn tones alone make a
judge read another class.

1. The class's skin tones: the colours most frequent in its real test clips that occur in no other
   body class's clips (on Sprites, each skin's highlight, shadow and outline).
2. The mean colour the decoder draws on each tone's pixels (posterior-mean reconstructions), split
   by what the judge reads on the reconstruction.
3. The real clips of the class with each tone replaced by its drawn mean (nothing else changed): each
   judge's accuracy on them. If it falls, the drawn tones alone carry the misreading.

Usage: python experiments/skin_tones.py RUN --judge judge0.pt judge1.pt judge2.pt [--body 0] [--by 3]
(--by: the judge, 1-based, whose reading of the reconstructions splits step 2; default the last)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dsae_pyro.data import Split, data_identity, to_tensor  # noqa: E402
from dsae_pyro.metrics.judge import accuracies, load_judge  # noqa: E402
from dsae_pyro.posterior import decode, encode  # noqa: E402
from dsae_pyro.train import load_run_and_test  # noqa: E402


def rgb_keys(x: np.ndarray) -> np.ndarray:
    """One integer per pixel of uint8 (..., 3) frames."""
    x = x.astype(np.int64)
    return (x[..., 0] << 16) | (x[..., 1] << 8) | x[..., 2]


def skin_tones(test: Split, body: int, count: int = 3) -> list[tuple[int, int, int]]:
    """The `count` colours commonest in the clips of `body` that no other body class's clips hold."""
    mine = test.attributes[:, 0] == body
    values, counts = np.unique(rgb_keys(test.x[mine]), return_counts=True)
    others = np.unique(rgb_keys(test.x[~mine]))
    own = ~np.isin(values, others) & (values != 0)
    keys = values[own][np.argsort(-counts[own])][:count]
    return [(int(k) >> 16, (int(k) >> 8) & 255, int(k) & 255) for k in keys]


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run")
    p.add_argument("--judge", nargs="+", required=True)
    p.add_argument("--body", type=int, default=0, help="the body class (default 0, the palest)")
    p.add_argument("--by", type=int, default=0, help="the judge (1-based) that splits step 2")
    args = p.parse_args(argv)

    run, test = load_run_and_test(args.run)
    d = run.cfg.data
    judges = [load_judge(j, data_identity(d.name, d.path, d.seed))[0] for j in args.judge]
    by = judges[args.by - 1 if args.by else -1]
    sel = np.flatnonzero(test.attributes[:, 0] == args.body)
    if not len(sel):
        raise SystemExit(f"no test clip has body {args.body}; give one of "
                         f"{sorted(set(test.attributes[:, 0].tolist()))}")
    tones = skin_tones(test, args.body)
    print(f"body {args.body}: {len(sel)} test clips; its skin tones {tones}")

    x0 = test.x[sel]
    masks = [np.all(x0 == np.array(t, dtype=np.uint8), axis=-1) for t in tones]  # per tone
    rows = []  # per clip: the class read, then each tone's mean drawn RGB
    with torch.no_grad():
        for i in range(0, len(sel), 64):
            recon = decode(run.model, encode(run.guide, to_tensor(x0[i:i + 64])).as_data())
            read = by.predict(recon)["body"].argmax(-1).numpy()
            drawn = (recon.permute(0, 1, 3, 4, 2) * 255).cpu().numpy()
            for j in range(len(drawn)):
                row = [read[j]]
                for mask in masks:
                    on = mask[i + j]
                    row += list(drawn[j][on].mean(0)) if on.any() else [np.nan] * 3
                rows.append(row)
    rows = np.array(rows)
    drawn_means = {}
    for c in np.unique(rows[:, 0]).astype(int):
        group = rows[rows[:, 0] == c]
        drawn_means[c] = [np.nanmean(group[:, 1 + 3 * n:4 + 3 * n], 0) for n in range(len(tones))]
        print(f"read as body {c} on {len(group)} reconstructions; drawn: " + "; ".join(
            f"{t} -> {tuple(np.round(m).astype(int).tolist())}"
            for t, m in zip(tones, drawn_means[c], strict=True)))
    wrong = [c for c in drawn_means if c != args.body]
    if not wrong:
        return
    c = max(wrong, key=lambda c: int((rows[:, 0] == c).sum()))  # the commonest misreading
    means = drawn_means[c]

    for n in [*range(len(tones)), None]:  # one tone at a time, then all of them
        x = x0.copy()
        for m, (mask, mean) in enumerate(zip(masks, means, strict=True)):
            if n is None or m == n:
                x[mask] = np.clip(np.round(mean), 0, 255).astype(np.uint8)
        s = Split(x, test.attributes[sel], test.motion[sel], test.character[sel])
        what = "all its tones" if n is None else f"{tones[n]}"
        print(f"real clips of body {args.body}, {what} as drawn where body {c} is read: read as "
              f"body {args.body} by each judge on " + " / ".join(
                  f"{100 * accuracies(j.predict, s)['body']:.1f}%" for j in judges))


if __name__ == "__main__":
    main()
