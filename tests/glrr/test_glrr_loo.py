"""Integrated LOO for GLRR: U and Γ integrated out given A = diag(δ)Vᵀ, Σ and U's prior scales.

1. The closed form (:func:`gaussian_loo_given_layers`) equals log p(y_i | y_{-i}, θ) from
   the joint Gaussian of vec(Y) (nc×nc covariance Σ_h X diag(s_h) Xᵀ ⊗ a_h a_hᵀ
   + s² ZZᵀ ⊗ I + I ⊗ Σ), for every subject, with and without covariates.
2. A small GLRR Gibbs fit (n = 30, d = 5, c = 3, rank 2, Gaussian SNP prior so θ is
   fully stored): ``fit.loo()`` is integrated by default and names it, the hook's values
   equal the direct conditional at stored draws, ``method="psis"`` stays available.
3. ``slow``: brute-force exact LOO — all n subjects refitted without themselves — against
   integrated LOO (elpd within 0.5 of its SE); ``benchmarks/loo.py`` records the same on
   a small case for GSMTR and GLRR.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from _gsmtr_helpers import centre_by_rotation
from _loo_helpers import dense_loo_log_density, exact_loo_by_refits

import bayesimg as bi
from bayesimg.data.simulate_glrr import simulate_glrr
from bayesimg.errors import BayesimgWarning
from bayesimg.models import GLRR
from bayesimg.models.core.predict import gaussian_loo_given_layers

GIBBS = dict(method="gibbs", chains=2, warmup=100, draws=200, progress=False)


def _direct(X, Z, Y, A, Sig, s_u, gv):
    """log p(y_i | y_{-i}) for every i from the nc×nc covariance of vec(Y) (subject-major)."""
    n, c = Y.shape
    C = np.kron(np.eye(n), Sig)
    for h in range(A.shape[0]):
        C += np.kron(X @ np.diag(s_u[:, h]) @ X.T, np.outer(A[h], A[h]))
    if Z is not None:
        C += np.kron(gv * Z @ Z.T, np.eye(c))
    return dense_loo_log_density(C, Y)


@pytest.mark.parametrize("covariates", [0, 2])
def test_layers_form_equals_the_gaussian_conditional(covariates):
    rng = np.random.default_rng(covariates)
    n, d, c, R, S = 14, 6, 4, 2, 2
    X = rng.standard_normal((n, d))
    Z = rng.standard_normal((n, covariates)) if covariates else None
    Y = rng.standard_normal((n, c))
    A = rng.standard_normal((S, R, c))
    L = 0.5 * rng.standard_normal((S, c, c))
    Sig = L @ np.swapaxes(L, 1, 2) + 0.7 * np.eye(c)
    s_u = rng.uniform(0.1, 1.0, (S, d, R))
    got = gaussian_loo_given_layers(X, Z, Y, A, Sig, s_u, 2.0)
    for s in range(S):
        np.testing.assert_allclose(got[s], _direct(X, Z, Y, A[s], Sig[s], s_u[s], 2.0),
                                   atol=1e-8)


@pytest.fixture(scope="module")
def case():
    data, _ = simulate_glrr(n_subjects=30, n_snps=5, n_phenotypes=3, rank=2,
                            singular_values=[12.0, 6.0], n_active_snps=3, noise_factors=1,
                            noise_factor_sd=0.6, n_covariates=1, seed=4, gene_size=5)
    data = centre_by_rotation(data)
    model = GLRR(rank=2, noise_factors=1, snp_prior="gaussian")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = bi.fit(model, data, seed=0, **GIBBS)
    return data, model, fit


def test_glrr_loo_is_integrated_by_default(case):
    data, model, fit = case
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BayesimgWarning)
        integ = fit.loo()
        psis = fit.loo(method="psis")
    assert integ.method == "integrated" and psis.method == "psis"
    assert "U and Γ integrated out" in integ.details["integrated"]
    assert integ.details["draws_used"] == 400
    # k̂ is itself a noisy estimate from 400 draws.  Subject 4 is the influential one: its k̂
    # was 0.56 / 0.85 by NUTS (2 × 1000 draws, two seeds), 0.70 by Gibbs from 20 000 draws
    # (whose ψ and Σ quantiles, 1% to 99%, matched NUTS's), but 0.72–1.12 from 400 Gibbs
    # draws over seeds and kernels (1.12 here since the collapsed noise HMC changed the
    # stream).  So: every other subject below 0.7, that one below 1.2
    assert np.isfinite(integ.pointwise).all()
    assert np.sum(integ.pareto_k > 0.7) <= 1 and np.all(integ.pareto_k < 1.2), integ.pareto_k
    assert abs(integ.elpd - psis.elpd) < integ.se
    # the stored layers are declared out of the convergence checks
    diag = fit.diagnose()
    assert not any("loo_" in str(m) for m in diag.problems)
    # ... and, as helper sites, out of the summary unless asked for by name
    assert fit.posterior["loo_snp_layer"].attrs["role"] == "helper"
    assert not fit.summary().variable.str.startswith("loo_").any()
    assert set(fit.summary(var_names="loo_snp_layer").variable) == {"loo_snp_layer"}


def test_glrr_hook_equals_the_direct_conditional_at_stored_draws(case):
    data, model, fit = case
    flat = np.array([3, 250])
    ll, theta, _ = model.loo_given_hyperparameters(fit.tree, draws=flat,
                                                   rng=np.random.default_rng(0))
    A = theta["layers"][1]
    Sig = theta["noise_cov"][1]
    s_u = np.full((data.n_snps, 2), 1.0 / data.n_snps)
    for s in range(2):
        direct = _direct(data.genotypes, data.covariates, data.phenotypes, A[s], Sig[s], s_u,
                         model.covariate_scale**2)
        np.testing.assert_allclose(ll[s], direct, atol=1e-7)
    # the stored layers reproduce the stored B
    U = fit.posterior["loo_snp_layer"].values.reshape(-1, data.n_snps, 2)[flat]
    B = fit.posterior["B"].values.reshape(-1, data.n_snps, data.n_phenotypes)[flat]
    np.testing.assert_allclose(U @ A, B, atol=1e-8)


@pytest.mark.slow
def test_glrr_integrated_loo_matches_exact_loo_by_refits():
    """Brute force: all n subjects refitted without themselves (Laplace SNP prior, so the
    mixing variances drawn from their conditional are exercised too)."""
    data, _ = simulate_glrr(n_subjects=30, n_snps=5, n_phenotypes=3, rank=2,
                            singular_values=[12.0, 6.0], n_active_snps=3, noise_factors=1,
                            noise_factor_sd=0.6, seed=5, gene_size=5)
    data = centre_by_rotation(data)
    model = GLRR(rank=2, noise_factors=1)
    opts = dict(chains=2, warmup=200, draws=500, seed=0)
    _, exact, integ = exact_loo_by_refits(model, data, opts)
    assert integ.method == "integrated"
    assert abs(integ.elpd - exact.sum()) < 0.5 * integ.se
