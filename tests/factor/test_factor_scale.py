"""The pieces that make the factor Gibbs sweep scale, and the data-scale variance explained.

* packed precisions: the unrolled Cholesky on packed, transposed matrices gives the
  same draw as LAPACK (x = Q⁻¹r + L⁻ᵀε), and the packed outer products sum to GᵀG;
* the sweep's uniforms lie in (0, 1] and are uniform (KS);
* Pólya-Gamma information is drawn only at observed entries (exactly zero at
  missing ones) and keeps E[ω] = tanh(c/2)/(2c) with one uniform per term;
* label-dependent sites are thinned, never streamed;
* variance explained: every draw in [0, 1] for Gaussian and Bernoulli views, and
  the posterior mean within 0.08 of the same statistic computed from the planted
  truth (brute force, numpy).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import bayesimg
from bayesimg.data.simulate_factor import simulate_factor
from bayesimg.inference.storage import plan_storage
from bayesimg.models import MultiViewFactor
from bayesimg.models.factor import outputs as fo
from bayesimg.models.factor.gibbs import SweepRandoms, uniform_open_closed
from bayesimg.models.factor.packed import (
    pack,
    packed_gaussian_draw,
    packed_outer,
    packed_outer_t,
    unpack,
)


def test_packed_draw_equals_lapack_draw():
    rng = np.random.default_rng(0)
    B, q = 70, 6
    A = rng.standard_normal((B, q, q + 3))
    prec = A @ A.transpose(0, 2, 1) + 0.1 * np.eye(q)
    rhs, eps = rng.standard_normal((B, q)), rng.standard_normal((B, q))
    got = np.asarray(packed_gaussian_draw(pack(jnp.asarray(prec)), jnp.asarray(rhs.T),
                                          jnp.asarray(eps.T))).T
    L = np.linalg.cholesky(prec)
    want = np.stack([np.linalg.solve(prec[b], rhs[b]) + np.linalg.solve(L[b].T, eps[b])
                     for b in range(B)])
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)


def test_packed_outer_sums_to_gram():
    G = np.random.default_rng(1).standard_normal((40, 7))
    gram = unpack(jnp.sum(packed_outer(jnp.asarray(G)), axis=0)[:, None], 7)[0]
    np.testing.assert_allclose(gram, G.T @ G, rtol=1e-12)
    # the transposed builder (wide batches) gives the same entries in the same order
    np.testing.assert_array_equal(packed_outer_t(jnp.asarray(G.T)), packed_outer(G).T)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_uniforms_in_open_closed_unit_interval(dtype):
    if dtype == jnp.float64 and not jax.config.jax_enable_x64:
        pytest.skip("float64 disabled")
    u = np.asarray(uniform_open_closed(jax.random.PRNGKey(2), (200_000,), dtype))
    assert u.dtype == dtype and np.all(u > 0) and np.all(u <= 1)
    assert stats.kstest(u, "uniform").pvalue > 1e-4


def test_polya_gamma_only_at_observed_entries():
    data, _ = simulate_factor(n=60, sizes={"b": 30}, likelihoods={"b": "bernoulli"},
                              missing=0.6, n_factors=2, seed=3)
    model = MultiViewFactor(2)
    args = model.model_args(data, "gibbs")
    kernel = model.gibbs_kernel(data)
    assert kernel.pg_uniforms == 1                       # Bernoulli only: one per term
    obs = args["Mw"] > 0
    np.testing.assert_array_equal(np.sort(args["pg_index"]), np.flatnonzero(obs.ravel()))
    psi = jnp.asarray(np.random.default_rng(4).normal(0, 2, obs.shape))
    b = jnp.ones(obs.shape[1])
    idx = jnp.asarray(args["pg_index"])
    n_u = idx.shape[0] * kernel.pg_terms

    def one(key):
        rand = SweepRandoms(key, psi.dtype, 0, 0, n_u)
        return kernel._pg_information(rand, idx, psi, b)

    om = np.asarray(jax.vmap(one)(jax.random.split(jax.random.PRNGKey(5), 600)))
    assert np.all(om[:, ~obs] == 0.0) and np.all(om[:, obs] > 0)
    c = np.abs(np.asarray(psi))[obs]
    expect = np.tanh(c / 2) / (2 * c)
    # each entry's mean over 600 draws: sd(ω) ≤ 0.21, so 5 standard errors ≈ 0.043;
    # the pooled relative error is much tighter
    np.testing.assert_allclose(om[:, obs].mean(0), expect, atol=0.045)
    assert abs(om[:, obs].mean() / expect.mean() - 1) < 0.01


def test_label_dependent_sites_are_thinned_not_streamed():
    sizes = {"W_a": 100_000, "mu_a": 20_000, "Z": 1500}
    plan = plan_storage(sizes, 2, 1000, max_draw_bytes=1e8,
                        not_streamed=frozenset({"W_a", "Z"}))
    assert plan.thinned and plan.streamed_sites == ("mu_a",)


def _truth_r2(truth, data, view):
    """The statistic of :func:`fo.variance_explained` at the planted parameters."""
    v = data.view(view)
    obs = v.observed
    n_obs = obs.sum(0)
    Z, W, mu = truth.Z, truth.W[view], truth.mu[view]

    def var(x):
        m = (x * obs).sum(0) / n_obs
        return (((x - m) * obs) ** 2).sum(0) / n_obs

    if v.likelihood == "gaussian":
        fit_v = var(Z @ W.T).sum()
        resid = (obs * truth.noise_sd[view][None, :] ** 2).sum(0) / n_obs
    else:
        p = 1 / (1 + np.exp(-(mu[None, :] + Z @ W.T)))
        p0 = 1 / (1 + np.exp(-mu[None, :]))
        fit_v = var(p - p0).sum()
        resid = (obs * p * (1 - p)).sum(0) / n_obs
    return fit_v / (fit_v + resid.sum())


def test_variance_explained_on_data_scale_in_unit_interval():
    data, truth = simulate_factor(n=150, sizes={"g": 80, "b": 100},
                                  likelihoods={"g": "gaussian", "b": "bernoulli"},
                                  missing={"g": 0.1, "b": 0.5}, n_factors=3, seed=6)
    fit = bayesimg.fit(MultiViewFactor(4), data, method="gibbs", chains=1, warmup=120,
                       draws=60, seed=0, progress=False)
    ve = fo.variance_explained(fit, data, n_draws=20)
    assert list(ve["scale"].values) == ["data", "probability"]
    for name in ("r2", "r2_total"):
        x = ve[name].values
        assert np.all(x >= 0) and np.all(x <= 1)
        assert np.all(ve[f"{name}_lower"].values >= 0)
    for view in ("g", "b"):
        want = _truth_r2(truth, data, view)
        got = float(ve["r2_total_mean"].sel(view=view))
        assert abs(got - want) < 0.08, (view, got, want)
