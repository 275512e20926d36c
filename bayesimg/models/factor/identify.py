r"""Post-hoc identification of each factor draw by varimax (MatchAlign).

The likelihood of a factor model depends on the scores Z (n × K) and loadings
W (P × K) only through ZWᵀ, and z_i ~ N(0, I) is invariant under every
orthogonal rotation, so a draw (Z, W) and (ZR, WR) are equally likely under the
likelihood and the score prior; only the sparse (horseshoe × ARD) prior on W
prefers some axes.  On real data that preference is weak for factors whose ARD
precisions are alike (two factors of similar size loading on the same views):
the Gibbs chain then moves the split of their common span into two factors
very slowly, while the span itself mixes well (TCGA breast, K = 15: subspace
agreement 0.999 between chains, but the per-factor variance shares of such
pairs have ESS 3-5 in 2 × 500 draws).

Following MatchAlign (Poworoznek, Ferrari & Dunson 2021) every draw is mapped
to a canonical representative of its rotation class before the sign and
permutation matching of :mod:`bayesimg.models.factor.align`:

1. **varimax**: T (K × K orthogonal) maximises Kaiser's (1958) criterion
   Σ_k [Σ_j l⁴_jk − (Σ_j l²_jk)²/P] of L = D W T, D = diag(√τ_j) the draw's
   noise precisions' square roots (loadings in noise-sd units, whatever each
   feature's units; τ_j = 1 on the logit scale of count views), computed by
   the SVD iteration of R's ``stats::varimax`` (tolerance 1e-5, no Kaiser row
   normalisation, which would inflate the rows the horseshoe shrank to noise)
   from T = I, i.e. the local optimum nearest the sampler's own axes;
2. the identified draw is (ZT, WT) and, for an outcome (a loading row of its
   own), βᵀT.  ZWᵀ is unchanged, and so is z_i's N(0, I) prior.

Under Z → ZR, W → WR (R orthogonal) varimax returns RᵀT, so the identified
draw is the same: it is a function of the rotation class of (Z, W) alone (up
to the sign/permutation that the matching step then fixes, and up to ties
between local optima of the varimax criterion).  Every quantity computed from
it — loadings, scores, variance shares — is an identified quantity that
converges when the subspace and the signal ZWᵀ do, whatever the chain does
inside the rotation class.  Predictions, imputations, the log-likelihood and
the data-scale R² totals are unchanged draw by draw.  Scores are not whitened:
the prior pins each factor's scale only through z ~ N(0, 1), and forcing unit
sample variance would hide that uncertainty (simulated Z intervals covered the
planted scores 0.74 of the time whitened).  On data whose planted loadings
are sparse the varimax axes lie within a few degrees of them (largest |T|
0.995-1.000 on the test design), so recovery is kept.

The per-factor prior scales of the sampler — ARD precisions α, horseshoe
scales λ and inclusion weights — belong to the sampler's axes, not to the
identified ones.  They are carried along the permutation nearest to T (the
assignment maximising Σ|T_kk'|), which is exact when the data pin the
rotation (T is then a signed permutation) and approximate for factors whose
split is free; they are reported but left out of the convergence verdict.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from scipy.optimize import linear_sum_assignment

#: entries of a chunk of stacked loadings processed at once (draws × P × K)
CHUNK_ENTRIES = 4_000_000
#: draws per vectorised varimax call (median 12 iterations, the slowest ~50 on TCGA)
CHUNK_DRAWS = 32


def varimax(L: np.ndarray, max_iter: int = 500, tol: float = 1e-5) -> np.ndarray:
    """Varimax rotations of a stack of loadings ``L`` (B, P, K) → T (B, K, K).

    Kaiser's criterion maximised by the SVD iteration T ← UVᵀ with
    UΣVᵀ = Lᵀ(Λ³ − Λ diag(Σ_j Λ²_jk)/P), Λ = LT, started at T = I, until the
    criterion's bound Σσ grows by less than ``tol`` (relative; R's default
    ``eps``), each draw on its own (one compiled ``while_loop`` per draw,
    vectorised over draws; in the precision JAX runs in).
    """
    T = _varimax_batch(jnp.asarray(L), float(tol), int(max_iter))
    return np.asarray(T, dtype=np.float64)


@functools.partial(jax.jit, static_argnames=("tol", "max_iter"))
def _varimax_batch(L, tol, max_iter):
    P, K = L.shape[-2:]

    def one(Li):
        def body(carry):
            T, crit, it, _ = carry
            R = Li @ T
            u, s, vt = jnp.linalg.svd(Li.T @ (R**3 - R * (jnp.sum(R**2, axis=0) / P)))
            new = jnp.sum(s)
            return u @ vt, new, it + 1, new <= crit * (1.0 + tol)

        def cond(carry):
            return (~carry[3]) & (carry[2] < max_iter)

        init = (jnp.eye(K, dtype=Li.dtype), jnp.zeros((), Li.dtype), 0, jnp.asarray(False))
        return jax.lax.while_loop(cond, body, init)[0]

    return jax.vmap(one)(L)


def identify_draws(samples: dict[str, np.ndarray], layout) -> dict[str, np.ndarray]:
    """Whitened varimax representative of every draw (module docstring).

    ``samples``: site → (chain, draw, ...).  Returns a new dict with ``Z``,
    ``W_<view>`` and ``beta`` replaced by the identified draws and the per-factor
    prior scales (``alpha``, ``incl_<view>``, ``lam_<view>``, ``W_raw_<view>``)
    permuted along the permutation nearest to each draw's rotation.  The input
    arrays are not modified.
    """
    out = dict(samples)
    Z = samples["Z"]                                                  # (C, S, n, K)
    C, S, n, K = Z.shape
    flatZ = Z.reshape(C * S, n, K)
    Ws = {v: samples[f"W_{v}"].reshape(C * S, d, K)
          for v, d in zip(layout.views, layout.sizes, strict=True)}
    # loadings in noise-sd units, w_jk √τ_j (τ_j = 1 on the logit scale of count
    # views): invariant to the units of each feature, and unchanged by rotations
    weights = np.concatenate([
        np.sqrt(samples[f"tau_{v}"].reshape(C * S, d)) if f"tau_{v}" in samples
        else np.ones((C * S, d)) for v, d in zip(layout.views, layout.sizes, strict=True)],
        axis=1)                                                      # (C·S, P)
    P = weights.shape[1]
    T = np.empty((C * S, K, K))
    # equal chunks (one compiled shape, the last one padded) of at most CHUNK_DRAWS
    # draws: a vectorised while_loop runs until the chunk's slowest draw has converged
    n_chunks = -(-C * S // max(1, min(CHUNK_DRAWS, CHUNK_ENTRIES // (P * K))))
    step = -(-C * S // n_chunks)
    for a in range(0, C * S, step):
        rows = np.minimum(np.arange(a, a + step), C * S - 1)   # the last one padded
        L = np.concatenate([Ws[v][rows] for v in layout.views], axis=1)
        T[a:a + step] = varimax(L * weights[rows][..., None])[:min(step, C * S - a)]
    out["Z"] = (flatZ @ T).reshape(Z.shape)
    for v in layout.views:
        out[f"W_{v}"] = (Ws[v] @ T).reshape(samples[f"W_{v}"].shape)
    if "beta" in samples:
        out["beta"] = (samples["beta"].reshape(C * S, 1, K) @ T).reshape(samples["beta"].shape)
    perm = np.empty((C * S, K), int)
    for s in range(C * S):
        rows, cols = linear_sum_assignment(-np.abs(T[s]))
        perm[s, cols] = rows
    perm = perm.reshape(C, S, K)
    for site in ["alpha"] + [f"{p}_{v}" for p in ("incl", "lam", "W_raw") for v in layout.views]:
        if site in samples:
            x = samples[site]
            idx = perm.reshape((C, S) + (1,) * (x.ndim - 3) + (K,))
            out[site] = np.take_along_axis(x, np.broadcast_to(idx, x.shape), axis=-1)
    return out
