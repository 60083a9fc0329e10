"""How much of each attribute f holds: a linear probe (logistic regression) on the posterior means
of f, fitted on the test clips of half the characters and scored on the other half (unseen ones),
then scored again on one draw of q(f) per clip. The gap between the two is what q's noise hides
from a decoder that is trained on draws of q.
Usage: python experiments/probe_f.py RUN_DIR   (the run's own test split)"""

import argparse

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression

from dsae_pyro.data import ATTRIBUTES
from dsae_pyro.prior_fit import posterior_params
from dsae_pyro.runs import TrainingError
from dsae_pyro.train import load_run_and_test

parser = argparse.ArgumentParser(description=__doc__.rsplit("Usage:", 1)[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("run", metavar="RUN_DIR", help="a trained run folder (its own test split)")
try:
    run, test = load_run_and_test(parser.parse_args().run)
except TrainingError as e:
    parser.error(str(e))
q = posterior_params(run.guide, test, progress=False)
f_mean = q.f_loc.numpy()
f_draw = (q.f_loc + q.f_scale * torch.randn(q.f_scale.shape,
                                             generator=torch.Generator().manual_seed(0))).numpy()
characters = np.random.default_rng(0).permutation(np.unique(test.character))
fit_on = np.isin(test.character, characters[:len(characters) // 2])
for j, name in enumerate(ATTRIBUTES):
    if len(np.unique(test.attributes[fit_on, j])) < 2:
        print(f"{name}: one value among the fitting characters; no probe")
        continue
    probe = LogisticRegression(max_iter=2000).fit(f_mean[fit_on], test.attributes[fit_on, j])
    scored = [100 * probe.score(f[~fit_on], test.attributes[~fit_on, j]) for f in (f_mean, f_draw)]
    print(f"{name}: {scored[0]:.1f}% on unseen characters' q(f) means, {scored[1]:.1f}% on draws of q(f)")
