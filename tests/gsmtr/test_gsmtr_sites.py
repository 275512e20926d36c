"""GSMTR with site random effects (issue 18): recovery of the site effects and their
sds, agreement of W with the fixed-effect (one-hot) fit, a misspecified case
(site-specific noise scale, no location effect), prediction at known and unseen sites,
and the integrated LOO (W, Γ and U integrated) against the dense Gaussian conditional."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest

import bayesimg as bi
from bayesimg.models import GroupSparseMTR

GIBBS = dict(method="gibbs", chains=2, warmup=200, draws=400, progress=False)
LEVELS = np.array(["A", "B", "C", "D"])
U_TRUE = np.array([[0.8, -0.3], [-0.6, 0.5], [0.2, -0.4], [-0.4, 0.2]])


def _with_sites(data, effects, seed, noise_scale=None, truth=None):
    rng = np.random.default_rng(seed)
    sites = LEVELS[rng.permutation(np.arange(data.n_subjects) % len(LEVELS))]
    H = (sites[:, None] == LEVELS[None]).astype(float)
    Y = data.phenotypes.copy()
    if noise_scale is not None:                      # a ComBat-style scale batch effect
        signal = data.genotypes @ np.asarray(truth.W) + data.covariates @ np.asarray(
            truth.gamma)
        Y = signal + (Y - signal) * (H @ noise_scale)[:, None]
    Y = Y + H @ effects
    shift = Y.mean(0)                                # GSMTR has no intercept: centre
    return dataclasses.replace(data, phenotypes=Y - shift, sites=sites), effects - shift


def _fit(model, data, seed=0):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return bi.fit(model, data, seed=seed, **GIBBS)


@pytest.fixture(scope="module")
def case():
    base, truth = bi.data.simulate_gsmtr(n_subjects=200, n_snps=10, n_genes=5,
                                         n_phenotypes=2, n_active_genes=1,
                                         snps_per_active_gene=2, effect_size=0.6,
                                         n_covariates=1, seed=3)
    data, u = _with_sites(base, U_TRUE, seed=1)
    return data, u, truth, _fit(GroupSparseMTR(2.0, 2.0), data)


def test_site_effects_and_sds_are_recovered_and_labelled(case):
    data, u, truth, fit = case
    eff = fit.posterior["site_effect"]
    assert eff.dims[2:] == ("site", "phenotype")
    assert list(eff.coords["site"].values) == list(LEVELS)
    assert fit.posterior["site_sd"].dims[2:] == ("phenotype",)
    lo = eff.quantile(0.005, ("chain", "draw")).values
    hi = eff.quantile(0.995, ("chain", "draw")).values
    assert np.all((lo <= u) & (u <= hi)), (lo, u, hi)
    # 50 subjects per site: the effects are pinned to ~0.1 of the truth
    assert np.max(np.abs(eff.mean(("chain", "draw")).values - u)) < 0.25
    # τ from four sites is wide, but it covers the spread of the true effects
    sd = fit.posterior["site_sd"]
    spread = U_TRUE.std(0, ddof=1)
    assert np.all(sd.quantile(0.01, ("chain", "draw")).values < spread)
    assert np.all(sd.quantile(0.99, ("chain", "draw")).values > spread)


def test_random_and_fixed_site_effects_agree_on_w(case):
    data, _, truth, fit = case
    onehot = (data.sites[:, None] == LEVELS[None, 1:]).astype(float)
    fixed = dataclasses.replace(
        data, sites=None, covariates=np.hstack([data.covariates, onehot - onehot.mean(0)]),
        covariate_names=np.append(data.covariate_names, [f"site[{v}]" for v in LEVELS[1:]]))
    fit_fixed = _fit(GroupSparseMTR(2.0, 2.0), fixed)
    w_rand = fit.posterior["W"].mean(("chain", "draw")).values
    w_fixed = fit_fixed.posterior["W"].mean(("chain", "draw")).values
    w_sd = fit.posterior["W"].std(("chain", "draw")).values
    assert np.max(np.abs(w_rand - w_fixed) / w_sd) < 0.5
    # and both find the planted effects
    active = np.abs(np.asarray(truth.W)) > 0
    assert np.all(np.abs(w_rand[active]) > 2 * w_sd[active])


def test_misspecified_scale_batch_effect_shrinks_the_location_effects():
    base, truth = bi.data.simulate_gsmtr(n_subjects=200, n_snps=10, n_genes=5,
                                         n_phenotypes=2, n_active_genes=1,
                                         snps_per_active_gene=2, effect_size=0.6,
                                         n_covariates=1, seed=4)
    data, u = _with_sites(base, np.zeros_like(U_TRUE), seed=2,
                          noise_scale=np.array([0.5, 1.0, 1.5, 2.0]), truth=truth)
    fit = _fit(GroupSparseMTR(2.0, 2.0), data)
    eff = fit.posterior["site_effect"].mean(("chain", "draw")).values
    assert np.max(np.abs(eff)) < 0.35          # no location effect is invented
    w = fit.posterior["W"].mean(("chain", "draw")).values
    W = np.asarray(truth.W)
    active = np.abs(W) > 0
    np.testing.assert_allclose(w[active], W[active], atol=0.35)


def test_prediction_uses_known_sites_and_integrates_unseen_ones(case):
    data, _, _, fit = case
    new = dataclasses.replace(data.subset_subjects([0, 0, 0]),
                              sites=np.array(["A", "C", "new_scanner"]))
    pred = bi.predict(fit, new)
    summary = pred["predictions_summary"].dataset
    assert "integrated" in pred.attrs["site_effects"] or \
        "integrated" in str(pred["predictions"].attrs)
    u = fit.posterior["site_effect"].mean(("chain", "draw")).values
    means = summary["y_mean"].values
    scale = data.preprocessing.get("phenotype_scale", np.ones(2))
    # same genotypes: the known sites differ by their posterior effects
    np.testing.assert_allclose((means[1] - means[0]) / scale, u[2] - u[0], atol=0.05)
    sd = summary["y_sd"].values
    assert np.all(sd[2] > sd[0])               # the unseen site adds τ²


def test_integrated_loo_with_site_effects_equals_the_dense_conditional(case):
    data, _, _, fit = case
    model = GroupSparseMTR(2.0, 2.0)
    sub = data
    flat = np.array([3, 650])
    ll, theta, note = model.loo_given_hyperparameters(fit.tree, draws=flat,
                                                      rng=np.random.default_rng(0))
    assert "site" in note and "site_sd" in theta
    H = (sub.sites[:, None] == np.unique(sub.sites)[None]).astype(float)
    B = np.hstack([sub.genotypes, sub.covariates, H])
    n, c = sub.phenotypes.shape
    s2, tau, om, sd = (theta[k][1] for k in ("sigma2", "tau", "omega", "site_sd"))
    for s in range(2):
        v_w = s2[s] / (1 / tau[s, sub.gene_index] + 1 / om[s])
        C = np.zeros((c, n, n))             # vec(Y) has independent columns given θ, τ
        for j in range(c):
            v = np.concatenate([v_w, [model.covariate_scale**2],
                                np.full(H.shape[1], sd[s, j] ** 2)])
            C[j] = B @ np.diag(v) @ B.T + s2[s] * np.eye(n)
        for i in (0, 57, n - 1):
            keep = np.delete(np.arange(n), i)
            direct = 0.0
            for j in range(c):
                y = sub.phenotypes[:, j]
                w = np.linalg.solve(C[j][np.ix_(keep, keep)], C[j][keep, i])
                var = C[j][i, i] - C[j][i, keep] @ w
                direct += -0.5 * np.log(2 * np.pi * var) - 0.5 * (y[i] - w @ y[keep]) ** 2 / var
            assert ll[s, i] == pytest.approx(direct, abs=1e-8)


def _least_squares_sites(data):
    H = (data.sites[:, None] == LEVELS[None]).astype(float)
    design = np.hstack([data.genotypes, data.covariates, H])
    return np.linalg.lstsq(design, data.phenotypes, rcond=None)[0][-len(LEVELS):]


@pytest.mark.parametrize("family", ["bilateral", "spike_slab"])
def test_gibbs_kernels_with_correlated_noise_recover_site_effects(case, family):
    """BilateralGSMTR (u drawn in the rotated left/right coordinates) and SpikeSlabMTR
    (u given Γ under a full Σ): the site effects match the least-squares (fixed-effect)
    estimates up to the little shrinkage 50 subjects a site leave, and the planted ones."""
    data, u, _, _ = case
    if family == "bilateral":
        data = dataclasses.replace(data, phenotype_names=np.array(["lh_x_thickness",
                                                                    "rh_x_thickness"]))
        model = bi.models.BilateralGSMTR(2.0, 2.0, pairs=[("lh_x_thickness",
                                                           "rh_x_thickness")])
    else:
        model = bi.models.SpikeSlabMTR()
    fit = _fit(model, data)
    mean = fit.posterior["site_effect"].mean(("chain", "draw")).values
    assert np.max(np.abs(mean - _least_squares_sites(data))) < 0.15
    assert np.max(np.abs(mean - u)) < 0.3
    new = dataclasses.replace(data.subset_subjects([0, 0]), sites=np.array(["A", "new"]))
    sd = bi.predict(fit, new)["predictions_summary"].dataset["y_sd"].values
    assert np.all(sd[1] > sd[0])


def test_heldout_density_integrates_w_gamma_and_u_like_the_dense_conditional(case):
    """K-fold's held-out density (GSMTR, site effects integrated given θ, τ) equals the
    direct Gaussian conditional of new subjects at known sites; an unseen site falls back
    (None: the sampled density, which integrates u ~ N(0, τ²))."""
    data, _, _, fit = case
    model = GroupSparseMTR(2.0, 2.0)
    new = data.subset_subjects([0, 1])
    flat = np.array([5])
    ll = model.heldout_given_hyperparameters(fit.tree, new, draws=flat,
                                             rng=np.random.default_rng(0))
    _, theta, _ = model.loo_given_hyperparameters(fit.tree, draws=flat,
                                                  rng=np.random.default_rng(0))
    H = (data.sites[:, None] == LEVELS[None]).astype(float)
    B = np.hstack([data.genotypes, data.covariates, H])
    s2, tau, om, sd = (theta[k][1][0] for k in ("sigma2", "tau", "omega", "site_sd"))
    v_w = s2 / (1 / tau[data.gene_index] + 1 / om)
    direct = np.zeros(2)
    for j in range(2):
        v = np.concatenate([v_w, [model.covariate_scale**2], np.full(len(LEVELS), sd[j] ** 2)])
        M = B.T @ B + s2 * np.diag(1 / v)
        mean = B[:2] @ np.linalg.solve(M, B.T @ data.phenotypes[:, j])
        var = s2 * (1 + np.einsum("ip,ip->i", B[:2], np.linalg.solve(M, B[:2].T).T))
        direct += -0.5 * np.log(2 * np.pi * var) - 0.5 * (new.phenotypes[:, j] - mean) ** 2 / var
    np.testing.assert_allclose(ll[0], direct, atol=1e-8)
    unseen = dataclasses.replace(new, sites=np.array(["A", "elsewhere"]))
    assert model.heldout_given_hyperparameters(fit.tree, unseen, draws=flat,
                                               rng=np.random.default_rng(0)) is None
