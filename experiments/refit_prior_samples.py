"""What `dsae refit-prior` changes in the attribute test: for one test clip per skin tone (then
per trousers colour), keep the posterior-mean f and draw z_1:T from each run's prior, first frame.
Under the real frames, rows of draws from the run as trained and from the same run with its
refitted prior (same draws of the random numbers for both).

Usage: python experiments/refit_prior_samples.py RUN_AS_TRAINED RUN_REFITTED --out FIG.png
           [--draws 2] [--seed 0] [--sheets DIR]
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
p.add_argument("--draws", type=int, default=2, help="draws of z_1:T per run")
p.add_argument("--seed", type=int, default=0)
p.add_argument("--sheets", default=None, help="the LPC sheets folder the runs trained on")
args = p.parse_args()

runs = {name: load_run_and_test(path, data_path=args.sheets) for name, path in
        (("as trained", args.before), ("refitted", args.after))}
test = next(iter(runs.values()))[1]
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
fig = clip_figure(torch.stack(images), labels,
                  f"one test clip per value of {' then '.join(cols)}, frame 1: f of the clip, "
                  "z_1:T drawn from the prior")
fig.savefig(args.out, dpi=110)
print(f"wrote {args.out}")
