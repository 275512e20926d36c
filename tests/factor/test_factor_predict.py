"""Issue 14: factors of new subjects from the views they have, missing views imputed,
the outcome predicted, the predictive density, and K-fold through fit_many."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import bayesimg as bi
from bayesimg.data.simulate_factor import simulate_factor
from bayesimg.models import MultiViewFactor

GIBBS = dict(method="gibbs", chains=2, warmup=100, draws=100)


@pytest.fixture(scope="module")
def case():
    data, truth = simulate_factor(n=60, sizes={"a": 10, "b": 8}, n_factors=2,
                                  outcome="gaussian", view_activity=1.0, seed=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = bi.fit(MultiViewFactor(2), data, seed=0, progress=False, **GIBBS)
    return data, truth, fit


def test_factors_from_the_views_a_subject_has_and_imputed_views(case):
    data, _, fit = case
    new = data.subset_subjects(np.arange(20))
    full = bi.predict(fit, new)["predictions_summary"].dataset
    # from all their data, the factors of training subjects match the fit's own
    z_fit = fit.posterior["Z"].mean(("chain", "draw")).values[:20]
    for k in range(2):
        assert abs(np.corrcoef(full["Z_mean"].values[:, k], z_fit[:, k])[0, 1]) > 0.9
    # view "b" missing: predicted (imputed) from view "a" alone, in original units
    only_a = bi.predict(fit, new.subset_views(["a"]))
    summ = only_a["predictions_summary"].dataset
    b_cols = [f for f in summ.coords["feature"].values if f.startswith("b:")]
    imputed = summ["Y_mean"].sel(feature=b_cols).values
    truth_b = new.view("b").values
    ok = ~np.isnan(truth_b)
    r = np.corrcoef(imputed[ok], truth_b[ok])[0, 1]
    assert r > 0.3
    assert only_a["predictions"].dataset["Y"].dims == ("chain", "draw", "sample", "feature")
    assert "outcome_mean" in summ and np.isfinite(summ["log_pred_density"].values).all()
    # fewer observed entries: a higher (less negative) density of what is observed
    assert np.all(summ["log_pred_density"].values > full["log_pred_density"].values)


def test_factor_kfold(case):
    data, _, fit = case
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = bi.kfold(MultiViewFactor(2), data, k=3, fit=fit, **GIBBS)
    assert res.method == "kfold" and res.n_obs == 60 and np.isfinite(res.elpd)
    assert res.obs_dims == ("sample",)
