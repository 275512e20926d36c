"""The site random-effect Gibbs blocks (bayesimg.models.core.site_effects) against
brute-force conjugate formulas: the joint [Γ; U] column draw and the per-site draw
against the dense Gaussian posterior (mean and covariance of many draws), and the
half-Cauchy auxiliary-variable τ update against its exact conditional density
(quadrature CDF, Kolmogorov–Smirnov)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats
from scipy.integrate import cumulative_trapezoid

from bayesimg.models.core.site_effects import (
    draw_site_scales,
    gaussian_columns_per_column_prior,
    site_effects_given_precisions,
)

N_DRAWS = 4000


def _check_moments(draws, mean, cov):
    """Sample mean within 4.5 MC standard errors; covariance within 12%/0.05 of exact."""
    se = np.sqrt(np.diag(cov) / draws.shape[0])
    assert np.all(np.abs(draws.mean(0) - mean) < 4.5 * se), (draws.mean(0), mean)
    np.testing.assert_allclose(np.cov(draws.T), cov, rtol=0.12, atol=0.05 * np.max(np.diag(cov)))


def test_joint_covariate_and_site_columns_match_the_dense_posterior():
    rng = np.random.default_rng(0)
    n, r, S, c = 30, 2, 3, 2
    Z = np.hstack([rng.standard_normal((n, r)), np.eye(S)[rng.integers(0, S, n)]])
    T = rng.standard_normal((n, c))
    v = 0.7
    prec = np.vstack([np.full((r, c), 1 / 4.0), np.tile(1 / np.array([0.3, 2.0]) ** 2, (S, 1))])
    keys = jax.random.split(jax.random.PRNGKey(1), N_DRAWS)
    draw = jax.jit(jax.vmap(lambda k: gaussian_columns_per_column_prior(
        k, jnp.asarray(Z.T @ Z), jnp.asarray(Z.T @ T), jnp.asarray(prec), v)))
    out = np.asarray(draw(keys))                                       # (N, r + S, c)
    for j in range(c):
        P = Z.T @ Z / v + np.diag(prec[:, j])                          # dense conjugate form
        cov = np.linalg.inv(P)
        _check_moments(out[:, :, j], cov @ Z.T @ T[:, j] / v, cov)


def test_site_rows_given_residual_precisions_match_the_dense_posterior():
    rng = np.random.default_rng(2)
    S, c = 3, 3
    A = rng.standard_normal((c, c))
    Sigma = A @ A.T + c * np.eye(c)
    counts = np.array([5.0, 12.0, 2.0])
    resid_sums = rng.standard_normal((S, c)) * 3
    K = np.linalg.inv(Sigma)
    prec = counts[:, None, None] * K[None]
    lin = resid_sums @ K
    tau = np.array([0.4, 1.0, 2.5])
    keys = jax.random.split(jax.random.PRNGKey(3), N_DRAWS)
    out = np.asarray(jax.jit(jax.vmap(lambda k: site_effects_given_precisions(
        k, jnp.asarray(prec), jnp.asarray(lin), jnp.asarray(tau))))(keys))
    for s in range(S):
        # brute force: y_s,t ~ N(u_s, Σ) for counts[s] rows summing to resid_sums[s]
        cov = np.linalg.inv(counts[s] * K + np.diag(1 / tau**2))
        _check_moments(out[:, s], cov @ K @ resid_sums[s], cov)


def test_half_cauchy_scale_update_leaves_its_conditional_invariant():
    """τ | u ∝ C⁺(τ; 0, A) Π_s N(u_s; 0, τ²): many chains of the (τ², ν) Gibbs pair,
    started from the exact conditional (by inverse CDF on a fine grid), stay there."""
    u = np.array([[0.5], [-0.2], [0.9]])                            # S = 3 sites, one phenotype
    A = 1.0
    grid = np.linspace(1e-4, 60.0, 400_001)
    logp = -np.log1p((grid / A) ** 2) - u.shape[0] * np.log(grid) - np.sum(u**2) / (2 * grid**2)
    cdf = cumulative_trapezoid(np.exp(logp - logp.max()), grid, initial=0.0)
    cdf /= cdf[-1]
    n_chains = 2000
    rng = np.random.default_rng(4)
    tau0 = np.interp(rng.uniform(size=n_chains), cdf, grid)
    nu0 = 1.0 / rng.gamma(1.0, 1.0 / (1 / A**2 + 1 / tau0**2))      # ν | τ exact

    def chain(key, tau, nu):
        def body(i, carry):
            tau, nu = carry
            return draw_site_scales(jax.random.fold_in(key, i), jnp.asarray(u), nu, A)
        return jax.lax.fori_loop(0, 10, body, (tau, nu))

    keys = jax.random.split(jax.random.PRNGKey(5), n_chains)
    tau, _ = jax.jit(jax.vmap(chain))(keys, jnp.asarray(tau0)[:, None], jnp.asarray(nu0)[:, None])
    tau = np.asarray(tau)[:, 0]
    p = stats.kstest(tau, lambda t: np.interp(t, grid, cdf)).pvalue
    assert p > 1e-3, p
    # and not the prior: a wrong rate (e.g. dropping Σu²/2) moves the median far
    assert abs(np.median(tau) - np.interp(0.5, cdf, grid)) < 0.05


def test_l2r2_site_draw_integrates_the_subject_intercepts_exactly():
    """L2R2's u | θ, ω (subject intercepts b integrated out) against the dense Gaussian
    posterior of u from all visits: y = μ + H u + 1 b_i + ε, b_i ~ N(0, D), ε ~ N(0, Σ)."""
    from bayesimg.models.glrr.longitudinal_gibbs import L2R2Gibbs

    rng = np.random.default_rng(6)
    c, d = 2, 3
    visits = np.array([2, 3, 1, 2, 3])                         # 5 subjects
    site_of = np.array([0, 0, 1, 1, 1])
    subject = np.repeat(np.arange(5), visits)
    N = subject.size
    X = rng.standard_normal((N, d))
    Y = rng.standard_normal((N, c))
    H = np.eye(2)[site_of[subject]]
    z = {"U": rng.standard_normal((d, 1)), "delta": np.array([0.7]),
         "V": rng.standard_normal((c, 1)), "Lam": rng.standard_normal((c, 1)) * 0.5,
         "psi": np.array([0.6, 1.1])}
    Sigma = z["Lam"] @ z["Lam"].T + np.diag(z["psi"])
    omega, tau = np.array([0.5, 0.9]), np.array([0.8, 1.5])
    mask = (np.arange(3)[None, :] < visits[:, None]).astype(float)
    kw = {"X": jnp.asarray(X), "Y": jnp.asarray(Y), "Z": None, "H": jnp.asarray(H),
          "subject_index": jnp.asarray(subject), "visit_mask": jnp.asarray(mask)}
    kernel = L2R2Gibbs.__new__(L2R2Gibbs)          # the block uses no settings
    keys = jax.random.split(jax.random.PRNGKey(7), N_DRAWS)
    draw = jax.jit(jax.vmap(lambda k: kernel._collapsed_sites(
        k, {key: jnp.asarray(v) for key, v in z.items()}, kw, jnp.asarray(omega),
        jnp.asarray(tau))[0]))
    out = np.asarray(draw(keys)).reshape(N_DRAWS, -1)            # (draws, site·phenotype)
    # dense: vec(Y − μ) (visit-major) ~ N(A vec u, C)
    r = (Y - X @ ((z["U"] * z["delta"]) @ z["V"].T)).ravel()
    same = (subject[:, None] == subject[None, :]).astype(float)
    C = np.kron(np.eye(N), Sigma) + np.kron(same, np.diag(omega))
    A = np.kron(H, np.eye(c))
    P = A.T @ np.linalg.solve(C, A) + np.diag(np.tile(1 / tau**2, 2))
    cov = np.linalg.inv(P)
    _check_moments(out, cov @ A.T @ np.linalg.solve(C, r), cov)
