"""Does a clip keep its motion when its f is replaced? The motion protocol's f ~ p(f) beside the
harder case of another real clip's posterior f (a random other test clip: `posterior.swap`), scored
by a judge on the same clips. A gap between the two says f holds motion that draws from p(f) seldom
express. Usage: python experiments/motion_under_new_f.py RUN_DIR JUDGE [--clips 600]"""

import argparse

import numpy as np
import torch

from dsae_pyro.clips import to_tensor
from dsae_pyro.data import data_identity
from dsae_pyro.metrics.judge import load_judge
from dsae_pyro.posterior import decode, encode, swap
from dsae_pyro.train import load_run_and_test

parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
parser.add_argument("run")
parser.add_argument("judge")
parser.add_argument("--clips", type=int, default=600)
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()

run, test = load_run_and_test(args.run)
d = run.cfg.data
judge, _ = load_judge(args.judge, data_identity(d.name, d.path, d.seed))
test = test.subset(np.arange(min(args.clips, len(test))))
torch.manual_seed(args.seed)
other = torch.randperm(len(test))
sources = {  # frames with the clips' z_1:T (posterior means) and a new f, for clips i:j
    "f ~ p(f)": lambda x, i, j: decode(run.model, encode(run.guide, x).z_data()),
    "f of another clip": lambda x, i, j: swap(run.model, run.guide,
                                              to_tensor(test.x[other[i:j]]), x),
}
parts = test.schema.part_labels(test.motion)
with torch.no_grad():
    for name, draw in sources.items():
        pred = []
        for i in range(0, len(test), 100):
            frames = draw(to_tensor(test.x[i:i + 100]), i, i + 100)
            pred.append(judge.predict(frames)["motion"].argmax(-1).numpy())
        pred = np.concatenate(pred)
        each = ", ".join(f"{k} {100 * (v == parts[k]).mean():.1f}%"
                         for k, v in test.schema.part_labels(pred).items())
        print(f"{name}: motion {100 * (pred == test.motion).mean():.1f}% ({each}), "
              f"{len(test)} clips")
