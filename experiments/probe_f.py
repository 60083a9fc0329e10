"""How much of each attribute f holds: a linear probe (logistic regression) on the posterior means
of f, fitted on the test clips of half the characters and scored on the other half (unseen ones).
Usage: python experiments/probe_f.py RUN_DIR   (the run's own test split)"""

import sys

import numpy as np
from sklearn.linear_model import LogisticRegression

from dsae_pyro.data import ATTRIBUTES
from dsae_pyro.metrics.protocol import posterior_pass
from dsae_pyro.train import load_run_and_test

run, test = load_run_and_test(sys.argv[1])
f = posterior_pass(run.model, run.guide, test)[1].numpy()  # posterior means of f
characters = np.random.default_rng(0).permutation(np.unique(test.character))
fit_on = np.isin(test.character, characters[:len(characters) // 2])
for j, name in enumerate(ATTRIBUTES):
    if len(np.unique(test.attributes[fit_on, j])) < 2:
        print(f"{name}: one value among the fitting characters; no probe")
        continue
    probe = LogisticRegression(max_iter=2000).fit(f[fit_on], test.attributes[fit_on, j])
    print(f"{name}: {100 * probe.score(f[~fit_on], test.attributes[~fit_on, j]):.1f}% on unseen characters")
