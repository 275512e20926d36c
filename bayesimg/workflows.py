"""Workflows that fit several models and compare them: choosing K by comparison.

These sit above :mod:`bayesimg.models`, :mod:`bayesimg.inference` and
:mod:`bayesimg.report` (models never import those layers), so they live here.
The old names stay reachable: ``bayesimg.models.factor.outputs.select_k`` (also
``bayesimg.models.factor_outputs.select_k``) and
``bayesimg.models.bnmix.select_n_clusters`` resolve to the functions below.

* :func:`select_k` — multi-view factor models fitted over a grid of K, compared by
  PSIS-LOO of the z-integrated likelihood, with the number of factors ARD left active.
* :func:`select_n_clusters` — BN-mixture fits keyed by K, compared by PSIS-LOO (or
  WAIC) plus a one-standard-error parsimony rule.
"""

from __future__ import annotations

from bayesimg.data.views import MultiViewData
from bayesimg.errors import ModelSpecError
from bayesimg.inference import fit as run_fit
from bayesimg.models.bnmix.model import _post, bic
from bayesimg.models.factor.model import MultiViewFactor
from bayesimg.models.factor.outputs import marginal_tree, n_active
from bayesimg.report import compare

__all__ = ["select_k", "select_n_clusters"]


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


def select_n_clusters(fits: dict, ic: str = "loo", n_se: float = 1.0):
    """Choose K from fits keyed by K: PSIS-LOO (or WAIC) ranking plus a parsimony rule.

    The :func:`bayesimg.report.compare` table is extended with ``bic`` (as
    bnClustOmics computes it), ``occupied`` (clusters with posterior mean weight
    > 0.05, i.e. holding subjects) and ``chosen``.  The chosen K is the smallest
    whose elpd is within ``n_se`` standard errors of the best: a mixture with a
    superfluous cluster empties it and predicts as well, so the criterion alone
    ties, and the simpler model is preferred (the one-standard-error rule).
    Returns ``(K, table)``.
    """
    labelled = {f"K={k}": f for k, f in fits.items()}
    table = compare(labelled, ic=ic).copy()
    ks = {f"K={k}": int(k) for k in fits}
    table["K"] = [ks[i] for i in table.index]
    table["bic"] = [bic(labelled[i])["bic"] for i in table.index]
    table["occupied"] = [int((_post(labelled[i])["pi"].mean(("chain", "draw")) > 0.05).sum())
                         for i in table.index]
    best = table["elpd"].max()
    within = (best - table["elpd"]) <= n_se * table["dse"].clip(lower=1e-12)
    # rows within n_se of the best, and the best itself; no pd.concat, which compares the
    # tables' attrs (compare() keeps ArviZ ELPD data there, whose == is element-wise)
    chosen = int(table.loc[within | (table["elpd"] == best), "K"].min())
    table["chosen"] = table["K"] == chosen
    return chosen, table
