"""Dense Cholesky linear algebra that the exact Gibbs kernels share, at its cheapest.

A Gibbs sweep of GSMTR on 500 SNPs is one d×d Cholesky plus two triangular solves
(~2 ms on one core); the way those calls are written decides how close the sweep gets
to that floor.  Measured on the bgsmtr example (d = 486, c = 15, one core):

* :func:`cholesky` reads the lower triangle only.  ``jnp.linalg.cholesky`` first
  symmetrises its input, ½(A + Aᵀ), a full extra pass (+0.13 ms) that matrices built
  as XᵀX + diag(·) do not need.
* :func:`solve_lower_t` solves Lᵀx = b with LAPACK's transpose flag.
  ``solve_triangular(L.T, …)`` materialises the transpose first (+0.29 ms).
* :func:`factor_and_apply` retries a failed factorisation with jitter (see
  :func:`robust_cholesky`) but carries only the *result* of using the factor
  (a d×c draw) through the retry loop, not the d×d factor, and checks only the
  diagonal for failure: a retry loop around the factor itself cost +0.45 ms per sweep
  (the d×d copy into the loop and the all-entries finiteness check).

Checking the diagonal suffices: a failed LAPACK factorisation comes back all NaN, and a
non-finite entry of A in row i reaches L_ii = √(A_ii − Σ_j L_ij²).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax.numpy as jnp
from jax import lax

#: first jitter, relative to the mean of the diagonal
JITTER_START = 1e-8
#: retries with jitter JITTER_START · 10^k · mean diag, k = 0 … JITTER_TRIES − 1
JITTER_TRIES = 5


def cholesky(A):
    """Lower Cholesky factor of symmetric ``A`` from its lower triangle (NaN if it fails)."""
    return lax.linalg.cholesky(A, symmetrize_input=False)


def solve_lower(L, B):
    """``L⁻¹ B`` for lower-triangular ``L`` (``B``: (…, d, k))."""
    return lax.linalg.triangular_solve(L, B, left_side=True, lower=True)


def solve_lower_t(L, B):
    """``L⁻ᵀ B`` for lower-triangular ``L``, without forming ``Lᵀ``."""
    return lax.linalg.triangular_solve(L, B, left_side=True, lower=True, transpose_a=True)


def cho_solve(L, B):
    """``A⁻¹ B`` given the lower Cholesky factor ``L`` of ``A``."""
    return solve_lower_t(L, solve_lower(L, B))


def factor_failed(L):
    """True where the factor ``L`` (…, d, d) is not finite (its diagonal suffices)."""
    return ~jnp.all(jnp.isfinite(jnp.diagonal(L, axis1=-2, axis2=-1)), axis=-1)


def _jitter(A, k):
    scale = jnp.mean(jnp.abs(jnp.diagonal(A)))
    scale = jnp.where(jnp.isfinite(scale) & (scale > 0), scale, jnp.ones((), A.dtype))
    return JITTER_START * scale * jnp.asarray(10.0, A.dtype) ** k.astype(A.dtype)


def factor_and_apply(A, use: Callable[[Any], Any]):
    """``use(L)`` for the lower Cholesky factor ``L`` of ``A``, retried with jitter.

    When ``A`` does not factor in floating point, ``use`` is applied to the factor of
    ``A + εI`` for the smallest ε = JITTER_START · 10^k · mean(diag A), k < JITTER_TRIES,
    that factors.  Only ``use``'s output crosses the retry loop, so the common case
    costs one factorisation and no d×d copy.

    Returns
    -------
    out
        ``use(L)`` (any pytree).
    n_jitter : int32 scalar
        Retries used: 0 (exact), 1 … JITTER_TRIES, or JITTER_TRIES + 1 if none gave a
        finite factor (``out`` is then computed from a non-finite factor).
    """
    eye = jnp.eye(A.shape[-1], dtype=A.dtype)
    L = cholesky(A)
    first = (use(L), jnp.zeros((), jnp.int32), factor_failed(L))

    def cond(carry):
        _, k, failed = carry
        return failed & (k < JITTER_TRIES)

    def body(carry):
        _, k, _ = carry
        L = cholesky(A + _jitter(A, k) * eye)
        return use(L), k + 1, factor_failed(L)

    out, k, failed = lax.while_loop(cond, body, first)
    return out, k + failed.astype(jnp.int32)


def robust_cholesky(A):
    """Lower Cholesky factor of the symmetric positive-definite ``A``, retried with jitter.

    Same retries as :func:`factor_and_apply` (use that where only a product of the factor
    is needed: it avoids carrying the d×d factor through the retry loop).

    Returns
    -------
    L : array
        Factor of ``A`` (no retry needed) or of ``A + ε I``.
    n_jitter : int32 scalar
        Retries used: 0 (exact), 1 … JITTER_TRIES, or JITTER_TRIES + 1 if none gave a
        finite factor.
    """
    return factor_and_apply(A, lambda L: L)

