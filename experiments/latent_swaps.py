"""Does a clip keep its motion when its f is replaced, and its appearance when its z_1:T is?

Motion: the protocol's f ~ p(f) beside the harder case of another real clip's posterior f (a
random other test clip: `posterior.swap`). Attributes: the protocol's z_1:T ~ p(z_1:T) beside
another real clip's posterior z_1:T, and nothing replaced (the reconstruction: the ceiling).
One judge, the same clips for every line. A gap between a draw from the prior and another clip's
posterior says the latent holds what prior draws seldom express, or that prior draws leave the
region the decoder learned. Usage: python experiments/latent_swaps.py RUN_DIR JUDGE [--clips 600]"""

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
attributes = list(test.schema.attribute_names)


def other_x(i, j):
    return to_tensor(test.x[other[i:j]])


# (what is replaced, what it is replaced by, frames for clips i:j of x); the posterior means
# stand for the latents kept
sources = [
    ("motion", "f ~ p(f)", lambda x, i, j: decode(run.model, encode(run.guide, x).z_data())),
    ("motion", "f of another clip", lambda x, i, j: swap(run.model, run.guide, other_x(i, j), x)),
    ("attributes", "z_1:T ~ p(z_1:T)", lambda x, i, j: decode(run.model,
                                                              {"f": encode(run.guide, x).f})),
    ("attributes", "z_1:T of another clip", lambda x, i, j: swap(run.model, run.guide, x,
                                                                 other_x(i, j))),
    ("attributes", "nothing (reconstruction)", lambda x, i, j: swap(run.model, run.guide, x, x)),
]
parts = test.schema.part_labels(test.motion)
with torch.no_grad():
    for kept, name, draw in sources:
        heads = ["motion"] if kept == "motion" else attributes
        pred = {h: [] for h in heads}
        for i in range(0, len(test), 100):
            out = judge.predict(draw(to_tensor(test.x[i:i + 100]), i, i + 100))
            for h in heads:
                pred[h].append(out[h].argmax(-1).numpy())
        pred = {h: np.concatenate(v) for h, v in pred.items()}
        if kept == "motion":
            each = ", ".join(f"{k} {100 * (v == parts[k]).mean():.1f}%"
                             for k, v in test.schema.part_labels(pred["motion"]).items())
            score = f"motion {100 * (pred['motion'] == test.motion).mean():.1f}% ({each})"
        else:
            truth = dict(zip(attributes, test.attributes.T, strict=True))
            score = ", ".join(f"{h} {100 * (pred[h] == truth[h]).mean():.1f}%" for h in heads)
        print(f"{name}: {score}, {len(test)} clips")
