"""How much of each attribute f holds: a linear probe (logistic regression) on the posterior means
of f, trained on the test clips of 150 characters and scored on the other 146 (unseen ones).
Usage: python experiments/probe_f.py RUN_DIR [SHEETS_DIR]"""

import sys

import numpy as np
from sklearn.linear_model import LogisticRegression

from dsae_pyro.data import ATTRIBUTES, load_dataset
from dsae_pyro.metrics.protocol import posterior_pass
from dsae_pyro.train import load_run

run = load_run(sys.argv[1])
test = load_dataset("sprites", sys.argv[2] if len(sys.argv) > 2 else "../shared/data/sprites-lpc")["test"]
f = posterior_pass(run.model, run.guide, test)[1].numpy()  # posterior means of f
characters = np.random.default_rng(0).permutation(np.unique(test.character))
fit_on = np.isin(test.character, characters[:150])
for j, name in enumerate(ATTRIBUTES):
    probe = LogisticRegression(max_iter=2000).fit(f[fit_on], test.attributes[fit_on, j])
    print(f"{name}: {100 * probe.score(f[~fit_on], test.attributes[~fit_on, j]):.1f}% on unseen characters")
