"""Simulated phenotypes from a planted low-rank regression with factor noise (GLRR truth).

:func:`simulate_glrr` plants ``B = U diag(s) Vᵀ`` with sparse SNP loadings (only
``n_active_snps`` rows of B are nonzero) and correlated noise
``Σ = ΛΛᵀ + diag ψ`` on the centred genotypes of a simulated or real dataset
(e.g. the bundled 1000 Genomes demo), so recovery tests and benchmarks know the
truth.  The design helpers of :mod:`bayesimg.data.simulate` are reused, so
SNPs are grouped into contiguous genes exactly as for the GSMTR simulator (the
two models can be compared on the same data).

Randomness comes from ``numpy.random.default_rng(seed)`` only.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import pandas as pd

from bayesimg.data.dataset import Dataset
from bayesimg.data.io import GenotypeTable
from bayesimg.data.simulate import (
    _grouped_design,
    _phenotype_names,
    _with_phenotypes,
    simulated_covariates,
)
from bayesimg.errors import DataValidationError

__all__ = ["GLRRTruth", "simulate_glrr"]

SCALES = ("signal", "coefficient")


@dataclasses.dataclass(frozen=True, eq=False)
class GLRRTruth:
    """The generating parameters of a simulated GLRR dataset.

    Attributes
    ----------
    B : pandas.DataFrame
        ``(snp × phenotype)`` coefficients per unit of the dataset's genotype columns.
    singular_values : numpy.ndarray
        Singular values of B (descending).
    signal_singular_values : numpy.ndarray
        Singular values of the signal X B (descending).
    snp_loading, phenotype_loading : numpy.ndarray
        Left (d × rank) and right (c × rank) singular vectors of B.
    noise_cov : pandas.DataFrame
        Σ = ΛΛᵀ + diag ψ (phenotype × phenotype).
    noise_loading : numpy.ndarray
        Λ (c × noise factors).
    psi : numpy.ndarray
        Idiosyncratic noise variances ψ.
    gamma : pandas.DataFrame or None
        Covariate effects (covariate × phenotype).
    active_snps : list of str
        SNPs whose row of B is nonzero.
    rank : int
    """

    B: pd.DataFrame
    singular_values: np.ndarray
    signal_singular_values: np.ndarray
    snp_loading: np.ndarray
    phenotype_loading: np.ndarray
    noise_cov: pd.DataFrame
    noise_loading: np.ndarray
    psi: np.ndarray
    gamma: pd.DataFrame | None
    active_snps: list[str]
    rank: int


def simulate_glrr(genotypes: Dataset | GenotypeTable | None = None, *,
                  n_subjects: int = 300, n_snps: int = 30, n_phenotypes: int = 8,
                  rank: int = 2, singular_values: Sequence[float] | None = None,
                  scale: str = "signal", n_active_snps: int | None = None,
                  noise_factors: int = 2, noise_factor_sd: float = 0.5,
                  noise_sd: float = 1.0, n_covariates: int = 0, seed: int = 0,
                  gene_size: int | None = None, n_genes: int | Sequence[str] | None = None,
                  ) -> tuple[Dataset, GLRRTruth]:
    """Phenotypes ``Y = X B + Z Γ + E`` with a planted rank-``rank`` B and factor noise.

    ``n_active_snps`` SNPs are drawn at random; B's SNP loadings live on them.
    With ``scale="signal"`` the singular values ``s`` are those of the signal
    matrix X B (n × c; X the returned centred genotypes), i.e. X B = P diag(s) Vᵀ
    with P (n × rank) and V (c × rank) orthonormal: comparable to the noise
    matrix, whose largest singular value is ≈ noise sd·(√n + √c).  With
    ``scale="coefficient"`` they are the singular values of B itself.  Noise rows
    are e_l = Λη_l + ξ_l, Λ (c × ``noise_factors``) with iid N(0, ``noise_factor_sd``²)
    entries, ξ_lj ~ N(0, ψ_j), ψ_j = ``noise_sd``² · U(0.5, 1.5).

    Genotypes are centred (not scaled) and phenotypes are not standardised, as in
    :func:`~bayesimg.data.simulate_gsmtr`, so ``truth.B`` is the exact coefficient
    matrix of a model fitted to the returned dataset.

    Parameters
    ----------
    genotypes : Dataset, GenotypeTable or None
        Genotypes to use (e.g. ``load_demo(...)`` for real LD); simulated when None.
    n_subjects, n_snps : int
        Sizes when genotypes are simulated.
    n_phenotypes, rank : int
        c and the true rank (≤ min(n_active_snps, c)).
    singular_values : sequence of float, optional
        ``rank`` positive values; default ``40, 30, 20, …`` on the signal scale.
    scale : {"signal", "coefficient"}
        What ``singular_values`` are the singular values of (see above).
    n_active_snps : int, optional
        Nonzero rows of B (default: max(2·rank, d // 5)).
    noise_factors : int
        Number of true noise factors (0: diagonal noise).
    noise_factor_sd, noise_sd : float
        Scale of Λ's entries and of √ψ.
    n_covariates : int
        Standard-normal covariates with effects Γ ~ N(0, 0.5²).
    seed : int
    gene_size, n_genes
        Gene grouping of simulated genotypes (as :func:`~bayesimg.data.simulate_gsmtr`).

    Returns
    -------
    (Dataset, GLRRTruth)
    """
    if scale not in SCALES:
        raise DataValidationError(f"scale must be one of {SCALES}, got {scale!r}")
    if rank < 1:
        raise DataValidationError(f"rank must be >= 1, got {rank}")
    if noise_factors < 0 or n_covariates < 0:
        raise DataValidationError("noise_factors and n_covariates must be >= 0")
    if not (noise_sd > 0 and noise_factor_sd >= 0):
        raise DataValidationError("noise_sd must be > 0 and noise_factor_sd >= 0")
    rng = np.random.default_rng(seed)
    dataset, _ = _grouped_design(genotypes, n_subjects, n_snps, n_genes, gene_size, rng,
                                 "simulated_glrr", default_size=5, n_phenotypes=n_phenotypes)
    X = dataset.genotypes
    n, d = X.shape
    c = n_phenotypes
    if n_active_snps is None:
        n_active_snps = max(2 * rank, d // 5)
    if not rank <= n_active_snps <= d:
        raise DataValidationError(
            f"n_active_snps must be between rank ({rank}) and the number of SNPs ({d}), "
            f"got {n_active_snps}")
    if rank > c:
        raise DataValidationError(f"rank {rank} exceeds the number of phenotypes {c}")
    if singular_values is None:
        singular_values = 40.0 - 10.0 * np.arange(rank)
        singular_values = np.maximum(singular_values, 5.0)
    s = np.asarray(singular_values, dtype=float)
    if s.shape != (rank,) or np.any(s <= 0) or not np.all(np.isfinite(s)):
        raise DataValidationError(
            f"singular_values must be {rank} positive numbers, got {list(s)}")
    s = np.sort(s)[::-1]

    active = np.sort(rng.choice(d, size=n_active_snps, replace=False))
    G = rng.standard_normal((n_active_snps, rank))
    V, _ = np.linalg.qr(rng.standard_normal((c, rank)))
    U = np.zeros((d, rank))
    if scale == "signal":
        P, T = np.linalg.qr(X[:, active] @ G)          # X_S G = P T, P orthonormal
        if np.min(np.abs(np.diag(T))) < 1e-8 * np.max(np.abs(np.diag(T))):
            raise DataValidationError("the active SNPs' genotypes are collinear; "
                                      "change seed or n_active_snps")
        U[active] = np.linalg.solve(T.T, G.T).T         # X U = P
    else:
        Q, _ = np.linalg.qr(G)
        U[active] = Q
    B = (U * s) @ V.T
    left, svals, rt = np.linalg.svd(B, full_matrices=False)
    left, svals, right = left[:, :rank], svals[:rank], rt[:rank].T
    signal_svals = np.linalg.svd(X @ B, compute_uv=False)[:rank]

    Lam = noise_factor_sd * rng.standard_normal((c, noise_factors))
    psi = noise_sd**2 * rng.uniform(0.5, 1.5, size=c)
    E = rng.standard_normal((n, noise_factors)) @ Lam.T + rng.standard_normal((n, c)) * np.sqrt(psi)
    mean = X @ B
    Z, z_names, gamma = simulated_covariates(rng, n, n_covariates, c)
    if Z is not None:
        mean = mean + Z @ gamma
    Y = mean + E

    names = _phenotype_names(c)
    snp_names = dataset.snp_names
    dataset = _with_phenotypes(dataset, Y, names, Z, z_names, {
        "simulator": "simulate_glrr", "seed": seed, "rank": rank, "scale": scale,
        "singular_values": s.tolist(), "noise_factors": noise_factors})
    dataset = dataclasses.replace(dataset, name="simulated_glrr")
    phen = pd.Index(names, name="phenotype")
    truth = GLRRTruth(
        B=pd.DataFrame(B, index=pd.Index(snp_names, name="snp"), columns=phen),
        singular_values=svals, signal_singular_values=signal_svals,
        snp_loading=left, phenotype_loading=right,
        noise_cov=pd.DataFrame(Lam @ Lam.T + np.diag(psi), index=phen,
                               columns=pd.Index(names, name="phenotype_2")),
        noise_loading=Lam, psi=psi,
        gamma=None if gamma is None else pd.DataFrame(
            gamma, index=pd.Index(z_names, name="covariate"), columns=phen),
        active_snps=[str(snp_names[i]) for i in active], rank=int(rank))
    return dataset, truth
