"""MultiViewFactor on small data: likelihoods, missingness, outcome, K, transform, inputs.

Small designs keep each fit to seconds; the statistical checks use thresholds a
correct sampler passes with a wide margin while a broken one fails:

* Bernoulli view with 85% of entries missing (MOFA+'s Bernoulli likelihood
  returns NaN there): all draws finite, and the two Gaussian-view factors
  recovered (|r| > 0.9);
* binomial(2) dosage view + Gaussian outcome: ≥ 2 of 3 factors at |r| > 0.85 (binary
  data carry less information per entry), the outcome's factor effects β have
  the planted signs with intervals excluding 0, and the outcome predicted by
  ``transform`` from the views alone correlates > 0.8 with the truth;
* ``transform`` round trip: projecting the fitted subjects gives factors that
  correlate > 0.95 with the fit's own, and with a whole view withheld still
  > 0.8, with wider intervals;
* K: with 3 true factors and K = 6, ARD leaves 3 active; z-integrated PSIS-LOO
  prefers that fit (K = 6, 3 active) over K = 1 (the K = 6 refit reuses the
  module fixture's compiled sampler and gives its draws exactly);
* agreement: exact Gibbs and NUTS (same joint density) give the same fitted
  signal ZWᵀ (rotation-invariant) within Monte Carlo error, and SVI's intervals
  are checked against them (``svi_interval_check``).
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import xarray as xr

import bayesimg
from bayesimg.data.simulate_factor import factor_recovery, simulate_factor
from bayesimg.errors import DataValidationError, ModelSpecError
from bayesimg.models import MultiViewFactor
from bayesimg.models.factor import outputs as fo
from bayesimg.report.summary import top_loadings
from bayesimg.workflows import select_k

GIBBS = dict(method="gibbs", chains=2, warmup=150, draws=100, progress=False)


@pytest.fixture(scope="module")
def small():
    data, truth = simulate_factor(n=200, sizes={"a": 60, "b": 40}, n_factors=3,
                                  view_activity=0.7, seed=5)
    fit = bayesimg.fit(MultiViewFactor(6), data, seed=0, **GIBBS)
    return data, truth, fit


def test_ard_prunes_extra_factors(small):
    data, truth, fit = small
    assert fo.n_active(fit) == 3
    Z = fit.posterior["Z"].mean(("chain", "draw")).values
    n_rec, corr, _, _ = factor_recovery(Z, truth.Z)
    assert n_rec == 3, corr


def test_seed_reproducible(small):
    data, truth, fit = small
    again = bayesimg.fit(MultiViewFactor(6), data, seed=0, **GIBBS)
    np.testing.assert_array_equal(fit.posterior["Z"].values, again.posterior["Z"].values)


def test_transform_round_trip(small):
    data, truth, fit = small
    Zfit = fit.posterior["Z"].mean(("chain", "draw")).values
    active = json.loads(fit.tree.attrs["alignment"])["active_factors"]
    full = fo.transform(fit, data, n_draws=100)
    part = fo.transform(fit, data.subset_views(["a"]), n_draws=100)
    for k in active:
        assert np.corrcoef(full["Z_mean"].values[:, k], Zfit[:, k])[0, 1] > 0.95
    # factors of view a stay recoverable without view b, with wider intervals
    width_full = (full["Z_upper"] - full["Z_lower"]).values[:, active].mean()
    width_part = (part["Z_upper"] - part["Z_lower"]).values[:, active].mean()
    assert width_part > width_full
    a_factors = [k for k in active
                 if float(fit.posterior["W_a"].sel(factor=f"F{k + 1}").std()) > 0.1]
    for k in a_factors:
        assert np.corrcoef(part["Z_mean"].values[:, k], Zfit[:, k])[0, 1] > 0.8


def test_k_selection_by_marginal_loo(small):
    data, truth, fit = small
    table, fits = select_k(data, [1, 6], seed=0, **GIBBS)
    assert table.index[0] == "K=6", table
    assert table.loc["K=6", "n_active"] == 3 and table.loc["K=1", "n_active"] == 1
    assert table.loc["K=1", "elpd_diff"] > 4 * table.loc["K=1", "dse"]
    np.testing.assert_array_equal(fits["K=6"].posterior["Z"].values, fit.posterior["Z"].values)
    ll = fo.marginal_loglik(fits["K=6"], data)
    assert ll.dims == ("chain", "draw", "sample") and np.isfinite(ll.values).all()


def test_bernoulli_view_mostly_missing_stays_finite():
    data, truth = simulate_factor(n=200, sizes={"g1": 50, "g2": 40, "bin": 60}, n_factors=2,
                                  likelihoods={"bin": "bernoulli"},
                                  missing={"g1": 0.1, "g2": 0.1, "bin": 0.85},
                                  view_activity=1.0, seed=2)
    assert np.isnan(data.view("bin").values).mean() > 0.8
    fit = bayesimg.fit(MultiViewFactor(4), data, seed=0, **GIBBS)
    for name, da in fit.posterior.data_vars.items():
        assert np.isfinite(da.values).all(), name
    assert np.isfinite(fit.tree["log_likelihood"]["Y"].values).all()
    Z = fit.posterior["Z"].mean(("chain", "draw")).values
    assert factor_recovery(Z, truth.Z)[0] == 2


def test_dosage_view_and_gaussian_outcome():
    data, truth = simulate_factor(n=250, sizes={"img": 50, "snp": 80}, n_factors=3,
                                  likelihoods={"snp": "binomial2"}, outcome="gaussian",
                                  outcome_factors=2, view_activity=0.8, seed=4)
    fit = bayesimg.fit(MultiViewFactor(4), data, seed=0, **{**GIBBS, "warmup": 200,
                                                             "draws": 150})
    Z = fit.posterior["Z"].mean(("chain", "draw")).values
    n_rec, corr, perm, sign = factor_recovery(Z, truth.Z, threshold=0.85)
    assert n_rec >= 2, corr
    beta = fit.posterior["beta"].values.reshape(-1, 4)[:, perm] * sign
    lo, hi = np.quantile(beta, [0.025, 0.975], axis=0)
    for k in range(2):   # planted effects ±0.8 on factors 0, 1: right sign, excluding 0
        assert (lo[k] > 0 and truth.beta[k] > 0) or (hi[k] < 0 and truth.beta[k] < 0)
    assert np.all(np.abs(beta.mean(0)[2:]) < 0.3)
    # predict the outcome of the same subjects from the views alone
    views_only = dataclasses.replace(data, outcome=None, outcome_kind=None, outcome_name=None)
    pred = fo.transform(fit, views_only, n_draws=50, pg_iterations=10)
    r = np.corrcoef(pred["outcome_mean_mean"].values, truth.outcome_complete)[0, 1]
    assert r > 0.8, r


def test_gibbs_nuts_agree_and_svi_check():
    data, truth = simulate_factor(n=50, sizes={"a": 10, "b": 8}, n_factors=2,
                                  view_activity=1.0, feature_sparsity=0.5, missing=0.05,
                                  seed=8)
    model = MultiViewFactor(2)
    gibbs = bayesimg.fit(model, data, method="gibbs", chains=2, warmup=300, draws=600,
                         seed=0, progress=False)
    nuts = bayesimg.fit(model, data, method="nuts", chains=2, warmup=250, draws=250, seed=0,
                        target_accept=0.95, progress=False)

    def signal(fit):
        Z = fit.posterior["Z"].values
        W = np.concatenate([fit.posterior["W_a"].values, fit.posterior["W_b"].values], axis=2)
        S = np.einsum("cdnk,cdpk->cdnp", Z, W).reshape(-1, 50, 18)
        return S.mean(0), S.std(0)

    mg, sg = signal(gibbs)
    mn, sn = signal(nuts)
    # posterior means of ZWᵀ agree within a few Monte Carlo / posterior sds
    assert np.median(np.abs(mg - mn) / sg) < 0.35
    assert 0.8 < np.median(sn / sg) < 1.25
    check = fo.svi_interval_check(nuts, gibbs)
    assert 0.8 < check["width_ratio"] < 1.25 and not check["overconfident"], check
    # the check can fail: a deliberately shrunk posterior is flagged
    shrunk = nuts.tree.copy(deep=True)
    post = shrunk["posterior"].to_dataset()
    zmean = post["Z"].mean(("chain", "draw"))
    post["Z"] = (zmean + 0.3 * (post["Z"] - zmean)).transpose(*post["Z"].dims)
    shrunk["posterior"] = xr.DataTree(post)
    assert fo.svi_interval_check(bayesimg.Fit(shrunk), gibbs)["overconfident"]


def test_bad_inputs(small):
    data, truth, fit = small
    with pytest.raises(ModelSpecError, match="n_factors"):
        MultiViewFactor(0)
    with pytest.raises(ModelSpecError, match="slab_scale"):
        MultiViewFactor(3, slab_scale=-1.0)
    with pytest.raises(DataValidationError, match="MultiViewData"):
        bayesimg.fit(MultiViewFactor(2), truth, method="gibbs")
    new = data.subset_subjects(slice(0, 5))
    renamed = dataclasses.replace(new, views=(dataclasses.replace(new.views[0], name="zz"),))
    with pytest.raises(DataValidationError, match="'zz'"):
        fo.transform(fit, renamed)
    bad_feat = dataclasses.replace(new, views=(dataclasses.replace(
        new.views[0], feature_names=np.asarray(["x"] + list(new.views[0].feature_names[1:]))),))
    with pytest.raises(DataValidationError, match="'x'"):
        fo.transform(fit, bad_feat)
    empty = new.views[0].values.copy()
    empty[2] = np.nan
    empty_b = new.views[1].values.copy()
    empty_b[2] = np.nan
    no_data = dataclasses.replace(new, views=(dataclasses.replace(new.views[0], values=empty),
                                              dataclasses.replace(new.views[1], values=empty_b)))
    with pytest.raises(DataValidationError, match=str(new.subjects[2])):
        fo.transform(fit, no_data)
    with pytest.raises(DataValidationError, match=str(new.subjects[2])):
        bayesimg.fit(MultiViewFactor(2), no_data, method="gibbs")
    vals = data.views[1].values.copy()
    binary = dataclasses.replace(data, views=(data.views[0], dataclasses.replace(
        data.views[1], values=np.where(np.isnan(vals), np.nan, 0.5), likelihood="bernoulli")))
    with pytest.raises(DataValidationError, match="bernoulli"):
        bayesimg.fit(MultiViewFactor(2), binary, method="gibbs")
    reserved = dataclasses.replace(data, views=(dataclasses.replace(data.views[0],
                                                                    name="outcome"),))
    with pytest.raises(DataValidationError, match="reserved"):
        bayesimg.fit(MultiViewFactor(2), reserved, method="gibbs")
    with pytest.raises(DataValidationError, match="no view 'zz'"):
        top_loadings(fit, "zz", 0)
    with pytest.raises(DataValidationError, match="factor"):
        top_loadings(fit, "a", "F99")
