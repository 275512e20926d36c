"""Exact draws from conditional distributions that Gibbs kernels share.

All functions are pure JAX and jit/vmap-safe.

Cholesky factorisations go through :func:`bayesimg.models.core.linalg.factor_and_apply`
(or :func:`~bayesimg.models.core.linalg.robust_cholesky`): a matrix that is
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

from bayesimg.models.core import flat_random
from bayesimg.models.core.linalg import (
    JITTER_START,
    JITTER_TRIES,
    factor_and_apply,
    robust_cholesky,
    solve_lower,
    solve_lower_t,
)

__all__ = ["JITTER_START", "JITTER_TRIES", "gaussian_column_groups",
           "gaussian_columns_given_precision", "gaussian_columns_wide", "inverse_gaussian",
           "matrix_normal_kron", "robust_cholesky", "slice_bounded"]


def inverse_gaussian(key, mean, shape, *, normal=None, uniform=None):
    r"""Draw from InvGauss(μ = ``mean``, λ = ``shape``) (Michael, Schucany & Haas 1976).

    With ν ~ N(0,1), y = ν², the smaller root of the chi-square transform is
    written in the cancellation-free form
    x = 4λ / (y (1 + √(1 + 4λ/(μy)))²), which stays exact as μ → ∞ (where the
    distribution tends to the Lévy law and x → λ/y); then x is kept with
    probability μ/(μ + x), else μ²/x.  ``normal``/``uniform``: the N(0, 1) and U(0, 1)
    variates to use (shaped as ``mean``) instead of drawing them from ``key`` (a caller
    that draws all of a sweep's variates in one call compiles a smaller program).
    """
    mean = jnp.asarray(mean)
    shape = jnp.broadcast_to(jnp.asarray(shape, mean.dtype), mean.shape)
    if normal is None or uniform is None:
        k_norm, k_unif = jax.random.split(key)
        normal = flat_random.normal(k_norm, mean.shape, mean.dtype)
        uniform = flat_random.uniform(k_unif, mean.shape, mean.dtype)
    nu = jnp.reshape(normal, mean.shape)
    y = jnp.maximum(nu * nu, jnp.finfo(mean.dtype).tiny)
    x = 4.0 * shape / (y * (1.0 + jnp.sqrt(1.0 + 4.0 * shape / (mean * y))) ** 2)
    keep_x = jnp.reshape(uniform, mean.shape) * (mean + x) <= mean
    return jnp.where(keep_x, x, mean * (mean / x))


def _scale(sigma, quad):
    """``(σ, σ²)`` for a fixed ``sigma``, or for σ² = ``sigma(quad)`` drawn (collapsed)."""
    if callable(sigma):
        variance = sigma(jnp.maximum(quad, 0.0))
        return jnp.sqrt(variance), variance
    return sigma, None


def _returned(draw, variance, n_jitter, return_jitter):
    """``draw``, or ``(draw, [σ²], [n_jitter])``: σ² when it was drawn (collapsed scale),
    the jitter retries when asked for."""
    out = (draw,) + (() if variance is None else (variance,)) \
        + ((n_jitter,) if return_jitter else ())
    return out if len(out) > 1 else draw


def gaussian_columns_given_precision(key, gram, rhs, prior_precision, sigma, *,
                                     rhs_sq=None, return_jitter=False, noise=None):
    """Draw every column j of B ~ N(A⁻¹ rhs_j, σ² A⁻¹), A = gram + diag(prior_precision).

    One Cholesky A = LLᵀ of the d×d matrix serves all columns, and two triangular
    solves give the draw: v = L⁻¹ rhs + σ ε (ε ~ N(0, I)), B = L⁻ᵀ v, which is
    A⁻¹ rhs + σ L⁻ᵀ ε (cost d³/3 + 2·c·d²).  With ``return_jitter=True`` also returns
    ``n_jitter`` (see :func:`robust_cholesky`).

    **Collapsed scale.**  In a regression T = XB + E, E ~ N(0, σ²I), whose prior on B is
    N(0, σ² D⁻¹) (gram = XᵀX, rhs = XᵀT, D = diag(prior_precision)), integrating B out
    leaves σ² with the likelihood (σ²)^(−nc/2) exp(−q/2σ²), where
    q = ‖T‖²_F − Σ_j rhs_jᵀ A⁻¹ rhs_j = ‖T‖²_F − ‖L⁻¹ rhs‖²_F.  Pass ``sigma`` as a
    function ``q ↦ σ²`` that draws σ² from that collapsed conditional and ``rhs_sq`` =
    ‖T‖²_F: the same factor then gives q and the draw of B given the new σ², i.e. one
    joint draw of (σ², B), and σ² is returned right after B.

    ``noise``: the N(0, 1) variates (shaped as ``rhs``) to use instead of drawing them
    from ``key`` (a sweep that draws all its variates in one call compiles less).

    Returns ``B``, or a tuple ``(B, [σ²], [n_jitter])`` of what was asked for.
    """
    if callable(sigma) and rhs_sq is None:
        raise ValueError("a collapsed scale draw (callable sigma) needs rhs_sq = ‖T‖²_F")
    A = gram + jnp.diag(prior_precision)
    if noise is None:
        noise = flat_random.normal(key, rhs.shape, rhs.dtype)
    noise = jnp.reshape(noise, rhs.shape)

    def draw_with(L):
        mean_part = solve_lower(L, rhs)
        quad = None if rhs_sq is None else rhs_sq - jnp.sum(mean_part * mean_part)
        scale, variance = _scale(sigma, quad)
        return solve_lower_t(L, mean_part + scale * noise), variance

    (draw, variance), n_jitter = factor_and_apply(A, draw_with)
    return _returned(draw, variance, n_jitter, return_jitter)


def gaussian_columns_wide(key, X, Y, prior_precision, sigma, *, return_jitter=False):
    """Same target as :func:`gaussian_columns_given_precision` with gram = XᵀX, rhs = XᵀY,
    by Bhattacharya, Chakraborty & Mallick (2016) for d > n.

    With prior covariance Δ = σ² D⁻¹: u = σ ξ, ξ ~ N(0, D⁻¹), δ ~ N(0, I_n),
    v = Xξ + δ, solve M w = Y/σ − v with M = X D⁻¹ Xᵀ + I_n, return u + σ D⁻¹ Xᵀ w.
    One n×n Cholesky M = LLᵀ is shared by all c columns (cost n²d + n³/3 + c·nd).
    ``sigma`` may be a function ``q ↦ σ²`` as in
    :func:`gaussian_columns_given_precision` (collapsed scale), with
    q = Σ_j y_jᵀ M⁻¹ y_j = ‖L⁻¹Y‖²_F, the same quadratic form by Woodbury's identity.
    Returns ``B``, or a tuple ``(B, [σ²], [n_jitter])``.
    """
    n, d = X.shape
    c = Y.shape[1]
    k_u, k_delta = jax.random.split(key)
    inv_prec = 1.0 / prior_precision
    xi = jnp.sqrt(inv_prec)[:, None] * flat_random.normal(k_u, (d, c), X.dtype)
    v = X @ xi + flat_random.normal(k_delta, (n, c), X.dtype)
    M = (X * inv_prec[None, :]) @ X.T + jnp.eye(n, dtype=X.dtype)

    def draw_with(L):
        y_part = solve_lower(L, Y)
        scale, variance = _scale(sigma, jnp.sum(y_part * y_part))
        w = solve_lower_t(L, y_part / scale - solve_lower(L, v))
        return scale * (xi + inv_prec[:, None] * (X.T @ w)), variance

    (draw, variance), n_jitter = factor_and_apply(M, draw_with)
    return _returned(draw, variance, n_jitter, return_jitter)


def gaussian_column_groups(key, gram, rhs, rhs_sq, prior_precision, noise_scales,
                           sizes, draw_sigma2, *, X=None, T=None):
    """Collapsed joint draw of (σ², B) when column groups have their own noise scale.

    Columns come in contiguous groups g of static ``sizes``; in group g
    t_j = X b_j + ε_j, ε_j ~ N(0, σ² s_g I) (``noise_scales`` (G,), traced), with the
    shared prior b_j ~ N(0, σ² D⁻¹), D = diag(``prior_precision``).  Then
    b_j | σ² ~ N(A_g⁻¹Xᵀt_j, σ² s_g A_g⁻¹), A_g = XᵀX + s_g D, and with B integrated
    out each column is N(0, σ²(s_g I + XD⁻¹Xᵀ)), whose quadratic form is
    q_j = (‖t_j‖² − ‖L_g⁻¹Xᵀt_j‖²)/s_g (Woodbury; L_g Lᵀ_g = A_g).  Every group is
    factorised first, σ² = ``draw_sigma2``(Σ_j q_j) is drawn from its collapsed
    conditional, then the columns given that σ²: one joint draw, as
    :func:`gaussian_columns_given_precision` does for one group (s = 1).

    ``gram`` = XᵀX, ``rhs`` = XᵀT (d, c) and ``rhs_sq`` = per-column ‖t_j‖² (c,)
    (the narrow form, cost G·d³/3).  For d > n pass ``X`` and ``T`` instead (``gram``,
    ``rhs``, ``rhs_sq`` None): each group then factorises the n×n matrix
    M_g = s_g I + XD⁻¹Xᵀ, q_j = ‖L_g⁻¹t_j‖², and draws by Bhattacharya et al. (2016)
    with noise covariance σ² s_g I.  Returns ``(B, σ², n_jitter)``.
    """
    bounds = [0]
    for size in sizes:
        bounds.append(bounds[-1] + int(size))
    keys = jax.random.split(key, 2 * len(sizes))
    wide = gram is None
    dtype = (X if wide else gram).dtype
    factors, parts, quad, n_jitter = [], [], jnp.zeros((), dtype), jnp.zeros((), jnp.int32)
    for g in range(len(sizes)):
        cols = slice(bounds[g], bounds[g + 1])
        if wide:
            M = (X * (1.0 / prior_precision)[None, :]) @ X.T \
                + noise_scales[g] * jnp.eye(X.shape[0], dtype=dtype)
            (L, part), jit = factor_and_apply(M, lambda L, c=cols: (L, solve_lower(L, T[:, c])))
            quad = quad + jnp.sum(part * part)
        else:
            A = gram + noise_scales[g] * jnp.diag(prior_precision)
            (L, part), jit = factor_and_apply(A, lambda L, c=cols: (L, solve_lower(L, rhs[:, c])))
            quad = quad + (jnp.sum(rhs_sq[cols]) - jnp.sum(part * part)) / noise_scales[g]
        factors.append(L)
        parts.append(part)
        n_jitter = n_jitter + jit
    sigma2 = draw_sigma2(jnp.maximum(quad, 0.0))
    sigma = jnp.sqrt(sigma2)
    draws = []
    for g, (L, part) in enumerate(zip(factors, parts, strict=True)):
        s = noise_scales[g]
        if wide:
            d, width = X.shape[1], part.shape[1]
            inv_prec = 1.0 / prior_precision
            k_u, k_delta = jax.random.split(keys[2 * g])
            xi = jnp.sqrt(inv_prec)[:, None] * jax.random.normal(k_u, (d, width), dtype)
            v = X @ xi + jnp.sqrt(s) * jax.random.normal(k_delta, (X.shape[0], width), dtype)
            w = solve_lower_t(L, part / sigma - solve_lower(L, v))
            draws.append(sigma * (xi + inv_prec[:, None] * (X.T @ w)))
        else:
            noise = jax.random.normal(keys[2 * g], part.shape, dtype)
            draws.append(solve_lower_t(L, part + sigma * jnp.sqrt(s) * noise))
    return jnp.concatenate(draws, axis=1), sigma2, n_jitter


def slice_bounded(key, log_density, x0, lower, upper, *, max_steps: int = 200):
    """One slice-sampling update of a scalar on (``lower``, ``upper``) (Neal 2003, §4).

    The height log u = log f(x0) − Exp(1) is drawn under the current point, the
    interval starts as the whole support (so no stepping out is needed) and shrinks
    towards x0 at every rejected proposal; the accepted point leaves f invariant, so
    within a Gibbs sweep this is an exact update of a non-conjugate conditional.  A
    tight conditional costs ~log₂(width/posterior sd) evaluations.  After
    ``max_steps`` rejections (only if f is numerically a point mass) x0 is kept.
    """
    k_height, k_loop = jax.random.split(key)
    height = log_density(x0) - jax.random.exponential(k_height, dtype=x0.dtype)

    def cond(carry):
        _, _, _, accepted, step, _ = carry
        return (~accepted) & (step < max_steps)

    def body(carry):
        lo, hi, x, _, step, k = carry
        k, k_draw = jax.random.split(k)
        proposal = lo + (hi - lo) * jax.random.uniform(k_draw, dtype=x0.dtype)
        accepted = log_density(proposal) > height
        lo = jnp.where(accepted | (proposal >= x0), lo, proposal)
        hi = jnp.where(accepted | (proposal < x0), hi, proposal)
        return lo, hi, jnp.where(accepted, proposal, x), accepted, step + 1, k

    lo = jnp.asarray(lower, x0.dtype)
    hi = jnp.asarray(upper, x0.dtype)
    carry = (lo, hi, x0, jnp.zeros((), bool), jnp.zeros((), jnp.int32), k_loop)
    return jax.lax.while_loop(cond, body, carry)[2]


def matrix_normal_kron(key, left_eig, right_eig, linear, ridge, *, noise=None):
    """Draw M (p×q) with density ∝ exp(−½⟨M, A M B⟩ − ½ ridge ‖M‖²_F + ⟨L, M⟩).

    That is vec(M) ~ N(P⁻¹ vec(L), P⁻¹) with P = B ⊗ A + ridge·I (A p×p, B q×q
    symmetric positive semi-definite): the conditional of a coefficient matrix whose
    rows share one design Gram matrix A and whose columns share one precision B (a
    multivariate regression with correlated noise and an isotropic Gaussian prior).
    With A = P_A diag(a) P_Aᵀ and B = P_B diag(b) P_Bᵀ (``left_eig = (a, P_A)``,
    ``right_eig = (b, P_B)``, as returned by ``jnp.linalg.eigh``), M̃ = P_Aᵀ M P_B has
    independent entries with precision a_i b_j + ridge, so the draw costs two
    eigendecompositions and no pq×pq factorisation.  Exact for any ridge > 0.
    ``noise``: the p×q N(0, 1) variates to use instead of drawing them from ``key``.
    """
    a, PA = left_eig
    b, PB = right_eig
    prec = jnp.maximum(a, 0.0)[:, None] * jnp.maximum(b, 0.0)[None, :] + ridge
    lin = PA.T @ linear @ PB
    if noise is None:
        noise = jax.random.normal(key, lin.shape, lin.dtype)
    noise = jnp.reshape(noise, lin.shape)
    return PA @ (lin / prec + noise / jnp.sqrt(prec)) @ PB.T
