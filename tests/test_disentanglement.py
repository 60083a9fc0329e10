import numpy as np
import pytest

from dsae_pyro.metrics.disentanglement import (
    FactorSampler,
    beta_vae_score,
    disentanglement_scores,
    factor_vae_score,
    histogram_discretize,
    mig,
)

SIZES = (3, 6, 10, 8, 8)  # a small dSprites-like grid: shape, scale, orientation, x, y


@pytest.fixture(scope="module")
def grid():
    return np.stack(np.unravel_index(np.arange(np.prod(SIZES)), SIZES), axis=1)


def test_sampler_draws_rows_that_share_the_value(grid):
    s = FactorSampler(grid, np.random.RandomState(0))
    k = np.array([0, 2, 4, 4])
    v = np.array([2, 9, 0, 7])
    rows = s.rows_sharing(np.repeat(k[:, None], 500, 1), np.repeat(v[:, None], 500, 1))
    assert (grid[rows, k[:, None]] == v[:, None]).all()
    # uniform among the matching rows: every x position appears for factor 0 fixed
    assert len(np.unique(grid[rows[0], 3])) == SIZES[3]


def test_true_factors_score_one_and_noise_scores_chance(grid):
    rng = np.random.RandomState(1)
    truth = grid / (np.array(SIZES) - 1) + 1e-3 * rng.randn(*grid.shape)
    s = disentanglement_scores(truth, grid, num_train=2000, num_eval=1000)
    assert s["beta_vae"]["eval_accuracy"] > 0.99
    assert s["factor_vae"]["eval_accuracy"] == 1.0
    assert s["mig"]["mig"] > 0.95  # discretised codes recover each factor; others carry ~0 MI
    noise = rng.randn(len(grid), 10)
    n = disentanglement_scores(noise, grid, num_train=2000, num_eval=1000)
    chance = 1 / len(SIZES)
    assert n["beta_vae"]["eval_accuracy"] < chance + 0.1
    assert n["factor_vae"]["eval_accuracy"] < chance + 0.15
    assert n["mig"]["mig"] < 0.02


def test_entangled_codes_score_lower(grid):
    # two codes that mix x and y by a 45-degree rotation: each code alone predicts neither
    x, y = grid[:, 3] / 7.0, grid[:, 4] / 7.0
    mixed = np.stack([grid[:, 0] / 2, grid[:, 1] / 5, grid[:, 2] / 9, x + y, x - y], 1)
    m = mig(mixed, grid, num_train=5000)
    per = m["mig_per_factor"]
    assert min(per[:3]) > 0.9 and max(per[3:]) < 0.3
    assert factor_vae_score(mixed, grid, num_train=2000, num_eval=1000)["eval_accuracy"] < 0.9
    # a duplicated code: the gap for that factor is zero
    dup = np.concatenate([grid / 10.0, grid[:, :1] / 10.0], 1)
    assert mig(dup, grid, num_train=5000)["mig_per_factor"][0] == pytest.approx(0, abs=1e-9)


def test_beta_vae_metric_uses_the_shared_factor(grid):
    # only factor 2 is represented: batches sharing factor 2 have |r1 - r2| = 0 and are
    # recognised; the other four are indistinguishable -> accuracy about 1/5 + 4/5 * 1/4 = 0.4
    reps = np.stack([grid[:, 2] / 9.0, np.zeros(len(grid))], 1)
    acc = beta_vae_score(reps, grid, num_train=3000, num_eval=2000)["eval_accuracy"]
    assert acc == pytest.approx(0.4, abs=0.05)


def test_histogram_discretize_by_hand():
    x = np.array([[0.0], [0.49], [0.5], [1.0]])
    # two bins over [0, 1]: edges 0, 0.5, 1 -> bins 1, 1, 2, 2
    assert histogram_discretize(x, 2)[:, 0].tolist() == [1, 1, 2, 2]
