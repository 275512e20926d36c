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
  (BiDAG's ``compareDAGs`` convention) plus SHD, optionally on CPDAGs;
* :func:`graph_scores` — the same counts at three levels, so direction is scored:
  ``dag`` (an edge is right only with its direction: a reversed edge is one FP and
  one FN), ``cpdag`` (the CPDAGs of both graphs compared mark by mark: a pair is
  right when both have it with the same mark — the same compelled direction, or
  both undirected) and ``skeleton`` (adjacency only, as :func:`structure_scores`);
  :func:`mean_graph_scores` averages them over matched pairs of graphs.

Discoveries (SNP → phenotype associations against a known truth; one rule for every
method).  A *discovery* is a row ``(snp, phenotype)`` of a table, or — when the table has
a ``credible_set`` column — all rows of one credible set for one phenotype, whose SNPs
are the set's.  It is **true** when one of its SNPs is causal for that phenotype, or in
r² ≥ ``threshold`` (default 0.5) with a SNP causal for that phenotype; such a discovery
*detects* each of those causal (snp, phenotype) pairs.

* :func:`label_discoveries` — one row per discovery with ``true`` and ``detects``;
* :func:`score_discoveries` — power (fraction of causal pairs detected by a true
  discovery), empirical FDR (false / all discoveries; 0 when there is none) and counts;
* :func:`power_fdr_curve` — power and empirical FDR of every threshold on a score
  (e.g. p-values, lfsr), pooled over replicates; :func:`power_at_fdr` — the most power
  whose empirical FDR stays ≤ α;
* :func:`pip_calibration` — per bin of PIP, the mean PIP against the observed fraction
  causal; :func:`interval_coverage`, :func:`rmse`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment
from scipy.special import comb

__all__ = [
    "adjusted_rand_index", "clustering_accuracy", "completeness", "contingency_table",
    "dag_to_cpdag", "homogeneity", "interval_coverage", "label_discoveries",
    "match_labels", "normalized_mutual_info", "pip_calibration", "power_at_fdr",
    "power_fdr_curve", "rmse", "score_discoveries", "shd", "structure_scores", "v_measure",
    "graph_scores", "mean_graph_scores",
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


def _pair_marks(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per unordered pair {i < j}: (i → j or i — j, j → i or i — j) as two bool vectors."""
    iu = np.triu_indices(a.shape[0], 1)
    return a[iu], a.T[iu]


def _counts(match: np.ndarray, est: np.ndarray, true: np.ndarray, shd_value) -> dict:
    tp, n_est, n_true = int(match.sum()), int(est.sum()), int(true.sum())
    return {"TP": tp, "FP": n_est - tp, "FN": n_true - tp,
            "TPR": 1.0 if n_true == 0 else tp / n_true,
            "FDR": 0.0 if n_est == 0 else (n_est - tp) / n_est, "SHD": shd_value}


def graph_scores(estimate, truth) -> dict[str, dict[str, float]]:
    """TP, FP, FN, TPR, FDR and SHD of an estimated DAG against the true DAG at three levels.

    ``dag``: the estimated directed edges against the true ones (i → j is a TP only when
    the truth has i → j; a reversed edge is one FP and one FN); SHD on the DAGs.
    ``cpdag``: both graphs' CPDAGs (:func:`dag_to_cpdag`), per adjacent pair its mark
    (i → j, j → i or undirected); a pair adjacent in both is a TP only when the marks
    agree, so TP counts pairs, FP = estimated adjacencies − TP, FN = true adjacencies −
    TP; SHD on the CPDAGs.  ``skeleton``: adjacencies only (:func:`structure_scores`).
    TPR = TP/(TP + FN) (1 when the truth has no edge), FDR = FP/(TP + FP) (0 when nothing
    is estimated).  The ``cpdag`` entry holds NaNs when the estimate has a cycle (a
    thresholded edge-probability graph can): a cyclic graph has no CPDAG.
    """
    e = _adjacency(estimate, "estimate")
    t = _adjacency(truth, "truth")
    if e.shape != t.shape:
        raise ValueError(f"graphs differ in size: {e.shape} vs {t.shape}")
    if not _is_acyclic(t):
        raise ValueError("truth must be acyclic (a DAG)")
    ef, eb = _pair_marks(e)
    tf, tb = _pair_marks(t)
    out = {"dag": _counts(e & t, e, t, shd(e, t)),
           "skeleton": _counts((ef | eb) & (tf | tb), ef | eb, tf | tb, shd(e | e.T, t | t.T))}
    if _is_acyclic(e):
        ce, ct = dag_to_cpdag(e).astype(bool), dag_to_cpdag(t).astype(bool)
        cef, ceb = _pair_marks(ce)
        ctf, ctb = _pair_marks(ct)
        adj_e, adj_t = cef | ceb, ctf | ctb
        same = adj_e & adj_t & (cef == ctf) & (ceb == ctb)
        out["cpdag"] = _counts(same, adj_e, adj_t, shd(ce, ct))
    else:
        out["cpdag"] = dict.fromkeys(("TP", "FP", "FN", "TPR", "FDR", "SHD"), float("nan"))
    return {k: out[k] for k in ("dag", "cpdag", "skeleton")}


def mean_graph_scores(estimates: Sequence, truths: Sequence) -> dict[str, dict[str, float]]:
    """:func:`graph_scores` averaged over matched pairs of graphs (e.g. clusters)."""
    rows = [graph_scores(e, t) for e, t in zip(estimates, truths, strict=True)]
    return {level: {k: float(np.mean([r[level][k] for r in rows])) for k in rows[0][level]}
            for level in rows[0]}


# ------------------------------------------------------------------ discoveries
def _causal_pairs(truth) -> pd.DataFrame:
    """``(snp, phenotype)`` rows of the causal pairs (a DataFrame, or an object's ``effects``)."""
    table = getattr(truth, "effects", truth)
    if not isinstance(table, pd.DataFrame) or not {"snp", "phenotype"} <= set(table.columns):
        raise ValueError("truth must be a DataFrame (or have .effects) with columns "
                         "'snp' and 'phenotype'")
    if "effect" in table.columns:
        table = table[np.asarray(table["effect"], dtype=float) != 0]
    return table[["snp", "phenotype"]].astype(str).drop_duplicates().reset_index(drop=True)


def _r2_frame(ld_r2) -> pd.DataFrame:
    if not isinstance(ld_r2, pd.DataFrame):
        raise ValueError("ld_r2 must be a square DataFrame indexed by SNP on both axes")
    if ld_r2.shape[0] != ld_r2.shape[1]:
        raise ValueError(f"ld_r2 must be square, got shape {ld_r2.shape}")
    frame = ld_r2.copy()
    frame.index = frame.index.astype(str)
    frame.columns = frame.columns.astype(str)
    return frame


def label_discoveries(discoveries: pd.DataFrame, truth, ld_r2: pd.DataFrame,
                      threshold: float = 0.5, *,
                      set_members: Mapping | None = None) -> pd.DataFrame:
    """Decide, for every discovery, whether it is true and which causal pairs it detects.

    Parameters
    ----------
    discoveries : pandas.DataFrame
        Columns ``snp`` and ``phenotype`` (other columns are carried along, from the
        first row of each discovery).  With a ``credible_set`` column, rows sharing a
        non-missing set label and a phenotype form one discovery (a credible set is
        one signal, however many SNPs it lists); rows with a missing label stay single.
    truth : pandas.DataFrame or object with ``.effects``
        The causal pairs: columns ``snp``, ``phenotype`` (rows with ``effect`` 0 ignored).
    ld_r2 : pandas.DataFrame
        Squared SNP correlations, indexed by SNP ID on both axes.  SNPs missing from it
        match only themselves.
    threshold : float
        r² at or above which a SNP counts as a proxy of a causal SNP.
    set_members : mapping, optional
        ``{credible set label: SNP IDs}``: all SNPs of each set (when the table lists
        only some of them, e.g. the lead SNP).

    Returns
    -------
    pandas.DataFrame
        One row per discovery: ``phenotype``, ``snps`` (tuple), ``true`` (bool),
        ``detects`` (tuple of causal ``(snp, phenotype)`` pairs) and the carried columns.
    """
    if not {"snp", "phenotype"} <= set(discoveries.columns):
        raise ValueError("discoveries need columns 'snp' and 'phenotype'")
    causal = _causal_pairs(truth)
    causal_snp = causal["snp"].to_numpy(dtype=str)
    causal_pheno = causal["phenotype"].to_numpy(dtype=str)
    r2 = _r2_frame(ld_r2)
    r2_values = r2.to_numpy(dtype=float)
    position = {s: i for i, s in enumerate(r2.index)}
    causal_pos = np.array([position.get(s, -1) for s in causal_snp], dtype=np.int64)

    def hits(snps: np.ndarray, phenos: np.ndarray) -> np.ndarray:
        """(len(snps), n causal) bool: row's SNP is causal for, or a proxy of, each pair."""
        pos = np.array([position.get(s, -1) for s in snps], dtype=np.int64)
        out = snps[:, None] == causal_snp[None, :]
        known = (pos[:, None] >= 0) & (causal_pos[None, :] >= 0)
        if known.any():
            ld = r2_values[np.maximum(pos, 0)][:, np.maximum(causal_pos, 0)] >= threshold
            out |= known & ld
        return out & (phenos[:, None] == causal_pheno[None, :])

    table = discoveries.reset_index(drop=True).copy()
    table["snp"] = table["snp"].astype(str)
    table["phenotype"] = table["phenotype"].astype(str)
    snps = table["snp"].to_numpy(dtype=str)
    phenos = table["phenotype"].to_numpy(dtype=str)
    if "credible_set" in table.columns:
        in_set = table["credible_set"].notna().to_numpy()
        unit = np.where(in_set, "cs\x00" + table["credible_set"].astype(str), "snp\x00" + snps)
    else:
        in_set = np.zeros(len(table), bool)
        unit = np.char.add("snp\x00", snps) if len(snps) else np.zeros(0, str)
    codes, _ = pd.factorize(pd.Series(unit, dtype=object) + "\x00" + phenos)
    n_units = int(codes.max()) + 1 if len(codes) else 0
    unit_hits = np.zeros((n_units, len(causal)), bool)
    np.logical_or.at(unit_hits, codes, hits(snps, phenos))
    _, first = np.unique(codes, return_index=True)
    unit_snps = [(s,) for s in snps[first]]
    for u in np.unique(codes[in_set]):
        rows = np.flatnonzero(codes == u)
        members = list(dict.fromkeys(snps[rows]))
        if set_members is not None:
            label = table["credible_set"].iloc[rows[0]]
            extra = set_members.get(label, set_members.get(str(label), ()))
            members += [str(m) for m in extra if str(m) not in members]
            unit_hits[u] |= hits(np.asarray(members, dtype=str),
                                 np.full(len(members), phenos[rows[0]])).any(axis=0)
        unit_snps[u] = tuple(members)
    pairs = list(zip(causal_snp.tolist(), causal_pheno.tolist(), strict=True))
    carried = table.drop(columns=["snp", "phenotype"]).iloc[first].reset_index(drop=True)
    out = pd.DataFrame({
        "phenotype": phenos[first],
        "snps": pd.Series(unit_snps, dtype=object),
        "true": unit_hits.any(axis=1),
        "detects": pd.Series([tuple(pairs[k] for k in np.flatnonzero(h)) for h in unit_hits],
                             dtype=object),
    })
    return pd.concat([out, carried], axis=1)


def score_discoveries(discoveries: pd.DataFrame, truth, ld_r2: pd.DataFrame,
                      threshold: float = 0.5, *,
                      set_members: Mapping | None = None) -> dict[str, float]:
    """Power, empirical FDR and counts of a discovery table (rule: :func:`label_discoveries`).

    Returns
    -------
    dict
        ``n_discoveries``, ``n_true``, ``n_false``, ``fdr`` = n_false / n_discoveries
        (0 without discoveries), ``n_causal`` (causal pairs), ``n_detected`` (causal
        pairs detected by at least one true discovery) and ``power`` = n_detected /
        n_causal (NaN when nothing is causal).
    """
    labelled = label_discoveries(discoveries, truth, ld_r2, threshold,
                                 set_members=set_members)
    n_causal = len(_causal_pairs(truth))
    detected = {pair for pairs in labelled["detects"] for pair in pairs}
    n = len(labelled)
    n_true = int(labelled["true"].sum()) if n else 0
    return {"n_discoveries": n, "n_true": n_true, "n_false": n - n_true,
            "fdr": (n - n_true) / n if n else 0.0,
            "n_causal": n_causal, "n_detected": len(detected),
            "power": len(detected) / n_causal if n_causal else float("nan")}


def power_fdr_curve(labelled: pd.DataFrame | Sequence[pd.DataFrame], n_causal,
                    score: str, *, larger_is_stronger: bool = False) -> pd.DataFrame:
    """Empirical FDR and power of every threshold on ``score``, pooled over replicates.

    Parameters
    ----------
    labelled : DataFrame or sequence of DataFrames
        Outputs of :func:`label_discoveries` for *all* candidates of a method (one frame
        per replicate), each with the column ``score``.
    n_causal : int or sequence of int
        Causal pairs per replicate (the power's denominator is their total).
    score : str
        Column ranking the candidates (p-value, lfsr, 1 − PIP, …).
    larger_is_stronger : bool
        True when a larger score is stronger evidence (PIP, |z|).

    Returns
    -------
    pandas.DataFrame
        One row per distinct score value, strongest first: ``threshold`` (calls are the
        candidates at least this strong), ``n_discoveries``, ``n_false``, ``fdr``,
        ``n_detected``, ``power``.
    """
    frames = [labelled] if isinstance(labelled, pd.DataFrame) else list(labelled)
    totals = [n_causal] if np.isscalar(n_causal) else list(n_causal)
    if len(totals) != len(frames):
        raise ValueError(f"{len(frames)} labelled tables but {len(totals)} causal counts")
    total = int(np.sum(totals))
    values, true, keys = [], [], []
    for rep, frame in enumerate(frames):
        values.append(np.asarray(frame[score], dtype=float))
        true.append(np.asarray(frame["true"], dtype=bool))
        keys += [tuple((rep, *pair) for pair in pairs) for pairs in frame["detects"]]
    values = np.concatenate(values) if values else np.zeros(0)
    true = np.concatenate(true) if true else np.zeros(0, bool)
    strength = values if larger_is_stronger else -values
    order = np.argsort(-strength, kind="stable")
    values, true = values[order], true[order]
    keys = [keys[i] for i in order]
    first_seen: dict = {}
    for rank, pairs in enumerate(keys):
        for pair in pairs:
            first_seen.setdefault(pair, rank)
    new_detections = np.bincount(np.asarray(list(first_seen.values()), dtype=np.int64),
                                 minlength=len(keys))[:len(keys)]
    n_calls = np.arange(1, len(values) + 1)
    n_false = np.cumsum(~true)
    n_detected = np.cumsum(new_detections)
    last = np.r_[values[1:] != values[:-1], True] if len(values) else np.zeros(0, bool)
    out = pd.DataFrame({"threshold": values[last], "n_discoveries": n_calls[last],
                        "n_false": n_false[last]})
    out["fdr"] = out["n_false"] / out["n_discoveries"]
    out["n_detected"] = n_detected[last]
    out["power"] = out["n_detected"] / total if total else np.nan
    return out.reset_index(drop=True)


def power_at_fdr(curve: pd.DataFrame, alpha: float = 0.05) -> dict[str, float]:
    """The most power among thresholds whose empirical FDR is ≤ ``alpha``.

    Returns ``power``, ``fdr``, ``threshold`` and ``n_discoveries`` of that threshold
    (power 0 and threshold NaN when no threshold qualifies).
    """
    ok = curve[curve["fdr"] <= alpha]
    if ok.empty:
        return {"power": 0.0, "fdr": 0.0, "threshold": float("nan"), "n_discoveries": 0}
    best = ok.loc[ok["power"].idxmax()]
    return {"power": float(best["power"]), "fdr": float(best["fdr"]),
            "threshold": float(best["threshold"]), "n_discoveries": int(best["n_discoveries"])}


def pip_calibration(pips, is_causal, bins=10) -> pd.DataFrame:
    """Mean PIP against the observed fraction causal, per bin of PIP.

    Parameters
    ----------
    pips : array-like
        Posterior inclusion probabilities in [0, 1].
    is_causal : array-like of bool
        Whether each unit is truly causal (same length).
    bins : int or array-like
        Number of equal-width bins on [0, 1], or the bin edges (increasing, from 0 to
        1).  Bins are half-open [a, b) except the last, which includes 1.

    Returns
    -------
    pandas.DataFrame
        One row per bin: ``lower``, ``upper``, ``n``, ``mean_pip``, ``frac_causal``,
        ``se`` (binomial standard error of the fraction at the bin's mean PIP) and
        ``difference`` = frac_causal − mean_pip (NaN for empty bins).
    """
    p = np.asarray(pips, dtype=float).ravel()
    y = np.asarray(is_causal, dtype=bool).ravel()
    if p.shape != y.shape:
        raise ValueError(f"pips and is_causal differ in length: {p.size} vs {y.size}")
    if np.any(~np.isfinite(p)) or np.any((p < 0) | (p > 1)):
        raise ValueError("pips must be finite and within [0, 1]")
    edges = np.linspace(0.0, 1.0, int(bins) + 1) if np.isscalar(bins) else \
        np.asarray(bins, dtype=float)
    if edges.ndim != 1 or len(edges) < 2 or np.any(np.diff(edges) <= 0):
        raise ValueError("bins must be a positive count or increasing edges")
    idx = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, len(edges) - 2)
    rows = []
    for b in range(len(edges) - 1):
        member = idx == b
        n = int(member.sum())
        mean = float(p[member].mean()) if n else float("nan")
        frac = float(y[member].mean()) if n else float("nan")
        se = float(np.sqrt(max(mean * (1 - mean), 1e-12) / n)) if n else float("nan")
        rows.append({"lower": float(edges[b]), "upper": float(edges[b + 1]), "n": n,
                     "mean_pip": mean, "frac_causal": frac, "se": se,
                     "difference": frac - mean})
    return pd.DataFrame(rows)


def interval_coverage(lower, upper, true) -> float:
    """Fraction of true values inside their intervals ``[lower, upper]`` (NaN if none)."""
    lo, hi, t = (np.asarray(a, dtype=float).ravel() for a in (lower, upper, true))
    if not (lo.shape == hi.shape == t.shape):
        raise ValueError("lower, upper and true must have the same length")
    if t.size == 0:
        return float("nan")
    return float(np.mean((lo <= t) & (t <= hi)))


def rmse(estimate, true) -> float:
    """Root mean squared error of estimates against the truth (NaN if empty)."""
    e, t = np.asarray(estimate, dtype=float), np.asarray(true, dtype=float)
    if e.shape != t.shape:
        raise ValueError(f"estimate and true differ in shape: {e.shape} vs {t.shape}")
    if e.size == 0:
        return float("nan")
    return float(np.sqrt(np.mean((e - t) ** 2)))
