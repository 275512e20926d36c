"""Exact conditional samplers shared by the Gibbs kernels (bayesimg.models.core.conditionals).

* ``inverse_gaussian`` against scipy's law by a Kolmogorov–Smirnov test, including
  the μ → ∞ limit (the Lévy law, which the GSMTR Gibbs sweep meets whenever a row
  or gene of W is exactly zero: μ = √(λσ²/‖w‖²) = ∞).
* ``gaussian_columns_given_precision`` (Cholesky of the d×d precision) and
  ``gaussian_columns_wide`` (Bhattacharya–Chakraborty–Mallick, n×n system) must draw
  the same N(A⁻¹XᵀY, σ²A⁻¹) column-wise: empirical means and covariances from many
  draws are compared with the closed form, for d > n and d < n.

All randomness comes from fixed JAX keys, so every statistic below is a fixed
number; the thresholds are chosen so that a correct sampler passes with
probability ≥ 0.999 over keys (stated per test), while a wrong law fails.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import bayesimg  # noqa: F401  (float64 on CPU)
from bayesimg.models.core.conditionals import (
    gaussian_columns_given_precision,
    gaussian_columns_wide,
    inverse_gaussian,
)

N_IG = 20_000   # KS with 20 000 draws detects a CDF error of ~0.013 (1.36/√N) at α = 0.05


# --------------------------------------------------------------------- inverse Gaussian
@pytest.mark.parametrize(("mean", "shape", "seed"), [
    (1.0, 1.0, 0),
    (0.1, 5.0, 1),      # concentrated: CV = √(μ/λ) ≈ 0.14
    (3.0, 0.5, 2),      # very skewed: CV ≈ 2.4
    (1e-6, 1.0, 3),     # tiny μ (a large ‖w‖ relative to σ): CV = 1e-3
    (25.0, 1e-2, 4),    # huge μ/λ: most mass near 0, heavy right tail
    (1e8, 2.0, 5),      # numerically Lévy(λ): the cancellation-free root must hold
])
def test_inverse_gaussian_matches_scipy(mean, shape, seed):
    x = np.asarray(inverse_gaussian(jax.random.PRNGKey(seed), jnp.full((N_IG,), mean), shape))
    assert x.dtype == np.float64
    assert np.all(np.isfinite(x)) and np.all(x > 0)
    # scipy's invgauss(mu, scale) has mean mu·scale and shape λ = scale.
    law = stats.invgauss(mu=mean / shape, scale=shape)
    # Under a correct sampler the p-value is U(0,1): p < 1e-3 happens with prob. 1e-3.
    assert stats.kstest(x, law.cdf).pvalue > 1e-3
    # The sample mean is a second, moment-based check (finite variance μ³/λ), except
    # for μ ≫ λ where the variance is astronomically large.
    if mean / shape <= 10:
        se = np.sqrt(mean**3 / shape / N_IG)
        assert abs(x.mean() - mean) < 5 * se


@pytest.mark.parametrize("mean", [1e8, np.inf])
def test_inverse_gaussian_levy_limit(mean):
    """μ → ∞: InvGauss(μ, λ) → Lévy(0, λ) (density ∝ x^{-3/2} e^{−λ/(2x)})."""
    lam = 0.7
    x = np.asarray(inverse_gaussian(jax.random.PRNGKey(11), jnp.full((N_IG,), mean), lam))
    assert np.all(np.isfinite(x)) and np.all(x > 0)
    assert stats.kstest(x, stats.levy(scale=lam).cdf).pvalue > 1e-3
    # the Lévy median is λ / (2 (erfc⁻¹(1/2))²) ≈ 2.198 λ: a direct check of the scale
    median = stats.levy(scale=lam).median()
    # binomial SE of the fraction below the true median is 0.5/√N = 0.0035
    assert abs(np.mean(x < median) - 0.5) < 5 * 0.5 / np.sqrt(N_IG)


def test_inverse_gaussian_broadcasts_per_entry():
    """Vector μ with scalar λ: each entry follows its own law (probability-integral
    transform of every entry through its own CDF must be U(0,1))."""
    means = jnp.asarray(np.tile([0.05, 0.5, 5.0, np.inf], N_IG // 4))
    lam = 2.0
    x = np.asarray(inverse_gaussian(jax.random.PRNGKey(5), means, lam))
    m = np.asarray(means)
    pit = np.where(np.isinf(m), stats.levy(scale=lam).cdf(x),
                   stats.invgauss(mu=np.where(np.isinf(m), 1.0, m) / lam, scale=lam).cdf(x))
    assert stats.kstest(pit, "uniform").pvalue > 1e-3
    for j in range(4):   # and separately per law, so one bad law cannot hide
        assert stats.kstest(pit[j::4], "uniform").pvalue > 1e-3


# --------------------------------------------------------------------- Gaussian columns
def _problem(n, d, c, seed):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    X[:, 1] = X[:, 0] + 0.3 * rng.standard_normal(n)        # some collinearity
    Y = rng.standard_normal((n, c))
    prior_prec = rng.uniform(0.2, 3.0, size=d)
    sigma = 0.7
    A = X.T @ X + np.diag(prior_prec)
    mean = np.linalg.solve(A, X.T @ Y)
    cov = sigma**2 * np.linalg.inv(A)
    return X, Y, prior_prec, sigma, mean, cov


def _draw_many(sampler, X, Y, prior_prec, sigma, n_draws, seed):
    Xj, Yj, pj = map(jnp.asarray, (X, Y, prior_prec))
    keys = jax.random.split(jax.random.PRNGKey(seed), n_draws)
    if sampler == "precision":
        gram, rhs = Xj.T @ Xj, Xj.T @ Yj
        f = jax.jit(jax.vmap(
            lambda k: gaussian_columns_given_precision(k, gram, rhs, pj, sigma)))
    else:
        f = jax.jit(jax.vmap(lambda k: gaussian_columns_wide(k, Xj, Yj, pj, sigma)))
    return np.asarray(f(keys))          # (n_draws, d, c)


@pytest.mark.parametrize("sampler", ["precision", "wide"])
@pytest.mark.parametrize(("n", "d"), [(6, 10), (15, 5)], ids=["d>n", "d<n"])
def test_gaussian_columns_moments(sampler, n, d):
    c, n_draws = 3, 40_000
    X, Y, prior_prec, sigma, mean, cov = _problem(n, d, c, seed=n * 100 + d)
    B = _draw_many(sampler, X, Y, prior_prec, sigma, n_draws, seed=d)
    assert B.shape == (n_draws, d, c) and B.dtype == np.float64

    # Means: z = (mean_hat − mean)/(sd/√N); d·c ≤ 30 entries, P(max|z| > 4.5) < 30·6.8e-6.
    z_mean = (B.mean(axis=0) - mean) / np.sqrt(np.diag(cov)[:, None] / n_draws)
    assert np.abs(z_mean).max() < 4.5, np.abs(z_mean).max()

    # Within-column covariances: Var(S_ab) ≈ (Σ_aa Σ_bb + Σ_ab²)/N for Gaussian draws;
    # c·d(d+1)/2 ≤ 165 entries, P(max|z| > 5) < 165·5.7e-7.
    centred = B - B.mean(axis=0)
    se_cov = np.sqrt((np.outer(np.diag(cov), np.diag(cov)) + cov**2) / n_draws)
    for j in range(c):
        emp = centred[:, :, j].T @ centred[:, :, j] / (n_draws - 1)
        z_cov = (emp - cov) / se_cov
        assert np.abs(z_cov).max() < 5, (j, np.abs(z_cov).max())

    # Columns are independent: cross-covariances are 0 with SE √(Σ_aa Σ_bb / N).
    se_cross = np.sqrt(np.outer(np.diag(cov), np.diag(cov)) / n_draws)
    for j in range(c - 1):
        cross = centred[:, :, j].T @ centred[:, :, j + 1] / (n_draws - 1)
        assert np.abs(cross / se_cross).max() < 5


def test_both_samplers_agree_with_each_other():
    """Two-sample check of the two algorithms on the same d > n problem (per-entry KS on
    the standardised draws; Bonferroni over 24 entries at family level 1e-3)."""
    X, Y, prior_prec, sigma, mean, cov = _problem(5, 8, 3, seed=7)
    n_draws = 10_000
    a = _draw_many("precision", X, Y, prior_prec, sigma, n_draws, seed=1)
    b = _draw_many("wide", X, Y, prior_prec, sigma, n_draws, seed=2)
    pvals = [stats.ks_2samp(a[:, i, j], b[:, i, j]).pvalue
             for i in range(a.shape[1]) for j in range(a.shape[2])]
    assert min(pvals) > 1e-3 / len(pvals)


def test_wide_sampler_is_exact_in_the_noise_free_limit():
    """σ → 0: both samplers must return the posterior mean A⁻¹XᵀY itself (a
    deterministic identity of the BCM algebra, tolerance from float64 round-off)."""
    X, Y, prior_prec, _, mean, _ = _problem(6, 10, 2, seed=3)
    sigma = 1e-12
    for sampler in ("precision", "wide"):
        B = _draw_many(sampler, X, Y, prior_prec, sigma, 3, seed=0)
        np.testing.assert_allclose(B, np.broadcast_to(mean, B.shape), rtol=1e-8, atol=1e-9)


@pytest.mark.parametrize(("n", "d"), [(6, 10), (15, 5)], ids=["d>n", "d<n"])
def test_collapsed_scale_gets_the_marginal_quadratic_form(n, d):
    """With a callable σ² (the collapsed (σ², B) draw of GSMTR's Gibbs sweep) both samplers
    hand it q = Σ_j y_jᵀ(I + X D⁻¹ Xᵀ)⁻¹ y_j, the quadratic form left when B ~ N(0, σ²D⁻¹)
    is integrated out, and then draw B with the σ² it returns (same key: the same draw as
    with that σ fixed)."""
    c = 3
    X, Y, prior_prec, _, _, _ = _problem(n, d, c, seed=7)
    M = np.eye(n) + (X / prior_prec) @ X.T
    q_exact = float(np.sum(Y * np.linalg.solve(M, Y)))
    Xj, Yj, pj = map(jnp.asarray, (X, Y, prior_prec))
    key = jax.random.PRNGKey(3)
    scale = float(np.sqrt(q_exact))

    def variance(q):     # σ² := q, so the returned σ² shows the q it was given
        return q

    for name, collapsed, fixed in [
        ("precision",
         lambda: gaussian_columns_given_precision(key, Xj.T @ Xj, Xj.T @ Yj, pj, variance,
                                                  rhs_sq=jnp.sum(Yj * Yj)),
         lambda: gaussian_columns_given_precision(key, Xj.T @ Xj, Xj.T @ Yj, pj, scale)),
        ("wide",
         lambda: gaussian_columns_wide(key, Xj, Yj, pj, variance),
         lambda: gaussian_columns_wide(key, Xj, Yj, pj, scale)),
    ]:
        B, s2 = collapsed()
        np.testing.assert_allclose(float(s2), q_exact, rtol=1e-10, err_msg=name)
        np.testing.assert_allclose(B, fixed(), rtol=1e-9, atol=1e-12, err_msg=name)


def test_collapsed_scale_needs_the_target_norm():
    with pytest.raises(ValueError, match="rhs_sq"):
        gaussian_columns_given_precision(jax.random.PRNGKey(0), jnp.eye(2), jnp.ones((2, 1)),
                                         jnp.ones(2), lambda q: q)
