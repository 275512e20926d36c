r"""Shared maths of the Bayesian-network mixture (pure JAX, jit/vmap-safe).

Conventions: ``X`` (n, p) nodes, ``B`` (K, p, p) with ``B[k, i, j]`` the weight
of edge i → j in cluster k, ``mu`` (K, p) node intercepts, ``sigma2`` (K, p)
residual variances (1 for binary nodes), ``is_binary`` (p,) bool.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.scipy.linalg import solve_triangular

LOG_2PI = 1.8378770664093453


def component_loglik(X, mu, B, sigma2, is_binary):
    """(K, n) log p(x_i | cluster k): Gaussian or logistic node conditionals summed."""
    eta = mu[:, None, :] + jnp.einsum("ni,kij->knj", X, B)               # (K, n, p)
    resid = X[None] - eta
    gauss = -0.5 * (LOG_2PI + jnp.log(sigma2)[:, None, :]) - 0.5 * resid**2 / sigma2[:, None, :]
    bern = X[None] * eta - jnp.logaddexp(0.0, eta)
    return jnp.sum(jnp.where(is_binary, bern, gauss), axis=-1)


def label_mask(known, K):
    """(K, n) additive mask: 0 where cluster k is allowed for subject i, −inf otherwise."""
    ks = jnp.arange(K)[:, None]
    ok = (known[None, :] < 0) | (known[None, :] == ks)
    return jnp.where(ok, 0.0, -jnp.inf)


def mixture_loglik(X, pi, mu, B, sigma2, is_binary, known):
    """(n,) log Σ_k π_k p(x_i | k) with memberships fixed where ``known >= 0``."""
    comp = component_loglik(X, mu, B, sigma2, is_binary) + jnp.log(pi)[:, None]
    comp = comp + label_mask(known, pi.shape[0])
    return jax.nn.logsumexp(comp, axis=0)


def membership_probs(X, pi, mu, B, sigma2, is_binary, known):
    """(n, K) posterior membership probabilities given the parameters."""
    comp = component_loglik(X, mu, B, sigma2, is_binary) + jnp.log(pi)[:, None]
    comp = comp + label_mask(known, pi.shape[0])
    return jax.nn.softmax(comp, axis=0).T


def allowed_from_position(position, base_allowed):
    """Edge mask of an order: i → j allowed iff pos[i] < pos[j] and ``base_allowed[i, j]``."""
    return (position[:, None] < position[None, :]) & base_allowed


def node_regression(S, j, sd, sigma2, n_k, key=None):
    r"""Bayesian linear regression of node j on the weighted design, from sufficient statistics.

    ``S`` (P, P) = Σ_i w_i x̃_i x̃_iᵀ with x̃ = (1, x) (P = p + 1), the node is column
    ``1 + j``; ``sd`` (P,) prior sd of each coefficient (0 = excluded), ``sigma2``
    the residual variance, ``n_k`` = Σ_i w_i.  With D = diag(sd²),
    A' = I + D^{1/2} S D^{1/2} / σ² = L Lᵀ and r' = D^{1/2} S[:, 1+j] / σ²:

        log p(y | σ², D) = −(n_k/2) log(2πσ²) − yᵀy/(2σ²) + ½ r'ᵀA'⁻¹r' − Σ log diag L,

    and, given ``key``, β = D^{1/2}(A'⁻¹r' + L⁻ᵀ ε) is an exact draw from p(β | y, σ², D).
    Returns ``(log_ml, beta)`` (beta is None without a key).
    """
    P = S.shape[0]
    G = S * sd[:, None] * sd[None, :] / sigma2
    A = jnp.eye(P, dtype=S.dtype) + G
    r = sd * S[:, 1 + j] / sigma2
    L = jnp.linalg.cholesky(A)
    w = solve_triangular(L, r, lower=True)
    yty = S[1 + j, 1 + j]
    log_ml = (-0.5 * n_k * (LOG_2PI + jnp.log(sigma2)) - 0.5 * yty / sigma2
              + 0.5 * jnp.dot(w, w) - jnp.sum(jnp.log(jnp.diag(L))))
    if key is None:
        return log_ml, None
    eps = jax.random.normal(key, (P,), S.dtype)
    beta = sd * solve_triangular(L.T, w + eps, lower=False)
    return log_ml, beta


def pooled_node_regression(S, j, sd0, sd, sigma2, n_k, noise=None):
    r"""Node j's regressions in all K clusters with a shared and a cluster-specific part.

    Cluster k's coefficients (intercept, b_{1..p, j}) are γ₀ + γ_k, the shared part
    γ₀ ~ N(0, diag(sd0²)) and the deviations γ_k ~ N(0, diag(sd_k²)) independent
    (``sd0`` (P,), ``sd`` (K, P); 0 = excluded); residual variance σ²_k (``sigma2``
    (K,)), sufficient statistics ``S`` (K, P, P) and weights ``n_k`` (K,) as in
    :func:`node_regression`.  In whitened coordinates u = (γ₀/sd0, γ_k/sd_k) the
    posterior precision is the arrowhead matrix

        A₀₀ = I + D₀^{1/2} (Σ_k S_k/σ²_k) D₀^{1/2},   A₀ₖ = D₀^{1/2} S_k D_k^{1/2} / σ²_k,
        Aₖₖ = I + D_k^{1/2} S_k D_k^{1/2} / σ²_k,

    so with Aₖₖ = L_k L_kᵀ, W_k = L_k⁻¹ A₀ₖᵀ, w_k = L_k⁻¹ r_k and the Schur complement
    Ã₀₀ = A₀₀ − Σ_k W_kᵀW_k = L₀ L₀ᵀ, r̃₀ = r₀ − Σ_k W_kᵀ w_k, w₀ = L₀⁻¹ r̃₀:

        log p(y | σ², D) = Σ_k [−(n_k/2) log(2πσ²_k) − y_kᵀy_k/(2σ²_k) + ½|w_k|²
                           − Σ log diag L_k] + ½|w₀|² − Σ log diag L₀,

    and an exact joint draw is u₀ = L₀⁻ᵀ(w₀ + ε₀), then u_k | u₀ = L_k⁻ᵀ(w_k − W_k u₀ + ε_k)
    (cost K + 1 Cholesky factors of size P instead of one of size (K + 1)P), with
    (ε₀, ε_1..K) = ``noise`` (K + 1, P) standard normal variates.  With ``sd0 = 0``
    this is K independent :func:`node_regression` calls.
    Returns ``(log_ml, beta0 (P,), beta (K, P))`` (betas None without ``noise``).
    """
    K, P, _ = S.shape
    eye = jnp.eye(P, dtype=S.dtype)
    Sw = S / sigma2[:, None, None]                                   # S_k / σ²_k
    sy = Sw[:, :, 1 + j]                                             # (K, P)
    Ak = eye + Sw * sd[:, :, None] * sd[:, None, :]
    rk = sd * sy
    A0k = Sw * sd0[None, :, None] * sd[:, None, :]                   # (K, P0, Pk)
    Lk = jnp.linalg.cholesky(Ak)
    solve = jax.vmap(lambda L, b: solve_triangular(L, b, lower=True))
    Wk = solve(Lk, jnp.swapaxes(A0k, 1, 2))                          # (K, Pk, P0)
    wk = solve(Lk, rk)                                               # (K, P)
    A00 = eye + jnp.sum(Sw, axis=0) * sd0[:, None] * sd0[None, :]
    At = A00 - jnp.einsum("kab,kac->bc", Wk, Wk)
    rt = sd0 * jnp.sum(sy, axis=0) - jnp.einsum("kab,ka->b", Wk, wk)
    L0 = jnp.linalg.cholesky(At)
    w0 = solve_triangular(L0, rt, lower=True)
    yty = S[:, 1 + j, 1 + j]
    log_ml = (jnp.sum(-0.5 * n_k * (LOG_2PI + jnp.log(sigma2)) - 0.5 * yty / sigma2
                      + 0.5 * jnp.sum(wk * wk, axis=1)
                      - jnp.sum(jnp.log(jnp.diagonal(Lk, axis1=1, axis2=2)), axis=1))
              + 0.5 * jnp.dot(w0, w0) - jnp.sum(jnp.log(jnp.diag(L0))))
    if noise is None:
        return log_ml, None, None
    u0 = solve_triangular(L0.T, w0 + noise[0], lower=False)
    uk = jax.vmap(lambda L, b: solve_triangular(L.T, b, lower=False))(
        Lk, wk - jnp.einsum("kab,b->ka", Wk, u0) + noise[1:])
    return log_ml, sd0 * u0, sd * uk



def adjacent_swap_proposal(pos, offset: int, p: int):
    """One phase of disjoint adjacent-position swaps, as used by the order moves.

    Phase ``offset`` (0 or 1) pairs positions (o, o+1), (o+2, o+3), …; a swap changes
    only its two nodes' predecessor sets, so the decisions within a phase are
    independent Metropolis steps.  Returns ``(n_pairs, group, proposed)``: ``group``
    (p,) is each node's pair (``n_pairs`` for an unpaired node) and ``proposed`` the
    positions after swapping every pair; ``n_pairs`` is 0 when the phase is empty.
    """
    n_pairs = (p - offset) // 2
    rel = pos - offset
    paired = (rel >= 0) & (rel < 2 * n_pairs)
    group = jnp.where(paired, rel // 2, n_pairs)
    proposed = jnp.where(paired, jnp.where(rel % 2 == 0, pos + 1, pos - 1), pos)
    return n_pairs, group, proposed
