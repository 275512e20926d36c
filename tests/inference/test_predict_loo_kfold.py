"""Issue 14: predict new subjects, integrated LOO, K-fold, compare's choice (GSMTR, GLRR).

One small GSMTR case (n = 40, 12 SNPs in 4 genes, 3 phenotypes, 1 covariate; exact
Gibbs, 2 × 300 draws) is fitted once; K-fold uses 5 folds of 8 so the fold fits share
one compiled program.  The brute-force check of integrated LOO against n refits is
``slow`` (the n−1-subject refits compile a second program); here the integrated
log p(y_i | y_{-i}, θ) is checked against the direct Gaussian conditional.
"""

from __future__ import annotations

import dataclasses
import json
import math
import warnings

import numpy as np
import pytest
import xarray as xr
from _loo_helpers import exact_loo_by_refits
from scipy.special import logsumexp

import bayesimg as bi
from bayesimg.data import simulate_gsmtr
from bayesimg.errors import BayesimgWarning, DataValidationError, ModelSpecError
from bayesimg.inference.api import _warn_grid_edge
from bayesimg.inference.kfold import HELDOUT_INTEGRATED, _warn_large_correction, make_folds
from bayesimg.models import GroupSparseMTR
from bayesimg.models.core.predict import gaussian_heldout_given_prior, gaussian_loo_given_prior
from bayesimg.report.compare import ICResult

GIBBS = dict(method="gibbs", chains=2, warmup=100, draws=300, progress=False)


@pytest.fixture(scope="module")
def case():
    data, _ = simulate_gsmtr(n_subjects=40, n_snps=12, n_genes=4, n_phenotypes=3,
                             n_covariates=1, effect_size=0.6, seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = bi.fit(GroupSparseMTR(1.0, 1.0), data, seed=0, **GIBBS)
    return data, fit


def _direct_conditional(B, Y, s2, v, i):
    """log p(y_i | y_{-i}) from the joint Gaussian of y (columns independent)."""
    n = B.shape[0]
    C = B @ np.diag(v) @ B.T + s2 * np.eye(n)
    o = np.delete(np.arange(n), i)
    sol = np.linalg.solve(C[np.ix_(o, o)], np.column_stack([C[o, i], Y[o]]))
    var = C[i, i] - C[i, o] @ sol[:, 0]
    mean = sol[:, 1:].T @ C[o, i]
    return float(np.sum(-0.5 * np.log(2 * np.pi * var) - 0.5 * (Y[i] - mean) ** 2 / var))


@pytest.mark.parametrize("p", [5, 30])
def test_loo_given_theta_equals_the_gaussian_conditional(p):
    rng = np.random.default_rng(p)
    n, c, S = 20, 2, 3
    B = rng.standard_normal((n, p))
    Y = rng.standard_normal((n, c))
    s2 = rng.uniform(0.5, 2.0, S)
    v = rng.uniform(0.01, 1.0, (S, p))
    a = gaussian_loo_given_prior(B, Y, s2, v, form="pxp")
    b = gaussian_loo_given_prior(B, Y, s2, v, form="nxn")
    np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-8)
    for s in range(S):
        for i in (0, 7, n - 1):
            assert a[s, i] == pytest.approx(_direct_conditional(B, Y, s2[s], v[s], i), abs=1e-8)


def test_gsmtr_hook_integrates_w_and_gamma_given_each_draw(case):
    data, fit = case
    model = GroupSparseMTR(1.0, 1.0)
    flat = np.array([0, 17, 333])
    ll, theta, note = model.loo_given_hyperparameters(fit.tree, draws=flat,
                                                      rng=np.random.default_rng(0))
    assert ll.shape == (3, data.n_subjects) and "integrated" in note
    B = np.hstack([data.genotypes, data.covariates])
    s2, tau, om = theta["sigma2"][1], theta["tau"][1], theta["omega"][1]
    v = np.hstack([s2[:, None] / (1 / tau[:, data.gene_index] + 1 / om),
                   np.full((3, 1), model.covariate_scale**2)])
    for s in range(3):
        for i in (0, 21):
            assert ll[s, i] == pytest.approx(_direct_conditional(B, data.phenotypes, s2[s],
                                                                 v[s], i), abs=1e-8)


def test_loo_is_integrated_by_default_and_names_its_method(case):
    _, fit = case
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BayesimgWarning)
        integ = fit.loo()
        psis = fit.loo(method="psis")
    assert integ.method == "integrated" and psis.method == "psis"
    assert "[integrated]" in str(integ)
    assert integ.details["draws_used"] == 600
    assert np.all(integ.pareto_k <= 0.7)
    # the same subjects, and within a standard error of each other
    assert abs(integ.elpd - psis.elpd) < integ.se
    assert fit.loo() is integ                          # cached
    with pytest.raises(ModelSpecError, match="loo method"):
        fit.loo(method="waic")


def test_predict_training_subjects_matches_the_fit_log_likelihood(case):
    data, fit = case
    pred = fit.predict(data.subset_subjects(np.arange(10)))
    summ = pred["predictions_summary"].dataset
    ll = fit.tree["log_likelihood"].dataset["y"].values.reshape(-1, data.n_subjects)[:, :10]
    lppd = logsumexp(ll, axis=0) - math.log(ll.shape[0])
    np.testing.assert_allclose(summ["log_pred_density_model"].values, lppd, atol=1e-8)
    assert pred["predictions"].dataset["y"].dims == ("chain", "draw", "subject", "phenotype")
    W = fit.posterior["W"].mean(("chain", "draw")).values
    gamma = fit.posterior["gamma"].mean(("chain", "draw")).values
    X, Z = data.genotypes[:10], data.covariates[:10]
    ps = np.asarray(data.preprocessing["phenotype_scale"])
    pc = np.asarray(data.preprocessing["phenotype_center"])
    np.testing.assert_allclose(summ["y_mean"].values, (X @ W + Z @ gamma) * ps + pc, atol=1e-8)
    assert "original units" in pred.attrs["units"]


def test_new_data_in_their_own_units_are_mapped_to_the_training_ones(case):
    data, fit = case
    sub = data.subset_subjects(np.arange(8))
    prep = dict(sub.preprocessing)
    # the same subjects, standardised with other centres/scales (as make_dataset on new
    # subjects would): original values are identical, so the predictions must be too
    rng = np.random.default_rng(3)
    gc, gs = rng.normal(size=sub.n_snps), np.ones(sub.n_snps)
    pc, ps = rng.normal(size=3), rng.uniform(0.5, 2, 3)
    raw_x = sub.genotypes * np.asarray(prep["genotype_scale"]) + np.asarray(
        prep["genotype_center"])
    raw_y = sub.phenotypes * np.asarray(prep["phenotype_scale"]) + np.asarray(
        prep["phenotype_center"])
    prep.update(genotype_center=gc, genotype_scale=gs, phenotype_center=pc, phenotype_scale=ps)
    other = dataclasses.replace(sub, genotypes=(raw_x - gc) / gs, phenotypes=(raw_y - pc) / ps,
                                preprocessing=prep)
    a = fit.predict(sub, num_draws=100)["predictions_summary"].dataset
    b = fit.predict(other, num_draws=100)["predictions_summary"].dataset
    np.testing.assert_allclose(a["y_mean"].values, b["y_mean"].values, atol=1e-8)
    np.testing.assert_allclose(a["log_pred_density"].values, b["log_pred_density"].values,
                               atol=1e-8)
    # columns in another order are matched by name
    perm = np.arange(sub.n_snps)[::-1]
    c = fit.predict(sub.subset_snps(perm), num_draws=100)["predictions_summary"].dataset
    np.testing.assert_allclose(a["y_mean"].values, c["y_mean"].values, atol=1e-8)


def test_predict_names_what_does_not_match(case):
    data, fit = case
    sub = data.subset_subjects(np.arange(5))
    with pytest.raises(DataValidationError, match="lack 1 of the fit's 12 SNPs"):
        fit.predict(sub.subset_snps(np.arange(1, 12)))
    with pytest.raises(DataValidationError, match="covariates"):
        fit.predict(dataclasses.replace(sub, covariates=None, covariate_names=None))
    snps = sub.snps.copy()
    snps.loc[0, "a1"] = "Z"
    with pytest.raises(DataValidationError, match="different allele"):
        fit.predict(dataclasses.replace(sub, snps=snps))
    with pytest.raises(ModelSpecError, match="num_draws"):
        fit.predict(sub, num_draws=0)


def test_a_saved_fit_predicts_the_same(case, tmp_path):
    data, fit = case
    path = fit.save(tmp_path / "f.nc")
    again = bi.load(path)
    sub = data.subset_subjects(np.arange(30, 40))
    a = fit.predict(sub, seed=2)
    b = bi.predict(again, sub, seed=2)
    xr.testing.assert_allclose(a["predictions"].dataset, b["predictions"].dataset)
    assert again.loo().method == "integrated"
    # saved without individual-level data: still predicts (per-SNP constants are kept);
    # integrated LOO needs X, y, so loo() falls back to PSIS and says so in its method
    shared = bi.load(fit.save(tmp_path / "shared.nc", include_data=False))
    c = bi.predict(shared, sub, seed=2)
    xr.testing.assert_allclose(a["predictions"].dataset, c["predictions"].dataset)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BayesimgWarning)
        assert shared.loo().method == "psis"


def test_glrr_predicts_with_its_noise_covariance(case):
    data, fit = case
    # a GLRR-shaped tree with B = W and Σ = σ² I predicts exactly what the GSMTR fit does
    post = fit.posterior
    c = post.sizes["phenotype"]
    glrr_post = xr.Dataset({
        "B": post["W"], "gamma": post["gamma"],
        "noise_cov": (("chain", "draw", "phenotype", "phenotype_2"),
                      post["sigma2"].values[..., None, None] * np.eye(c))},
        coords={"phenotype_2": post.coords["phenotype"].values})
    tree = fit.tree.copy()
    tree["posterior"] = xr.DataTree(glrr_post)
    tree.attrs.update(model_class="GeneralizedLowRankRegression", model="glrr",
                      model_settings=json.dumps({"rank": 2}))
    sub = data.subset_subjects(np.arange(6))
    a = fit.predict(sub, num_draws=50)["predictions_summary"].dataset
    b = bi.predict(bi.Fit(tree), sub, num_draws=50)["predictions_summary"].dataset
    np.testing.assert_allclose(a["log_pred_density"].values, b["log_pred_density"].values,
                               rtol=1e-10)
    np.testing.assert_allclose(a["y_mean"].values, b["y_mean"].values, rtol=1e-10)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BayesimgWarning)
        assert bi.Fit(tree).loo().method == "psis"      # GLRR: no integrated form


def test_training_posterior_predictive_is_an_arviz_group(case):
    _, fit = case
    with_pp = fit.with_posterior_predictive(num_draws=40)
    pp = with_pp.tree["posterior_predictive"].dataset["y"]
    obs = fit.tree["observed_data"].dataset["y"]
    assert pp.dims[2:] == obs.dims and pp.shape[:2] == (2, 20)
    assert "posterior_predictive" not in fit.tree.children          # not mutated
    # in the units of observed_data: the spread of replicated data matches the data's
    assert 0.5 < float(pp.std()) / float(obs.std()) < 2.0


def test_kfold_compare_and_arviz_conversion(case):
    import arviz_stats

    data, fit = case
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kf = bi.kfold(GroupSparseMTR(1.0, 1.0), data, k=5, fit=fit, seed=0,
                      bias_correction=True,
                      **{k: v for k, v in GIBBS.items() if k != "progress"})
        other = bi.fit(GroupSparseMTR(200.0, 200.0), data, seed=0, **GIBBS)
        integ = fit.loo()
    assert kf.kind == "kfold" and kf.method == "kfold" and kf.details["k"] == 5
    # held-out densities with W, Γ integrated out given θ; the log mean over sampled W
    # (integrate_coefficients=False) estimates the same thing (p = 13 ≪ n: small gap)
    assert kf.details["heldout_density"] == HELDOUT_INTEGRATED
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sampled = bi.kfold(GroupSparseMTR(1.0, 1.0), data, k=5, seed=0,
                           integrate_coefficients=False,
                           **{k: v for k, v in GIBBS.items() if k != "progress"})
    assert sampled.details["heldout_density"].startswith("log mean")
    gap = sampled.pointwise - kf.details["pointwise_uncorrected"]
    assert abs(gap.mean()) < 0.05 and np.abs(gap).max() < 0.3
    assert np.isfinite(kf.pointwise).all() and kf.pointwise.size == data.n_subjects
    assert abs(kf.elpd - integ.elpd) < 2 * integ.se
    assert np.isfinite(kf.p)
    # each fold fit's convergence is reported (2 chains: R-hat computable)
    assert len(kf.details["fold_max_rhat"]) == 5 == len(kf.details["fold_min_ess"])
    assert all(1.0 <= r < 1.1 for r in kf.details["fold_max_rhat"])
    # Burman's correction: the result's elpd; the plain 5-fold values stay in details
    plain = kf.details["elpd_uncorrected"]
    assert kf.details["estimate"] == "kfold (bias-corrected)"
    assert abs(plain - integ.elpd) < 2 * integ.se
    assert np.sum(kf.pointwise - kf.details["pointwise_uncorrected"]) == pytest.approx(
        kf.details["correction"])
    with pytest.raises(ModelSpecError, match="needs the full-data fit"):
        bi.kfold(GroupSparseMTR(1.0, 1.0), data, k=5, bias_correction=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BayesimgWarning)
        table = bi.compare({"lam1": fit, "lam200": other})
    assert set(table["estimate"]) == {"integrated"}
    # WAIC's warning is said once per fit: compare uses the fit's cached WAIC
    said = []
    for _ in range(2):
        with warnings.catch_warnings(record=True) as rec:
            warnings.simplefilter("always")
            bi.compare({"lam1": fit, "lam200": other}, ic="waic")
        said.append([str(r.message) for r in rec if "p_waic" in str(r.message)])
    assert said[0] and not said[1] and all(r.count("\n") == 0 for r in said[0])
    az = arviz_stats.compare(table.attrs["elpd_data"])
    assert list(az.index) == list(table.index)
    assert type(kf.to_arviz()).__name__ == "ELPDDataLOOKFold"
    # LOO of one model against K-fold of another: refused unless asked
    with pytest.raises(ModelSpecError, match="not comparable"):
        bi.compare({"a": kf, "b": other.loo()})
    with pytest.warns(BayesimgWarning, match="mixes estimates"):
        mixed = bi.compare({"a": kf, "b": other.loo()}, allow_mixed=True)
    assert set(mixed["estimate"]) == {"kfold", "integrated"}


def _fake(method, elpd, k=None, kind="loo"):
    pw = np.full(10, elpd / 10)
    return ICResult(kind=kind, method=method, elpd=elpd, se=1.0, p=1.0, pointwise=pw,
                    n_obs=10, n_draws=100, pareto_k=None if k is None else np.full(10, k),
                    obs_labels=np.arange(10).astype(str).astype(object))


def test_compare_prefers_kfold_when_loo_is_unreliable():
    models = {"a": [_fake("psis", -10.0, k=0.9), _fake("kfold", -12.0, kind="kfold")],
              "b": [_fake("psis", -11.0, k=0.2), _fake("kfold", -13.0, kind="kfold")]}
    table = bi.compare(models)
    assert set(table["estimate"]) == {"kfold"}
    models["a"][0] = _fake("integrated", -10.0, k=0.3)
    table = bi.compare(models)
    assert dict(table["estimate"]) == {"a": "integrated", "b": "psis"}
    with pytest.warns(BayesimgWarning, match="unreliable"):
        table = bi.compare({"a": [_fake("psis", -10.0, k=0.9)], "b": [_fake("psis", -9.0)]})
    assert table.index[0] == "b"


def test_folds_random_stratified_grouped_and_given(case):
    data, _ = case
    ids = make_folds(data, 5, seed=1)
    assert sorted(np.bincount(ids)) == [8] * 5
    strat = make_folds(data, 4, "stratified", seed=1)
    y = data.phenotypes[:, 0]
    means = [y[strat == f].mean() for f in range(4)]
    assert np.ptp(means) < 0.6 * y.std()
    site = np.repeat(np.arange(8), 5).astype(float)
    with_site = dataclasses.replace(data, covariates=np.column_stack([data.covariates, site]),
                                    covariate_names=np.append(data.covariate_names, "site"))
    grouped = make_folds(with_site, 4, "site", seed=0)
    for s in range(8):
        assert np.unique(grouped[site == s]).size == 1            # a site is never split
    assert np.unique(grouped).size == 4
    given = make_folds(data, folds=np.arange(40) % 3)
    assert np.unique(given).size == 3
    with pytest.raises(DataValidationError, match="no column"):
        make_folds(data, 4, "hospital")
    with pytest.raises(ModelSpecError, match="k must be"):
        make_folds(data, 1)


def test_grid_edge_warning_points_at_the_caller():
    labels = ["lambda1=2", "lambda1=20", "lambda1=200"]
    settings = [{"lambda1": 2.0, "scale": 1.0}, {"lambda1": 20.0, "scale": 1.0},
                {"lambda1": 200.0, "scale": 1.0}]
    with pytest.warns(BayesimgWarning, match=r"largest lambda1.*add lambda1=2000") as rec:
        _warn_grid_edge("lambda1=200", labels, settings)
    assert len(rec) == 1 and rec[0].filename == __file__
    assert "\n" not in str(rec[0].message)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _warn_grid_edge("lambda1=20", labels, settings)         # inside: silent


def test_heldout_density_given_theta_equals_the_gaussian_conditional():
    """Each new row's density given the training rows, from the joint Gaussian of y."""
    rng = np.random.default_rng(3)
    n, m, p, c = 25, 6, 30, 2                                  # p > n: weak identification
    B = rng.normal(size=(n + m, p))
    Y = rng.normal(size=(n + m, c))
    s2, v = 0.6, rng.uniform(0.05, 0.5, p)
    got = gaussian_heldout_given_prior(B[:n], Y[:n], B[n:], Y[n:], np.array([s2]), v[None])[0]
    C = B @ np.diag(v) @ B.T + s2 * np.eye(n + m)
    tr = np.arange(n)
    for k, i in enumerate(range(n, n + m)):
        sol = np.linalg.solve(C[:n, :n], np.column_stack([C[tr, i], Y[:n]]))
        var = C[i, i] - C[i, tr] @ sol[:, 0]
        mean = sol[:, 1:].T @ C[tr, i]
        want = np.sum(-0.5 * np.log(2 * np.pi * var) - 0.5 * (Y[i] - mean) ** 2 / var)
        assert got[k] == pytest.approx(want, abs=1e-9)


def test_large_bias_correction_warning_points_at_the_caller():
    said = r"correction is \+176\.5 \(\+1\.4 SE\).*fit\.loo\(\)"
    with pytest.warns(BayesimgWarning, match=said) as rec:
        _warn_large_correction(176.5, 129.3, 10, "gsmtr")
    assert len(rec) == 1 and rec[0].filename == __file__ and "\n" not in str(rec[0].message)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _warn_large_correction(5.4, 45.1, 10, "spike_slab")     # 0.12 SE: silent


@pytest.mark.slow
def test_integrated_loo_matches_exact_loo_by_refits():
    """Brute force: n refits on n − 1 subjects (one compiled program, batched)."""
    data, _ = simulate_gsmtr(n_subjects=30, n_snps=12, n_genes=4, n_phenotypes=3,
                             n_covariates=1, seed=1)
    model = GroupSparseMTR(1.0, 1.0)
    opts = dict(chains=2, warmup=100, draws=500, seed=0)
    _, exact, integ = exact_loo_by_refits(model, data, opts)
    assert abs(integ.elpd - exact.sum()) < 0.5 * integ.se
