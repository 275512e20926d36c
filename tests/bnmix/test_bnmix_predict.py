"""Issue 14: cluster membership probabilities of new subjects (BNMix.predict_draws)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy.special import logsumexp

import bayesimg as bi
from bayesimg.data.simulate_bnmix import simulate_bnmix
from bayesimg.models import BNMix


def test_membership_of_new_subjects():
    data, truth = simulate_bnmix(n=120, n_nodes=4, n_clusters=2, edge_prob=0.6, n_remove=1,
                                 n_add=2, seed=11)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = bi.fit(BNMix(2, order=list(truth.order)), data, method="gibbs", chains=2,
                     warmup=100, draws=150, seed=1, progress=False)
    # training subjects as "new": the fit's own memberships and log-likelihood come back
    pred = bi.predict(fit, data.subset_subjects(np.arange(15)))
    summ = pred["predictions_summary"].dataset
    np.testing.assert_allclose(summ["membership"].values,
                               fit.posterior["membership"].mean(("chain", "draw")).values[:15],
                               atol=1e-6)
    ll = fit.tree["log_likelihood"].dataset
    ll = ll[next(iter(ll.data_vars))].values.reshape(-1, data.n_subjects)[:, :15]
    np.testing.assert_allclose(summ["log_pred_density_model"].values,
                               logsumexp(ll, axis=0) - math.log(ll.shape[0]), atol=1e-6)
    assert pred["predictions"].dataset["label"].dims == ("chain", "draw", "sample")


@pytest.mark.slow
def test_bnmix_kfold_through_fit_many():
    """Grouped K-fold for the BN mixture: every subject scored once, by a fit without it.
    (slow: the fold shape compiles its own Gibbs program, ~25 CPU-s.)"""
    data, truth = simulate_bnmix(n=90, n_nodes=4, n_clusters=2, edge_prob=0.6, n_remove=1,
                                 n_add=2, seed=12)
    site = np.repeat(["a", "b", "c"], 30)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = bi.kfold(BNMix(2, order=list(truth.order)), data, k=3, folds=site,
                       method="gibbs", chains=2, warmup=60, draws=80, seed=1)
    assert res.method == "kfold" and res.n_obs == 90 and np.isfinite(res.pointwise).all()
    assert res.details["heldout_density"].startswith("log mean")      # no exact form
    folds = np.asarray(res.details["folds"])
    for s in "abc":                                                     # a group stays whole
        assert np.unique(folds[site == s]).size == 1
