"""What `dsae refit-prior` changes in the protocol's two tests, as pictures.

--test attribute (default): for one test clip per skin tone (then per trousers colour), keep the
posterior-mean f and draw z_1:T from each run's prior, first frame. Under the real frames, rows
of draws from the run as trained and from the same run with its refitted prior (same draws of
the random numbers for both).

--test motion: for the first --clips test clips of each --motion, keep the posterior-mean
z_1:T and draw f from p(f), every frame: the real clip, then a row per run (the same draw of f
for both). With --judge, each row is labelled with the motion the judge reads in it.

Usage: python experiments/refit_prior_samples.py RUN_AS_TRAINED RUN_REFITTED --out FIG.png
           [--test attribute|motion] [--draws 2] [--motion 1 2] [--clips 2] [--judge J.pt]
           [--seed 0] [--sheets DIR]
(`dsae refit-prior RUN` keeps the run as trained beside the refitted one as
checkpoint_before_prior_fit.pt; copy the folder before refitting to compare the two.)
"""

from __future__ import annotations

import argparse

import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
import pyro  # noqa: E402
import torch  # noqa: E402

from dsae_pyro.data import to_tensor  # noqa: E402
from dsae_pyro.posterior import decode, encode  # noqa: E402
from dsae_pyro.train import load_run_and_test  # noqa: E402
from dsae_pyro.viz import clip_figure  # noqa: E402

p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
p.add_argument("before", help="the run as trained")
p.add_argument("after", help="the same run after `dsae refit-prior`")
p.add_argument("--out", required=True, help="the figure (PNG)")
p.add_argument("--draws", type=int, default=2, help="--test attribute: draws of z_1:T per run")
p.add_argument("--seed", type=int, default=0)
p.add_argument("--sheets", default=None, help="the LPC sheets folder the runs trained on")
p.add_argument("--test", choices=("attribute", "motion"), default="attribute",
               help="which generation test to picture (default: attribute)")
p.add_argument("--motion", type=int, nargs="+", default=[1, 2],
               help="--test motion: the motions (label numbers) whose clips are drawn (default: "
               "1 2, walking left and right on Sprites)")
p.add_argument("--clips", type=int, default=2, help="--test motion: clips per motion")
p.add_argument("--judge", default=None, help="--test motion: label each row with this judge's "
               "reading")
args = p.parse_args()

runs = {name: load_run_and_test(path, data_path=args.sheets) for name, path in
        (("as trained", args.before), ("refitted", args.after))}
test = next(iter(runs.values()))[1]


def attribute_figure():
    names = test.schema.attribute_names
    cols = [a for a in ("body", "bottom") if a in names] or names[:2]
    idx = [int(np.flatnonzero(test.attributes[:, names.index(a)] == v)[0])
           for a in cols for v in np.unique(test.attributes[:, names.index(a)])]
    x = to_tensor(test.x[idx])
    images, labels = [x[:, 0]], ["real"]
    for name, (run, _) in runs.items():
        f = encode(run.guide, x).f
        for d in range(args.draws):
            pyro.set_rng_seed(args.seed + d)
            images.append(decode(run.model, {"f": f})[:, 0])
            labels.append(f"{name}, z ~ p #{d + 1}")
    return clip_figure(torch.stack(images), labels,
                       f"one test clip per value of {' then '.join(cols)}, frame 1: f of the "
                       "clip, z_1:T drawn from the prior")


def motion_figure():
    idx = [int(i) for m in args.motion for i in np.flatnonzero(test.motion == m)[:args.clips]]
    if not idx:
        p.error(f"no test clip has motion {args.motion}; the labels run from 0 to "
                f"{int(test.motion.max())}")
    x = to_tensor(test.x[idx])
    rows = {"real": x}
    for name, (run, _) in runs.items():
        pyro.set_rng_seed(args.seed)  # the same draws of f for both runs
        rows[name] = decode(run.model, encode(run.guide, x).z_data())
    labels = [k for _ in idx for k in rows]
    if args.judge:
        from dsae_pyro.metrics.judge import load_judge

        judge = load_judge(args.judge)[0]
        said = {k: judge.predict(v)["motion"].argmax(-1).tolist() for k, v in rows.items()}
        labels = [f"{k}: {test.schema.motion_name(said[k][i])}"
                  for i in range(len(idx)) for k in rows]
    videos = torch.stack([v[i] for i in range(len(idx)) for v in rows.values()])
    return clip_figure(videos, labels, "z_1:T of the clip, f drawn from p(f)"
                       + (" (each row: what the judge reads)" if args.judge else ""),
                       groups=len(rows))


fig = attribute_figure() if args.test == "attribute" else motion_figure()
fig.savefig(args.out, dpi=110, bbox_inches="tight")
print(f"wrote {args.out}")
