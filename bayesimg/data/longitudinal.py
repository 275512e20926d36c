"""Repeated measures: subjects' genotypes with phenotypes at several visits.

:class:`LongitudinalData` keeps one row per *subject* (the unit of leave-one-out, as
everywhere in bayesimg) and the visits of each subject along a second axis, padded to
the largest number of visits: phenotypes ``(subject, visit, phenotype)``, visit-level
covariates ``(subject, visit, covariate)``, the visit time and label ``(subject,
visit)`` and a mask of the visits that exist.  Visits are ordered by time within a
subject (as :func:`~bayesimg.data.read_visits` returns them); ``visit`` is the ordinal
position (1, 2, …), the original labels are kept in :attr:`LongitudinalData.visit_labels`.

:func:`make_longitudinal` builds it from a genotype :class:`~bayesimg.data.Dataset`
(``make_dataset(genotypes)``) and a :func:`~bayesimg.data.read_visits` table.  Text
visit covariates (site, scanner) are one-hot encoded with the first level dropped as the
reference (columns ``site[B]`` …), by the same helper as
:func:`~bayesimg.data.make_dataset` (:func:`bayesimg.data.prepare.one_hot`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from bayesimg.data.base import SubjectData, hash_arrays
from bayesimg.data.dataset import Dataset
from bayesimg.data.prepare import _is_categorical, one_hot, random_effect_column, site_labels
from bayesimg.errors import DataValidationError

__all__ = ["LongitudinalData", "make_longitudinal"]


@dataclasses.dataclass(eq=False)
class LongitudinalData(SubjectData):
    """Subjects' genotypes and their phenotypes at one or more visits.

    Attributes
    ----------
    subjects : (n,) str
    genotypes : (n, d) float, centred as the genotype dataset was
    snps : SNP table (as :class:`~bayesimg.data.Dataset`)
    phenotypes : (n, T, c) float, NaN where a subject has no such visit
    phenotype_names : (c,) str
    visit_mask : (n, T) bool, True where the visit exists (each row starts with Trues)
    time : (n, T) float, the visit time minus ``preprocessing["time_center"]`` (0 padded)
    visit_labels : (n, T) str, the original visit labels ("" padded)
    covariates : (n, T, r) float or None, visit-level covariates (0 padded)
    covariate_names : (r,) str or None
    sites : (n,) str or None, each subject's site (scanner, batch) modelled as a random
        intercept (``make_longitudinal(..., random_effects="site")``; constant over a
        subject's visits)
    preprocessing : dict — ``genotype_center``/``genotype_scale`` (from the genotype
        dataset), ``phenotype_center``/``phenotype_scale`` (pooled over visits),
        ``covariate_center``/``covariate_scale``, ``time_center``, ``time_name``
    """

    subjects: np.ndarray
    genotypes: np.ndarray
    snps: pd.DataFrame
    phenotypes: np.ndarray
    phenotype_names: np.ndarray
    visit_mask: np.ndarray
    time: np.ndarray
    visit_labels: np.ndarray
    covariates: np.ndarray | None = None
    covariate_names: np.ndarray | None = None
    preprocessing: dict[str, Any] = dataclasses.field(default_factory=dict)
    name: str = "longitudinal"
    sites: np.ndarray | None = None

    def __post_init__(self):
        n = len(self.subjects)
        if self.sites is not None and np.shape(self.sites) != (n,):
            raise DataValidationError(
                f"sites has shape {np.shape(self.sites)}, expected ({n},) for {n} subjects")
        if self.genotypes.ndim != 2 or self.genotypes.shape[0] != n:
            raise DataValidationError(
                f"genotypes have shape {self.genotypes.shape}, expected ({n}, d)")
        if self.phenotypes.ndim != 3 or self.phenotypes.shape[0] != n:
            raise DataValidationError(
                f"phenotypes have shape {self.phenotypes.shape}, expected ({n}, visits, c)")
        T = self.phenotypes.shape[1]
        for label, arr in (("visit_mask", self.visit_mask), ("time", self.time),
                           ("visit_labels", self.visit_labels)):
            if arr.shape != (n, T):
                raise DataValidationError(f"{label} has shape {arr.shape}, expected {(n, T)}")
        if self.covariates is not None and self.covariates.shape[:2] != (n, T):
            raise DataValidationError(
                f"covariates have shape {self.covariates.shape}, expected ({n}, {T}, r)")
        counts = self.visit_mask.sum(axis=1)
        if np.any(counts == 0):
            i = int(np.argmin(counts))
            raise DataValidationError("subject has no visit", subject=str(self.subjects[i]))
        if np.any(self.visit_mask != (np.arange(T)[None, :] < counts[:, None])):
            raise DataValidationError("visit_mask must be left-aligned (visits first, "
                                      "padding last) in every row")

    # ------------------------------------------------------------------ sizes
    @property
    def n_snps(self) -> int:
        return self.genotypes.shape[1]

    @property
    def n_phenotypes(self) -> int:
        return self.phenotypes.shape[2]

    @property
    def n_covariates(self) -> int:
        return 0 if self.covariates is None else self.covariates.shape[2]

    @property
    def max_visits(self) -> int:
        return self.phenotypes.shape[1]

    @property
    def visit_counts(self) -> np.ndarray:
        return self.visit_mask.sum(axis=1).astype(np.int64)

    @property
    def n_visits(self) -> int:
        return int(self.visit_mask.sum())

    @property
    def snp_names(self) -> np.ndarray:
        return np.asarray(self.snps["snp"], dtype=str)

    # ------------------------------------------------------------ flat views
    def visit_index(self) -> tuple[np.ndarray, np.ndarray]:
        """(subject index, visit position) of every existing visit, subject-major."""
        rows, cols = np.nonzero(self.visit_mask)
        return rows.astype(np.int64), cols.astype(np.int64)

    def flat_phenotypes(self) -> np.ndarray:
        """(N, c) phenotypes of the existing visits, subject-major."""
        return self.phenotypes[self.visit_mask]

    def flat_time(self) -> np.ndarray:
        return self.time[self.visit_mask]

    def flat_covariates(self) -> np.ndarray | None:
        return None if self.covariates is None else self.covariates[self.visit_mask]

    # ------------------------------------------------------------------ base
    def fingerprint(self) -> str:
        labels = [self.subjects, self.snps["snp"].astype(str), self.phenotype_names,
                  self.visit_labels.ravel()]
        return hash_arrays((self.genotypes, np.where(self.visit_mask[..., None],
                                                     self.phenotypes, 0.0),
                            self.time, self.covariates), labels)

    def subset_subjects(self, mask_or_index) -> LongitudinalData:
        idx = np.arange(self.n_subjects)[mask_or_index]
        T = int(self.visit_mask[idx].sum(axis=1).max())

        def take(a):
            return None if a is None else a[idx][:, :T]
        return dataclasses.replace(
            self, subjects=self.subjects[idx], genotypes=self.genotypes[idx],
            phenotypes=take(self.phenotypes), visit_mask=take(self.visit_mask),
            time=take(self.time), visit_labels=take(self.visit_labels),
            covariates=take(self.covariates),
            sites=None if self.sites is None else self.sites[idx])

    def baseline(self) -> Dataset:
        """The first visit of every subject as a cross-sectional :class:`Dataset`
        (the data a model ignoring the repeated measures would see)."""
        return Dataset(subjects=self.subjects, genotypes=self.genotypes, snps=self.snps,
                       phenotypes=self.phenotypes[:, 0], phenotype_names=self.phenotype_names,
                       covariates=None if self.covariates is None else self.covariates[:, 0],
                       covariate_names=self.covariate_names,
                       preprocessing={k: v for k, v in self.preprocessing.items()
                                      if k.startswith("genotype")},
                       name=f"{self.name} (first visits)", sites=self.sites)

    def visit_average(self) -> Dataset:
        """Each subject's phenotypes averaged over its visits (and re-centred) as a
        :class:`Dataset`: the naive per-subject summary of the repeated measures."""
        Y = np.nanmean(self.phenotypes, axis=1)
        Y = Y - Y.mean(axis=0)
        return Dataset(subjects=self.subjects, genotypes=self.genotypes, snps=self.snps,
                       phenotypes=Y, phenotype_names=self.phenotype_names,
                       preprocessing={k: v for k, v in self.preprocessing.items()
                                      if k.startswith("genotype")},
                       name=f"{self.name} (visit averages)", sites=self.sites)

    def __repr__(self) -> str:
        lo, hi = int(self.visit_counts.min()), int(self.visit_counts.max())
        return (f"LongitudinalData({self.name!r}: {self.n_subjects} subjects, "
                f"{self.n_visits} visits ({lo}-{hi} per subject), {self.n_snps} SNPs, "
                f"{self.n_phenotypes} phenotypes, {self.n_covariates} visit covariates)")


def make_longitudinal(genotypes: Dataset, visits: pd.DataFrame, *,
                      phenotype_columns: Sequence[str],
                      covariate_columns: Sequence[str] | None = None,
                      covariate_levels: Mapping[str, Sequence[str]] | None = None,
                      standardize_phenotypes: bool = True,
                      standardize_covariates: bool = True,
                      random_effects: str | Sequence[str] | None = None,
                      name: str = "longitudinal") -> LongitudinalData:
    """Align a genotype dataset with a long table of visits.

    Parameters
    ----------
    genotypes : Dataset
        One row per subject with genotypes (``make_dataset(genotypes)``; its phenotypes,
        if any, are ignored).
    visits : pandas.DataFrame
        From :func:`~bayesimg.data.read_visits` (columns ``subject``, ``visit``, and
        ``time`` when the visits have one).  Subjects without genotypes are dropped;
        genotyped subjects without visits too.
    phenotype_columns : sequence of str
        Numeric columns measured at each visit.  A visit with a missing phenotype is an
        error (drop such rows first).
    covariate_columns : sequence of str, optional
        Visit-level covariates (age, scanner drift …).  Text columns (site, scanner:
        :func:`~bayesimg.data.read_visits` keeps them as text) are one-hot encoded as
        :func:`~bayesimg.data.make_dataset` does: the first level is the reference and
        dropped, each other level ``L`` a 0/1 column ``site[L]``
        (``preprocessing["covariates_one_hot"]``).  A missing or all-missing text
        column is an error.
    covariate_levels : mapping of str to sequence of str, optional
        Levels of a text covariate, reference first (default: its sorted values), e.g.
        the training data's ``preprocessing["covariates_one_hot"][col]["levels"]`` so
        that new data are encoded the same way; any other value is an error.
    standardize_phenotypes, standardize_covariates : bool
        Phenotypes are always centred by their mean over all visits (the regression
        families have no intercept); with ``standardize_phenotypes`` also divided by
        their sd over visits.  Covariates likewise when ``standardize_covariates``.

    random_effects : str or [str], optional
        A site/scanner column of the visits table modelled as a random intercept
        (:mod:`bayesimg.models.core.site_effects`) instead of a covariate: kept per subject
        as ``sites``.  It must be constant over each subject's visits, have no missing
        value, at least two levels and two subjects per level (named errors otherwise).

    Time (when the table has it) is centred by its mean over visits and kept in its
    units (``preprocessing["time_center"]``).
    """
    if not isinstance(genotypes, Dataset) or genotypes.genotypes is None:
        raise DataValidationError("genotypes must be a Dataset with genotypes "
                                  "(bayesimg.data.make_dataset(genotypes))")
    for col in ("subject", "visit"):
        if col not in visits.columns:
            raise DataValidationError(f"not a read_visits table (no {col!r} column)",
                                      column=col)
    source = visits.attrs.get("source", "visits table")
    columns = [str(c) for c in phenotype_columns]
    if not columns:
        raise DataValidationError("phenotype_columns is empty")
    covs = [] if covariate_columns is None else [str(c) for c in covariate_columns]
    for col in columns + covs:
        if col not in visits.columns:
            raise DataValidationError("column not found in the visits table", source=source,
                                      column=col)
        if col in columns and not pd.api.types.is_numeric_dtype(visits[col]):
            raise DataValidationError("phenotype column is not numeric", source=source,
                                      column=col)
    site_col = random_effect_column(random_effects, visits, covs, label="visits")
    for col in covariate_levels or {}:
        if col not in covs or not _is_categorical(visits[col]):
            raise DataValidationError("covariate_levels names a column that is not a text "
                                      "covariate", source=source, column=str(col))
    has_time = "time" in visits.columns
    geno_ids = pd.Index(np.asarray(genotypes.subjects, dtype=str))
    table = visits[visits["subject"].astype(str).isin(geno_ids)].copy()
    if table.empty:
        raise DataValidationError("no subject of the visits table has genotypes",
                                  source=source)
    values = table[columns].to_numpy(dtype=float)
    bad = ~np.isfinite(values)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise DataValidationError(
            f"missing phenotype at visit {table['visit'].iloc[i]!r} ({int(bad.sum())} such "
            "values); drop those visits first", source=source, column=columns[j],
            subject=str(table["subject"].iloc[i]))
    if covs:
        cv, cov_names, one_hot_encoding = _visit_covariates(
            table, covs, dict(covariate_levels or {}), source)
    order = pd.Index(pd.unique(table["subject"].astype(str)))
    keep = np.flatnonzero(geno_ids.isin(order))
    subjects = geno_ids[keep]
    rows = subjects.get_indexer(table["subject"].astype(str))
    pos = table.groupby(table["subject"].astype(str), sort=False).cumcount().to_numpy()
    n, T, c = len(subjects), int(pos.max()) + 1, len(columns)
    prep: dict[str, Any] = {k: v for k, v in (genotypes.preprocessing or {}).items()
                            if k.startswith("genotype")}
    center = values.mean(axis=0)
    scale = values.std(axis=0) if standardize_phenotypes else np.ones(c)
    if np.any(scale == 0) or np.any(values.std(axis=0) == 0):
        j = int(np.argmin(values.std(axis=0)))
        raise DataValidationError("phenotype is constant over all visits", source=source,
                                  column=columns[j])
    prep.update(phenotype_center=center, phenotype_scale=scale)
    Y = np.full((n, T, c), np.nan)
    Y[rows, pos] = (values - center) / scale
    mask = np.zeros((n, T), dtype=bool)
    mask[rows, pos] = True
    time = np.zeros((n, T))
    if has_time:
        t = table["time"].to_numpy(dtype=float)
        prep["time_center"] = float(t.mean())
        time[rows, pos] = t - prep["time_center"]
        prep["time_name"] = (visits.attrs.get("columns") or {}).get("time") or "time"
    labels = np.full((n, T), "", dtype=object)
    labels[rows, pos] = table["visit"].astype(str).to_numpy()
    Z = None
    if covs:
        zc = cv.mean(axis=0) if standardize_covariates else np.zeros(cv.shape[1])
        zs = cv.std(axis=0) if standardize_covariates else np.ones(cv.shape[1])
        if np.any(zs == 0):
            raise DataValidationError("covariate is constant over all visits", source=source,
                                      column=cov_names[int(np.argmin(zs))])
        prep.update(covariate_center=zc, covariate_scale=zs,
                    covariates_one_hot=one_hot_encoding)
        Z = np.zeros((n, T, cv.shape[1]))
        Z[rows, pos] = (cv - zc) / zs
    sites = None
    if site_col is not None:
        sites = _subject_sites(table, site_col, subjects, source, prep)
    return LongitudinalData(
        sites=sites,
        subjects=np.asarray(subjects, dtype=str), genotypes=genotypes.genotypes[keep],
        snps=genotypes.snps, phenotypes=Y, phenotype_names=np.asarray(columns, dtype=str),
        visit_mask=mask, time=time, visit_labels=labels.astype(str), covariates=Z,
        covariate_names=None if not covs else np.asarray(cov_names, dtype=str),
        preprocessing=prep, name=name)


def _subject_sites(table: pd.DataFrame, col: str, subjects: pd.Index, source: str,
                   prep: dict) -> np.ndarray:
    """Each subject's site from the visits (one value per subject, checked)."""
    frame = table.set_index(table["subject"].astype(str))[col]
    if frame.isna().any():
        raise DataValidationError("missing random-effect value", source=source, column=col,
                                  subject=str(frame.index[int(np.argmax(frame.isna()))]))
    per_subject = frame.astype(str).groupby(level=0, sort=False).nunique()
    moved = per_subject[per_subject > 1]
    if len(moved):
        raise DataValidationError(
            f"random-effect column changes between visits of {len(moved)} subject(s); a "
            "subject's site must be constant (or give it as a visit covariate)",
            source=source, column=col, subject=str(moved.index[0]))
    first = frame.groupby(level=0, sort=False).first().reindex(subjects)
    first.name = col
    return site_labels(first, source, prep)


def _visit_covariates(table: pd.DataFrame, covs: list[str], levels: dict,
                      source: str) -> tuple[np.ndarray, list[str], dict]:
    """The (visits, columns) covariate matrix with text columns one-hot encoded, its
    column names, and the encoding of each text column."""
    frame = table.set_index(table["subject"].astype(str))
    blocks, names, encoding = [], [], {}
    for col in covs:
        column = frame[col]
        if _is_categorical(column):
            block, dummies, encoding[col] = one_hot(column, source, levels.get(col))
            blocks.append(block)
            names.extend(dummies)
            continue
        values = column.to_numpy(dtype=float)
        if not np.isfinite(values).all():
            i = int(np.argmax(~np.isfinite(values)))
            raise DataValidationError("missing covariate value", source=source, column=col,
                                      subject=str(frame.index[i]))
        blocks.append(values[:, None])
        names.append(col)
    return np.hstack(blocks), names, encoding
