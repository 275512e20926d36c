r"""Evaluation metrics for clusterings and graphs (numpy/scipy only).

Clusterings (two label vectors of the same length; labels may be any hashable
values, their names never matter):

* :func:`adjusted_rand_index` — Hubert & Arabie (1985) ARI, as ``mclust::adjustedRandIndex``;
* :func:`normalized_mutual_info` — NMI with the arithmetic-mean normaliser
  ``I(U;V) / ((H(U) + H(V))/2)`` (scikit-learn's default, Vinh et al. 2010 "NMI_sum");
* :func:`homogeneity`, :func:`completeness`, :func:`v_measure` — Rosenberg & Hirschberg (2007);
* :func:`clustering_accuracy` — the fraction of subjects whose predicted cluster is
  matched to their true class under the best one-to-one matching (Hungarian
  assignment, scipy's ``linear_sum_assignment``), as bnClustOmics' ``checkmembership``
  after ``relabelSimulation``; :func:`match_labels` returns the matching itself.

Graphs are adjacency matrices ``A[i, j] != 0`` for an edge i → j (parent i, child j).
In a CPDAG/PDAG an undirected edge i — j has ``A[i, j]`` and ``A[j, i]`` both set.

* :func:`dag_to_cpdag` — the CPDAG (essential graph) of a DAG: v-structures kept
  directed, then Meek's rules R1–R3 applied to a fixed point (Meek 1995; these
  rules suffice when starting from a DAG's pattern);
* :func:`shd` — structural Hamming distance: the number of node pairs whose edge
  status differs (missing, extra, reversed, or undirected vs directed each count
  1), as ``pcalg::shd``; with ``cpdag=True`` both graphs are first turned into CPDAGs;
* :func:`structure_scores` — skeleton TP/FP/FN, TPR = TP/(TP+FN), FDR = FP/(TP+FP)
  (BiDAG's ``compareDAGs`` convention) plus SHD, optionally on CPDAGs.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.special import comb

__all__ = [
    "adjusted_rand_index", "clustering_accuracy", "completeness", "contingency_table",
    "dag_to_cpdag", "homogeneity", "match_labels", "normalized_mutual_info", "shd",
    "structure_scores", "v_measure",
]


# ------------------------------------------------------------------ clusterings
def _labels(a, b) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(a)
    b = np.asarray(b)
    if a.ndim != 1 or b.ndim != 1:
        raise ValueError("label vectors must be one-dimensional")
    if a.shape != b.shape:
        raise ValueError(f"label vectors differ in length: {a.shape[0]} vs {b.shape[0]}")
    if a.size == 0:
        raise ValueError("label vectors are empty")
    return a, b


def contingency_table(true, pred) -> np.ndarray:
    """Counts ``n[r, c]`` of subjects in true class r and predicted cluster c."""
    true, pred = _labels(true, pred)
    _, ti = np.unique(true, return_inverse=True)
    _, pi = np.unique(pred, return_inverse=True)
    table = np.zeros((ti.max() + 1, pi.max() + 1), dtype=np.int64)
    np.add.at(table, (ti, pi), 1)
    return table


def adjusted_rand_index(true, pred) -> float:
    """Adjusted Rand index (1 = identical partitions, ≈ 0 for independent ones)."""
    n = contingency_table(true, pred)
    total = n.sum()
    sum_cells = comb(n, 2).sum()
    sum_rows = comb(n.sum(axis=1), 2).sum()
    sum_cols = comb(n.sum(axis=0), 2).sum()
    expected = sum_rows * sum_cols / comb(total, 2) if total > 1 else 0.0
    maximum = 0.5 * (sum_rows + sum_cols)
    if maximum == expected:  # both partitions trivial (one cluster, or all singletons)
        return 1.0
    return float((sum_cells - expected) / (maximum - expected))


def _entropy(counts: np.ndarray) -> float:
    p = counts[counts > 0] / counts.sum()
    return float(-np.sum(p * np.log(p)))


def _mutual_info(n: np.ndarray) -> float:
    total = n.sum()
    pij = n / total
    pi = pij.sum(axis=1, keepdims=True)
    pj = pij.sum(axis=0, keepdims=True)
    nz = pij > 0
    return float(np.sum(pij[nz] * np.log(pij[nz] / (pi @ pj)[nz])))


def normalized_mutual_info(true, pred) -> float:
    """NMI = I(U;V) / mean(H(U), H(V)); 1 when both partitions are trivial and equal."""
    n = contingency_table(true, pred)
    hu, hv = _entropy(n.sum(axis=1)), _entropy(n.sum(axis=0))
    if hu == 0.0 and hv == 0.0:
        return 1.0
    denom = 0.5 * (hu + hv)
    return float(max(0.0, _mutual_info(n)) / denom)


def homogeneity(true, pred) -> float:
    """1 − H(class | cluster)/H(class): each cluster holds members of one class only."""
    n = contingency_table(true, pred)
    h_class = _entropy(n.sum(axis=1))
    if h_class == 0.0:
        return 1.0
    return float(_mutual_info(n) / h_class)


def completeness(true, pred) -> float:
    """1 − H(cluster | class)/H(cluster): all members of a class share one cluster."""
    n = contingency_table(true, pred)
    h_cluster = _entropy(n.sum(axis=0))
    if h_cluster == 0.0:
        return 1.0
    return float(_mutual_info(n) / h_cluster)


def v_measure(true, pred) -> float:
    """Harmonic mean of homogeneity and completeness (equals NMI with the arithmetic mean)."""
    h, c = homogeneity(true, pred), completeness(true, pred)
    return 0.0 if h + c == 0 else float(2 * h * c / (h + c))


def match_labels(true, pred) -> dict:
    """Best one-to-one map {predicted cluster: true class} (Hungarian on the contingency table).

    Unmatched predicted clusters (more clusters than classes) map to ``None``.
    """
    true, pred = _labels(true, pred)
    classes, clusters = np.unique(true), np.unique(pred)
    n = contingency_table(true, pred)
    rows, cols = linear_sum_assignment(-n)
    mapping = {c: None for c in clusters.tolist()}
    for r, c in zip(rows, cols, strict=True):
        mapping[clusters[c].item()] = classes[r].item()
    return mapping


def clustering_accuracy(true, pred) -> float:
    """Fraction of subjects correctly assigned after the best one-to-one label matching."""
    n = contingency_table(true, pred)
    rows, cols = linear_sum_assignment(-n)
    return float(n[rows, cols].sum() / n.sum())


# ------------------------------------------------------------------ graphs
def _adjacency(a, name: str) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise ValueError(f"{name} must be a square adjacency matrix, got shape {a.shape}")
    a = a != 0
    if np.any(np.diag(a)):
        raise ValueError(f"{name} has a self-loop at node {int(np.flatnonzero(np.diag(a))[0])}")
    return a


def _is_acyclic(a: np.ndarray) -> bool:
    a = a.copy()
    indeg = a.sum(axis=0)
    queue = list(np.flatnonzero(indeg == 0))
    seen = 0
    while queue:
        v = queue.pop()
        seen += 1
        for w in np.flatnonzero(a[v]):
            a[v, w] = False
            indeg[w] -= 1
            if indeg[w] == 0:
                queue.append(w)
    return seen == a.shape[0]


def dag_to_cpdag(dag) -> np.ndarray:
    """The CPDAG of ``dag``: compelled edges directed, reversible edges undirected (0/1 int)."""
    d = _adjacency(dag, "dag")
    if not _is_acyclic(d):
        raise ValueError("dag_to_cpdag needs an acyclic graph")
    p = d.shape[0]
    skel = d | d.T
    directed = np.zeros_like(d)
    # v-structures a → c ← b with a, b non-adjacent
    for c in range(p):
        parents = np.flatnonzero(d[:, c])
        for i, a in enumerate(parents):
            for b in parents[i + 1:]:
                if not skel[a, b]:
                    directed[a, c] = directed[b, c] = True
    undirected = skel & ~directed & ~directed.T

    def orient(i, j):
        directed[i, j] = True
        undirected[i, j] = undirected[j, i] = False

    changed = True
    while changed:
        changed = False
        for i in range(p):
            for j in range(p):
                if not undirected[i, j]:
                    continue
                # R1: k → i — j, k and j non-adjacent  ⇒  i → j
                if np.any(directed[:, i] & ~skel[:, j] & (np.arange(p) != j)):
                    orient(i, j)
                    changed = True
                    continue
                # R2: i → k → j and i — j  ⇒  i → j
                if np.any(directed[i, :] & directed[:, j]):
                    orient(i, j)
                    changed = True
                    continue
                # R3: i — k → j, i — l → j, k and l non-adjacent  ⇒  i → j
                ks = np.flatnonzero(undirected[i, :] & directed[:, j])
                if any(not skel[k, m] for a_, k in enumerate(ks) for m in ks[a_ + 1:]):
                    orient(i, j)
                    changed = True
    out = directed | undirected
    return out.astype(int)


def shd(estimate, truth, cpdag: bool = False) -> int:
    """Structural Hamming distance between two graphs (DAGs, or PDAGs as above).

    Counts node pairs {i, j} whose edge status differs: absent vs present,
    i → j vs j → i, directed vs undirected.  ``cpdag=True`` compares the CPDAGs
    of two DAGs (differences within a Markov equivalence class do not count).
    """
    e = _adjacency(estimate, "estimate")
    t = _adjacency(truth, "truth")
    if e.shape != t.shape:
        raise ValueError(f"graphs differ in size: {e.shape} vs {t.shape}")
    if cpdag:
        e = dag_to_cpdag(e).astype(bool)
        t = dag_to_cpdag(t).astype(bool)
    iu = np.triu_indices(e.shape[0], 1)
    status_e = (e[iu], e.T[iu])
    status_t = (t[iu], t.T[iu])
    differ = (status_e[0] != status_t[0]) | (status_e[1] != status_t[1])
    return int(differ.sum())


def structure_scores(estimate, truth, cpdag: bool = False) -> dict[str, float]:
    """Skeleton TP, FP, FN, TPR, FDR and SHD of an estimated graph against the truth.

    TPR = TP/(TP + FN) (1.0 when the truth has no edge); FDR = FP/(TP + FP)
    (0.0 when nothing is estimated).  ``shd`` is on DAGs, or CPDAGs if ``cpdag``.
    """
    e = _adjacency(estimate, "estimate")
    t = _adjacency(truth, "truth")
    iu = np.triu_indices(e.shape[0], 1)
    se = (e | e.T)[iu]
    st = (t | t.T)[iu]
    tp = int(np.sum(se & st))
    fp = int(np.sum(se & ~st))
    fn = int(np.sum(~se & st))
    return {"TP": tp, "FP": fp, "FN": fn,
            "TPR": 1.0 if tp + fn == 0 else tp / (tp + fn),
            "FDR": 0.0 if tp + fp == 0 else fp / (tp + fp),
            "SHD": shd(e, t, cpdag=cpdag)}


def mean_structure_scores(estimates: Sequence, truths: Sequence, cpdag: bool = False,
                          ) -> dict[str, float]:
    """Per-graph :func:`structure_scores` averaged over matched pairs (e.g. clusters)."""
    rows = [structure_scores(e, t, cpdag) for e, t in zip(estimates, truths, strict=True)]
    return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
