"""The validated, aligned data object every model consumes.

A :class:`Dataset` holds one row per subject, already aligned by subject ID,
validated, with missing genotypes handled and (optionally) standardised:

* ``genotypes``   X, ``(n_subjects, n_snps)`` float64, allele counts or imputed dosages
  (centred/scaled if ``standardize`` was applied; see ``preprocessing``)
* ``phenotypes``  Y, ``(n_subjects, n_phenotypes)`` float64
* ``covariates``  Z, ``(n_subjects, n_covariates)`` float64 or ``None``
* ``snps``        one row per SNP: ``snp`` (ID), ``chrom``, ``pos``, ``a1``,
  ``a2``, ``gene`` (group label; ``None`` before grouping)
* names for subjects, phenotypes and covariates (coordinates of the outputs)
* ``sites``       (n_subjects,) str labels of a grouping column (site, scanner, batch)
  that the regression families model as random intercepts, or ``None``
  (``make_dataset(..., random_effects="site")``; levels and counts under
  ``preprocessing["random_effects"]``)
* ``preprocessing``: a plain ``dict`` recording what was dropped, imputed and
  scaled (counts and names) so a report can say exactly what happened.

The object is immutable; helpers return a new one (``dataclasses.replace``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pandas as pd

from bayesimg.data.base import SubjectData, hash_arrays
from bayesimg.errors import DataValidationError

SNP_COLUMNS = ("snp", "chrom", "pos", "a1", "a2", "gene")
#: per-SNP arrays kept in ``Dataset.preprocessing`` (they follow SNP subsetting)
SNP_ARRAY_KEYS = ("genotype_center", "genotype_scale")


@dataclasses.dataclass(frozen=True, eq=False)
class Dataset(SubjectData):
    """Aligned subjects × (SNPs, phenotypes, covariates) with labels."""

    subjects: np.ndarray                 # (n,) str
    genotypes: np.ndarray | None         # (n, d) float64
    snps: pd.DataFrame | None            # (d rows) SNP_COLUMNS
    phenotypes: np.ndarray | None        # (n, c) float64
    phenotype_names: np.ndarray | None   # (c,) str
    covariates: np.ndarray | None = None         # (n, r) float64
    covariate_names: np.ndarray | None = None    # (r,) str
    preprocessing: dict[str, Any] = dataclasses.field(default_factory=dict)
    name: str = "dataset"
    sites: np.ndarray | None = None              # (n,) str, random-effect grouping

    def __post_init__(self):
        n = len(self.subjects)
        if self.sites is not None and np.shape(self.sites) != (n,):
            raise DataValidationError(
                f"sites has shape {np.shape(self.sites)}, expected ({n},) for {n} subjects")
        for label, arr, names in (
            ("genotypes", self.genotypes, None if self.snps is None else self.snps["snp"]),
            ("phenotypes", self.phenotypes, self.phenotype_names),
            ("covariates", self.covariates, self.covariate_names),
        ):
            if arr is None:
                continue
            if arr.ndim != 2 or arr.shape[0] != n:
                raise DataValidationError(
                    f"{label} has shape {arr.shape}, expected ({n}, ...) for {n} subjects")
            if names is not None and len(names) != arr.shape[1]:
                raise DataValidationError(
                    f"{label} has {arr.shape[1]} columns but {len(names)} names")

    # ------------------------------------------------------------------ sizes
    @property
    def n_snps(self) -> int:
        return 0 if self.genotypes is None else self.genotypes.shape[1]

    @property
    def n_phenotypes(self) -> int:
        return 0 if self.phenotypes is None else self.phenotypes.shape[1]

    @property
    def n_covariates(self) -> int:
        return 0 if self.covariates is None else self.covariates.shape[1]

    # ------------------------------------------------------------ groupings
    @property
    def snp_names(self) -> np.ndarray:
        return np.asarray(self.snps["snp"], dtype=str)

    @property
    def gene_names(self) -> np.ndarray:
        """Gene (group) labels in order of first appearance along the SNPs."""
        genes = self.snps["gene"]
        if genes.isna().any():
            missing = self.snps.loc[genes.isna(), "snp"].iloc[0]
            raise DataValidationError(
                "SNPs are not all grouped into genes; call bayesimg.data.group_snps first",
                column=str(missing))
        return np.asarray(pd.unique(genes.astype(str)), dtype=str)

    @property
    def gene_index(self) -> np.ndarray:
        """Integer gene index of every SNP (into ``gene_names``)."""
        names = self.gene_names
        lookup = {g: k for k, g in enumerate(names)}
        return np.array([lookup[g] for g in self.snps["gene"].astype(str)], dtype=np.int32)

    def fingerprint(self) -> str:
        """A short hash of the numbers and labels (stored in saved fits)."""
        labels = [self.subjects]
        if self.snps is not None:
            labels += [self.snps["snp"].astype(str), self.snps["gene"].astype(str)]
        if self.sites is not None:
            labels.append(self.sites)
        return hash_arrays((self.genotypes, self.phenotypes, self.covariates), labels)

    def subset_snps(self, mask_or_index) -> Dataset:
        """A new dataset keeping only the selected SNP columns (in that order).

        Per-SNP arrays in ``preprocessing`` (centres, scales) follow the SNPs.
        """
        idx = np.arange(self.n_snps)[mask_or_index]
        prep = dict(self.preprocessing)
        for key in SNP_ARRAY_KEYS:
            if prep.get(key) is not None and len(prep[key]) == self.n_snps:
                prep[key] = np.asarray(prep[key])[idx]
        return dataclasses.replace(
            self, genotypes=self.genotypes[:, idx],
            snps=self.snps.iloc[idx].reset_index(drop=True), preprocessing=prep)

    def subset_subjects(self, mask_or_index) -> Dataset:
        """A new dataset keeping only the selected subjects (rows)."""
        idx = np.arange(self.n_subjects)[mask_or_index]

        def take(a):
            return None if a is None else a[idx]
        return dataclasses.replace(
            self, subjects=self.subjects[idx], genotypes=take(self.genotypes),
            phenotypes=take(self.phenotypes), covariates=take(self.covariates),
            sites=take(self.sites))

    def __repr__(self) -> str:
        parts = [f"{self.n_subjects} subjects"]
        if self.genotypes is not None:
            n_genes = self.snps["gene"].nunique() if self.snps["gene"].notna().all() else "?"
            parts.append(f"{self.n_snps} SNPs in {n_genes} genes")
        if self.phenotypes is not None:
            parts.append(f"{self.n_phenotypes} phenotypes")
        if self.covariates is not None:
            parts.append(f"{self.n_covariates} covariates")
        return f"Dataset({self.name!r}: " + ", ".join(parts) + ")"
