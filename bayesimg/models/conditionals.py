"""Exact draws from conditional distributions that Gibbs kernels share.

All functions are pure JAX and jit/vmap-safe.

Cholesky factorisations go through :func:`bayesimg.models.linalg.factor_and_apply`
(or :func:`~bayesimg.models.linalg.robust_cholesky`): a matrix that is
positive definite in exact arithmetic can fail to factor in floating point
(duplicated SNP columns make XᵀX singular, and a tiny prior precision — huge
τ, ω under a small λ — leaves nothing to lift it, especially in float32).  The
factor is then retried with a small multiple of the identity added
(:data:`JITTER_START` × mean diagonal, × 10 per retry, at most
:data:`JITTER_TRIES` retries) and the number of retries is returned so that the
Gibbs kernels can expose it as the ``cholesky_jitter`` sample stat and the
driver can warn.  A jittered draw targets a slightly more concentrated
Gaussian than the exact conditional; a count of ``JITTER_TRIES + 1`` means that
even the largest jitter failed (the draw is then non-finite).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from bayesimg.models.linalg import (
    JITTER_START,
    JITTER_TRIES,
    cho_solve,
    factor_and_apply,
    robust_cholesky,
    solve_lower,
    solve_lower_t,
)

__all__ = ["JITTER_START", "JITTER_TRIES", "gaussian_columns_given_precision",
           "gaussian_columns_wide", "inverse_gaussian", "matrix_normal_kron",
           "robust_cholesky"]


def inverse_gaussian(key, mean, shape):
    r"""Draw from InvGauss(μ = ``mean``, λ = ``shape``) (Michael, Schucany & Haas 1976).

    With ν ~ N(0,1), y = ν², the smaller root of the chi-square transform is
    written in the cancellation-free form
    x = 4λ / (y (1 + √(1 + 4λ/(μy)))²), which stays exact as μ → ∞ (where the
    distribution tends to the Lévy law and x → λ/y); then x is kept with
    probability μ/(μ + x), else μ²/x.
    """
    mean = jnp.asarray(mean)
    shape = jnp.broadcast_to(jnp.asarray(shape, mean.dtype), mean.shape)
    k_norm, k_unif = jax.random.split(key)
    nu = jax.random.normal(k_norm, mean.shape, mean.dtype)
    y = jnp.maximum(nu * nu, jnp.finfo(mean.dtype).tiny)
    x = 4.0 * shape / (y * (1.0 + jnp.sqrt(1.0 + 4.0 * shape / (mean * y))) ** 2)
    u = jax.random.uniform(k_unif, mean.shape, mean.dtype)
    keep_x = u * (mean + x) <= mean
    return jnp.where(keep_x, x, mean * (mean / x))


def gaussian_columns_given_precision(key, gram, rhs, prior_precision, sigma, *,
                                     return_jitter=False, return_energy=False):
    """Draw every column j of B ~ N(A⁻¹ rhs_j, σ² A⁻¹), A = gram + diag(prior_precision).

    One Cholesky A = LLᵀ of the d×d matrix serves all columns, and two triangular
    solves give the draw: v = L⁻¹ rhs + σ ε (ε ~ N(0, I)), B = L⁻ᵀ v, which is
    A⁻¹ rhs + σ L⁻ᵀ ε (cost d³/3 + 2·c·d²).  Since LᵀB = v, the quadratic form
    ⟨B, A B⟩ = Σ_j b_jᵀ A b_j equals ‖v‖² and comes free: ``return_energy=True``
    also returns it (samplers use it for residual sums of squares without a d×d×c
    product).  With ``return_jitter=True`` also returns ``n_jitter`` (see
    :func:`robust_cholesky`).  Returns ``B``, or ``(B, n_jitter)``, ``(B, energy)`` or
    ``(B, n_jitter, energy)``.
    """
    A = gram + jnp.diag(prior_precision)
    noise = jax.random.normal(key, rhs.shape, rhs.dtype)

    def draw_with(L):
        v = solve_lower(L, rhs) + sigma * noise
        return solve_lower_t(L, v), jnp.sum(v * v)

    (draw, energy), n_jitter = factor_and_apply(A, draw_with)
    out = (draw,) + ((n_jitter,) if return_jitter else ()) \
        + ((energy,) if return_energy else ())
    return out if len(out) > 1 else draw


def gaussian_columns_wide(key, X, Y, prior_precision, sigma, *, return_jitter=False):
    """Same target as :func:`gaussian_columns_given_precision` with gram = XᵀX, rhs = XᵀY,
    by Bhattacharya, Chakraborty & Mallick (2016) for d > n.

    With prior covariance Δ = σ² D⁻¹ and Φ = X/σ: u ~ N(0, Δ), δ ~ N(0, I_n),
    v = Φu + δ, solve (X D⁻¹ Xᵀ + I_n) w = Y/σ − v, return u + σ D⁻¹ Xᵀ w.
    One n×n Cholesky is shared by all c columns (cost n²d + n³/3 + c·nd).
    With ``return_jitter=True`` returns ``(B, n_jitter)`` (see :func:`robust_cholesky`).
    """
    n, d = X.shape
    c = Y.shape[1]
    k_u, k_delta = jax.random.split(key)
    inv_prec = 1.0 / prior_precision
    u = sigma * jnp.sqrt(inv_prec)[:, None] * jax.random.normal(k_u, (d, c), X.dtype)
    delta = jax.random.normal(k_delta, (n, c), X.dtype)
    v = X @ u / sigma + delta
    M = (X * inv_prec[None, :]) @ X.T + jnp.eye(n, dtype=X.dtype)
    w, n_jitter = factor_and_apply(M, lambda L: cho_solve(L, Y / sigma - v))
    draw = u + sigma * inv_prec[:, None] * (X.T @ w)
    return (draw, n_jitter) if return_jitter else draw


def matrix_normal_kron(key, left_eig, right_eig, linear, ridge):
    """Draw M (p×q) with density ∝ exp(−½⟨M, A M B⟩ − ½ ridge ‖M‖²_F + ⟨L, M⟩).

    That is vec(M) ~ N(P⁻¹ vec(L), P⁻¹) with P = B ⊗ A + ridge·I (A p×p, B q×q
    symmetric positive semi-definite): the conditional of a coefficient matrix whose
    rows share one design Gram matrix A and whose columns share one precision B (a
    multivariate regression with correlated noise and an isotropic Gaussian prior).
    With A = P_A diag(a) P_Aᵀ and B = P_B diag(b) P_Bᵀ (``left_eig = (a, P_A)``,
    ``right_eig = (b, P_B)``, as returned by ``jnp.linalg.eigh``), M̃ = P_Aᵀ M P_B has
    independent entries with precision a_i b_j + ridge, so the draw costs two
    eigendecompositions and no pq×pq factorisation.  Exact for any ridge > 0.
    """
    a, PA = left_eig
    b, PB = right_eig
    prec = jnp.maximum(a, 0.0)[:, None] * jnp.maximum(b, 0.0)[None, :] + ridge
    lin = PA.T @ linear @ PB
    noise = jax.random.normal(key, lin.shape, lin.dtype)
    return PA @ (lin / prec + noise / jnp.sqrt(prec)) @ PB.T
