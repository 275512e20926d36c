"""Recovery and calibration of MultiViewFactor on the issue-5 simulation design.

Design (``simulate_factor`` defaults): n = 500, 3 Gaussian views with
D = 1000/500/200, K = 10 sparse factors (each active in a random subset of views,
20% of features loading, |w| ~ U(0.5, 1.5)), 10% of entries missing at random.
One exact-Gibbs fit (2 chains × (200 warm-up + 200 draws)) serves every check.

Thresholds (truth fixed, so these are frequentist properties of one realisation):

* factors: all 10 recovered at |r| > 0.9 (the issue's bar is ≥ 9.5/10 on average;
  MOFA+ at default settings recovers a median 7.5, FA + varimax 10/10 on 7 of 8 sets);
* Z intervals: 5000 entries, band [0.88, 0.99].  Not nominal ± binomial error:
  a factor's scale is identified only through z ~ N(0, 1), while the planted
  factors' sample sds are 0.95–1.04 and the shrinkage prior trades scale between
  z and w, so per-factor scale errors of a few % shift whole columns (measured
  coverage per factor 0.84–0.98, overall ≈ 0.93 on this seed; 0.83 before the
  sampler's scale move was added);
* the rotation- and scale-invariant signal ψ = ZWᵀ: coverage of the planted
  signal by its 95% intervals on 20,000 random entries in [0.90, 0.99];
* imputation: 95% predictive intervals of the ~85,000 masked entries cover the
  withheld values in [0.93, 0.97];
* rotation diagnostics: chains agree on the subspace (≥ 0.99) and no factor is
  flagged as rotated.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import bayesimg
from bayesimg.data.simulate_factor import factor_recovery, simulate_factor
from bayesimg.models import MultiViewFactor
from bayesimg.models.factor import outputs as fo


@pytest.fixture(scope="module")
def design_fit():
    data, truth = simulate_factor(n=500, seed=11)
    fit = bayesimg.fit(MultiViewFactor(10), data, method="gibbs", chains=2, warmup=200,
                       draws=200, seed=1, progress=False)
    return data, truth, fit


def test_recovers_all_factors(design_fit):
    data, truth, fit = design_fit
    Z = fit.posterior["Z"].mean(("chain", "draw")).values
    n_rec, corr, _, _ = factor_recovery(Z, truth.Z)
    assert n_rec == 10, corr


def test_factor_interval_coverage(design_fit):
    data, truth, fit = design_fit
    Z = fit.posterior["Z"].values.reshape(-1, data.n_subjects, 10)
    _, _, perm, sign = factor_recovery(Z.mean(0), truth.Z)
    Zm = Z[:, :, perm] * sign
    lo, hi = np.quantile(Zm, [0.025, 0.975], axis=0)
    cover = np.mean((lo <= truth.Z) & (truth.Z <= hi))
    assert 0.88 <= cover <= 0.99, cover


def test_signal_interval_coverage(design_fit):
    data, truth, fit = design_fit
    rng = np.random.default_rng(0)
    Z = fit.posterior["Z"].values.reshape(-1, data.n_subjects, 10)
    W = np.concatenate([fit.posterior[f"W_{v}"].values.reshape(Z.shape[0], -1, 10)
                        for v in data.view_names], axis=1)
    Wt = np.concatenate([truth.W[v] for v in data.view_names], axis=0)
    rows = rng.integers(0, data.n_subjects, 20_000)
    cols = rng.integers(0, Wt.shape[0], 20_000)
    draws = np.einsum("snk,snk->sn", Z[:, rows], W[:, cols])
    true = np.sum(truth.Z[rows] * Wt[cols], axis=1)
    lo, hi = np.quantile(draws, [0.025, 0.975], axis=0)
    cover = np.mean((lo <= true) & (true <= hi))
    assert 0.90 <= cover <= 0.99, cover


def test_imputation_coverage(design_fit):
    data, truth, fit = design_fit
    imputed = fo.impute(fit, data, n_draws=100)
    covered, total = 0, 0
    for v in data.view_names:
        ds = imputed[v]
        miss = ~ds["observed"].values
        y = truth.complete[v][miss]
        covered += np.sum((ds["lower"].values[miss] <= y) & (y <= ds["upper"].values[miss]))
        total += miss.sum()
    assert total > 50_000
    assert 0.93 <= covered / total <= 0.97, covered / total


def test_rotation_diagnostics_and_named_outputs(design_fit):
    data, truth, fit = design_fit
    info = json.loads(fit.tree.attrs["alignment"])
    assert info["subspace_agreement"] >= 0.99
    assert info["rotated_factors"] == []
    assert info["n_active"] == 10
    post = fit.posterior
    assert post["Z"].dims == ("chain", "draw", "sample", "factor")
    assert post["W_v1"].dims == ("chain", "draw", "feature_v1", "factor")
    assert post["alpha"].dims == ("chain", "draw", "view", "factor")
    ll = fit.tree["log_likelihood"]["Y"]
    assert ll.dims == ("chain", "draw", "sample")
    assert np.isfinite(ll.values).all()
    # view-specific structure: a factor inactive in a view has a small R² share there
    share = np.asarray(info["variance_share"])
    n_rec, corr, perm, sign = factor_recovery(post["Z"].mean(("chain", "draw")).values,
                                              truth.Z)
    est_active = share[:, perm] > 0.01
    assert np.mean(est_active == truth.active) >= 0.9
