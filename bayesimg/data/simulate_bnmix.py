r"""Simulated mixtures of linear-Gaussian Bayesian networks with known truth.

The design follows the structure-only benchmark used to study bnClustOmics
(K = 3 clusters, 25 Gaussian nodes, N = 450): the clusters have **the same node
means, the same noise variances and the same weights on shared edges, and differ
only in their DAGs**, so neither the means nor the marginal variances separate
them — only the dependence structure does.

Generative recipe (``rng = numpy.random.default_rng(seed)``):

1. a random topological order σ shared by all clusters (hidden from the model);
2. a base DAG: each ordered pair (σ_a, σ_b), a < b, is an edge with probability
   ``edge_prob`` (default 2/(p − 1), i.e. about p edges); weights ±U(w_min, w_max);
3. cluster k's DAG: the base DAG with ``n_remove`` base edges deleted and
   ``n_add`` new edges (consistent with σ) added, new weights ±U(w_min, w_max);
4. noise sd per node U(noise_min, noise_max), shared by the clusters; intercepts 0;
5. cluster sizes: ``weights`` × N (rounded, exact counts), labels shuffled;
6. x_i = (I − B_kᵀ)⁻¹ ε_i for a Gaussian node, ancestrally in σ; optional
   ``n_binary`` Bernoulli root nodes (probability ``binary_prob`` in every
   cluster) placed first in σ whose children get weight ±U(w_min, w_max).

The Gaussian columns are standardised (as :func:`~bayesimg.data.make_views`
does); ``truth`` holds the parameters on the raw scale and the *oracle*
classification, the Bayes rule with the true parameters, whose ARI is the
ceiling any method can reach on that sample.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
from scipy.special import logsumexp

from bayesimg.data.views import MultiViewData, make_views

__all__ = ["BNMixTruth", "simulate_bnmix", "oracle_loglik"]


@dataclasses.dataclass(frozen=True)
class BNMixTruth:
    """Known truth of a :func:`simulate_bnmix` draw (raw, unstandardised scale)."""

    labels: np.ndarray        # (n,) int in 0..K-1
    weights: np.ndarray       # (K,) mixture weights used
    dags: np.ndarray          # (K, p, p) bool, dags[k, i, j]: edge i → j
    B: np.ndarray             # (K, p, p) edge weights
    intercepts: np.ndarray    # (K, p)
    noise_sd: np.ndarray      # (K, p); unused (1.0) for binary nodes
    is_binary: np.ndarray     # (p,) bool
    order: np.ndarray         # (p,) a topological order shared by all clusters
    node_names: np.ndarray    # (p,) str
    oracle_labels: np.ndarray  # (n,) Bayes classification with the true parameters
    oracle_membership: np.ndarray  # (n, K) posterior class probabilities, true parameters


def oracle_loglik(X: np.ndarray, B: np.ndarray, intercepts: np.ndarray,
                  noise_sd: np.ndarray, is_binary: np.ndarray) -> np.ndarray:
    """(n, K) log-density of each row under each cluster's network (raw scale)."""
    K = B.shape[0]
    out = np.zeros((X.shape[0], K))
    for k in range(K):
        eta = intercepts[k] + X @ B[k]
        gauss = -0.5 * np.log(2 * np.pi * noise_sd[k] ** 2) - 0.5 * ((X - eta) / noise_sd[k]) ** 2
        bern = X * eta - np.logaddexp(0.0, eta)
        out[:, k] = np.where(is_binary[None, :], bern, gauss).sum(axis=1)
    return out


def simulate_bnmix(n: int = 450, n_nodes: int = 25, n_clusters: int = 3, *,
                   weights=None, edge_prob: float | None = None, n_remove: int = 6,
                   n_add: int = 6, w_min: float = 0.5, w_max: float = 1.0,
                   noise_min: float = 0.5, noise_max: float = 1.0, n_binary: int = 0,
                   binary_prob: float = 0.5, standardize: bool = True, seed: int = 0,
                   ) -> tuple[MultiViewData, BNMixTruth]:
    """Draw a mixture of K DAG models differing only in structure (see module doc).

    Returns ``(data, truth)``: a :class:`~bayesimg.data.MultiViewData` with one
    Gaussian view ``"x"`` (and a bernoulli view ``"b"`` when ``n_binary > 0``)
    and its true labels in ``data.labels["cluster"]``, and a :class:`BNMixTruth`.
    """
    if n_clusters < 1 or n_nodes < 2 or n < n_clusters:
        raise ValueError("need n_clusters >= 1, n_nodes >= 2 and n >= n_clusters")
    rng = np.random.default_rng(seed)
    p = n_nodes + n_binary
    K = n_clusters
    weights = np.full(K, 1.0 / K) if weights is None else np.asarray(weights, float)
    weights = weights / weights.sum()
    is_binary = np.zeros(p, bool)
    is_binary[:n_binary] = True
    # order: binary roots first (in index order), then a random order of the Gaussian nodes
    order = np.concatenate([np.arange(n_binary), n_binary + rng.permutation(n_nodes)])
    pos = np.empty(p, int)
    pos[order] = np.arange(p)
    allowed = (pos[:, None] < pos[None, :]) & ~is_binary[None, :]
    if edge_prob is None:
        edge_prob = min(1.0, 2.0 / max(1, p - 1))

    def weight(size):
        return rng.choice([-1.0, 1.0], size) * rng.uniform(w_min, w_max, size)

    base = allowed & (rng.random((p, p)) < edge_prob)
    base_w = np.where(base, weight((p, p)), 0.0)
    dags = np.zeros((K, p, p), bool)
    B = np.zeros((K, p, p))
    for k in range(K):
        dag = base.copy()
        edges = np.argwhere(base)
        if len(edges):
            drop = edges[rng.choice(len(edges), min(n_remove, len(edges)), replace=False)]
            dag[drop[:, 0], drop[:, 1]] = False
        free = np.argwhere(allowed & ~base)
        if len(free):
            add = free[rng.choice(len(free), min(n_add, len(free)), replace=False)]
            dag[add[:, 0], add[:, 1]] = True
        dags[k] = dag
        B[k] = np.where(dag & base, base_w, np.where(dag, weight((p, p)), 0.0))
    noise = np.tile(rng.uniform(noise_min, noise_max, p), (K, 1))
    noise[:, is_binary] = 1.0
    intercepts = np.zeros((K, p))
    intercepts[:, is_binary] = np.log(binary_prob / (1 - binary_prob))

    counts = np.floor(weights * n).astype(int)
    counts[: n - counts.sum()] += 1
    labels = rng.permutation(np.repeat(np.arange(K), counts))
    X = np.zeros((n, p))
    for j in order:
        eta = intercepts[labels, j] + np.einsum("ni,ni->n", X, B[labels][:, :, j])
        if is_binary[j]:
            X[:, j] = (rng.random(n) < 1.0 / (1.0 + np.exp(-eta))).astype(float)
        else:
            X[:, j] = eta + noise[labels, j] * rng.standard_normal(n)

    ll = oracle_loglik(X, B, intercepts, noise, is_binary) + np.log(weights)
    member = np.exp(ll - logsumexp(ll, axis=1, keepdims=True))
    names = np.array([f"b{j + 1}" for j in range(n_binary)]
                     + [f"n{j + 1}" for j in range(n_nodes)])
    subjects = [f"s{i + 1:04d}" for i in range(n)]
    tables = {"x": pd.DataFrame(X[:, n_binary:], index=subjects, columns=names[n_binary:])}
    likelihoods = {"x": "gaussian"}
    if n_binary:
        tables = {"b": pd.DataFrame(X[:, :n_binary], index=subjects, columns=names[:n_binary]),
                  **tables}
        likelihoods["b"] = "bernoulli"
    data = make_views(tables, likelihoods=likelihoods, standardize=standardize,
                      labels=pd.DataFrame({"cluster": labels}, index=subjects),
                      name=f"bnmix_sim_K{K}_p{p}_n{n}_seed{seed}")
    truth = BNMixTruth(labels=labels, weights=weights, dags=dags, B=B, intercepts=intercepts,
                       noise_sd=noise, is_binary=is_binary, order=order, node_names=names,
                       oracle_labels=member.argmax(axis=1), oracle_membership=member)
    return data, truth
