r"""What the data identify in a BN-mixture fit, for convergence checks that mean something.

A linear-Gaussian DAG is identified only up to its Markov equivalence class: DAGs with
the same skeleton and v-structures give the same distribution (Verma & Pearl 1990;
Chickering 1995).  With the node order sampled, two chains can therefore hold the
same clusters and the same skeletons with some edges pointing opposite ways, and
the directed weights B_k[i, j] — and with them each node's intercept and residual
variance, which are defined given its parents — need not agree, although every
quantity the likelihood sees does.  R-hat on those parameters then reports a
failure that is not one.

Added to the posterior (per draw, after the clusters are aligned):

* ``skeleton`` (cluster × pair): 1 when the pair {a, b} is joined,
  max(|B_k[a, b]|, |B_k[b, a]|) > δ (δ = the model's ``edge_threshold``), else 0;
  its mean is the skeleton edge probability.  One ``pair`` per unordered pair of
  nodes an edge may join (not blacklisted both ways, not two binary nodes);
* the moments the model implies for each cluster, direction-free:
  x = μ' + Bᵀx + e ⇒ x = A(μ' + e) with A = (I − Bᵀ)⁻¹, so

      ``implied_mean`` = A μ',   Σ = A D Aᵀ:  ``implied_var`` = diag Σ (cluster × node),
      ``implied_cov`` = Σ_ab (cluster × pair),

  with μ'_j = μ_kj, D_jj = σ²_kj for Gaussian nodes and μ'_j = θ_kj = logit⁻¹ μ_kj,
  D_jj = θ_kj (1 − θ_kj) for binary nodes (roots, independent within a cluster, so
  these are their exact first two moments).

Declared to the diagnostics (the ``convergence_exclude`` entry of the alignment
info, read by :func:`bayesimg.report.diagnose`), with the reason
"direction not identified":

* the node order ``position`` (never identified: many orders fit one DAG);
* B_k[a, b] and B_k[b, a] of every pair whose chains agree on the skeleton
  (max − min over chains of P(joined) ≤ :data:`AGREE`) but not on the direction
  (max − min of P(|B_k[a, b]| > δ) > :data:`AGREE`); the same rule on ``B_shared``;
* μ_kj and σ²_kj (``mu_shared[j]`` for ``B_shared``) of a node with such an edge.

:data:`GROUPS` names the two questions a fit answers, so the diagnostics judge the
clusters and the networks separately (``convergence_groups``).

Edges whose chains disagree on the skeleton itself are not excused: the diagnostics
then report the network as not converged, which it is.
"""

from __future__ import annotations

import numpy as np

#: chains "agree" on a probability when they differ by at most this much (the
#: |ΔP(edge)| tolerance of issue 16's mixing target)
AGREE = 0.1

#: variables answering "which subjects belong together" and "what are the networks"
GROUPS = {"clusters": ["pi", "membership"],
          "networks": ["skeleton", "implied_mean", "implied_var", "implied_cov"]}

REASON = ("direction not identified: the chains agree on the edge (skeleton) but not on "
          "its direction, and Markov-equivalent DAGs fit the data equally well; the node "
          "order, these directed weights and their nodes' intercepts and residual variances "
          "are judged through direction-free summaries instead (skeleton, implied_mean, "
          "implied_var, implied_cov)")


def candidate_pairs(base_allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(a, b) with a < b of every pair an edge may join in either direction."""
    joinable = base_allowed | base_allowed.T
    a, b = np.nonzero(np.triu(joinable, 1))
    return a, b


def pair_labels(names: np.ndarray, base_allowed: np.ndarray) -> np.ndarray:
    a, b = candidate_pairs(base_allowed)
    return np.asarray([f"{names[i]}--{names[j]}" for i, j in zip(a, b, strict=True)],
                      dtype=str)


def identified_summaries(samples: dict, is_binary: np.ndarray, base_allowed: np.ndarray,
                         threshold: float) -> dict[str, np.ndarray]:
    """``skeleton``, ``implied_mean``, ``implied_var``, ``implied_cov`` of every draw
    (arrays (chain, draw, …)) from the aligned ``B``, ``mu``, ``sigma2``."""
    a, b = candidate_pairs(base_allowed)
    parts: dict[str, list] = {"skeleton": [], "implied_mean": [], "implied_var": [],
                              "implied_cov": []}
    for c in range(np.shape(samples["B"])[0]):          # one chain at a time: bounded memory
        B = np.asarray(samples["B"][c], dtype=float)                    # (S, K, p, p)
        mu = np.asarray(samples["mu"][c], dtype=float)
        absB = np.abs(B)
        joined = np.maximum(absB[..., a, b], absB[..., b, a]) > threshold
        theta = 1.0 / (1.0 + np.exp(-mu))
        m = np.where(is_binary, theta, mu)
        d = np.where(is_binary, theta * (1.0 - theta), np.asarray(samples["sigma2"][c]))
        A = np.linalg.inv(np.eye(B.shape[-1]) - np.swapaxes(B, -1, -2))   # (I − Bᵀ)⁻¹
        cov = np.einsum("...ij,...j,...kj->...ik", A, d, A)
        parts["skeleton"].append(joined.astype(np.int8))
        parts["implied_mean"].append(np.einsum("...ij,...j->...i", A, m))
        parts["implied_var"].append(np.diagonal(cov, axis1=-2, axis2=-1).copy())
        parts["implied_cov"].append(cov[..., a, b])
    return {k: np.stack(v) for k, v in parts.items()}


def _spread(x: np.ndarray) -> np.ndarray:
    """max − min over chains of the per-chain means (axis 0 chains, 1 draws)."""
    per_chain = x.mean(axis=1)
    return per_chain.max(axis=0) - per_chain.min(axis=0)


def direction_only(B: np.ndarray, a: np.ndarray, b: np.ndarray, threshold: float,
                   ) -> np.ndarray:
    """(…, p, p) bool: directed weights of pairs whose chains agree on the skeleton but
    not on the direction (``B`` (chain, draw, …, p, p))."""
    absB = np.abs(B)
    on = absB > threshold
    joined = np.maximum(absB[..., a, b], absB[..., b, a]) > threshold
    skel_ok = _spread(joined) <= AGREE
    dir_bad = (_spread(on[..., a, b]) > AGREE) | (_spread(on[..., b, a]) > AGREE)
    flag = skel_ok & dir_bad
    out = np.zeros(B.shape[2:], bool)
    out[..., a, b] = flag
    out[..., b, a] = flag
    return out


def direction_exclusions(samples: dict, names: np.ndarray, clusters: np.ndarray,
                         base_allowed: np.ndarray, threshold: float) -> dict | None:
    """The ``convergence_exclude`` entry (module docstring), or None with one chain."""
    B = np.asarray(samples["B"])
    if B.shape[0] < 2:
        return None
    a, b = candidate_pairs(base_allowed)
    elements: list[dict] = []
    if "position" in samples:
        elements += [{"var": "position", "sel": {"node": str(n)}} for n in names]
    flags = direction_only(B, a, b, threshold)                     # (K, p, p)
    for k, i, j in np.argwhere(flags):
        elements.append({"var": "B", "sel": {"cluster": str(clusters[k]),
                                             "parent": str(names[i]), "node": str(names[j])}})
    for k, j in np.argwhere(flags.any(axis=1)):
        for var in ("mu", "sigma2"):
            elements.append({"var": var, "sel": {"cluster": str(clusters[k]),
                                                 "node": str(names[j])}})
    if "B_shared" in samples:
        shared = direction_only(np.asarray(samples["B_shared"]), a, b, threshold)
        for i, j in np.argwhere(shared):
            elements.append({"var": "B_shared", "sel": {"parent": str(names[i]),
                                                        "node": str(names[j])}})
        for j in np.flatnonzero(shared.any(axis=0)):
            elements.append({"var": "mu_shared", "sel": {"node": str(names[j])}})
    if not elements:
        return None
    return {"reason": REASON, "elements": elements,
            "directed_weights_not_identified": int(flags.sum())}


def chain_agreement(post, threshold: float, floor_reps: int = 50, seed: int = 0,
                    ) -> dict[str, float]:
    """Cross-chain agreement of a fit's networks (a posterior Dataset with chains).

    ``max_abs_dP_skeleton`` / ``max_abs_dP_directed``: max over clusters and pairs of
    max − min over chains of the skeleton / directed edge probability P(|B| > δ).
    ``iid_floor_max_abs_dP_skeleton``: the same statistic for chains of *independent*
    draws of the same length from the pooled edge probabilities (mean of ``floor_reps``
    simulations): the Monte Carlo floor even a perfectly mixing sampler has, since
    each chain's estimate of a P near ½ has standard error √(P(1 − P)/draws).
    """
    B = np.asarray(post["B"].transpose("chain", "draw", "cluster", "parent", "node").values)
    C, S = B.shape[:2]
    p = B.shape[-1]
    a, b = np.triu_indices(p, 1)
    absB = np.abs(B)
    joined = np.maximum(absB[..., a, b], absB[..., b, a]) > threshold
    pooled = joined.mean(axis=(0, 1)).ravel()
    rng = np.random.default_rng(seed)
    sims = rng.binomial(S, pooled, size=(floor_reps, C, pooled.size)) / S
    floor = float(np.mean((sims.max(axis=1) - sims.min(axis=1)).max(axis=1))) if a.size \
        else 0.0
    return {"max_abs_dP_skeleton": float(_spread(joined).max()) if a.size else 0.0,
            "max_abs_dP_directed": float(_spread(absB > threshold).max()),
            "iid_floor_max_abs_dP_skeleton": floor}
