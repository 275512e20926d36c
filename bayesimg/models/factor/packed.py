r"""Batches of small symmetric precision matrices kept packed, and Gaussian draws from them.

The Gibbs sweep of :mod:`bayesimg.models.factor.gibbs` forms, for every column j of a
view, a (Q × Q) precision Q_j = Σ_i Ω_ij g_i g_iᵀ + diag(prior_j), and for every
subject a (K × K) one.  Written as full matrices these are GEMMs of width Q² (the
outer products g_i g_iᵀ); only the Q(Q+1)/2 entries on and below the diagonal are
distinct, so they are formed **packed**: with u_i = (g_iq g_ir)_{q ≥ r} (the
*packed outer product*), the packed precisions of all columns are one GEMM
Uᵀ Ω of width Q(Q+1)/2 — 47% fewer flops at Q = 16 — and laid out *transposed*,
(Q(Q+1)/2, batch), so each matrix entry is one contiguous vector over the batch.

Order of the packed entries: the Q diagonal entries first (so a diagonal prior
is added to a leading slice), then the strictly lower entries row by row.

:func:`packed_gaussian_draw` draws x_b ~ N(Q_b⁻¹ r_b, Q_b⁻¹) for every b by a
Cholesky factorisation written out over the (small) matrix size, each step a
vector operation over the batch, then forward and back substitution:
x = L⁻ᵀ(L⁻¹ r + ε), ε ~ N(0, I), which has mean Q⁻¹r and covariance
L⁻ᵀL⁻¹ = Q⁻¹.
"""

from __future__ import annotations

import functools

import jax.numpy as jnp
import numpy as np


@functools.cache
def packed_index(q: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(rows, cols, pos)`` of the packed order: entry t is (rows[t], cols[t]) with
    rows[t] ≥ cols[t]; ``pos[i, j]`` (= ``pos[j, i]``) is the packed index of (i, j)."""
    lower = [(i, j) for i in range(q) for j in range(i)]
    rows = np.array(list(range(q)) + [i for i, _ in lower], int)
    cols = np.array(list(range(q)) + [j for _, j in lower], int)
    pos = np.empty((q, q), int)
    pos[rows, cols] = np.arange(rows.size)
    pos[cols, rows] = np.arange(rows.size)
    return rows, cols, pos


def packed_outer(G):
    """(n, q) → (n, q(q+1)/2): the packed entries of every row's outer product g gᵀ.

    Built from static slices and broadcasts (row i of the lower triangle is
    g_i · g_{:i}): XLA's CPU gathers along columns cost ~10× more."""
    q = G.shape[-1]
    parts = [G * G] + [G[:, i:i + 1] * G[:, :i] for i in range(1, q)]
    return jnp.concatenate(parts, axis=1)


def packed_outer_t(Gt):
    """(q, B) → (q(q+1)/2, B): :func:`packed_outer` of the columns of ``Gt``, laid out
    transposed.  For wide batches (thousands of columns) each packed entry is then
    one contiguous row (a product of two rows of ``Gt``): ~2× cheaper than
    building (B, q(q+1)/2) from column slices and transposing it."""
    q = Gt.shape[0]
    parts = [Gt * Gt] + [Gt[i:i + 1] * Gt[:i] for i in range(1, q)]
    return jnp.concatenate(parts, axis=0)


def pack_gram(A):
    """(..., q, q) symmetric → (..., q(q+1)/2) packed (a few small matrices)."""
    rows, cols, _ = packed_index(A.shape[-1])
    return A[..., rows, cols]


def unpack(packed_t, q: int):
    """(q(q+1)/2, B) packed, transposed → (B, q, q) full symmetric matrices."""
    _, _, pos = packed_index(q)
    return jnp.moveaxis(packed_t[jnp.asarray(pos)], -1, 0)


def pack(full):
    """(B, q, q) symmetric → (q(q+1)/2, B) packed, transposed."""
    rows, cols, _ = packed_index(full.shape[-1])
    return jnp.moveaxis(full[:, rows, cols], 0, -1)


def packed_gaussian_draw(prec_t, rhs_t, eps_t):
    """x_b ~ N(Q_b⁻¹ r_b, Q_b⁻¹) for packed, transposed precisions ``prec_t``
    (q(q+1)/2, B), ``rhs_t`` (q, B) and standard normals ``eps_t`` (q, B).
    Returns (q, B)."""
    q = rhs_t.shape[0]
    _, _, pos = packed_index(q)
    L = [[None] * q for _ in range(q)]
    for j in range(q):
        s = prec_t[int(pos[j, j])]
        if j:
            s = s - sum(L[j][k] ** 2 for k in range(j))
        d = jnp.sqrt(s)
        L[j][j] = d
        inv_d = 1.0 / d
        for i in range(j + 1, q):
            t = prec_t[int(pos[i, j])]
            if j:
                t = t - sum(L[i][k] * L[j][k] for k in range(j))
            L[i][j] = t * inv_d
    y = []
    for i in range(q):
        acc = rhs_t[i] - (sum(L[i][k] * y[k] for k in range(i)) if i else 0.0)
        y.append(acc / L[i][i])
    v = [y[i] + eps_t[i] for i in range(q)]
    x = [None] * q
    for i in reversed(range(q)):
        acc = v[i] - (sum(L[k][i] * x[k] for k in range(i + 1, q)) if i < q - 1 else 0.0)
        x[i] = acc / L[i][i]
    return jnp.stack(x)
