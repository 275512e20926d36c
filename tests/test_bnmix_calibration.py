"""Calibration of the BNMix Gibbs kernel: interval coverage under exact prior draws.

Simulation-based check with memberships known (``known_labels``) and the node
order given, so every block of the kernel (Dirichlet weights, conjugate
regressions, residual variances, horseshoe scales) is exercised without label
switching: R data sets are drawn from the *model's own prior* (K = 2, p = 3,
n = 60, global scale τ₀ = 0.5, no standardisation), each is fitted, and the
central 80% intervals of π, μ, σ² and the allowed edge weights must cover the
truth at close to the nominal rate.  A wrong conditional (e.g. a σ² shape off by
m/2, a missing σ scaling of the slab) shifts coverage well outside the band.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

import bayesimg
from bayesimg.data import make_views
from bayesimg.models import BNMix

K, P, N = 2, 3, 24
TAU0 = 0.5
R = 40
LEVEL = 0.8


def prior_draw(rng):
    pi = rng.dirichlet(np.ones(K))
    labels = rng.choice(K, N, p=pi)
    mu = rng.normal(0.0, 2.0, (K, P))
    sigma2 = 1.0 / rng.gamma(2.0, 1.0, (K, P))
    tau = TAU0 * np.abs(rng.standard_cauchy(K))
    lam = np.abs(rng.standard_cauchy((K, P, P)))
    B = np.zeros((K, P, P))
    for i in range(P):
        for j in range(i + 1, P):
            B[:, i, j] = rng.normal(0.0, np.sqrt(sigma2[:, j]) * tau * lam[:, i, j])
    X = np.zeros((N, P))
    for j in range(P):
        X[:, j] = (mu[labels, j] + np.einsum("ni,ni->n", X, B[labels][:, :, j])
                   + np.sqrt(sigma2[labels, j]) * rng.standard_normal(N))
    return pi, labels, mu, sigma2, tau, B, X


def test_interval_coverage_with_known_labels_and_order():
    rng = np.random.default_rng(2024)
    model = BNMix(K, order=[0, 1, 2], global_scale=TAU0, known_labels="group",
                  standardize=False, min_cluster_size=1, init_restarts=2)
    hits: dict[str, list[bool]] = {"pi": [], "mu": [], "sigma2": [], "B": [], "tau": []}
    lo_q, hi_q = (1 - LEVEL) / 2, 1 - (1 - LEVEL) / 2
    iu = np.triu_indices(P, 1)
    for r in range(R):
        pi, labels, mu, sigma2, tau, B, X = prior_draw(rng)
        if np.bincount(labels, minlength=K).min() < 2 or np.abs(X).max() > 1e6:
            continue  # both clusters need data; absurd prior tails are skipped
        subjects = [f"s{i}" for i in range(N)]
        group = pd.Series([f"g{z}" for z in labels], index=subjects)
        data = make_views({"x": pd.DataFrame(X, index=subjects, columns=["a", "b", "c"])},
                          standardize=False, labels=pd.DataFrame({"group": group}))
        fit = bayesimg.fit(model, data, method="gibbs", chains=2, warmup=150, draws=300,
                           seed=r, progress=False)
        post = fit.posterior
        truth = {"pi": pi, "mu": mu, "sigma2": sigma2, "B": B, "tau": tau}
        for name in hits:
            draws = post[name].values.reshape((-1,) + post[name].shape[2:])
            lo, hi = np.quantile(draws, [lo_q, hi_q], axis=0)
            cover = (truth[name] >= lo) & (truth[name] <= hi)
            if name == "B":
                cover = cover[:, iu[0], iu[1]]
            hits[name].extend(np.ravel(cover).tolist())
    total = np.concatenate([np.asarray(v) for v in hits.values()])
    assert total.size >= 300
    overall = total.mean()
    per_group = {k: float(np.mean(v)) for k, v in hits.items()}
    # binomial sd of the pooled rate ≈ 0.02 (intervals within a data set are correlated,
    # so the band is ±0.08 overall, ±0.2 per group)
    assert abs(overall - LEVEL) < 0.08, per_group
    for name, rate in per_group.items():
        assert abs(rate - LEVEL) < 0.2, (name, per_group)
