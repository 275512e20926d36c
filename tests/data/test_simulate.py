"""Simulators: reproducibility, planted structure, and that the truth generates Y."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from bayesimg.data import (
    Dataset,
    GSMTRTruth,
    group_snps,
    make_dataset,
    simulate_genotypes,
    simulate_gsmtr,
    simulate_gsmtr_from_prior,
)
from bayesimg.errors import DataValidationError, DataWarning


# --------------------------------------------------------------------------- genotypes
def test_simulate_genotypes_shape_values_and_reproducibility():
    a = simulate_genotypes(50, 12, seed=3)
    b = simulate_genotypes(50, 12, seed=3)
    c = simulate_genotypes(50, 12, seed=4)
    np.testing.assert_array_equal(a.values, b.values)
    assert not np.array_equal(a.values, c.values)
    assert a.values.shape == (50, 12) and set(np.unique(a.values)) <= {0.0, 1.0, 2.0}
    assert (a.values.std(axis=0) > 0).all()                  # no monomorphic SNP
    assert list(a.snps.columns) == ["snp", "chrom", "pos", "a1", "a2", "gene"]
    assert (np.diff(a.snps["pos"]) > 0).all() and a.snps["snp"].is_unique
    assert (a.snps["a1"] != a.snps["a2"]).all()


def test_simulate_genotypes_frequencies_and_ld():
    table = simulate_genotypes(2000, 30, rho=0.9, maf_range=(0.2, 0.4), seed=0)
    freq = table.values.mean(axis=0) / 2
    assert freq.min() > 0.15 and freq.max() < 0.45
    r = np.corrcoef(table.values.T)
    adjacent = np.mean([r[j, j + 1] for j in range(29)])
    distant = np.mean([abs(r[j, j + 20]) for j in range(10)])
    assert adjacent > 0.4 and distant < 0.1
    independent = simulate_genotypes(2000, 30, rho=0.0, seed=0)
    r0 = np.corrcoef(independent.values.T)
    assert np.abs(r0[np.triu_indices(30, 1)]).max() < 0.1


def test_simulate_genotypes_rejects_bad_arguments():
    with pytest.raises(DataValidationError, match="rho"):
        simulate_genotypes(10, 5, rho=1.0, seed=0)
    with pytest.raises(DataValidationError, match="maf_range"):
        simulate_genotypes(10, 5, maf_range=(0.1, 0.7), seed=0)


# --------------------------------------------------------------------------- GSMTR
def test_simulate_gsmtr_reproducible_and_tiny():
    d1, t1 = simulate_gsmtr(n_subjects=50, n_snps=12, seed=7)
    d2, t2 = simulate_gsmtr(n_subjects=50, n_snps=12, seed=7)
    d3, _ = simulate_gsmtr(n_subjects=50, n_snps=12, seed=8)
    np.testing.assert_array_equal(d1.phenotypes, d2.phenotypes)
    np.testing.assert_array_equal(t1.W.to_numpy(), t2.W.to_numpy())
    assert d1.fingerprint() == d2.fingerprint() != d3.fingerprint()
    assert isinstance(d1, Dataset) and isinstance(t1, GSMTRTruth)
    assert (d1.n_subjects, d1.n_snps, d1.n_phenotypes) == (50, 12, 5)


def test_simulate_gsmtr_planted_structure():
    ds, truth = simulate_gsmtr(n_subjects=80, n_snps=40, n_genes=8, n_phenotypes=6,
                               n_active_genes=3, snps_per_active_gene=2, effect_size=0.4,
                               seed=1)
    W = truth.W
    assert list(W.index) == list(ds.snp_names)
    assert list(W.columns) == list(ds.phenotype_names)
    assert list(ds.gene_names) == [f"gene{k:02d}" for k in range(1, 9)]
    active = W.index[(W != 0).any(axis=1)].tolist()
    assert active == truth.active_snps and len(active) == 6
    genes = dict(zip(ds.snps["snp"], ds.snps["gene"], strict=True))
    assert sorted({genes[s] for s in active}) == sorted(truth.active_genes)
    assert len(truth.active_genes) == 3
    for snp in active:
        row = W.loc[snp].to_numpy()
        assert (row != 0).sum() >= 3                        # at least half of 6 phenotypes
        nz = np.abs(row[row != 0])
        assert nz.min() >= 0.4 * 0.7 - 1e-12 and nz.max() <= 0.4 * 1.3 + 1e-12
    assert (truth.groups == ds.snps["gene"].to_numpy()).all()


def test_simulate_gsmtr_conventions():
    ds, truth = simulate_gsmtr(n_subjects=60, n_snps=15, seed=2)
    np.testing.assert_allclose(ds.genotypes.mean(axis=0), 0, atol=1e-12)
    assert ds.preprocessing["genotype_standardization"] == "center"
    assert ds.preprocessing["phenotypes_standardized"] is False
    assert ds.phenotypes.std(axis=0).min() > 0.5            # not rescaled to unit variance
    assert truth.sigma == 1.0 and truth.sigma2 == 1.0 and truth.gamma is None


def test_planted_w_generates_y():
    ds, truth = simulate_gsmtr(n_subjects=400, n_snps=30, n_phenotypes=4, n_covariates=2,
                               noise_sd=0.05, seed=3)
    X, Z, Y = ds.genotypes, ds.covariates, ds.phenotypes
    residual = Y - X @ truth.W.to_numpy() - Z @ truth.gamma.to_numpy()
    assert residual.std() == pytest.approx(0.05, rel=0.1)
    assert list(ds.covariate_names) == ["cov1", "cov2"]
    # Regression of Y on the true active SNPs and the covariates recovers the coefficients.
    cols = [list(ds.snp_names).index(s) for s in truth.active_snps]
    coef = np.linalg.lstsq(np.column_stack([X[:, cols], Z]), Y, rcond=None)[0]
    np.testing.assert_allclose(coef[:len(cols)], truth.W.loc[truth.active_snps], atol=0.03)
    np.testing.assert_allclose(coef[len(cols):], truth.gamma, atol=0.03)


def test_simulate_gsmtr_on_given_genotypes():
    table = simulate_genotypes(60, 20, seed=5)
    values = table.values.copy()
    values[3, 4] = np.nan
    table = type(table)(table.subjects, values, table.snps)
    with pytest.warns(DataWarning, match="mean-imputed 1"):
        ds, truth = simulate_gsmtr(table, n_genes=["g1"] * 8 + ["g2"] * 12, seed=0,
                                   noise_sd=0.0)
    assert ds.preprocessing["genotypes_imputed"] == 1
    np.testing.assert_allclose(ds.phenotypes, ds.genotypes @ truth.W.to_numpy(), atol=1e-12)
    assert list(ds.gene_names) == ["g1", "g2"]

    with pytest.warns(DataWarning):
        centred = make_dataset(table)
    grouped = group_snps(centred, {s: f"G{i % 3}" for i, s in enumerate(table.snps["snp"])})
    ds2, truth2 = simulate_gsmtr(grouped, n_active_genes=1, seed=0)
    assert list(ds2.snp_names) == list(grouped.snp_names)   # grouping kept
    assert list(ds2.gene_names) == ["G0", "G1", "G2"]
    assert len(truth2.active_genes) == 1


def test_non_contiguous_group_vector_is_made_contiguous():
    groups = ["a", "b"] * 5
    ds, truth = simulate_gsmtr(n_subjects=30, n_snps=10, n_genes=groups, seed=0,
                               n_active_genes=1)
    assert list(ds.snps["gene"]) == ["a"] * 5 + ["b"] * 5
    assert list(ds.snp_names[:5]) == ["snp0001", "snp0003", "snp0005", "snp0007", "snp0009"]
    # Per-SNP centres moved with their columns: adding them back gives allele counts.
    counts = ds.genotypes + ds.preprocessing["genotype_center"]
    np.testing.assert_allclose(counts, np.round(counts), atol=1e-12)
    assert set(np.unique(np.round(counts))) <= {0.0, 1.0, 2.0}
    assert truth.active_genes and set(truth.active_genes) <= {"a", "b"}


def test_simulate_gsmtr_argument_errors():
    with pytest.raises(DataValidationError, match="n_active_genes"):
        simulate_gsmtr(n_subjects=20, n_snps=10, n_genes=2, n_active_genes=3)
    with pytest.raises(DataValidationError, match="group vector"):
        simulate_gsmtr(n_subjects=20, n_snps=10, n_genes=["a"] * 9)


# --------------------------------------------------------------------------- prior
def test_from_prior_reproducible_and_shapes():
    d1, t1 = simulate_gsmtr_from_prior(lambda1=2.0, lambda2=5.0, seed=11)
    d2, t2 = simulate_gsmtr_from_prior(lambda1=2.0, lambda2=5.0, seed=11)
    np.testing.assert_array_equal(d1.phenotypes, d2.phenotypes)
    assert (d1.n_subjects, d1.n_snps, d1.n_phenotypes) == (50, 12, 3)
    assert len(d1.gene_names) == 3 and t1.tau.shape == (3,) and t1.omega.shape == (12,)
    assert t1.lambda1 == 2.0 and t1.lambda2 == 5.0 and t1.sigma == t2.sigma


def test_from_prior_draws_follow_the_prior():
    lam1, lam2, c = 4.0, 9.0, 3
    taus, omegas, sig2, zs, resid = [], [], [], [], []
    for seed in range(300):
        ds, t = simulate_gsmtr_from_prior(lambda1=lam1, lambda2=lam2, n_subjects=20,
                                          n_snps=8, n_phenotypes=c, gene_size=4, seed=seed)
        taus.append(t.tau)
        omegas.append(t.omega)
        sig2.append(t.sigma2)
        k = ds.gene_index
        sd = np.sqrt(t.sigma2 / (1 / t.tau[k] + 1 / t.omega))
        zs.append((t.W.to_numpy() / sd[:, None]).ravel())
        resid.append(((ds.phenotypes - ds.genotypes @ t.W.to_numpy()) / t.sigma).ravel())
    # σ² keeps its InvGamma(3, 1) marginal; given (τ, ω, σ²), W is Gaussian with
    # precision (1/τ + 1/ω)/σ² (the joint's W-kernel), and Y − XW is N(0, σ²).
    assert all(np.all(t) > 0 for t in taus) and all(np.all(o) > 0 for o in omegas)
    assert stats.kstest(sig2, stats.invgamma(a=3, scale=1).cdf).pvalue > 1e-3
    assert stats.kstest(np.concatenate(zs), "norm").pvalue > 1e-3
    assert stats.kstest(np.concatenate(resid), "norm").pvalue > 1e-3


def test_from_prior_requires_positive_lambdas():
    with pytest.raises(DataValidationError, match="lambda"):
        simulate_gsmtr_from_prior(lambda1=0.0, lambda2=1.0)
