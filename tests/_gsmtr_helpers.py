"""Shared helpers of the GSMTR statistical validation tests (not a test module).

* :func:`exact_prior_draw` — an exact draw of (W, σ²) from the prior that the
  GSMTR joint density of MODELS.md §1 implies (the density both the Gibbs kernel
  and the marginal NUTS form target).
* :func:`centre_by_rotation` — make the phenotype columns exactly centred by an
  orthogonal transform of the subjects, which leaves the posterior unchanged.
* :func:`interval_table` — equal-tailed intervals from posterior draws.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from bayesimg.data import Dataset, simulate_genotypes
from bayesimg.data.prepare import make_dataset
from bayesimg.data.simulate import _prior_unit_gene


def exact_prior_unit_gene(rng: np.random.Generator, m: int, c: int, lambda1: float,
                          lambda2: float) -> np.ndarray:
    """One exact draw of U_k (m × c) ∝ exp(−√λ₁‖U_k‖_F − √λ₂ Σ_i ‖u_i‖): the library's
    rejection sampler (``bayesimg.data.simulate._prior_unit_gene``), required exact."""
    U, exact = _prior_unit_gene(rng, m, c, lambda1, lambda2)
    assert exact, "rejection sampler fell back to Gibbs on an SBC-sized gene"
    return U


def exact_prior_draw(rng: np.random.Generator, gene_index: np.ndarray, c: int,
                     lambda1: float, lambda2: float) -> tuple[np.ndarray, float]:
    """(W, σ²) from the prior implied by the joint of MODELS.md §1.

    σ² ~ InvGamma(3, 1) and, given σ, W = σU with U from :func:`exact_prior_unit_gene`
    gene by gene (the W-kernel's normalising constant is ∝ σ^{dc}, which cancels
    the joint's σ^{−dc}, so σ² keeps its InvGamma(3, 1) marginal).
    """
    sigma2 = 1.0 / rng.gamma(3.0, 1.0)
    d = len(gene_index)
    U = np.zeros((d, c))
    for k in np.unique(gene_index):
        rows = np.flatnonzero(gene_index == k)
        U[rows] = exact_prior_unit_gene(rng, len(rows), c, lambda1, lambda2)
    return np.sqrt(sigma2) * U, float(sigma2)


def centre_by_rotation(data: Dataset) -> Dataset:
    """Rotate the subjects so that every phenotype column has mean exactly 0.

    GSMTR has no intercept and refuses uncentred phenotypes.  Mean-centring Y would
    change the likelihood (it drops one degree of freedom per phenotype from the
    σ² information).  Instead apply one orthogonal Householder reflection Q to the
    rows of both X and Y: Q maps a unit vector v ⟂ span(Y) onto 1/√n, so
    1ᵀ(QY) = √n vᵀY = 0.  The likelihood depends on the data only through
    ‖Y − XW‖²_F = ‖QY − QXW‖²_F (and XᵀX, XᵀY, YᵀY), so the posterior of every
    parameter is *exactly* unchanged, whatever Q is.
    """
    X, Y = data.genotypes, data.phenotypes
    n = Y.shape[0]
    u = np.full(n, 1.0 / np.sqrt(n))
    basis, _ = np.linalg.qr(Y)                      # orthonormal basis of span(Y)
    v = u - basis @ (basis.T @ u)                    # component of 1/√n outside span(Y)
    v /= np.linalg.norm(v)
    h = v - u
    if np.linalg.norm(h) < 1e-12:                    # already centred
        return data
    Q = np.eye(n) - 2.0 * np.outer(h, h) / (h @ h)  # symmetric, orthogonal, Q v = u
    return dataclasses.replace(data, genotypes=Q @ X, phenotypes=Q @ Y)


def genotype_design(n: int, d: int, gene_size: int, seed: int) -> Dataset:
    """Centred simulated genotypes grouped into contiguous genes of ``gene_size`` SNPs."""
    table = simulate_genotypes(n, d, seed=seed)
    labels = np.repeat([f"gene{k + 1:02d}" for k in range(d // gene_size)], gene_size)
    table.snps["gene"] = labels.astype(object)
    return make_dataset(table, standardize_genotypes="center", name="design", min_subjects=2)


def with_phenotypes(design: Dataset, Y: np.ndarray) -> Dataset:
    """``design`` with phenotypes ``Y`` (named pheno01…), rotated to be exactly centred."""
    names = np.array([f"pheno{j + 1:02d}" for j in range(Y.shape[1])], dtype=str)
    return centre_by_rotation(dataclasses.replace(design, phenotypes=Y, phenotype_names=names))


def draws(fit, name: str) -> np.ndarray:
    """Posterior draws of ``name`` as (chain·draw, *site dims) numpy."""
    value = np.asarray(fit.posterior[name].values)
    return value.reshape((-1,) + value.shape[2:])
