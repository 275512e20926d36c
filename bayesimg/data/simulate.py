"""Simulated genotypes and phenotypes with known truth (recovery and calibration tests).

* :func:`simulate_genotypes` — LD-like allele counts from thresholded AR(1)
  Gaussian haplotypes.
* :func:`simulate_gsmtr` — a planted gene- and SNP-sparse coefficient matrix W and
  phenotypes ``Y = X W + Z Γ + σ E`` on the centred genotypes of the returned
  dataset.
* :func:`simulate_gsmtr_from_prior` — W, τ, ω, σ² drawn from the exact
  hierarchical prior of MODELS.md §1 (simulation-based calibration).

Randomness comes from ``numpy.random.default_rng(seed)`` only, so equal seeds
give identical results.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import ndtri

from bayesimg.data.dataset import SNP_COLUMNS, Dataset
from bayesimg.data.io import GenotypeTable
from bayesimg.data.prepare import make_dataset, take_snps
from bayesimg.errors import LIBRARY_FILES, DataValidationError

__all__ = ["GSMTRTruth", "simulate_genotypes", "simulate_gsmtr", "simulate_gsmtr_from_prior"]


@dataclasses.dataclass(frozen=True, eq=False)
class GSMTRTruth:
    """The generating parameters of a simulated GSMTR dataset.

    Attributes
    ----------
    W : pandas.DataFrame
        ``(snp × phenotype)`` coefficients, per unit of the dataset's genotype
        columns (centred allele counts: per allele).
    gamma : pandas.DataFrame or None
        ``(covariate × phenotype)`` covariate effects.
    sigma : float
        Noise standard deviation.
    active_snps : list of str
        SNPs with a nonzero row of W.
    active_genes : list of str
        Genes containing an active SNP.
    groups : numpy.ndarray
        Gene label of every SNP (same order as the dataset's SNPs).
    tau, omega : numpy.ndarray or None
        Gene- and SNP-level prior variances (only from the prior simulator;
        ``tau`` is indexed like ``Dataset.gene_names``).
    lambda1, lambda2 : float or None
        The prior's rate parameters (only from the prior simulator).
    exact : bool
        False when the prior simulator fell back to a Gibbs chain for some gene.
    """

    W: pd.DataFrame
    gamma: pd.DataFrame | None
    sigma: float
    active_snps: list[str]
    active_genes: list[str]
    groups: np.ndarray
    tau: np.ndarray | None = None
    omega: np.ndarray | None = None
    lambda1: float | None = None
    lambda2: float | None = None
    exact: bool = True

    @property
    def sigma2(self) -> float:
        """Noise variance σ²."""
        return self.sigma ** 2


# --------------------------------------------------------------------------- genotypes
def simulate_genotypes(n: int, d: int, *, rho: float = 0.6,
                       maf_range: tuple[float, float] = (0.05, 0.5),
                       seed: int | np.random.Generator | None = None) -> GenotypeTable:
    """Allele counts with LD decaying along the chromosome.

    Each of the ``2n`` haplotypes is a latent Gaussian AR(1) sequence with lag-one
    correlation ``rho`` along the ``d`` SNPs; SNP ``j`` carries the counted allele
    where the latent value is below the ``p_j`` quantile, ``p_j ~ U(maf_range)``,
    and the two haplotypes of a subject are summed.  A SNP that comes out
    monomorphic gets the allele on the haplotype with the smallest latent value,
    so every SNP varies.

    Parameters
    ----------
    n, d : int
        Subjects and SNPs.
    rho : float
        Lag-one correlation of the latent haplotypes, in [0, 1).
    maf_range : (float, float)
        Range of the counted-allele frequencies, within (0, 0.5].
    seed : int, Generator or None
        Seed of ``numpy.random.default_rng``.

    Returns
    -------
    GenotypeTable
        Subjects ``sub0001…``, SNPs ``snp0001…`` on chromosome 1 with positions
        1–5 kb apart, ``gene`` unset.
    """
    if n < 1 or d < 1:
        raise DataValidationError(f"need n >= 1 and d >= 1, got n={n}, d={d}")
    if not 0.0 <= rho < 1.0:
        raise DataValidationError(f"rho must be in [0, 1), got {rho}")
    lo, hi = maf_range
    if not 0.0 < lo <= hi <= 0.5:
        raise DataValidationError(f"maf_range must satisfy 0 < low <= high <= 0.5, got "
                                  f"{maf_range}")
    rng = np.random.default_rng(seed)
    freq = rng.uniform(lo, hi, size=d)
    thresholds = ndtri(freq)
    innovations = rng.standard_normal((2 * n, d))
    latent = np.empty_like(innovations)
    latent[:, 0] = innovations[:, 0]
    scale = math.sqrt(1.0 - rho ** 2)
    for j in range(1, d):
        latent[:, j] = rho * latent[:, j - 1] + scale * innovations[:, j]
    alleles = latent < thresholds[None, :]
    for j in np.flatnonzero(~alleles.any(axis=0) | alleles.all(axis=0)):
        alleles[:, j] = False
        alleles[np.argmin(latent[:, j]), j] = True
    values = (alleles[0::2] + alleles[1::2]).astype(np.float64)

    width_s, width_d = len(str(n)), len(str(d))
    positions = 1_000_000 + np.cumsum(rng.integers(1_000, 5_001, size=d))
    bases = np.array(list("ACGT"))
    a1 = rng.integers(0, 4, size=d)
    a2 = (a1 + rng.integers(1, 4, size=d)) % 4
    snps = pd.DataFrame({
        "snp": [f"snp{j + 1:0{max(4, width_d)}d}" for j in range(d)],
        "chrom": ["1"] * d, "pos": positions.astype(np.int64),
        "a1": bases[a1].astype(object), "a2": bases[a2].astype(object),
        "gene": pd.Series([None] * d, dtype=object),
    }, columns=list(SNP_COLUMNS))
    subjects = np.array([f"sub{i + 1:0{max(4, width_s)}d}" for i in range(n)], dtype=str)
    return GenotypeTable(subjects=subjects, values=values, snps=snps, source=None)


# --------------------------------------------------------------------------- groups
def _group_labels(d: int, n_genes, gene_size: int | None, existing,
                  default_size: int) -> np.ndarray:
    if n_genes is None and gene_size is None and existing is not None:
        return np.asarray(existing, dtype=object)
    if n_genes is not None and not np.isscalar(n_genes):
        labels = np.asarray([str(g) for g in n_genes], dtype=object)
        if len(labels) != d:
            raise DataValidationError(
                f"the group vector has {len(labels)} entries for {d} SNPs")
        return labels
    if n_genes is None:
        size = default_size if gene_size is None else int(gene_size)
        if size < 1:
            raise DataValidationError(f"gene_size must be >= 1, got {gene_size}")
        n_genes = math.ceil(d / size)
    n_genes = int(n_genes)
    if not 1 <= n_genes <= d:
        raise DataValidationError(f"n_genes must be between 1 and {d}, got {n_genes}")
    sizes = np.full(n_genes, d // n_genes)
    sizes[: d % n_genes] += 1
    width = len(str(n_genes))
    return np.repeat([f"gene{k + 1:0{max(2, width)}d}" for k in range(n_genes)], sizes
                     ).astype(object)


def _centred_genotype_dataset(genotypes, n_subjects: int, n_snps: int,
                              rng: np.random.Generator, name: str) -> Dataset:
    """A dataset whose genotypes are centred (the X the model will see)."""
    if genotypes is None:
        genotypes = simulate_genotypes(n_subjects, n_snps, seed=rng)
    if isinstance(genotypes, GenotypeTable):
        return make_dataset(genotypes, standardize_genotypes="center", name=name,
                            min_subjects=2)
    if isinstance(genotypes, Dataset):
        if genotypes.genotypes is None:
            raise DataValidationError("the dataset given as genotypes has no genotypes")
        X = genotypes.genotypes
        means = X.mean(axis=0)
        if np.abs(means).max() <= 1e-10 * max(1.0, float(np.abs(X).max())):
            return dataclasses.replace(genotypes, name=name)
        prep = dict(genotypes.preprocessing)
        prep["genotype_center"] = np.asarray(prep.get("genotype_center", 0.0)) + means
        prep.setdefault("genotype_scale", np.ones(X.shape[1]))
        prep["genotype_standardization"] = "center"
        return dataclasses.replace(genotypes, genotypes=X - means, preprocessing=prep,
                                   name=name)
    raise DataValidationError("genotypes must be a Dataset, a GenotypeTable or None, got "
                              f"{type(genotypes).__name__}")


def _contiguous(dataset: Dataset, labels: np.ndarray) -> tuple[Dataset, np.ndarray]:
    """Re-order SNPs so each group is contiguous (groups in order of first appearance)."""
    first = {g: k for k, g in reversed(list(enumerate(labels)))}
    order = np.argsort([first[g] for g in labels], kind="stable")
    if not np.array_equal(order, np.arange(len(labels))):
        dataset = take_snps(dataset, order)
    labels = labels[order]
    snps = dataset.snps.copy()
    snps["gene"] = pd.Series(labels, dtype=object)
    return dataclasses.replace(dataset, snps=snps), labels


def _grouped_design(genotypes, n_subjects, n_snps, n_genes, gene_size, rng, name,
                    default_size, n_phenotypes):
    """Centred, gene-grouped genotypes for a simulator (after checking ``n_phenotypes``)."""
    if n_phenotypes < 1:
        raise DataValidationError(f"n_phenotypes must be >= 1, got {n_phenotypes}")
    dataset = _centred_genotype_dataset(genotypes, n_subjects, n_snps, rng, name)
    existing = None
    if dataset.snps["gene"].notna().all():
        existing = dataset.snps["gene"].astype(str).to_numpy(dtype=object)
    labels = _group_labels(dataset.n_snps, n_genes, gene_size, existing, default_size)
    return _contiguous(dataset, labels)


def simulated_covariates(rng: np.random.Generator, n: int, n_covariates: int, c: int):
    """Standardised Gaussian covariates Z (n × r), names ``cov1…`` and effects Γ ~ N(0, 0.5²).

    Returns ``(None, None, None)`` when ``n_covariates`` is 0.
    """
    if not n_covariates:
        return None, None, None
    Z = rng.standard_normal((n, n_covariates))
    Z = (Z - Z.mean(axis=0)) / Z.std(axis=0)
    gamma = rng.normal(0.0, 0.5, size=(n_covariates, c))
    names = np.array([f"cov{k + 1}" for k in range(n_covariates)], dtype=str)
    return Z, names, gamma


def _phenotype_names(c: int) -> np.ndarray:
    width = max(2, len(str(c)))
    return np.array([f"pheno{j + 1:0{width}d}" for j in range(c)], dtype=str)


def _with_phenotypes(dataset: Dataset, Y: np.ndarray, names: np.ndarray,
                     Z: np.ndarray | None, z_names, extra: dict[str, Any]) -> Dataset:
    prep = dict(dataset.preprocessing)
    prep.update({
        "phenotypes_standardized": False,
        "phenotype_center": np.zeros(Y.shape[1]),
        "phenotype_scale": np.ones(Y.shape[1]),
        "simulated": extra,
    })
    return dataclasses.replace(dataset, phenotypes=Y, phenotype_names=names, covariates=Z,
                               covariate_names=z_names, preprocessing=prep)


# --------------------------------------------------------------------------- GSMTR
def simulate_gsmtr(genotypes: Dataset | GenotypeTable | None = None, *,
                   n_subjects: int = 200, n_snps: int = 60,
                   n_genes: int | Sequence[str] | None = None,
                   n_phenotypes: int = 5, n_active_genes: int = 2,
                   snps_per_active_gene: int = 2, effect_size: float = 0.5,
                   noise_sd: float = 1.0, n_covariates: int = 0, seed: int = 0,
                   gene_size: int | None = None) -> tuple[Dataset, GSMTRTruth]:
    """Phenotypes from a planted gene- and SNP-sparse multitask regression.

    ``n_active_genes`` genes are drawn at random; in each, ``snps_per_active_gene``
    SNPs (all of the gene's SNPs if it has fewer) get effects on a random subset
    of at least half of the phenotypes, with random signs and magnitudes
    ``effect_size × U(0.7, 1.3)``.  Then ``Y = X W + Z Γ + σ E`` with ``E``
    standard normal.

    The returned dataset's genotypes are **centred, not scaled**, and its
    phenotypes are **not standardised**: ``X`` is exactly the matrix that
    generated ``Y``, so ``truth.W`` is the true coefficient matrix (per allele)
    of a model fitted to the returned dataset.  Covariates ``Z`` (``cov1…``,
    standard normal, then centred and scaled) have effects ``Γ ~ N(0, 0.5²)``.

    Parameters
    ----------
    genotypes : Dataset, GenotypeTable or None
        Genotypes to use (e.g. real ones); simulated with
        :func:`simulate_genotypes` when ``None``.  A Dataset's genotypes are used
        as they are after centring (a scaled Dataset keeps its scaling; W is then
        per standard deviation of the SNP); its phenotypes and covariates are
        replaced by the simulated ones.
    n_subjects, n_snps : int
        Sizes when genotypes are simulated.
    n_genes : int, sequence of str or None
        Number of contiguous genes of near-equal size, or a gene label per SNP.
        ``None``: the genotypes' own grouping if they have one, else genes of
        ``gene_size`` SNPs.
    n_phenotypes, n_active_genes, snps_per_active_gene : int
        Sizes of the planted structure.
    effect_size, noise_sd : float
        Typical nonzero |w_ij| and the noise standard deviation σ.
    n_covariates : int
        Number of simulated covariates (0 for none).
    seed : int
        Seed of ``numpy.random.default_rng``.
    gene_size : int, optional
        SNPs per gene when ``n_genes`` is None (default 5).

    Returns
    -------
    (Dataset, GSMTRTruth)
        SNPs are re-ordered so that each gene is contiguous; ``truth`` is
        labelled by the dataset's SNP and phenotype names.
    """
    if n_covariates < 0:
        raise DataValidationError(f"n_covariates must be >= 0, got {n_covariates}")
    rng = np.random.default_rng(seed)
    dataset, labels = _grouped_design(genotypes, n_subjects, n_snps, n_genes, gene_size,
                                      rng, "simulated_gsmtr", default_size=5,
                                      n_phenotypes=n_phenotypes)
    X = dataset.genotypes
    n, d, c = X.shape[0], X.shape[1], n_phenotypes
    genes = pd.unique(labels)
    if not 0 <= n_active_genes <= len(genes):
        raise DataValidationError(
            f"n_active_genes must be between 0 and the number of genes ({len(genes)}), "
            f"got {n_active_genes}")

    W = np.zeros((d, c))
    active_genes = _choose_active_genes(genes, labels, n_active_genes,
                                        snps_per_active_gene, rng)
    active_snp_index = []
    for gene in active_genes:
        members = np.flatnonzero(labels == gene)
        take = min(snps_per_active_gene, len(members))
        chosen = np.sort(rng.choice(members, size=take, replace=False))
        for i in chosen:
            n_hit = int(rng.integers(math.ceil(c / 2), c + 1))
            targets = rng.choice(c, size=n_hit, replace=False)
            signs = rng.choice([-1.0, 1.0], size=n_hit)
            W[i, targets] = signs * effect_size * rng.uniform(0.7, 1.3, size=n_hit)
        active_snp_index.extend(chosen.tolist())

    mean = X @ W
    Z, z_names, gamma = simulated_covariates(rng, n, n_covariates, c)
    if Z is not None:
        mean = mean + Z @ gamma
    Y = mean + noise_sd * rng.standard_normal((n, c))

    names = _phenotype_names(c)
    snp_names = dataset.snp_names
    dataset = _with_phenotypes(dataset, Y, names, Z, z_names, {
        "simulator": "simulate_gsmtr", "seed": seed, "effect_size": effect_size,
        "noise_sd": noise_sd})
    truth = GSMTRTruth(
        W=pd.DataFrame(W, index=pd.Index(snp_names, name="snp"),
                       columns=pd.Index(names, name="phenotype")),
        gamma=None if gamma is None else pd.DataFrame(
            gamma, index=pd.Index(z_names, name="covariate"),
            columns=pd.Index(names, name="phenotype")),
        sigma=float(noise_sd),
        active_snps=[str(snp_names[i]) for i in sorted(active_snp_index)],
        active_genes=[str(g) for g in genes if g in set(active_genes)],
        groups=np.asarray(labels, dtype=str))
    return dataset, truth


def _choose_active_genes(genes, labels, n_active, per_gene, rng) -> list[str]:
    """Random genes, preferring those with at least ``per_gene`` SNPs."""
    sizes = np.array([(labels == g).sum() for g in genes])
    big = [g for g, s in zip(genes, sizes, strict=True) if s >= per_gene]
    small = [g for g, s in zip(genes, sizes, strict=True) if s < per_gene]
    if len(big) >= n_active:
        return list(rng.choice(np.array(big, dtype=object), size=n_active, replace=False))
    warnings.warn(f"only {len(big)} genes have {per_gene} SNPs; some active genes will "
                  "have fewer active SNPs", UserWarning, skip_file_prefixes=LIBRARY_FILES)
    extra = rng.choice(np.array(small, dtype=object), size=n_active - len(big), replace=False)
    return big + list(extra)


def simulate_gsmtr_from_prior(genotypes: Dataset | GenotypeTable | None = None, *,
                              lambda1: float, lambda2: float,
                              n_subjects: int = 50, n_snps: int = 12,
                              n_genes: int | Sequence[str] | None = None,
                              n_phenotypes: int = 3, seed: int = 0,
                              gene_size: int | None = None) -> tuple[Dataset, GSMTRTruth]:
    """Parameters and phenotypes drawn from the GSMTR prior of MODELS.md §1.

    The joint density of MODELS.md §1 is not a product of normalised conditionals:
    integrating τ and ω out of it leaves, with W = σU (m_k SNPs in gene k, c
    phenotypes),

        p(U) ∝ exp(−√λ₁ Σ_k ‖U_k‖_F − √λ₂ Σ_i ‖u_i‖₂),   σ² ~ InvGamma(3, 1),

    genes independent and free of σ (the W-kernel's normaliser ∝ σ^{dc} cancels
    the joint's σ^{−dc}).  Each U_k is drawn exactly by rejection: rows proposed
    iid from ∝ exp(−√λ₂‖u‖) (radius ~ Gamma(c, rate √λ₂), uniform direction),
    accepted with probability exp(−√λ₁‖U_k‖_F).  Where that acceptance is too low
    (large genes with strong λ₁) the gene is drawn instead by a Gibbs chain on the
    joint (500 sweeps), and ``truth.exact`` is False.  τ and ω are then drawn
    from their exact conditionals given W and σ² (inverse Gaussian for 1/τ, 1/ω),
    so (W, σ², τ, ω) is a draw from the joint prior, and y_l ~ N(Wᵀx_l, σ² I).

    Use it for simulation-based calibration: the posterior under the same
    λ₁, λ₂ should cover these draws at the nominal rate.  Genotypes are centred and
    phenotypes are not standardised, as in :func:`simulate_gsmtr`.

    Parameters
    ----------
    genotypes : Dataset, GenotypeTable or None
        As in :func:`simulate_gsmtr`.
    lambda1, lambda2 : float
        bgsmtr's ``lam_1_fixed`` and ``lam_2_fixed`` (gene and SNP level), > 0.
    n_subjects, n_snps, n_genes, n_phenotypes, seed, gene_size
        As in :func:`simulate_gsmtr` (default 3 genes of 4 SNPs).

    Returns
    -------
    (Dataset, GSMTRTruth)
        ``truth.tau`` (per gene, order of ``Dataset.gene_names``), ``truth.omega``
        (per SNP), ``truth.sigma``; every SNP counts as active.
    """
    if not (lambda1 > 0 and lambda2 > 0):
        raise DataValidationError(f"lambda1 and lambda2 must be > 0, got {lambda1}, {lambda2}")
    rng = np.random.default_rng(seed)
    dataset, labels = _grouped_design(genotypes, n_subjects, n_snps, n_genes, gene_size,
                                      rng, "simulated_gsmtr_prior", default_size=4,
                                      n_phenotypes=n_phenotypes)
    X = dataset.genotypes
    n, d, c = X.shape[0], X.shape[1], n_phenotypes
    gene_names = pd.unique(labels)
    gene_of = pd.Index(gene_names).get_indexer(labels)

    sigma2 = 1.0 / rng.gamma(shape=3.0, scale=1.0)
    U = np.zeros((d, c))
    exact = True
    for k in range(len(gene_names)):
        rows = np.flatnonzero(gene_of == k)
        U[rows], gene_exact = _prior_unit_gene(rng, len(rows), c, lambda1, lambda2)
        exact = exact and gene_exact
    W = math.sqrt(sigma2) * U
    tau, omega = _prior_scales_given_w(rng, W, gene_of, sigma2, lambda1, lambda2)
    Y = X @ W + math.sqrt(sigma2) * rng.standard_normal((n, c))

    names = _phenotype_names(c)
    snp_names = dataset.snp_names
    dataset = _with_phenotypes(dataset, Y, names, None, None, {
        "simulator": "simulate_gsmtr_from_prior", "seed": seed,
        "lambda1": lambda1, "lambda2": lambda2})
    truth = GSMTRTruth(
        W=pd.DataFrame(W, index=pd.Index(snp_names, name="snp"),
                       columns=pd.Index(names, name="phenotype")),
        gamma=None, sigma=float(math.sqrt(sigma2)),
        active_snps=[str(s) for s in snp_names],
        active_genes=[str(g) for g in gene_names],
        groups=np.asarray(labels, dtype=str),
        tau=tau, omega=omega, lambda1=float(lambda1), lambda2=float(lambda2), exact=exact)
    return dataset, truth


def _prior_unit_gene(rng, m: int, c: int, lambda1: float, lambda2: float,
                     max_proposals: int = 200_000, sweeps: int = 500):
    """One draw of U_k (m × c) ∝ exp(−√λ₁‖U_k‖_F − √λ₂ Σ_i ‖u_i‖); returns (U_k, exact)."""
    batch = 512
    for _ in range(max_proposals // batch):
        radius = rng.gamma(c, 1.0 / math.sqrt(lambda2), size=(batch, m))
        direction = rng.standard_normal((batch, m, c))
        direction /= np.linalg.norm(direction, axis=2, keepdims=True)
        U = radius[..., None] * direction
        frob = np.sqrt(np.sum(U**2, axis=(1, 2)))
        accept = rng.uniform(size=batch) < np.exp(-math.sqrt(lambda1) * frob)
        if accept.any():
            return U[int(np.argmax(accept))], True
    # Gibbs on the joint with σ = 1: W | τ, ω Gaussian; 1/τ, 1/ω | W inverse Gaussian
    gene_of = np.zeros(m, dtype=int)
    U = rng.standard_normal((m, c)) / math.sqrt(lambda2)
    for _ in range(sweeps):
        tau, omega = _prior_scales_given_w(rng, U, gene_of, 1.0, lambda1, lambda2)
        U = rng.standard_normal((m, c)) / np.sqrt(1.0 / tau[gene_of] + 1.0 / omega)[:, None]
    return U, False


def _prior_scales_given_w(rng, W, gene_of, sigma2, lambda1, lambda2):
    """τ, ω from their full conditionals given W and σ² (MODELS.md §1)."""
    row_sq = np.sum(W**2, axis=1)
    gene_sq = np.bincount(gene_of, weights=row_sq)
    tiny = np.finfo(float).tiny
    inv_tau = rng.wald(np.sqrt(lambda1 * sigma2 / np.maximum(gene_sq, tiny)), lambda1)
    inv_omega = rng.wald(np.sqrt(lambda2 * sigma2 / np.maximum(row_sq, tiny)), lambda2)
    return 1.0 / inv_tau, 1.0 / inv_omega


def tile_genotypes(source: Dataset | GenotypeTable, n_subjects: int, n_snps: int, *,
                   seed: int | np.random.Generator | None = None) -> GenotypeTable:
    """Biobank-sized genotypes with real LD: tiles of a real panel, subjects resampled.

    The ``n_snps`` columns are filled tile by tile with copies of the source's SNPs
    (all of them, in order; the last tile truncated).  Within a tile the rows are
    ``n_subjects`` source subjects drawn with replacement, independently per tile,
    so linkage disequilibrium inside a tile is the source's real LD and tiles are
    independent of each other (as distant genomic regions are).  SNP IDs are
    ``t<tile>:<source id>``; genes follow the source's with the same prefix.

    Parameters
    ----------
    source : Dataset or GenotypeTable
        E.g. :func:`~bayesimg.data.load_demo` (its centring is undone: tiles hold
        allele counts 0/1/2).
    """
    rng = np.random.default_rng(seed)
    if isinstance(source, Dataset):
        center = np.asarray(source.preprocessing.get("genotype_center", 0.0))
        counts = np.rint(source.genotypes + center)
        snps = source.snps
    elif isinstance(source, GenotypeTable):
        counts = np.where(np.isnan(source.values), np.nanmean(source.values, axis=0),
                          source.values).round()
        snps = source.snps
    else:
        raise DataValidationError("source must be a Dataset or a GenotypeTable, got "
                                  f"{type(source).__name__}")
    if n_subjects < 2 or n_snps < 1:
        raise DataValidationError(f"need n_subjects >= 2 and n_snps >= 1, got {n_subjects}, "
                                  f"{n_snps}")
    d0 = counts.shape[1]
    values = np.empty((n_subjects, n_snps), dtype=np.float64)
    tables = []
    for tile, start in enumerate(range(0, n_snps, d0)):
        width = min(d0, n_snps - start)
        rows = rng.integers(0, counts.shape[0], n_subjects)
        values[:, start:start + width] = counts[rows, :width]
        part = snps.iloc[:width].copy()
        part["snp"] = [f"t{tile}:{s}" for s in part["snp"]]
        part["gene"] = [None if g is None or (isinstance(g, float) and np.isnan(g))
                        else f"t{tile}:{g}" for g in part["gene"]]
        part["chrom"] = str(tile + 1)
        tables.append(part)
    table = pd.concat(tables, ignore_index=True)
    subjects = np.array([f"tiled{i:07d}" for i in range(n_subjects)], dtype=object)
    return GenotypeTable(subjects=subjects, values=values, snps=table,
                         source=f"tiles of {getattr(source, 'name', 'genotypes')}")
