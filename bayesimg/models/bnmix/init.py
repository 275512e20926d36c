"""Starting points for the BN mixture: node order heuristic, k-means on PCs, multi-start EM.

Everything here runs once per fit before sampling (numpy, plus one jitted EM
program vmapped over restarts), and is deterministic given its seed.

* :func:`greedy_order` — top-down order on pooled data: repeatedly pick the
  node with the smallest residual variance given the nodes already placed
  (exact under equal noise variances, Chen, Drton & Wang 2019; a heuristic
  otherwise, refined by the order moves of the Gibbs kernel).  Binary nodes
  come first; whitelisted parents are always placed before their children.
* :func:`kmeans` — Lloyd's algorithm with k-means++ seeding (numpy).
* :func:`em_restarts` — MAP-EM of the fixed-order mixture (weighted adaptive-ridge
  regressions, soft memberships) from k-means starts on the top K + 2 principal
  components of the Gaussian nodes (as bnClustOmics' ``mclustPCA`` start; a
  quarter of the restarts) and random hard partitions (the rest), each softened
  as bnClustOmics' ``baseprob``; the run with the highest observed-data
  log-likelihood minus the L0-like edge penalty is kept, and every chain starts
  from it (:class:`~bayesimg.models.BNMix` splits it into shared part and
  deviations for the pooled model).

On the structure-only design the k-means-on-PCs starts alone are near chance
(the clusters share means and marginal variances); the EM lifts them to ARI
≈ 0.6, and the sampler started here reaches the same partition as one started
from the true labels, so the start is not what limits the final ARI.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from bayesimg.models.bnmix.math import membership_probs, mixture_loglik
from bayesimg.stored_programs import stored_jit


def greedy_order(X: np.ndarray, is_binary: np.ndarray, whitelist: np.ndarray,
                 ridge: float = 1e-3) -> np.ndarray:
    n, p = X.shape
    placed: list[int] = [int(j) for j in np.flatnonzero(is_binary)]
    remaining = [j for j in range(p) if not is_binary[j]]
    C = np.cov(X, rowvar=False) + ridge * np.eye(p)
    while remaining:
        best, best_var = None, np.inf
        for j in remaining:
            if np.any(whitelist[remaining, j]):
                continue  # a whitelisted parent of j is not placed yet
            if placed:
                Cpp = C[np.ix_(placed, placed)]
                c = C[placed, j]
                var = C[j, j] - c @ np.linalg.solve(Cpp, c)
            else:
                var = C[j, j]
            if var < best_var:
                best, best_var = j, var
        if best is None:  # pragma: no cover - whitelist acyclicity is checked before
            best = remaining[0]
        placed.append(best)
        remaining.remove(best)
    return np.asarray(placed, dtype=np.int64)


def kmeans(Z: np.ndarray, K: int, rng: np.random.Generator, n_iter: int = 100) -> np.ndarray:
    n = Z.shape[0]
    centres = [Z[rng.integers(n)]]
    for _ in range(1, K):
        d2 = np.min(((Z[:, None, :] - np.asarray(centres)[None]) ** 2).sum(-1), axis=1)
        probs = d2 / d2.sum() if d2.sum() > 0 else np.full(n, 1.0 / n)
        centres.append(Z[rng.choice(n, p=probs)])
    C = np.asarray(centres)
    labels = np.zeros(n, dtype=np.int64)
    for _ in range(n_iter):
        new = ((Z[:, None, :] - C[None]) ** 2).sum(-1).argmin(axis=1)
        for k in range(K):
            if np.any(new == k):
                C[k] = Z[new == k].mean(axis=0)
        if np.array_equal(new, labels):
            break
        labels = new
    return labels


def _em_program(K: int, n_iter: int):
    def run(resp, X, is_binary, allowed, known, ridge, noise_a, noise_b, adaptive):
        n, p = X.shape
        Xt = jnp.concatenate([jnp.ones((n, 1), X.dtype), X], axis=1)
        # include mask per node j: intercept + allowed parents (binary nodes: intercept only)
        inc = jnp.concatenate([jnp.ones((p, 1), bool), allowed.T & ~is_binary[:, None]], axis=1)

        def m_step(r, B_old, s2_old):
            Nk = r.sum(axis=0) + 1e-9
            pi = (Nk + 1.0) / (n + K)
            S = jnp.einsum("nk,na,nb->kab", r, Xt, Xt)

            # adaptive ridge (an L0-like penalty, log(n_k)/2 per edge: Frommlet & Nuel 2016)
            # when ``adaptive``, a plain ridge otherwise
            pen_b = jnp.where(adaptive, jnp.log(Nk + 1.0)[:, None, None] * s2_old[:, None, :]
                              / (B_old**2 + 0.01), ridge)                     # (K, i, j)
            pen = jnp.concatenate([jnp.full((K, 1, p), 1e-6, X.dtype), pen_b], axis=1)

            def solve(Sk, penk, j):
                m = inc[j]
                G = jnp.where(m[:, None] & m[None, :], Sk, 0.0) + jnp.diag(
                    jnp.where(m, penk[:, j], 1.0))
                rhs = jnp.where(m, Sk[:, 1 + j], 0.0)
                return jnp.linalg.solve(G, rhs)

            beta = jax.vmap(lambda Sk, pk: jax.vmap(lambda j: solve(Sk, pk, j))(jnp.arange(p)))(
                S, pen)
            Sxy = jnp.swapaxes(S[:, :, 1:], 1, 2)
            yty = jnp.diagonal(S, axis1=1, axis2=2)[:, 1:]
            rss = yty - 2 * jnp.sum(beta * Sxy, -1) + jnp.einsum("kja,kab,kjb->kj", beta, S, beta)
            sigma2 = (noise_b + jnp.maximum(rss, 0.0) / 2) / (noise_a + 1 + Nk[:, None] / 2)
            frac = (S[:, 0, 1:] + 1.0) / (Nk[:, None] + 2.0)
            mu = jnp.where(is_binary, jnp.log(frac) - jnp.log1p(-frac), beta[..., 0])
            B = jnp.where(is_binary[None, None, :], 0.0, jnp.swapaxes(beta[..., 1:], 1, 2))
            B = jnp.where(allowed[None], B, 0.0)
            sigma2 = jnp.where(is_binary, 1.0, sigma2)
            return pi, mu, B, sigma2

        # n_iter (M, E) steps and a last M step, all in one loop so that the M step is
        # traced and compiled once (the last pass keeps its responsibilities)
        def body(i, carry):
            r, B_old, s2_old, _ = carry
            params = m_step(r, B_old, s2_old)
            r_next = membership_probs(X, *params, is_binary, known)
            return jnp.where(i < n_iter, r_next, r), params[2], params[3], params

        ones_kp = jnp.ones((K, p), X.dtype)
        init = (resp, jnp.ones((K, p, p), X.dtype), ones_kp,
                (jnp.ones((K,), X.dtype), ones_kp, jnp.ones((K, p, p), X.dtype), ones_kp))
        r, _, _, params = jax.lax.fori_loop(0, n_iter + 1, body, init)
        ll = jnp.sum(mixture_loglik(X, *params, is_binary, known))
        # model choice between restarts: log-likelihood minus the L0-like edge penalty
        Nk = r.sum(axis=0)
        B = params[2]
        penalty = jnp.where(adaptive, jnp.sum(0.5 * jnp.log(Nk + 1.0)[:, None, None]
                                              * B**2 / (B**2 + 0.01)), 0.0)
        return ll - penalty, r, params

    # kept on disk (new processes skip tracing it): the program is fixed by (K, n_iter)
    return stored_jit(jax.vmap(run, in_axes=(0,) + (None,) * 8),
                      "bayesimg.models.bnmix.init._em_program", K, n_iter)


_EM_CACHE: dict = {}


def em_restarts(X, is_binary, allowed, known, K: int, *, n_kmeans: int = 5, n_random: int = 5,
                n_iter: int = 100, ridge: float = 1.0, noise_a: float = 2.0,
                noise_b: float = 1.0, adaptive: bool = True, seed: int = 0):
    """Best of several EM runs; returns dict(labels, pi, mu, B, sigma2, loglik, all_logliks)."""
    rng = np.random.default_rng(seed)
    n, p = X.shape
    gauss = ~is_binary
    Xg = X[:, gauss]
    U, s, _ = np.linalg.svd(Xg - Xg.mean(0), full_matrices=False)
    Z = U[:, : min(K + 2, Xg.shape[1])] * s[: min(K + 2, Xg.shape[1])]
    starts = []
    for _ in range(n_kmeans):
        lab = kmeans(Z, K, rng)
        r = np.full((n, K), 0.6 / max(K - 1, 1)) if K > 1 else np.ones((n, 1))
        r[np.arange(n), lab] = 0.4 if K > 1 else 1.0
        starts.append(r)
    for _ in range(n_random):
        lab = rng.integers(0, K, n)
        r = np.full((n, K), 0.6 / max(K - 1, 1)) if K > 1 else np.ones((n, 1))
        r[np.arange(n), lab] = 0.4 if K > 1 else 1.0
        starts.append(r)
    resp = np.stack(starts)
    known_np = np.asarray(known)
    if np.any(known_np >= 0):
        fixed = np.eye(K)[np.clip(known_np, 0, K - 1)]
        resp = np.where((known_np >= 0)[None, :, None], fixed[None], resp)
    key = (K, n_iter)
    if key not in _EM_CACHE:
        _EM_CACHE[key] = _em_program(K, n_iter)
    ll, r, params = _EM_CACHE[key](jnp.asarray(resp), jnp.asarray(X), jnp.asarray(is_binary),
                                   jnp.asarray(allowed), jnp.asarray(known_np),
                                   ridge, noise_a, noise_b, adaptive)
    ll = np.asarray(ll)
    ll = np.where(np.isfinite(ll), ll, -np.inf)
    best = int(np.argmax(ll))
    pi, mu, B, sigma2 = (np.asarray(a[best]) for a in params)
    r_best = np.asarray(r[best])
    return {"labels": r_best.argmax(axis=1).astype(np.int64), "membership": r_best, "pi": pi,
            "mu": mu, "B": B, "sigma2": sigma2, "objective": float(ll[best]),
            "all_logliks": ll.tolist()}
