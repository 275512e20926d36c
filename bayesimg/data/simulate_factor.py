"""Simulated multi-view data with a known sparse factor structure.

The benchmark design of issue 5 is the default: 3 Gaussian views with
D = 1000/500/200 features, K = 10 factors, 10% of entries missing at random.
Each factor is active in a random non-empty subset of views (so some factors
are shared and some view-specific, and pairs of factors are active in the same
view); within an active view a fraction ``feature_sparsity`` of features load
on it with weights ±U(0.5, 1.5); noise sds are U(0.5, 1) per feature.

Count views are generated on the logit scale: y ~ Bernoulli(σ(ψ)) or
Binomial(2, σ(ψ)).  ``outcome`` adds y = Zβ + ε (Gaussian) or a Bernoulli
outcome.  The complete data (before masking) are kept in the truth so
imputation can be scored.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np
import pandas as pd

from bayesimg.data.views import MultiViewData, View


@dataclasses.dataclass
class FactorTruth:
    Z: np.ndarray                       # (n, K)
    W: dict[str, np.ndarray]            # view → (D_m, K)
    active: np.ndarray                  # (M, K) bool: factor k loads on view m
    mu: dict[str, np.ndarray]
    noise_sd: dict[str, np.ndarray]     # Gaussian views
    complete: dict[str, np.ndarray]     # view → complete (n, D_m) data before masking
    beta: np.ndarray | None = None
    outcome_complete: np.ndarray | None = None


def simulate_factor(n: int = 500, sizes: Mapping[str, int] | None = None, *,
                    n_factors: int = 10, likelihoods: Mapping[str, str] | None = None,
                    missing: float | Mapping[str, float] = 0.1,
                    missing_views: float | Mapping[str, float] = 0.0,
                    feature_sparsity: float = 0.2, view_activity: float = 0.5,
                    noise_sd: tuple[float, float] = (0.5, 1.0),
                    outcome: str | None = None, outcome_factors: int = 2,
                    seed: int = 0) -> tuple[MultiViewData, FactorTruth]:
    """Simulate a :class:`MultiViewData` and its :class:`FactorTruth`.

    Parameters
    ----------
    sizes : mapping view → number of features (default {"v1": 1000, "v2": 500, "v3": 200})
    likelihoods : mapping view → "gaussian" | "bernoulli" | "binomial2"
    missing : fraction of entries missing at random (per view if a mapping)
    missing_views : fraction of subjects missing each view entirely
    view_activity : probability that a factor is active in a view
    outcome : None, "gaussian" or "bernoulli"; depends on the first ``outcome_factors``
    """
    rng = np.random.default_rng(seed)
    sizes = dict(sizes or {"v1": 1000, "v2": 500, "v3": 200})
    likelihoods = dict(likelihoods or {})
    views = list(sizes)
    M, K = len(views), n_factors
    active = rng.random((M, K)) < view_activity
    for k in range(K):
        if not active[:, k].any():
            active[rng.integers(M), k] = True
    Z = rng.standard_normal((n, K))
    subjects = np.asarray([f"s{i:05d}" for i in range(n)], dtype=object)
    truth = FactorTruth(Z=Z, W={}, active=active, mu={}, noise_sd={}, complete={})
    out_views = []
    for m, v in enumerate(views):
        d = sizes[v]
        lik = likelihoods.get(v, "gaussian")
        W = np.zeros((d, K))
        for k in np.flatnonzero(active[m]):
            n_on = max(2, int(round(feature_sparsity * d)))
            rows = rng.choice(d, n_on, replace=False)
            W[rows, k] = rng.choice([-1.0, 1.0], n_on) * rng.uniform(0.5, 1.5, n_on)
        psi = Z @ W.T
        if lik == "gaussian":
            mu = np.zeros(d)
            sd = rng.uniform(*noise_sd, d)
            Y = psi + mu + rng.standard_normal((n, d)) * sd
            truth.noise_sd[v] = sd
        else:
            mu = rng.normal(0.0, 0.5, d)
            p = 1.0 / (1.0 + np.exp(-(psi + mu)))
            trials = 1 if lik == "bernoulli" else 2
            Y = rng.binomial(trials, p).astype(float)
        truth.W[v], truth.mu[v], truth.complete[v] = W, mu, Y.copy()
        frac = missing[v] if isinstance(missing, Mapping) else missing
        Y[rng.random((n, d)) < frac] = np.nan
        frac_rows = missing_views.get(v, 0.0) if isinstance(missing_views, Mapping) \
            else missing_views
        Y[rng.random(n) < frac_rows] = np.nan
        out_views.append(View(name=v, values=Y, feature_names=np.asarray(
            [f"{v}_f{j}" for j in range(d)], dtype=str), likelihood=lik))
    # make sure nobody lost every view
    all_gone = np.all([np.isnan(v.values).all(axis=1) for v in out_views], axis=0)
    for i in np.flatnonzero(all_gone):
        v0 = out_views[0]
        v0.values[i] = truth.complete[v0.name][i]
    y = kind = None
    if outcome is not None:
        beta = np.zeros(K)
        beta[:outcome_factors] = rng.choice([-1.0, 1.0], outcome_factors) * 0.8
        lin = Z @ beta
        if outcome == "gaussian":
            y = lin + 0.5 * rng.standard_normal(n)
        else:
            y = rng.binomial(1, 1.0 / (1.0 + np.exp(-lin))).astype(float)
        truth.beta, truth.outcome_complete, kind = beta, y.copy(), outcome
    labels = pd.DataFrame({"group": np.where(Z[:, 0] > 0, "high_F1", "low_F1")},
                          index=subjects)
    data = MultiViewData(subjects=subjects, views=tuple(out_views), outcome=y,
                         outcome_name="y" if y is not None else None, outcome_kind=kind,
                         labels=labels, name="simulated_factor")
    return data, truth


def factor_recovery(Z_est: np.ndarray, Z_true: np.ndarray, threshold: float = 0.9):
    """Match estimated to true factors (Hungarian on |corr|).

    Returns ``(n_recovered, corr, perm, sign)``: true factor k ↔ estimated factor
    ``perm[k]`` times ``sign[k]`` with |r| = ``corr[k]``; recovered when |r| > threshold.
    """
    from scipy.optimize import linear_sum_assignment
    K = Z_true.shape[1]
    zt = (Z_true - Z_true.mean(0)) / Z_true.std(0)
    ze = Z_est - Z_est.mean(0)
    sd = ze.std(0)
    ze = ze / np.where(sd > 0, sd, 1.0)
    r = zt.T @ ze / len(zt)                                     # (K_true, K_est)
    rows, cols = linear_sum_assignment(-np.abs(r))
    corr = np.zeros(K)
    perm = np.full(K, -1)
    sign = np.ones(K)
    corr[rows] = np.abs(r[rows, cols])
    perm[rows] = cols
    sign[rows] = np.sign(r[rows, cols])
    return int(np.sum(corr > threshold)), corr, perm, sign
