"""Integrated LOO for SpikeSlabMTR: the included effects and Γ integrated out given the
inclusion/pattern configuration (δ, component) and Σ, PSIS over those draws.

1. The closed form (:func:`design_of_draw` + :func:`gaussian_loo_given_loadings`) equals
   log p(y_i | y_{-i}, θ) from the joint Gaussian of vec(Y) (nc×nc covariance), for a
   configuration mixing rank-1 and ROI-subset components, with covariates, and for the
   empty configuration.
2. A small Gibbs fit (n = 30, 8 SNPs, 3 phenotypes, 1 covariate): the component constants
   stored in the fit describe the stored W (zero off each SNP's pattern, ∝ u for rank-1
   ones), the hook equals the direct conditional at stored draws, ``fit.loo()`` is
   integrated by default and names it with few k̂ > 0.7 (also after save/load),
   ``method="psis"`` stays.
3. ``slow``: brute-force exact LOO — all n subjects refitted without themselves — against
   integrated LOO (elpd within 0.5 of its SE).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from _loo_helpers import dense_loo_log_density, exact_loo_by_refits

import bayesimg as bi
from bayesimg.data import simulate_gsmtr
from bayesimg.errors import BayesimgWarning
from bayesimg.models import SpikeSlabMTR
from bayesimg.models.core.predict import gaussian_loo_given_loadings
from bayesimg.models.gsmtr.spike_slab_loo import design_of_draw

GIBBS = dict(method="gibbs", chains=2, warmup=150, draws=250, progress=False)


def _direct(B, Y, columns, loadings, prior_var, Sig):
    """log p(y_i | y_{-i}) for every i from the nc×nc covariance of vec(Y) (subject-major)."""
    n, c = Y.shape
    C = np.kron(np.eye(n), Sig)
    for col, g, v in zip(columns, loadings, prior_var, strict=True):
        C += v * np.kron(np.outer(B[:, col], B[:, col]), np.outer(g, g))
    return dense_loo_log_density(C, Y)


@pytest.mark.parametrize("empty", [False, True])
def test_configuration_form_equals_the_gaussian_conditional(empty):
    rng = np.random.default_rng(3)
    n, d, c, r = 12, 5, 3, 0 if empty else 2
    B = rng.standard_normal((n, d + r))
    Y = rng.standard_normal((n, c))
    L = 0.5 * rng.standard_normal((c, c))
    Sig = L @ L.T + 0.6 * np.eye(c)
    # components: shared (rank 1), a signed vector (rank 1), ROI subset {0, 2}, all ROIs
    patterns = np.array([[1, 1, 1], [1, -0.5, 0], [1, 0, 1], [1, 1, 1]], float)
    rank1 = np.array([True, True, False, False])
    scales = np.array([0.5, 0.8, 0.3, 0.6])
    included = np.zeros(d, bool) if empty else np.array([1, 0, 1, 1, 1], bool)
    component = np.array([0, -1, 1, 2, 3])
    columns, loadings, prior_var = design_of_draw(included, component, patterns, rank1,
                                                  scales, d, r, 4.0)
    assert columns.size == (0 if empty else 1 + 1 + 2 + 3 + r * c)
    got = gaussian_loo_given_loadings(B, Y, columns, loadings, prior_var, Sig)
    np.testing.assert_allclose(got, _direct(B, Y, columns, loadings, prior_var, Sig),
                               atol=1e-8)


@pytest.fixture(scope="module")
def case():
    data, _ = simulate_gsmtr(n_subjects=30, n_snps=8, n_genes=2, n_phenotypes=3,
                             n_covariates=1, effect_size=0.6, seed=2)
    # every kind of component: rank-1, a fixed subset (all ROIs), each SNP's own subset
    # with independent effects and with one shared effect (w = β 1_S: rank-1 on S)
    model = SpikeSlabMTR(patterns=("shared", "single", "independent", "subsets",
                                   "shared_subsets"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = bi.fit(model, data, seed=0, **GIBBS)
    return data, model, fit


def test_stored_components_describe_the_stored_effects(case):
    data, model, fit = case
    cd = fit.tree["constant_data"].dataset
    patterns = cd["component_pattern"].values
    rank1 = cd["component_rank1"].values
    assert list(cd["component_pattern"].coords["component"].values) == \
        list(fit.posterior.coords["component"].values)
    W = fit.posterior["W"].values.reshape(-1, data.n_snps, data.n_phenotypes)
    comp = fit.posterior["slab_component"].values.reshape(-1, data.n_snps)
    own = cd["component_own_subset"].values
    roi_subset = fit.posterior["roi_subset"].values.reshape(-1, data.n_snps, data.n_phenotypes)
    s, j = np.argwhere(comp >= 0)[::7].T
    assert s.size > 10
    assert own[comp[comp >= 0]].any()                 # the own-subset family is used
    for si, ji in zip(s, j, strict=True):
        u, w = patterns[comp[si, ji]], W[si, ji]
        if own[comp[si, ji]]:
            u = roi_subset[si, ji]
        assert np.all(w[u == 0] == 0)
        if rank1[comp[si, ji]]:
            np.testing.assert_allclose(w, (w @ u) / (u @ u) * u, atol=1e-10)


def test_hook_equals_the_direct_conditional_at_stored_draws(case):
    data, model, fit = case
    flat = np.array([5, 120, 399])
    ll, theta, note = model.loo_given_hyperparameters(fit.tree, draws=flat,
                                                      rng=np.random.default_rng(0))
    assert ll.shape == (3, data.n_subjects) and "integrated out" in note
    cd = fit.tree["constant_data"].dataset
    B = np.hstack([data.genotypes, data.covariates])
    inc = fit.posterior["snp_in"].values.reshape(-1, data.n_snps)[flat] > 0
    comp = fit.posterior["slab_component"].values.reshape(-1, data.n_snps)[flat]
    roi_subset = fit.posterior["roi_subset"].values.reshape(
        -1, data.n_snps, data.n_phenotypes)[flat]
    for s in range(3):
        design = design_of_draw(inc[s], comp[s], cd["component_pattern"].values,
                                cd["component_rank1"].values, cd["component_scale"].values,
                                data.n_snps, 1, model.covariate_scale**2,
                                cd["component_own_subset"].values, roi_subset[s])
        direct = _direct(B, data.phenotypes, *design, theta["Sigma"][1][s])
        np.testing.assert_allclose(ll[s], direct, atol=1e-7)


def test_loo_is_integrated_by_default_and_names_its_method(case, tmp_path):
    _, _, fit = case
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BayesimgWarning)
        integ = fit.loo()
        psis = fit.loo(method="psis")
    assert integ.method == "integrated" and psis.method == "psis"
    assert "[integrated]" in str(integ)
    assert "configuration" in integ.details["integrated"]
    assert integ.details["draws_used"] == 500
    assert np.isfinite(integ.pointwise).all()
    assert np.mean(integ.pareto_k > 0.7) <= 0.05
    assert abs(integ.elpd - psis.elpd) < integ.se
    # a saved fit keeps what the hook reads (the component constants)
    again = bi.load(fit.save(tmp_path / "f.nc"))
    assert again.loo().elpd == pytest.approx(integ.elpd, rel=1e-10)


def test_predict_training_subjects_matches_the_fit_log_likelihood(case):
    """predict (issue 14) for SpikeSlabMTR: training subjects given as new data get the
    fit's own predictive density, and the draws come back in original units."""
    from scipy.special import logsumexp

    data, _, fit = case
    pred = bi.predict(fit, data.subset_subjects(np.arange(6)))
    summ = pred["predictions_summary"].dataset
    ll = fit.tree["log_likelihood"].dataset
    ll = ll[next(iter(ll.data_vars))].values.reshape(-1, data.n_subjects)[:, :6]
    np.testing.assert_allclose(summ["log_pred_density_model"].values,
                               logsumexp(ll, axis=0) - np.log(ll.shape[0]), atol=1e-6)
    prep = data.preprocessing
    y_orig = data.phenotypes[:6] * prep["phenotype_scale"] + prep["phenotype_center"]
    resid = summ["y_mean"].values - y_orig                  # original units, not standardised
    assert np.all(np.abs(resid).mean(axis=0) < 3 * prep["phenotype_scale"])
    assert "original" in str(pred.attrs.get("units", "")) + str(summ.attrs.get("units", ""))


@pytest.mark.slow
def test_spike_slab_integrated_loo_matches_exact_loo_by_refits():
    """Brute force: all n subjects refitted without themselves (one compiled program)."""
    data, _ = simulate_gsmtr(n_subjects=30, n_snps=8, n_genes=2, n_phenotypes=3,
                             n_covariates=1, effect_size=0.6, seed=5)
    model = SpikeSlabMTR(patterns=("shared", "single", "independent"))
    opts = dict(chains=2, warmup=200, draws=500, seed=0)
    _, exact, integ = exact_loo_by_refits(model, data, opts)
    assert integ.method == "integrated"
    assert abs(integ.elpd - exact.sum()) < 0.5 * integ.se
