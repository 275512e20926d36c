"""Workflows that fit several models and compare them: choosing K by comparison.

These sit above :mod:`bayesimg.models`, :mod:`bayesimg.inference` and
:mod:`bayesimg.report` (models never import those layers), so they live here.
The old names stay reachable: ``bayesimg.models.factor.outputs.select_k`` (also
``bayesimg.models.factor_outputs.select_k``) and
``bayesimg.models.bnmix.select_n_clusters`` resolve to the functions below.

* :func:`select_k` — multi-view factor models fitted over a grid of K, compared by
  PSIS-LOO of the z-integrated likelihood, with the number of factors ARD left active.
* :func:`select_n_clusters` — BN-mixture fits keyed by K, compared by PSIS-LOO (or
  WAIC) plus a one-standard-error parsimony rule among the K whose every cluster holds
  at least 2% of the subjects (:func:`choose_by_one_se` is the rule on a table).
"""

from __future__ import annotations

import numpy as np

from bayesimg.data.views import MultiViewData
from bayesimg.errors import ModelSpecError
from bayesimg.inference import fit as run_fit
from bayesimg.models.bnmix.model import _post, bic, cluster_labels
from bayesimg.models.factor.model import MultiViewFactor
from bayesimg.models.factor.outputs import marginal_tree, n_active
from bayesimg.report import compare

__all__ = ["choose_by_one_se", "select_k", "select_n_clusters"]


def select_k(data: MultiViewData, ks, *, method: str = "gibbs", model_options=None,
             **fit_options):
    """Fit K ∈ ``ks`` and compare them by PSIS-LOO of the z-integrated likelihood.

    Returns ``(table, fits)``: the :func:`bayesimg.report.compare` table (on
    :func:`~bayesimg.models.factor.outputs.marginal_loglik`, leave-one-subject-out)
    with a column ``n_active`` (factors ARD kept active), and the fits keyed ``"K=<k>"``.
    """
    fits = {}
    for k in ks:
        model = MultiViewFactor(int(k), **(model_options or {}))
        fits[f"K={int(k)}"] = run_fit(model, data, method=method, **fit_options)
    if len(fits) < 2:
        raise ModelSpecError("select_k needs at least two values of K")
    table = compare({name: marginal_tree(f, data) for name, f in fits.items()}, ic="loo")
    table["n_active"] = [n_active(fits[name]) for name in table.index]
    return table, fits


def select_n_clusters(fits: dict, ic: str = "loo", n_se: float = 1.0, *,
                      min_cluster_share: float = 0.02, allow_small_clusters: bool = False):
    """Choose K from fits keyed by K: PSIS-LOO (or WAIC) ranking plus a parsimony rule,
    never landing on a K with an empty or tiny cluster unless asked.

    The :func:`bayesimg.report.compare` table is extended with ``bic`` (as
    bnClustOmics computes it), ``occupied`` (clusters holding at least one subject by
    its most probable cluster), ``smallest_share`` (the smallest cluster's fraction of
    the subjects, by the same assignment), ``eligible`` and ``chosen``.  A K is
    *eligible* when every cluster holds at least ``min_cluster_share`` of the subjects
    (default 2%; ``allow_small_clusters=True`` makes every K eligible).  The chosen K is
    the smallest eligible one whose elpd is within ``n_se`` standard errors of the best
    eligible elpd: a mixture with a superfluous cluster empties it and predicts as well,
    so the criterion alone ties, and the simpler model is preferred (the
    one-standard-error rule).  Returns ``(K, table)``.
    """
    if not 0.0 <= min_cluster_share < 1.0:
        raise ModelSpecError(f"min_cluster_share must be in [0, 1), got {min_cluster_share!r}")
    labelled = {f"K={k}": f for k, f in fits.items()}
    table = compare(labelled, ic=ic).copy()
    ks = {f"K={k}": int(k) for k in fits}
    table["K"] = [ks[i] for i in table.index]
    table["bic"] = [bic(labelled[i])["bic"] for i in table.index]
    shares = {i: _cluster_shares(labelled[i]) for i in table.index}
    table["occupied"] = [int(np.sum(shares[i] > 0)) for i in table.index]
    table["smallest_share"] = [float(shares[i].min()) for i in table.index]
    table["eligible"] = (table["smallest_share"] >= min_cluster_share) | allow_small_clusters
    chosen = choose_by_one_se(table, n_se)
    table["chosen"] = table["K"] == chosen
    return chosen, table


def _cluster_shares(fit) -> np.ndarray:
    """Fraction of the subjects whose most probable cluster is k, for every cluster k."""
    labels = np.asarray(cluster_labels(fit))
    K = int(_post(fit).sizes["cluster"])
    return np.bincount(labels, minlength=K) / max(labels.size, 1)


def choose_by_one_se(table, n_se: float = 1.0) -> int:
    """The smallest ``K`` among the ``eligible`` rows whose ``elpd`` is within ``n_se``
    standard errors (``dse``) of the best eligible elpd (the one-standard-error rule)."""
    pool = table[table["eligible"].astype(bool)]
    if pool.empty:
        raise ModelSpecError(
            "no K is eligible: every fit has a cluster holding fewer subjects than "
            "min_cluster_share (table column smallest_share); fit smaller K, or pass "
            "allow_small_clusters=True")
    best = pool["elpd"].max()
    within = (best - pool["elpd"]) <= n_se * pool["dse"].clip(lower=1e-12)
    # no pd.concat, which compares the tables' attrs (compare() keeps ArviZ ELPD data
    # there, whose == is element-wise)
    return int(pool.loc[within | (pool["elpd"] == best), "K"].min())
