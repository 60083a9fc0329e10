"""Disentanglement metrics with disentanglement_lib's definitions (Locatello et al. 2019).

    beta-VAE metric  (Higgins et al. 2017)  batches of pairs sharing one factor, mean |r1 - r2|,
                     logistic regression predicts the shared factor; score = eval accuracy
    FactorVAE metric (Kim & Mnih 2018)      batches sharing one factor value, representation divided
                     by its global std (dims with std < 0.05 pruned), argmin of the variance votes
                     for the factor; majority-vote classifier; score = eval accuracy
    MIG              (Chen et al. 2018)     20-bin histogram per code, discrete mutual information
                     with each factor, gap between the top two over the factor's entropy
    DCI              (Eastwood & Williams 2018)  importances of each code for predicting each factor
                     (gradient-boosted trees' feature importances); disentanglement =
                     importance-weighted 1 - entropy of each code's row, completeness = mean
                     1 - entropy of each factor's column, informativeness = test accuracy
    SAP              (Kumar et al. 2018)    per (code, factor) the test accuracy of a linear SVM on
                     that one code; mean over factors of the gap between its top two codes

Observations are drawn from a finite dataset whose every row has a representation `reps` (N, D)
(posterior means) and integer factor classes `factors` (N, K): "a batch sharing factor k's value" is
rows drawn uniformly among those with that value. On the full dSprites grid this is the library's
sampling exactly; on a random subset (what `dsae betavae evaluate` encodes, for speed) it is its
empirical version.
"""

from __future__ import annotations

import numpy as np
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import mutual_info_score
from sklearn.svm import LinearSVC


class FactorSampler:
    """Draws dataset rows uniformly, or uniformly among rows sharing a factor's value."""

    def __init__(self, factors: np.ndarray, rng: np.random.RandomState):
        self.factors = np.asarray(factors)
        self.rng = rng
        self.order, self.starts, self.counts = [], [], []
        for k in range(self.factors.shape[1]):
            col = self.factors[:, k]
            order = np.argsort(col, kind="stable")
            values, starts, counts = np.unique(col[order], return_index=True, return_counts=True)
            # value -> (start, count) through a dense table over the value range
            start_of = np.zeros(values.max() + 1, np.int64)
            count_of = np.zeros(values.max() + 1, np.int64)
            start_of[values], count_of[values] = starts, counts
            self.order.append(order)
            self.starts.append(start_of)
            self.counts.append(count_of)

    @property
    def num_factors(self) -> int:
        return self.factors.shape[1]

    def rows(self, shape) -> np.ndarray:
        return self.rng.randint(len(self.factors), size=shape)

    def rows_sharing(self, k: np.ndarray, values: np.ndarray) -> np.ndarray:
        """One random row per entry with factor k[i] equal to values[i] (arrays of one shape)."""
        k, values = np.broadcast_arrays(k, values)
        out = np.empty(k.shape, np.int64)
        for f in np.unique(k):
            sel = k == f
            v = values[sel]
            pos = self.starts[f][v] + (self.rng.random_sample(v.shape) * self.counts[f][v]).astype(
                np.int64)
            out[sel] = self.order[f][pos]
        return out


def _beta_vae_points(reps, sampler: FactorSampler, n: int, batch_size: int):
    k = sampler.rng.randint(sampler.num_factors, size=n)
    rows1 = sampler.rows((n, batch_size))
    values = sampler.factors[rows1, k[:, None]]
    rows2 = sampler.rows_sharing(np.repeat(k[:, None], batch_size, 1), values)
    return np.abs(reps[rows1] - reps[rows2]).mean(1), k


def beta_vae_score(reps: np.ndarray, factors: np.ndarray, seed: int = 0, num_train: int = 10_000,
                   num_eval: int = 5_000, batch_size: int = 64) -> dict:
    """The beta-VAE metric: accuracy of a logistic regression naming the shared factor."""
    sampler = FactorSampler(factors, np.random.RandomState(seed))
    x_train, y_train = _beta_vae_points(reps, sampler, num_train, batch_size)
    x_eval, y_eval = _beta_vae_points(reps, sampler, num_eval, batch_size)
    clf = LogisticRegression(max_iter=2000).fit(x_train, y_train)
    return {"train_accuracy": float(clf.score(x_train, y_train)),
            "eval_accuracy": float(clf.score(x_eval, y_eval))}


def _factor_vae_votes(reps, sampler: FactorSampler, n: int, batch_size: int, global_var, active):
    k = sampler.rng.randint(sampler.num_factors, size=n)
    anchor = sampler.rows(n)
    values = sampler.factors[anchor, k]
    rows = sampler.rows_sharing(np.repeat(k[:, None], batch_size, 1),
                                np.repeat(values[:, None], batch_size, 1))
    local_var = reps[rows].var(axis=1, ddof=1)  # (n, D)
    argmin = np.argmin(local_var[:, active] / global_var[active], axis=1)
    votes = np.zeros((sampler.num_factors, int(active.sum())), np.int64)
    np.add.at(votes, (k, argmin), 1)
    return votes


def factor_vae_score(reps: np.ndarray, factors: np.ndarray, seed: int = 0,
                     num_train: int = 10_000, num_eval: int = 5_000, batch_size: int = 64,
                     num_variance_estimate: int = 10_000) -> dict:
    """The FactorVAE metric: accuracy of the majority-vote classifier on argmin-variance votes."""
    sampler = FactorSampler(factors, np.random.RandomState(seed))
    global_var = reps[sampler.rows(num_variance_estimate)].var(axis=0, ddof=1)
    active = np.sqrt(global_var) >= 0.05
    if not active.any():
        return {"train_accuracy": 0.0, "eval_accuracy": 0.0, "active_dims": 0}
    train = _factor_vae_votes(reps, sampler, num_train, batch_size, global_var, active)
    evals = _factor_vae_votes(reps, sampler, num_eval, batch_size, global_var, active)
    classifier = np.argmax(train, axis=0)  # each active dim -> the factor it votes for most
    cols = np.arange(train.shape[1])
    return {"train_accuracy": float(train[classifier, cols].sum() / train.sum()),
            "eval_accuracy": float(evals[classifier, cols].sum() / evals.sum()),
            "active_dims": int(active.sum())}


def histogram_discretize(x: np.ndarray, num_bins: int = 20) -> np.ndarray:
    """Per column, the bin of each value among num_bins equal-width bins over its range."""
    out = np.zeros(x.shape, np.int64)
    for j in range(x.shape[1]):
        out[:, j] = np.digitize(x[:, j], np.histogram(x[:, j], num_bins)[1][:-1])
    return out


def mutual_information(codes: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """(D, K) discrete mutual information (nats) between code columns and factor columns."""
    return np.array([[mutual_info_score(factors[:, k], codes[:, d])
                      for k in range(factors.shape[1])] for d in range(codes.shape[1])])


def mig(reps: np.ndarray, factors: np.ndarray, seed: int = 0, num_train: int = 10_000,
        num_bins: int = 20) -> dict:
    """Mutual Information Gap, and the (D, K) mutual information and factor entropies behind it."""
    rows = np.random.RandomState(seed).randint(len(reps), size=num_train)
    codes, ys = histogram_discretize(reps[rows], num_bins), factors[rows]
    mi = mutual_information(codes, ys)
    entropy = np.array([mutual_info_score(ys[:, k], ys[:, k]) for k in range(ys.shape[1])])
    top = np.sort(mi, axis=0)[::-1]
    gap = (top[0] - top[1]) / entropy
    return {"mig": float(gap.mean()), "mig_per_factor": gap.tolist(), "mutual_info": mi.tolist(),
            "entropy": entropy.tolist()}


DCI_TRAIN = 2_000


def _train_test(reps, factors, seed: int, num_train: int, num_test: int):
    rows = np.random.RandomState(seed).randint(len(reps), size=num_train + num_test)
    return (reps[rows[:num_train]], factors[rows[:num_train]], reps[rows[num_train:]],
            factors[rows[num_train:]])


def _one_minus_entropy(p: np.ndarray, base: int) -> np.ndarray:
    """1 - H(p) / log(base) for each row of a (n, base) matrix of non-negative weights."""
    p = p / np.maximum(p.sum(1, keepdims=True), 1e-12)
    h = -(p * np.log(np.maximum(p, 1e-12))).sum(1) / np.log(base)
    return 1 - h


def dci(reps: np.ndarray, factors: np.ndarray, seed: int = 0, num_train: int = 10_000,
        num_test: int = 5_000) -> dict:
    """DCI disentanglement, completeness and informativeness, with the feature importances of
    gradient-boosted trees (sklearn's defaults, as disentanglement_lib)."""
    x_tr, y_tr, x_te, y_te = _train_test(reps, factors, seed, num_train, num_test)
    d, k = reps.shape[1], factors.shape[1]
    r = np.zeros((d, k))
    train_acc, test_acc = [], []
    for j in range(k):
        model = GradientBoostingClassifier(random_state=seed).fit(x_tr, y_tr[:, j])
        r[:, j] = np.abs(model.feature_importances_)
        train_acc.append(model.score(x_tr, y_tr[:, j]))
        test_acc.append(model.score(x_te, y_te[:, j]))
    rho = r.sum(1) / max(r.sum(), 1e-12)
    return {"disentanglement": float((rho * _one_minus_entropy(r, k)).sum()) if k > 1 else 1.0,
            "completeness": float(_one_minus_entropy(r.T, d).mean()) if d > 1 else 1.0,
            "informativeness_train": float(np.mean(train_acc)),
            "informativeness_test": float(np.mean(test_acc)), "importance": r.tolist()}


def sap(reps: np.ndarray, factors: np.ndarray, seed: int = 0, num_train: int = 10_000,
        num_test: int = 5_000) -> dict:
    """SAP score for discrete factors: per (code, factor) the test accuracy of a balanced linear
    SVM on that code alone (C = 0.01, as disentanglement_lib); the mean over factors of the gap
    between the two codes that predict it best."""
    x_tr, y_tr, x_te, y_te = _train_test(reps, factors, seed, num_train, num_test)
    d, k = reps.shape[1], factors.shape[1]
    acc = np.zeros((d, k))
    for i in range(d):
        for j in range(k):
            svm = LinearSVC(C=0.01, class_weight="balanced", random_state=seed)
            acc[i, j] = svm.fit(x_tr[:, i:i + 1], y_tr[:, j]).score(x_te[:, i:i + 1], y_te[:, j])
    top = np.sort(acc, axis=0)[::-1]
    return {"sap": float((top[0] - top[1]).mean()) if d > 1 else 0.0, "accuracy": acc.tolist()}


def disentanglement_scores(reps: np.ndarray, factors: np.ndarray, seed: int = 0,
                           num_train: int = 10_000, num_eval: int = 5_000) -> dict:
    """The five metrics with disentanglement_lib's defaults (smaller num_* for quick checks)."""
    reps, factors = np.asarray(reps, np.float64), np.asarray(factors, np.int64)
    return {"beta_vae": beta_vae_score(reps, factors, seed, num_train, num_eval),
            "factor_vae": factor_vae_score(reps, factors, seed, num_train, num_eval),
            "mig": mig(reps, factors, seed, num_train),
            # gradient boosting over dSprites' 113 classes is slow: DCI reads fewer points
            "dci": dci(reps, factors, seed, min(num_train, DCI_TRAIN), min(num_eval, DCI_TRAIN // 2)),
            "sap": sap(reps, factors, seed, num_train, num_eval)}


def disentanglement_markdown(scores: dict, factor_names) -> str:
    """The scores, and MIG per factor, as a Markdown table (DCI and SAP when present)."""
    m = scores["mig"]
    extra = [("DCI disentanglement", scores["dci"]["disentanglement"]),
             ("DCI completeness", scores["dci"]["completeness"])] if "dci" in scores else []
    extra += [("SAP", scores["sap"]["sap"])] if "sap" in scores else []
    rows = ["| beta-VAE metric | FactorVAE metric | MIG | " + "".join(f"{n} | " for n, _ in extra)
            + " | ".join(f"MIG {n}" for n in factor_names) + " |",
            "|---" * (3 + len(extra) + len(factor_names)) + "|",
            f"| {scores['beta_vae']['eval_accuracy']:.3f} | "
            f"{scores['factor_vae']['eval_accuracy']:.3f} | {m['mig']:.3f} | "
            + "".join(f"{v:.3f} | " for _, v in extra)
            + " | ".join(f"{v:.3f}" for v in m["mig_per_factor"]) + " |"]
    return "\n".join(rows) + "\n"
