"""Calibration of the BNMix Gibbs kernel: interval coverage under exact prior draws.

Simulation-based check with memberships known (``known_labels``) and the node
order given, so every block of the kernel (Dirichlet weights, conjugate
regressions, residual variances, horseshoe scales) is exercised without label
switching: R data sets are drawn from the *model's own prior* (K = 2, p = 3,
n = 60, global scale τ₀ = 0.5, no standardisation), each is fitted, and the
central 80% intervals of π, μ, σ² and the allowed edge weights must cover the
truth at close to the nominal rate.  A wrong conditional (e.g. a σ² shape off by
m/2, a missing σ scaling of the slab) shifts coverage well outside the band.
Both priors are checked: independent clusters (``pooling=False``) and the
partially pooled default (shared means and network, horseshoe deviations),
the latter exercising the joint shared + deviation regression draw; and the
pooled model with the order drawn from its uniform prior and *sampled*, which
checks the order moves (their λ exchange and σ² rescaling are part of the
acceptance ratio; a wrong Jacobian or prior term biases B's coverage).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import bayesimg
from bayesimg.data import make_views
from bayesimg.models import BNMix

K, P, N = 2, 3, 24
TAU0 = 0.5
R = 40
LEVEL = 0.8


def prior_draw(rng, pooled, order):
    pi = rng.dirichlet(np.ones(K))
    labels = rng.choice(K, N, p=pi)
    sigma2 = 1.0 / rng.gamma(2.0, 1.0, (K, P))
    tau = TAU0 * np.abs(rng.standard_cauchy(K))
    lam = np.abs(rng.standard_cauchy((K, P, P)))
    if pooled:
        # shared means and network plus horseshoe deviations (module docstring)
        omega = np.abs(rng.standard_cauchy())
        mu = rng.normal(0.0, 2.0, P) + omega * np.abs(rng.standard_cauchy((K, P))) \
            * rng.standard_normal((K, P))
        tau_shared = TAU0 * np.abs(rng.standard_cauchy())
        B0 = rng.normal(0.0, 1.0, (P, P)) * tau_shared * np.abs(rng.standard_cauchy((P, P)))
    else:
        mu = rng.normal(0.0, 2.0, (K, P))
        B0 = np.zeros((P, P))
    B = np.zeros((K, P, P))
    for a in range(P):
        for c in range(a + 1, P):
            i, j = order[a], order[c]
            B[:, i, j] = B0[i, j] + rng.normal(0.0, np.sqrt(sigma2[:, j]) * tau * lam[:, i, j])
    X = np.zeros((N, P))
    for j in order:
        X[:, j] = (mu[labels, j] + np.einsum("ni,ni->n", X, B[labels][:, :, j])
                   + np.sqrt(sigma2[labels, j]) * rng.standard_normal(N))
    return pi, labels, mu, sigma2, tau, B, X


@pytest.mark.parametrize("pooled, sample_order", [(False, False), (True, False), (True, True)],
                         ids=["independent", "pooled", "pooled-order-sampled"])
def test_interval_coverage_with_known_labels(pooled, sample_order):
    rng = np.random.default_rng(2024)
    model = BNMix(K, order=None if sample_order else [0, 1, 2], global_scale=TAU0,
                  known_labels="group", standardize=False, min_cluster_size=1,
                  init_restarts=2, pooling=pooled)
    hits: dict[str, list[bool]] = {"pi": [], "mu": [], "sigma2": [], "B": [], "tau": []}
    lo_q, hi_q = (1 - LEVEL) / 2, 1 - (1 - LEVEL) / 2
    iu = np.triu_indices(P, 1)
    off = np.nonzero(~np.eye(P, dtype=bool))
    for r in range(R):
        # the order: uniform over the 3! orders when the model samples it (its prior)
        order = rng.permutation(P) if sample_order else np.arange(P)
        pi, labels, mu, sigma2, tau, B, X = prior_draw(rng, pooled, order)
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
                cover = cover[:, off[0], off[1]] if sample_order else cover[:, iu[0], iu[1]]
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


def test_order_moves_target_the_same_order_posterior():
    """The scale-carrying order moves (λ exchange, σ² rescaling; adjacent passes plus
    relocations/reversals) against plain adjacent swaps at fixed λ, σ² (a textbook
    Metropolis-within-Gibbs step): both are exact, so on a 3-node problem their
    order frequencies (6 orders) must agree.  Dropping the σ² prior ratio from the
    acceptance moves them ≈ 0.1 apart in total variation; two valid kernels differ by
    ≈ 0.03 (Monte Carlo error of 2 × 18 000 sweeps)."""
    import itertools

    import jax

    from bayesimg.inference.common import device_args
    from bayesimg.models.bnmix.gibbs import BNMixGibbs

    rng = np.random.default_rng(3)
    n = 40
    g = np.repeat([0, 1], n // 2)
    X = np.zeros((n, 3))
    X[:, 0] = rng.normal(0, 1, n)
    X[:, 1] = 0.6 * X[:, 0] + rng.normal(0, 0.8, n)
    X[:, 2] = np.where(g == 0, 0.7, -0.2) * X[:, 1] + 0.3 * X[:, 0] + rng.normal(0, 0.6, n)
    subjects = [f"s{i}" for i in range(n)]
    data = make_views({"x": pd.DataFrame(X, index=subjects, columns=list("abc"))},
                      labels=pd.DataFrame({"g": [f"g{z}" for z in g]}, index=subjects))
    kw = device_args(BNMix(2, known_labels="g", min_cluster_size=1, init_restarts=2)
                     .model_args(data, "gibbs"))
    index = {q: i for i, q in enumerate(itertools.permutations(range(3)))}

    def order_frequencies(kernel, sweeps=20000):
        freq = []
        for seed in range(2):
            state = kernel.init(jax.random.PRNGKey(seed), 0, None, (), kw)

            def body(s, _):
                s = kernel.sample(s, (), kw)
                return s, s.z["position"]

            _, pos = jax.jit(lambda s: jax.lax.scan(body, s, None, length=sweeps))(state)
            pos = np.asarray(pos)[sweeps // 10:]
            freq.append(np.bincount([index[tuple(np.argsort(q))] for q in pos], minlength=6)
                        / len(pos))
        return np.mean(freq, axis=0)

    plain = order_frequencies(BNMixGibbs(order_moves=1, carry_scales=False))
    carried = order_frequencies(BNMixGibbs(order_moves=1, relocations=1))
    assert plain.min() > 0.05          # a diffuse order posterior: every order visited
    assert 0.5 * np.abs(plain - carried).sum() < 0.06, (plain, carried)


def test_gibbs_sweep_draws_its_gamma_variates_at_positive_shapes(monkeypatch):
    """Every Gamma shape of a sweep is positive and finite: ``core.gamma`` runs its
    rejection rounds until all elements accept, so one shape ≤ 0 (θ's Beta shapes
    1 + Σx, 1 + n_k − Σx computed on a Gaussian column) made every sweep run all
    rounds over the whole array (twice the warm sweep time on the benchmark design)."""
    import jax

    import bayesimg.models.bnmix.gibbs as gibbs
    from bayesimg.inference.common import device_args

    rng = np.random.default_rng(5)
    n = 30
    X = rng.normal(-2.0, 1.0, (n, 3))                    # Gaussian columns
    X[:, 2] = rng.random(n) < 0.3                        # and one binary column
    subjects = [f"s{i}" for i in range(n)]
    frame = pd.DataFrame(X, index=subjects, columns=list("abc"))
    data = make_views({"x": frame})
    kw = device_args(BNMix(2, min_cluster_size=1, init_restarts=1).model_args(data, "gibbs"))
    shapes = []

    def recording_gamma(key, a, dtype=None):
        shapes.append(np.asarray(a))
        return gibbs.gamma.__wrapped__(key, a, dtype=dtype)

    recording_gamma.__wrapped__ = gibbs.gamma
    monkeypatch.setattr(gibbs, "gamma", recording_gamma)
    kernel = gibbs.BNMixGibbs(order_moves=0)
    state = kernel.init(jax.random.PRNGKey(0), 0, None, (), kw)
    state = kernel.sample(state, (), kw)                 # eager: the shapes are concrete
    a = np.concatenate(shapes)
    assert np.all(np.isfinite(a)) and a.min() > 0, a.min()
    assert np.all(np.isfinite(np.asarray(state.z["sigma2"])))
