"""Exact draws from conditional distributions that Gibbs kernels share.

All functions are pure JAX and jit/vmap-safe.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.scipy.linalg import cho_solve, solve_triangular


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


def gaussian_columns_given_precision(key, gram, rhs, prior_precision, sigma):
    """Draw every column j of B ~ N(A⁻¹ rhs_j, σ² A⁻¹), A = gram + diag(prior_precision).

    One Cholesky of the d×d matrix A serves all columns (cost d³/3 + c·d²).
    """
    A = gram + jnp.diag(prior_precision)
    L = jnp.linalg.cholesky(A)
    mean = cho_solve((L, True), rhs)
    noise = jax.random.normal(key, rhs.shape, rhs.dtype)
    return mean + sigma * solve_triangular(L.T, noise, lower=False)


def gaussian_columns_wide(key, X, Y, prior_precision, sigma):
    """Same target as :func:`gaussian_columns_given_precision` with gram = XᵀX, rhs = XᵀY,
    by Bhattacharya, Chakraborty & Mallick (2016) for d > n.

    With prior covariance Δ = σ² D⁻¹ and Φ = X/σ: u ~ N(0, Δ), δ ~ N(0, I_n),
    v = Φu + δ, solve (X D⁻¹ Xᵀ + I_n) w = Y/σ − v, return u + σ D⁻¹ Xᵀ w.
    One n×n Cholesky is shared by all c columns (cost n²d + n³/3 + c·nd).
    """
    n, d = X.shape
    c = Y.shape[1]
    k_u, k_delta = jax.random.split(key)
    inv_prec = 1.0 / prior_precision
    u = sigma * jnp.sqrt(inv_prec)[:, None] * jax.random.normal(k_u, (d, c), X.dtype)
    delta = jax.random.normal(k_delta, (n, c), X.dtype)
    v = X @ u / sigma + delta
    M = (X * inv_prec[None, :]) @ X.T + jnp.eye(n, dtype=X.dtype)
    L = jnp.linalg.cholesky(M)
    w = cho_solve((L, True), Y / sigma - v)
    return u + sigma * inv_prec[:, None] * (X.T @ w)
