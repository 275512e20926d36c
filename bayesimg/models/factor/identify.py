r"""Post-hoc identification of the factor draws: Procrustes onto a varimax reference.

The likelihood of a factor model depends on the scores Z (n × K) and loadings
W (P × K) only through ZWᵀ, and z_i ~ N(0, I) is invariant under every
orthogonal rotation, so a draw (Z, W) and (ZR, WR) are equally likely under the
likelihood and the score prior; only the sparse (horseshoe × ARD) prior on W
prefers some axes.  On real data that preference is weak for factors whose ARD
precisions are alike (factors of similar size loading on the same views): the
Gibbs chain then moves the split of their common span into factors slowly and
chains settle on different splits, while the span itself agrees (TCGA breast,
K = 15: subspace agreement 0.999 between chains, per-factor variance shares with
ESS 2-5 in 2 × 500 draws after sign/permutation matching alone).

Each draw is therefore rotated, after the sign/permutation matching of
:mod:`bayesimg.models.factor.align`, onto one common reference (the ex-post
approach of Aßmann, Boysen-Hogrefe & Pape 2016, with the reference made
canonical by varimax as in MatchAlign, Poworoznek, Ferrari & Dunson 2021):

1. loadings are put in noise-sd units, L = D W with D = diag(√τ_j) the draw's
   noise precisions' square roots (τ_j = 1 on the logit scale of count views),
   so no feature's units decide the axes;
2. the reference L_ref is the varimax rotation (Kaiser 1958; R's
   ``stats::varimax`` iteration, tolerance 1e-5, no Kaiser row normalisation,
   which would inflate the rows the horseshoe shrank to noise) of the mean of
   the draws' L;
3. each draw is rotated by the orthogonal Procrustes solution Q = UVᵀ,
   UΣVᵀ = LᵀL_ref (Schönemann 1966), the orthogonal matrix minimising
   ‖LQ − L_ref‖_F: the identified draw is (ZQ, WQ) and, for an outcome (a
   loading row of its own), βᵀQ;
4. the reference is recomputed from the rotated draws and steps 2-3 repeated
   (``n_pass`` times).

ZWᵀ and z_i's N(0, I) prior are unchanged, so predictions, imputations, the
log-likelihood and the data-scale R² totals are the same draw by draw.  For a
fixed reference, Procrustes(LR) = RᵀQ, so the identified draw depends on the
draw's rotation class only, whatever rotation the chain is in: every quantity
computed from it (loadings, scores, variance shares) is identified, and mixes
as well as the rotation-invariant signal does.  Scores are not whitened: the
prior pins each factor's scale only through z ~ N(0, 1), and forcing unit
sample variance per draw would hide that uncertainty.

The per-factor prior scales of the sampler (ARD precisions α, horseshoe scales
λ and inclusion weights) belong to the sampler's axes.  They follow the
permutation nearest to Q (the assignment maximising Σ|Q_kk'|), exact when the
data pin the rotation (Q is then a signed permutation) and approximate for
factors whose split is free; they are reported but left out of the
convergence verdict.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

#: entries (draws × P × K) of the weighted loadings held at once
CHUNK_ENTRIES = 4_000_000


def varimax(L: np.ndarray, max_iter: int = 1000, tol: float = 1e-5) -> np.ndarray:
    """Orthogonal T (K, K) maximising Kaiser's varimax criterion of ``L`` (P, K) T.

    Σ_k [Σ_j l⁴_jk − (Σ_j l²_jk)²/P] by the SVD iteration T ← UVᵀ,
    UΣVᵀ = Lᵀ(Λ³ − Λ diag(Σ_j Λ²_jk)/P), Λ = LT, from T = I until the bound Σσ
    grows by less than ``tol`` (relative).
    """
    P, K = L.shape
    T = np.eye(K)
    crit = 0.0
    for _ in range(max_iter):
        R = L @ T
        u, s, vt = np.linalg.svd(L.T @ (R**3 - R * (np.sum(R**2, axis=0) / P)))
        T = u @ vt
        if s.sum() <= crit * (1.0 + tol):
            break
        crit = s.sum()
    return T


def _noise_sd_weights(samples, layout) -> np.ndarray:
    """(C, S, P) √τ_j: loadings times these are in noise-sd units."""
    C, S = samples["Z"].shape[:2]
    return np.concatenate([
        np.sqrt(samples[f"tau_{v}"]) if f"tau_{v}" in samples else np.ones((C, S, d))
        for v, d in zip(layout.views, layout.sizes, strict=True)], axis=-1)


def rotate_draws(samples: dict[str, np.ndarray], layout, Q: np.ndarray
                 ) -> dict[str, np.ndarray]:
    """(ZQ, WQ, βᵀQ) for per-draw orthogonal Q (C, S, K, K); the per-factor prior scales
    (α, incl, λ, W_raw) follow the permutation nearest to Q (max Σ|Q_kk'|)."""
    out = dict(samples)
    C, S, n, K = samples["Z"].shape
    out["Z"] = samples["Z"] @ Q
    for v in layout.views:
        out[f"W_{v}"] = samples[f"W_{v}"] @ Q
    if "beta" in samples:
        out["beta"] = (samples["beta"][:, :, None, :] @ Q)[:, :, 0, :]
    perm = np.empty((C * S, K), int)
    for s, q in enumerate(np.abs(Q).reshape(C * S, K, K)):
        rows, cols = linear_sum_assignment(-q)
        perm[s, cols] = rows
    perm = perm.reshape(C, S, K)
    for site in ["alpha"] + [f"{p}_{v}" for p in ("incl", "lam", "W_raw") for v in layout.views]:
        if site in samples:
            x = samples[site]
            idx = perm.reshape((C, S) + (1,) * (x.ndim - 3) + (K,))
            out[site] = np.take_along_axis(x, np.broadcast_to(idx, x.shape), axis=-1)
    return out


def identify_draws(samples: dict[str, np.ndarray], layout, n_pass: int = 2
                   ) -> dict[str, np.ndarray]:
    """Rotate every draw (site → (chain, draw, ...)) onto the varimax reference by
    orthogonal Procrustes (module docstring); the input arrays are not modified.

    Loadings are weighted a chunk of draws at a time (at most ``CHUNK_ENTRIES``
    entries), so no (chain, draw, P, K) temporary is made beyond the output.
    """
    C, S, _, K = samples["Z"].shape
    W = [samples[f"W_{v}"].reshape((C * S,) + samples[f"W_{v}"].shape[2:])
         for v in layout.views]
    w = _noise_sd_weights(samples, layout).reshape(C * S, -1)        # (C·S, P)
    P = w.shape[1]
    step = max(1, CHUNK_ENTRIES // (P * K))

    def chunks():
        for a in range(0, C * S, step):
            b = min(C * S, a + step)
            yield a, b, np.concatenate([x[a:b] for x in W], axis=1) * w[a:b, :, None]

    ref = sum(L.sum(axis=0) for _, _, L in chunks()) / (C * S)
    Q = np.empty((C * S, K, K))
    for _ in range(n_pass):
        ref = ref @ varimax(ref)
        acc = np.zeros_like(ref)
        for a, b, L in chunks():
            u, _, vt = np.linalg.svd(np.swapaxes(L, 1, 2) @ ref)
            Q[a:b] = u @ vt
            acc += np.einsum("spk,skl->pl", L, Q[a:b])
        ref = acc / (C * S)
    return rotate_draws(samples, layout, Q.reshape(C, S, K, K))
