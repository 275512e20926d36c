r"""Integrated LOO for :class:`~bayesimg.models.gsmtr.SpikeSlabMTR`.

Given one posterior draw θ = (δ, m, Σ) — which SNPs are in (δ_j), the mixture component
m_j = (pattern U, slab scale v) of each included SNP, and the residual covariance Σ — the
included coefficients are jointly Gaussian (model and references in
:mod:`bayesimg.models.gsmtr.spike_slab`):

* rank-1 pattern U = uuᵀ: w_j = β_j u with one coefficient β_j ~ N(0, v²), entering
  subject l's mean as x_lj β_j u;
* ROI subset S (U = D_S = diag(1_S); S = all ROIs is U = I): |S| independent coefficients
  w_jk ~ N(0, v²), k ∈ S, entering as x_lj w_jk e_k;
* covariates: Γ_qk ~ N(0, s_Γ²), entering as z_lq Γ_qk e_k;

and y_l = Σ (those terms) + e_l, e_l ~ N_c(0, Σ).  So log p(y_i | y_{-i}, θ) — all c
phenotypes of subject i left out together — is exact in closed form
(:func:`bayesimg.models.core.predict.gaussian_loo_given_loadings`, the block hat-matrix
identity; p = Σ_j |pattern of j| + rc coefficients, small because few SNPs are in), and
PSIS then runs over the draws of θ only, whose discrete part moves little when one subject
is left out (Vehtari, Mononen, Tolvanen, Sivula & Winther 2016, JMLR 17(103)).  Exact
because, given θ, the prior of the included effects does not involve π_gene, π_snp or the
mixture weights: p(θ | y_{-i}) ∝ p(θ | y) / p(y_i | y_{-i}, θ) holds for the stored
joint draws.

What the hook reads: ``snp_in``, ``slab_component`` and ``Sigma`` draws (stored sites), X,
Z and the components' patterns and scales from ``constant_data`` (``component_pattern``
(component, phenotype), ``component_rank1``, ``component_scale``), y from
``observed_data``.  A fit without them (saved before they were recorded) gets None, and
``fit.loo()`` falls back to plain PSIS, named in its output.
"""

from __future__ import annotations

import numpy as np

from bayesimg.models.core.predict import flat_draws, gaussian_loo_given_loadings

#: constant_data entries the hook needs
COMPONENT_CONSTANTS = ("component_pattern", "component_rank1", "component_scale")


def component_constants(patterns: np.ndarray, rank1: np.ndarray, scales: np.ndarray,
                        own_subset: np.ndarray | None = None):
    """constant_data entries describing every mixture component: ``patterns`` (K, c) the
    vector u (rank-1) or the 0/1 mask of S (subset), ``rank1`` (K,) which kind,
    ``scales`` (K,) the slab sd v, ``own_subset`` (K,) the ``"subsets"`` family, whose S is
    each SNP's own (the ``roi_subset`` draw)."""
    own = np.zeros(len(rank1), bool) if own_subset is None else own_subset
    return {"component_pattern": (("component", "phenotype"), np.asarray(patterns, float)),
            "component_rank1": (("component",), np.asarray(rank1, dtype=bool)),
            "component_scale": (("component",), np.asarray(scales, float)),
            "component_own_subset": (("component",), np.asarray(own, dtype=bool))}


def design_of_draw(included: np.ndarray, component: np.ndarray, patterns: np.ndarray,
                   rank1: np.ndarray, scales: np.ndarray, d: int, r: int,
                   covariate_var: float, own_subset: np.ndarray | None = None,
                   roi_subset: np.ndarray | None = None):
    """(columns, loadings, prior_var) of the coefficients that are Gaussian given one draw:
    columns index [X Z] (Z columns at d + q).  ``roi_subset`` (d, c): each SNP's own subset,
    used for the components flagged ``own_subset``."""
    c = patterns.shape[1]
    columns, loadings, prior_var = [], [], []
    for j, m in zip(np.flatnonzero(included), component[included], strict=True):
        u, v2 = patterns[m], scales[m] ** 2
        if own_subset is not None and own_subset[m]:
            u = roi_subset[j]
        if rank1[m]:
            columns.append(j)
            loadings.append(u)
            prior_var.append(v2)
        else:
            for k in np.flatnonzero(u):
                columns.append(j)
                loadings.append(np.eye(c)[k])
                prior_var.append(v2)
    for k in range(c):
        for q in range(r):
            columns.append(d + q)
            loadings.append(np.eye(c)[k])
            prior_var.append(covariate_var)
    return (np.asarray(columns, dtype=np.int64), np.asarray(loadings, float).reshape(-1, c),
            np.asarray(prior_var, float))


def spike_slab_loo(tree, *, draws: np.ndarray, covariate_scale: float):
    """``(log_lik (S, n), theta, note)`` for the flat draw indices ``draws``, or None when
    the fit lacks the data or the component constants."""
    cd = tree["constant_data"].dataset if "constant_data" in tree.children else {}
    if "X" not in cd or "observed_data" not in tree.children \
            or any(name not in cd for name in COMPONENT_CONSTANTS):
        return None
    own_subset = (np.asarray(cd["component_own_subset"].values, dtype=bool)
                  if "component_own_subset" in cd else None)
    sites = ("snp_in", "slab_component", "Sigma") + (
        ("roi_subset",) if own_subset is not None and own_subset.any() else ())
    post = flat_draws(tree, sites, draws)
    if len(post) < len(sites):
        return None
    X = np.asarray(cd["X"].values, dtype=float)
    Y = np.asarray(tree["observed_data"].dataset["y"].values, dtype=float)
    Z = np.asarray(cd["Z"].values, dtype=float) if "Z" in cd else None
    d, r = X.shape[1], 0 if Z is None else Z.shape[1]
    B = X if Z is None else np.hstack([X, Z])
    BtB, BtY = B.T @ B, B.T @ Y
    patterns = np.asarray(cd["component_pattern"].values, dtype=float)
    rank1 = np.asarray(cd["component_rank1"].values, dtype=bool)
    scales = np.asarray(cd["component_scale"].values, dtype=float)
    included = np.asarray(post["snp_in"]) > 0
    component = np.asarray(post["slab_component"], dtype=np.int64)
    Sig = np.asarray(post["Sigma"], dtype=float)
    S = included.shape[0]
    out = np.empty((S, X.shape[0]))
    for s in range(S):
        columns, loadings, prior_var = design_of_draw(
            included[s], component[s], patterns, rank1, scales, d, r, covariate_scale**2,
            own_subset, None if "roi_subset" not in post else np.asarray(post["roi_subset"][s]))
        out[s] = gaussian_loo_given_loadings(B, Y, columns, loadings, prior_var, Sig[s],
                                             BtB=BtB, BtY=BtY)
    theta = {"Sigma": (("phenotype", "phenotype_2"), Sig),
             "snps_in": ((), included.sum(axis=1).astype(float))}
    note = ("W and Γ integrated out given the inclusion/pattern configuration (δ, component) "
            "and Σ")
    return out, theta, note
