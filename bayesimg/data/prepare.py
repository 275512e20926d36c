"""Turn raw tables into a validated, aligned :class:`~bayesimg.data.Dataset`.

Policies (all recorded in ``Dataset.preprocessing`` and announced with a
:class:`~bayesimg.errors.DataWarning` when something is dropped or imputed):

Subjects
    Inner join on subject ID across every table given; subjects missing from
    any table are dropped (listed per table under ``subjects_dropped``).
Phenotypes and covariates
    No silent imputation: a missing value is an error naming the column and
    subject, unless ``drop_missing_phenotypes`` / ``drop_missing_covariates``
    asks to drop those subjects instead.  Infinite values and constant columns
    are errors.  String covariates are one-hot encoded, dropping the first
    (sorted) level, which is the reference.
Genotypes
    Hard calls (0, 1, 2) or imputed dosages (any value in [0, 2], e.g. the expected
    allele count of an imputation server's output), or NaN.  ``dosages=None``
    (default) accepts both and records which it found under
    ``preprocessing["genotype_values"]`` (``"hard calls"`` when every observed value
    is 0, 1 or 2, else ``"dosages"``); ``dosages=False`` insists on hard calls and
    ``dosages=True`` declares dosages.  Values are never rounded: hard calls stay
    exact.  A value outside [0, 2] is an error naming the SNP and subject.  SNPs
    with a missing fraction above ``max_snp_missing`` are dropped; remaining
    missing calls are replaced by the SNP's mean over the observed subjects; SNPs
    that are then constant
    (monomorphic among the retained subjects) are dropped, and so are SNPs whose
    minor-allele frequency (after imputation) is below ``min_maf`` (default 0: keep).
Standardisation
    Genotypes are centred per SNP by default (the convention of MODELS.md);
    ``"scale"`` also divides by the SNP's standard deviation.  Phenotypes and
    covariates are centred and scaled to unit variance.  Standard deviations use
    ``ddof=0``.  The centres and scales are stored as arrays
    (``genotype_center``, ``genotype_scale``, ``phenotype_center``,
    ``phenotype_scale``, ``covariate_center``, ``covariate_scale``) so that
    ``original = standardized * scale + center``.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from bayesimg.data.dataset import SNP_ARRAY_KEYS, SNP_COLUMNS, Dataset
from bayesimg.data.io import GenotypeTable, check_genotype_values
from bayesimg.errors import LIBRARY_FILES, DataValidationError, DataWarning

__all__ = ["make_dataset", "take_snps", "SNP_ARRAY_KEYS"]



_GENOTYPE_MODES = ("center", "scale", None)


def make_dataset(genotypes: GenotypeTable | None = None,
                 phenotypes: pd.DataFrame | None = None,
                 covariates: pd.DataFrame | None = None, *,
                 phenotype_columns: Sequence[str] | None = None,
                 covariate_columns: Sequence[str] | None = None,
                 max_snp_missing: float = 0.05,
                 min_maf: float = 0.0,
                 standardize_genotypes: str | None = "center",
                 standardize_phenotypes: bool = True,
                 standardize_covariates: bool = True,
                 drop_missing_phenotypes: bool = False,
                 drop_missing_covariates: bool = False,
                 min_subjects: int = 10,
                 dosages: bool | None = None,
                 random_effects: str | Sequence[str] | None = None,
                 name: str = "dataset") -> Dataset:
    """Align, validate and standardise genotypes, phenotypes and covariates.

    Parameters
    ----------
    genotypes : GenotypeTable, optional
        From :func:`~bayesimg.data.read_plink` or a simulator.
    phenotypes, covariates : pandas.DataFrame, optional
        Indexed by subject ID (as returned by :func:`~bayesimg.data.read_table`).
    phenotype_columns, covariate_columns : sequence of str, optional
        Columns to use (default: all).
    max_snp_missing : float
        SNPs with a larger fraction of missing calls are dropped (default 0.05).
    min_maf : float
        SNPs with a smaller minor-allele frequency are dropped (default 0: none).
        Rare variants carry little information and get very wide intervals.
    standardize_genotypes : {"center", "scale", None}
        ``"center"`` subtracts each SNP's mean, ``"scale"`` also divides by its
        standard deviation, ``None`` keeps allele counts.
    standardize_phenotypes, standardize_covariates : bool
        Centre and scale each column to mean 0, variance 1.
    drop_missing_phenotypes, drop_missing_covariates : bool
        Drop subjects with a missing value (with a warning) instead of raising.
    min_subjects : int
        Minimum number of subjects left after alignment and dropping.
    dosages : bool or None
        ``None`` (default): accept hard calls and imputed dosages in [0, 2] and
        detect which (``preprocessing["genotype_values"]``); ``False``: every
        observed genotype must be 0, 1 or 2 (an error names the first that is not);
        ``True``: dosages in [0, 2].
    random_effects : str or [str], optional
        A grouping column of the covariates table (site, scanner, batch; text or
        integer codes) to model as random intercepts instead of fixed effects
        (:mod:`bayesimg.models.core.site_effects`).  It is taken out of the covariates
        and kept as ``Dataset.sites``; its levels (sorted) and subjects per level are
        recorded under ``preprocessing["random_effects"]``.  One column; it must have
        no missing value (unless ``drop_missing_covariates``), at least two levels and
        at least two subjects per level.
    name : str
        Label of the dataset.

    Returns
    -------
    Dataset
        Subjects in the order of the genotype table (else the phenotype table,
        else the covariate table); ``preprocessing`` records what was done.

    Raises
    ------
    DataValidationError
        For every failed check; the message names the table, column, SNP or subject.
    """
    if standardize_genotypes not in _GENOTYPE_MODES:
        raise DataValidationError(
            f"standardize_genotypes must be 'center', 'scale' or None, "
            f"got {standardize_genotypes!r}")
    if not 0.0 <= min_maf < 0.5:
        raise DataValidationError(f"min_maf must be in [0, 0.5), got {min_maf}")
    if not 0.0 <= max_snp_missing <= 1.0:
        raise DataValidationError(f"max_snp_missing must be in [0, 1], got {max_snp_missing}")
    if dosages not in (None, True, False):
        raise DataValidationError(f"dosages must be None, True or False, got {dosages!r}")
    site_col = random_effect_column(random_effects, covariates, covariate_columns)
    tables = _collect_tables(genotypes, phenotypes, covariates)
    prep: dict[str, Any] = {}

    subjects = _align_subjects(tables, prep, min_subjects)
    pheno = cov = None
    if phenotypes is not None:
        pheno = _select_columns(phenotypes, phenotype_columns, "phenotypes").loc[subjects]
    if covariates is not None:
        fixed = list(covariates.columns if covariate_columns is None else covariate_columns)
        if site_col is not None:
            fixed = [str(c) for c in fixed if str(c) != site_col] + [site_col]
        cov = _select_columns(covariates, fixed, "covariates").loc[subjects]

    # Missing phenotype/covariate values: error, or drop subjects when asked.
    keep = np.ones(len(subjects), bool)
    for label, table, drop in (("phenotypes", pheno, drop_missing_phenotypes),
                               ("covariates", cov, drop_missing_covariates)):
        if table is not None:
            keep &= _missing_value_mask(table, label, drop, prep)
    if not keep.all():
        subjects = subjects[keep]
        pheno = None if pheno is None else pheno.loc[subjects]
        cov = None if cov is None else cov.loc[subjects]
    if len(subjects) < min_subjects:
        raise DataValidationError(
            f"only {len(subjects)} subjects remain after dropping those with missing "
            f"phenotypes/covariates; at least {min_subjects} are needed")
    sites = None
    if site_col is not None:
        sites = site_labels(cov[site_col], _table_source(cov, "covariates"), prep)
        cov = cov.drop(columns=[site_col]) if cov.shape[1] > 1 else None

    Y = names_y = None
    if pheno is not None:
        Y, names_y = _prepare_phenotypes(pheno, standardize_phenotypes, prep)
    Z = names_z = None
    if cov is not None:
        Z, names_z = _prepare_covariates(cov, standardize_covariates, prep)

    X = snps = None
    if genotypes is not None:
        rows = pd.Index(genotypes.subjects).get_indexer(subjects)
        X, snps = _prepare_genotypes(genotypes, rows, subjects, max_snp_missing,
                                     standardize_genotypes, prep, min_maf=min_maf,
                                     dosages=dosages)

    return Dataset(subjects=np.asarray(subjects, dtype=str), genotypes=X, snps=snps,
                   phenotypes=Y, phenotype_names=names_y, covariates=Z,
                   covariate_names=names_z, preprocessing=prep, name=name, sites=sites)


# --------------------------------------------------------------------------- random effects
def random_effect_column(random_effects, table: pd.DataFrame | None,
                         fixed_columns=None, label: str = "covariates") -> str | None:
    """The one grouping column named by ``random_effects`` (a str or a one-element list),
    checked against ``table`` (named errors: not a column, several columns, also asked
    for as a fixed covariate, no table)."""
    if random_effects is None:
        return None
    cols = [random_effects] if isinstance(random_effects, str) else list(random_effects)
    if len(cols) != 1 or not isinstance(cols[0], str):
        raise DataValidationError(
            f"random_effects must name one grouping column (e.g. 'site'), got "
            f"{random_effects!r}; several crossed grouping factors are not supported")
    col = cols[0]
    if table is None:
        raise DataValidationError(
            f"random_effects names a column of the {label} table, but no {label} table "
            "was given", column=col)
    if col not in [str(c) for c in table.columns]:
        raise DataValidationError(f"random-effect column not found in the {label} table "
                                  f"(columns: {[str(c) for c in table.columns][:10]})",
                                  source=_table_source(table, label), column=col)
    if fixed_columns is not None and col in [str(c) for c in fixed_columns]:
        raise DataValidationError(
            "column asked for both as a fixed covariate (covariate_columns) and as a "
            "random effect; give it as one of the two", column=col)
    return col


def site_labels(column: pd.Series, source: str, prep: dict,
                unit: str = "subject") -> np.ndarray:
    """The labels of a random-effect grouping column (as text), checked: no missing
    value, at least two levels, at least two ``unit``s per level (one unit cannot
    separate its level's effect from its own noise).  Records levels and counts under
    ``prep["random_effects"]``."""
    col = str(column.name)
    missing = column.isna().to_numpy()
    if missing.any():
        raise DataValidationError(
            f"missing random-effect value ({int(missing.sum())} missing)", source=source,
            column=col, subject=str(column.index[int(np.argmax(missing))]))
    values = column.to_numpy()
    if pd.api.types.is_float_dtype(column.dtype) and np.all(values == np.round(values)):
        values = values.astype(np.int64)           # integer site codes read as floats
    labels = np.asarray([str(v) for v in values], dtype=str)
    levels, counts = np.unique(labels, return_counts=True)
    if len(levels) < 2:
        raise DataValidationError(
            f"random-effect column has a single level {levels[0]!r}: nothing to model",
            source=source, column=col)
    if counts.min() < 2:
        raise DataValidationError(
            f"random-effect level {levels[int(np.argmin(counts))]!r} has a single {unit}; "
            "every level needs at least two (merge or drop it)", source=source, column=col)
    prep["random_effects"] = {"column": col, "levels": [str(v) for v in levels],
                              f"{unit}s_per_level": [int(v) for v in counts]}
    return labels


# --------------------------------------------------------------------------- alignment
def _table_source(table, label: str) -> str:
    if isinstance(table, GenotypeTable):
        return table.source or label
    return table.attrs.get("source", label)


def _collect_tables(genotypes, phenotypes, covariates) -> dict[str, tuple[pd.Index, Any]]:
    tables = {}
    if genotypes is not None:
        if not isinstance(genotypes, GenotypeTable):
            raise DataValidationError(
                f"genotypes must be a GenotypeTable (from read_plink), got "
                f"{type(genotypes).__name__}")
        index = pd.Index(np.asarray(genotypes.subjects, dtype=str))
        dup = index[index.duplicated()]
        if len(dup):
            raise DataValidationError("duplicated subject ID in the genotype table",
                                      source=_table_source(genotypes, "genotypes"),
                                      subject=str(dup[0]))
        snp_ids = pd.Index(genotypes.snps["snp"].astype(str))
        dup = snp_ids[snp_ids.duplicated()]
        if len(dup):
            raise DataValidationError("duplicated SNP ID in the genotype table",
                                      source=_table_source(genotypes, "genotypes"),
                                      column=str(dup[0]))
        tables["genotypes"] = (index, genotypes)
    for label, table in (("phenotypes", phenotypes), ("covariates", covariates)):
        if table is None:
            continue
        if not isinstance(table, pd.DataFrame):
            raise DataValidationError(
                f"{label} must be a pandas DataFrame indexed by subject ID, got "
                f"{type(table).__name__}")
        index = pd.Index([str(s) for s in table.index], dtype=object)
        dup = index[index.duplicated()]
        if len(dup):
            raise DataValidationError(f"duplicated subject ID in the {label} table",
                                      source=_table_source(table, label), subject=dup[0])
        tables[label] = (index, table)
    if not tables:
        raise DataValidationError("make_dataset needs at least one of genotypes, "
                                  "phenotypes or covariates")
    return tables


def _align_subjects(tables, prep: dict, min_subjects: int) -> pd.Index:
    """Inner join of subject IDs; order of the first table; drops recorded and warned."""
    indexes = {label: index for label, (index, _) in tables.items()}
    common = set.intersection(*(set(ix) for ix in indexes.values()))
    first = next(iter(indexes.values()))
    subjects = pd.Index([s for s in first if s in common], dtype=object)

    dropped = {label: [s for s in ix if s not in common] for label, ix in indexes.items()}
    prep["subjects_input"] = {label: len(ix) for label, ix in indexes.items()}
    prep["subjects_dropped"] = dropped
    n_dropped = {label: len(v) for label, v in dropped.items() if v}
    if n_dropped and len(indexes) > 1:
        detail = "; ".join(
            f"{n} of {len(indexes[label])} in {label} (e.g. {dropped[label][0]!r})"
            for label, n in n_dropped.items())
        warnings.warn(
            f"aligning subjects by ID kept {len(subjects)} present in every table and "
            f"dropped {detail}; see preprocessing['subjects_dropped']",
            DataWarning, skip_file_prefixes=LIBRARY_FILES)
    if len(subjects) < min_subjects:
        sizes = ", ".join(f"{label} ({len(ix)} subjects)" for label, ix in indexes.items())
        raise DataValidationError(
            f"only {len(subjects)} subjects are common to {sizes}; at least "
            f"{min_subjects} are needed (are the subject IDs spelled the same in "
            "every table?)")
    return subjects


def _select_columns(table: pd.DataFrame, columns, label: str) -> pd.DataFrame:
    source = _table_source(table, label)
    table = table.copy()
    table.index = pd.Index([str(s) for s in table.index], dtype=object)
    table.columns = [str(c) for c in table.columns]
    if columns is None:
        columns = list(table.columns)
    columns = [str(c) for c in columns]
    for col in columns:
        if col not in table.columns:
            raise DataValidationError(f"{label} column not found", source=source, column=col)
    if not columns:
        raise DataValidationError(f"no {label} columns selected", source=source)
    names = pd.Index(table.columns)
    dup = [c for c in columns if (names == c).sum() > 1] or \
        [c for c in pd.Index(columns)[pd.Index(columns).duplicated()]]
    if dup:
        raise DataValidationError(f"{label} column name appears more than once",
                                  source=source, column=str(dup[0]))
    out = table[columns]
    out.attrs["source"] = source
    return out


def _missing_value_mask(table: pd.DataFrame, label: str, drop: bool, prep: dict) -> np.ndarray:
    """Mask of subjects to keep; raises on a missing value unless ``drop``."""
    missing = table.isna().to_numpy()
    if not missing.any():
        return np.ones(len(table), bool)
    row, col = np.argwhere(missing)[0]
    if not drop:
        raise DataValidationError(
            f"missing {label[:-1]} value ({int(missing.sum())} missing in total); "
            f"bayesimg does not impute {label}: fill them in, or pass "
            f"drop_missing_{label}=True to drop those subjects",
            source=_table_source(table, label), column=str(table.columns[col]),
            subject=str(table.index[row]))
    bad = missing.any(axis=1)
    dropped = [str(s) for s in table.index[bad]]
    prep.setdefault("subjects_dropped", {})[f"missing_{label}"] = dropped
    warnings.warn(
        f"dropped {len(dropped)} subjects with missing {label} (e.g. {dropped[0]!r} in "
        f"column {str(table.columns[col])!r}); see "
        f"preprocessing['subjects_dropped']['missing_{label}']", DataWarning,
        skip_file_prefixes=LIBRARY_FILES)
    return ~bad


# --------------------------------------------------------------------------- phenotypes
def _numeric_matrix(table: pd.DataFrame, label: str) -> np.ndarray:
    source = _table_source(table, label)
    for col in table.columns:
        if not (pd.api.types.is_numeric_dtype(table[col].dtype)
                or pd.api.types.is_bool_dtype(table[col].dtype)):
            raise DataValidationError(f"{label} column is not numeric", source=source,
                                      column=str(col))
        if pd.api.types.is_complex_dtype(table[col].dtype):
            raise DataValidationError(f"{label} column holds complex numbers", source=source,
                                      column=str(col))
    values = table.to_numpy(dtype=np.float64, copy=True)
    inf = np.isinf(values)
    if inf.any():
        row, col = np.argwhere(inf)[0]
        raise DataValidationError(f"infinite {label[:-1]} value", source=source,
                                  column=str(table.columns[col]),
                                  subject=str(table.index[row]))
    return values


def _scaled_moments(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column means and standard deviations (ddof=0) free of overflow.

    Each column is divided by its largest absolute value first, so values near
    the float64 limit (1e200, 1e308) give finite moments instead of inf/NaN.
    """
    peak = np.abs(values).max(axis=0) if len(values) else np.ones(values.shape[1])
    peak = np.where((peak > 0) & np.isfinite(peak), peak, 1.0)
    unit = values / peak
    return unit.mean(axis=0) * peak, unit.std(axis=0) * peak


def _check_not_constant(values: np.ndarray, names, label: str, source: str) -> None:
    _, sd = _scaled_moments(values)
    scale = np.maximum(np.abs(values).max(axis=0), 1.0)
    constant = sd <= 1e-12 * scale
    if constant.any():
        col = names[int(np.flatnonzero(constant)[0])]
        raise DataValidationError(
            f"{label[:-1]} column is constant over the {len(values)} aligned subjects",
            source=source, column=str(col))


def _standardize(values: np.ndarray, do_it: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if not do_it:
        return values, np.zeros(values.shape[1]), np.ones(values.shape[1])
    peak = np.abs(values).max(axis=0)
    peak = np.where((peak > 0) & np.isfinite(peak), peak, 1.0)
    unit = values / peak
    unit_center, unit_scale = unit.mean(axis=0), unit.std(axis=0)
    # standardise in the rescaled units: (x - m) / s is unchanged, and nothing overflows
    return (unit - unit_center) / unit_scale, unit_center * peak, unit_scale * peak


def _prepare_phenotypes(table: pd.DataFrame, standardize: bool, prep: dict):
    names = np.asarray(table.columns, dtype=str)
    values = _numeric_matrix(table, "phenotypes")
    _check_not_constant(values, names, "phenotypes", _table_source(table, "phenotypes"))
    values, center, scale = _standardize(values, standardize)
    prep["phenotypes_standardized"] = bool(standardize)
    prep["phenotype_center"] = center
    prep["phenotype_scale"] = scale
    return values, names


# --------------------------------------------------------------------------- covariates
def _is_categorical(column: pd.Series) -> bool:
    return not (pd.api.types.is_numeric_dtype(column.dtype)
                or pd.api.types.is_bool_dtype(column.dtype))


def one_hot(column: pd.Series, source: str,
            levels: Sequence[str] | None = None) -> tuple[np.ndarray, list[str], dict]:
    """Drop-first one-hot encoding of a text covariate.

    The reference is ``levels[0]`` (default: the sorted observed values); every other
    level ``L`` of column ``col`` becomes a 0/1 column named ``col[L]``.  Returns the
    (n, levels - 1) float block, the column names and the encoding
    (``{"levels", "reference", "columns"}``, as stored in
    ``preprocessing["covariates_one_hot"]``).  Missing values, a column with no value,
    a single level and a value outside ``levels`` are named errors.
    """
    col = str(column.name)
    missing = column.isna().to_numpy()
    if missing.all():
        raise DataValidationError("categorical covariate has no value (every entry is "
                                  "missing)", source=source, column=col)
    if missing.any():
        raise DataValidationError(f"missing covariate value ({int(missing.sum())} missing)",
                                  source=source, column=col,
                                  subject=str(column.index[int(np.argmax(missing))]))
    text = column.astype(str).to_numpy()
    if levels is None:
        levels = sorted(set(text))
    else:
        levels = [str(v) for v in levels]
        unknown = ~np.isin(text, levels)
        if unknown.any():
            raise DataValidationError(
                f"unknown category {text[int(np.argmax(unknown))]!r} (levels: {levels})",
                source=source, column=col,
                subject=str(column.index[int(np.argmax(unknown))]))
    if len(levels) < 2:
        raise DataValidationError(
            f"categorical covariate has a single level {levels[0]!r} over the "
            f"{len(column)} aligned subjects", source=source, column=col)
    dummies = [f"{col}[{level}]" for level in levels[1:]]
    block = np.column_stack([(text == lv).astype(np.float64) for lv in levels[1:]])
    return block, dummies, {"levels": levels, "reference": levels[0], "columns": dummies}


def _prepare_covariates(table: pd.DataFrame, standardize: bool, prep: dict):
    source = _table_source(table, "covariates")
    blocks, names, encoding = [], [], {}
    for col in table.columns:
        column = table[col]
        if _is_categorical(column):
            block, dummies, encoding[str(col)] = one_hot(column, source)
            blocks.append(block)
            names.extend(dummies)
        else:
            values = _numeric_matrix(table[[col]], "covariates")
            _check_not_constant(values, [col], "covariates", source)
            blocks.append(values)
            names.append(str(col))
    values = np.hstack(blocks)
    values, center, scale = _standardize(values, standardize)
    prep["covariates_one_hot"] = encoding
    prep["covariates_standardized"] = bool(standardize)
    prep["covariate_center"] = center
    prep["covariate_scale"] = scale
    return values, np.asarray(names, dtype=str)


# --------------------------------------------------------------------------- genotypes
def _snp_table(genotypes: GenotypeTable) -> pd.DataFrame:
    snps = genotypes.snps.reset_index(drop=True)
    out = pd.DataFrame({
        "snp": snps["snp"].astype(str).to_numpy(dtype=object),
        "chrom": snps["chrom"].astype(str).to_numpy(dtype=object),
        "pos": snps["pos"].to_numpy(dtype=np.int64),
        "a1": snps["a1"].astype(object).to_numpy(),
        "a2": snps["a2"].astype(object).to_numpy(),
        "gene": [None if pd.isna(g) else str(g) for g in snps["gene"]],
    }, columns=list(SNP_COLUMNS))
    out["gene"] = out["gene"].astype(object)
    return out


def _prepare_genotypes(genotypes: GenotypeTable, rows: np.ndarray, subjects: pd.Index,
                       max_missing: float, mode: str | None, prep: dict,
                       min_maf: float = 0.0, dosages: bool | None = None):
    source = genotypes.source or "genotypes"
    raw = np.asarray(genotypes.values)[rows]
    if np.iscomplexobj(raw):
        raise DataValidationError("genotype values are complex numbers", source=source)
    try:
        X = np.array(raw, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataValidationError(f"genotype values are not numbers ({exc})",
                                  source=source) from None
    snps = _snp_table(genotypes)

    observed = ~np.isnan(X)
    prep["genotype_values"] = check_genotype_values(
        X, dosages=dosages, source=source, snp_names=snps["snp"], subjects=subjects)

    n = X.shape[0]
    missing_fraction = 1.0 - observed.sum(axis=0) / n
    too_missing = missing_fraction > max_missing
    dropped_missing = snps["snp"][too_missing].tolist()
    X, snps, observed = X[:, ~too_missing], snps[~too_missing], observed[:, ~too_missing]

    n_imputed = int((~observed).sum())
    imputed_snps = int((~observed).any(axis=0).sum())
    if n_imputed:
        means = np.nanmean(np.where(observed, X, np.nan), axis=0)
        X = np.where(observed, X, means[None, :])

    constant = X.std(axis=0) <= 1e-12
    dropped_constant = snps["snp"][constant].tolist()
    X, snps = X[:, ~constant], snps[~constant].reset_index(drop=True)

    freq = X.mean(axis=0) / 2.0
    rare = np.minimum(freq, 1.0 - freq) < min_maf
    dropped_rare = snps["snp"][rare].tolist()
    X, snps = X[:, ~rare], snps[~rare].reset_index(drop=True)
    prep["min_maf"] = min_maf
    prep["snps_dropped_maf"] = dropped_rare
    if dropped_rare:
        warnings.warn(f"{len(dropped_rare)} SNPs with minor-allele frequency < {min_maf} "
                      "dropped", DataWarning, skip_file_prefixes=LIBRARY_FILES)

    prep["snps_input"] = genotypes.n_snps
    prep["max_snp_missing"] = max_missing
    prep["snps_dropped_missing"] = dropped_missing
    prep["snps_dropped_constant"] = dropped_constant
    prep["genotypes_imputed"] = n_imputed
    prep["genotype_imputation"] = "mean of observed calls per SNP"
    _warn_genotype_changes(dropped_missing, dropped_constant, n_imputed, imputed_snps,
                           max_missing, genotypes.n_snps)
    if X.shape[1] == 0:
        raise DataValidationError(
            f"no SNP is left after dropping {len(dropped_missing)} with too many missing "
            f"calls and {len(dropped_constant)} constant ones", source=source)

    center = X.mean(axis=0) if mode in ("center", "scale") else np.zeros(X.shape[1])
    scale = X.std(axis=0) if mode == "scale" else np.ones(X.shape[1])
    X = (X - center) / scale
    prep["genotype_standardization"] = mode
    prep["genotype_center"] = center
    prep["genotype_scale"] = scale
    return X, snps


def _warn_genotype_changes(dropped_missing, dropped_constant, n_imputed, imputed_snps,
                           max_missing, n_input):
    parts = []
    if dropped_missing:
        parts.append(f"dropped {len(dropped_missing)} SNPs with more than "
                     f"{max_missing:.0%} missing calls (e.g. {dropped_missing[0]!r})")
    if n_imputed:
        parts.append(f"mean-imputed {n_imputed} missing calls in {imputed_snps} SNPs")
    if dropped_constant:
        parts.append(f"dropped {len(dropped_constant)} constant (monomorphic) SNPs "
                     f"(e.g. {dropped_constant[0]!r})")
    if parts:
        warnings.warn(f"genotypes ({n_input} SNPs): " + "; ".join(parts)
                      + "; see Dataset.preprocessing", DataWarning,
                      skip_file_prefixes=LIBRARY_FILES)


# --------------------------------------------------------------------------- helpers
def take_snps(dataset: Dataset, index, record: dict[str, Any] | None = None) -> Dataset:
    """A new dataset with the SNP columns ``index`` (in that order).

    Unlike :meth:`Dataset.subset_snps` this also re-orders the per-SNP arrays in
    ``preprocessing`` (``genotype_center``, ``genotype_scale``) and merges
    ``record`` into a copy of ``preprocessing``.
    """
    subset = dataset.subset_snps(index)
    if not record:
        return subset
    return dataclasses.replace(subset, preprocessing={**subset.preprocessing, **record})
