"""GLRR input checks, settings, labelled output and the simulator (fast: one tiny fit)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from _gsmtr_helpers import centre_by_rotation

import bayesimg
from bayesimg.data.simulate_glrr import simulate_glrr
from bayesimg.errors import DataValidationError, ModelSpecError
from bayesimg.models import GLRR
from bayesimg.models.glrr import align_loadings


@pytest.fixture(scope="module")
def sim():
    data, truth = simulate_glrr(n_subjects=60, n_snps=8, n_phenotypes=4, rank=2,
                                singular_values=[20, 10], n_active_snps=3, noise_factors=1,
                                n_covariates=1, seed=2)
    return centre_by_rotation(data), truth


def test_rank_larger_than_min_dims_is_refused(sim):
    data, _ = sim
    with pytest.raises(ModelSpecError, match=r"rank 5 exceeds min\(SNPs, phenotypes\)"):
        GLRR(rank=5).validate(data)


def test_default_noise_factors_respect_ledermann_and_more_warns(sim):
    """Default K is the largest with (c − K)² ≥ c + K (Σ = ΛΛᵀ + diag ψ identified);
    an explicit larger K is fitted but warned about (ψ then not identified)."""
    from bayesimg.errors import BayesimgWarning
    from bayesimg.models.glrr.model import ledermann_bound
    assert [ledermann_bound(c) for c in range(1, 11)] == [0, 0, 1, 1, 2, 3, 3, 4, 5, 6]
    for c in range(1, 60):        # brute force: the largest K with the parameter count
        fits = [k for k in range(c) if c * (k + 1) - k * (k - 1) / 2 <= c * (c + 1) / 2]
        assert ledermann_bound(c) == max(fits)
    assert GLRR().n_noise_factors(8) == 4 and GLRR().n_noise_factors(40) == 10
    data, _ = sim                                     # c = 4: bound 1
    with pytest.warns(BayesimgWarning, match="exceeds Ledermann's bound"):
        GLRR(rank=2, noise_factors=2).validate(data)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error", BayesimgWarning)
        GLRR(rank=2).validate(data)


@pytest.mark.parametrize("kwargs, match", [
    (dict(rank=0), "rank must be an integer"),
    (dict(rank=2.5), "rank must be an integer"),
    (dict(noise_factors=-1), "noise_factors"),
    (dict(snp_prior="horseshoe"), "snp_prior"),
    (dict(rank_prior="ard"), "rank_prior"),
    (dict(snp_penalty=-1.0), "snp_penalty"),
    (dict(global_precision=(1.0, -1.0)), "global_precision"),
    (dict(global_precision=0.0), "global_precision"),
])
def test_bad_settings(kwargs, match):
    with pytest.raises(ModelSpecError, match=match):
        GLRR(**kwargs)


def test_too_many_noise_factors(sim):
    data, _ = sim
    with pytest.raises(ModelSpecError, match="noise_factors = 4"):
        GLRR(rank=1, noise_factors=4).validate(data)


def test_non_finite_data_names_column_and_subject(sim):
    data, _ = sim
    Y = data.phenotypes.copy()
    Y[7, 2] = np.nan
    bad = dataclasses.replace(data, phenotypes=Y)
    with pytest.raises(DataValidationError) as err:
        bayesimg.fit(GLRR(rank=1), bad, method="map", steps=10, progress=False)
    assert data.phenotype_names[2] in str(err.value) and data.subjects[7] in str(err.value)
    X = data.genotypes.copy()
    X[3, 1] = np.inf
    with pytest.raises(DataValidationError, match=data.snp_names[1]):
        GLRR(rank=1).validate(dataclasses.replace(data, genotypes=X))


def test_no_phenotypes_and_uncentred_phenotypes(sim):
    data, _ = sim
    with pytest.raises(DataValidationError, match="needs phenotypes"):
        GLRR(rank=1).validate(dataclasses.replace(data, phenotypes=None, phenotype_names=None))
    shifted = dataclasses.replace(data, phenotypes=data.phenotypes + 3.0)
    with pytest.raises(DataValidationError, match="centred"):
        GLRR(rank=1).validate(shifted)
    const = data.phenotypes.copy()
    const[:, 0] = 0.0
    with pytest.raises(DataValidationError, match="constant"):
        GLRR(rank=1).validate(dataclasses.replace(data, phenotypes=const))


def test_simulator_truth(sim):
    data, truth = sim
    X, B = data.genotypes, truth.B.to_numpy()
    np.testing.assert_allclose(np.linalg.svd(X @ B, compute_uv=False)[:2], [20, 10], rtol=1e-8)
    assert np.count_nonzero(np.abs(B).sum(axis=1)) == 3 == len(truth.active_snps)
    np.testing.assert_allclose(truth.noise_cov.to_numpy(),
                               truth.noise_loading @ truth.noise_loading.T + np.diag(truth.psi))
    again, truth2 = simulate_glrr(n_subjects=60, n_snps=8, n_phenotypes=4, rank=2,
                                  singular_values=[20, 10], n_active_snps=3, noise_factors=1,
                                  n_covariates=1, seed=2)
    np.testing.assert_array_equal(truth2.B.to_numpy(), B)       # reproducible
    with pytest.raises(DataValidationError, match="n_active_snps"):
        simulate_glrr(n_subjects=30, n_snps=8, rank=3, n_active_snps=2)


def test_fit_has_named_dims_and_subject_loglik(sim):
    data, _ = sim
    fit = bayesimg.fit(GLRR(rank=2, noise_factors=1), data, method="nuts", chains=2, warmup=100,
                       draws=100, seed=0, progress=False)
    post = fit.posterior
    assert post["B"].dims[2:] == ("snp", "phenotype")
    assert post["snp_loading"].dims[2:] == ("snp", "rank")
    assert post["phenotype_loading"].dims[2:] == ("phenotype", "rank")
    assert post["gamma"].dims[2:] == ("covariate", "phenotype")
    assert post["noise_cov"].dims[2:] == ("phenotype", "phenotype_2")
    assert post["noise_factor_var"].dims[2:] == ("noise_factor",)
    assert not {"U", "V", "delta"} & set(post.data_vars)           # unidentified: hidden
    assert fit.tree.attrs["association_site"] == "B"
    ll = fit.tree["log_likelihood"]["y"]
    assert ll.dims == ("chain", "draw", "subject") and ll.shape[2] == data.n_subjects
    # B is reconstructed exactly from the identified singular triplets
    s, a, b = (post[k].values for k in ("singular_values", "snp_loading", "phenotype_loading"))
    np.testing.assert_allclose(np.einsum("cdir,cdr,cdjr->cdij", a, s, b), post["B"].values,
                               atol=1e-8)
    # post-hoc alignment keeps B and the triplet reconstruction
    aligned = align_loadings(fit)
    pa = aligned.posterior
    np.testing.assert_allclose(np.einsum("cdir,cdr,cdjr->cdij", pa["snp_loading"].values,
                                         pa["singular_values"].values,
                                         pa["phenotype_loading"].values), post["B"].values,
                               atol=1e-8)
    # posterior predictive from the identified B, Γ, Σ
    from bayesimg.inference import add_posterior_predictive
    pp = add_posterior_predictive(fit, GLRR(rank=2, noise_factors=1), data, num_draws=20)
    assert pp.tree["posterior_predictive"]["y"].dims[2:] == ("subject", "phenotype")
