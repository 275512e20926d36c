"""Several feature views of the same subjects: omics layers, imaging measures, dosages.

:class:`MultiViewData` is the data object of the view-based model families
(multi-view factor analysis, Bayesian-network mixtures).  It holds, aligned on
one subject axis:

* ``views``: one :class:`View` per data type — a float64 ``(n, p_m)`` array in
  which **NaN marks a missing entry** (a subject absent from a view has a whole
  NaN row: a missing view), its feature names and its likelihood
  (``"gaussian"``, ``"bernoulli"`` for 0/1 data, ``"binomial2"`` for 0/1/2
  dosages);
* optional covariates ``Z`` (n × r, complete), an optional outcome ``y`` (n,)
  with its kind (``"gaussian"`` or ``"bernoulli"``, NaN where unknown) and
  ``labels``: a subject-indexed table of annotations (subtype, site, diagnosis)
  kept for reports and plots but never fitted.

Build it with :func:`make_views` from subject-indexed tables (e.g. from
:func:`bayesimg.data.read_table`).  Errors name the view, column and subject.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from bayesimg.data.base import SubjectData, hash_arrays
from bayesimg.errors import LIBRARY_FILES, DataValidationError, DataWarning

LIKELIHOODS = ("gaussian", "bernoulli", "binomial2")
OUTCOME_KINDS = ("gaussian", "bernoulli")
_ALLOWED_VALUES = {"bernoulli": (0.0, 1.0), "binomial2": (0.0, 1.0, 2.0)}


@dataclasses.dataclass(frozen=True, eq=False)
class View:
    """One data type measured on the subjects (NaN = missing)."""

    name: str
    values: np.ndarray           # (n, p) float64, NaN where missing
    feature_names: np.ndarray    # (p,) str
    likelihood: str = "gaussian"

    @property
    def n_features(self) -> int:
        return self.values.shape[1]

    @property
    def observed(self) -> np.ndarray:
        """Boolean mask of observed entries."""
        return ~np.isnan(self.values)

    @property
    def subject_present(self) -> np.ndarray:
        """Subjects with at least one observed entry in this view."""
        return self.observed.any(axis=1)

    @property
    def dim(self) -> str:
        """Name of the feature dim of this view in fitted outputs."""
        return f"feature_{self.name}"


@dataclasses.dataclass(frozen=True, eq=False)
class MultiViewData(SubjectData):
    """Subjects × several views, plus optional covariates, outcome and labels."""

    subjects: np.ndarray                       # (n,) str
    views: tuple[View, ...]
    covariates: np.ndarray | None = None       # (n, r) float64
    covariate_names: np.ndarray | None = None  # (r,) str
    outcome: np.ndarray | None = None          # (n,) float64, NaN where unknown
    outcome_name: str | None = None
    outcome_kind: str | None = None
    labels: pd.DataFrame | None = None         # subject-indexed annotations
    preprocessing: dict[str, Any] = dataclasses.field(default_factory=dict)
    name: str = "views"

    def __post_init__(self):
        n = len(self.subjects)
        names = [v.name for v in self.views]
        if not names:
            raise DataValidationError("MultiViewData needs at least one view")
        if len(set(names)) != len(names):
            raise DataValidationError(f"view names must be unique, got {names}")
        for v in self.views:
            if v.values.ndim != 2 or v.values.shape[0] != n:
                raise DataValidationError(
                    f"view values have shape {v.values.shape}, expected ({n}, p)",
                    source=v.name)
            if len(v.feature_names) != v.values.shape[1]:
                raise DataValidationError(
                    f"{v.values.shape[1]} columns but {len(v.feature_names)} feature names",
                    source=v.name)
            if v.likelihood not in LIKELIHOODS:
                raise DataValidationError(
                    f"likelihood must be one of {LIKELIHOODS}, got {v.likelihood!r}",
                    source=v.name)
        if self.covariates is not None and self.covariates.shape[0] != n:
            raise DataValidationError(
                f"covariates have {self.covariates.shape[0]} rows for {n} subjects")
        if self.outcome is not None:
            if self.outcome.shape != (n,):
                raise DataValidationError(
                    f"outcome has shape {self.outcome.shape}, expected ({n},)")
            if self.outcome_kind not in OUTCOME_KINDS:
                raise DataValidationError(
                    f"outcome_kind must be one of {OUTCOME_KINDS}, got {self.outcome_kind!r}")

    # ----------------------------------------------------------------- access
    @property
    def view_names(self) -> list[str]:
        return [v.name for v in self.views]

    @property
    def n_views(self) -> int:
        return len(self.views)

    @property
    def n_covariates(self) -> int:
        return 0 if self.covariates is None else self.covariates.shape[1]

    def view(self, name: str) -> View:
        for v in self.views:
            if v.name == name:
                return v
        raise KeyError(f"no view {name!r}; views: {self.view_names}")

    def __getitem__(self, name: str) -> View:
        return self.view(name)

    def fingerprint(self) -> str:
        labels: list = [self.subjects]
        for v in self.views:
            labels += [[v.name, v.likelihood], v.feature_names]
        return hash_arrays([v.values for v in self.views] + [self.covariates, self.outcome],
                           labels)

    def subset_subjects(self, mask_or_index) -> MultiViewData:
        idx = np.arange(self.n_subjects)[mask_or_index]
        return dataclasses.replace(
            self, subjects=self.subjects[idx],
            views=tuple(dataclasses.replace(v, values=v.values[idx]) for v in self.views),
            covariates=None if self.covariates is None else self.covariates[idx],
            outcome=None if self.outcome is None else self.outcome[idx],
            labels=None if self.labels is None else self.labels.iloc[idx])

    def subset_views(self, names: Sequence[str]) -> MultiViewData:
        """A new object with only the named views (in that order)."""
        return dataclasses.replace(self, views=tuple(self.view(n) for n in names))

    def __repr__(self) -> str:
        parts = [f"{self.n_subjects} subjects"]
        for v in self.views:
            miss = 1.0 - v.observed.mean()
            parts.append(f"{v.name}: {v.n_features} {v.likelihood} features"
                         + (f" ({miss:.0%} missing)" if miss > 0 else ""))
        if self.covariates is not None:
            parts.append(f"{self.n_covariates} covariates")
        if self.outcome is not None:
            parts.append(f"outcome {self.outcome_name} ({self.outcome_kind})")
        return f"MultiViewData({self.name!r}: " + "; ".join(parts) + ")"


def _numeric_block(table: pd.DataFrame, view: str) -> np.ndarray:
    for col in table.columns:
        if not pd.api.types.is_numeric_dtype(table[col].dtype) and \
                not pd.api.types.is_bool_dtype(table[col].dtype):
            bad = table[col][pd.to_numeric(table[col], errors="coerce").isna()
                             & table[col].notna()]
            subject = None if bad.empty else str(bad.index[0])
            raise DataValidationError("non-numeric column in a view", source=view,
                                      column=str(col), subject=subject)
        if pd.api.types.is_complex_dtype(table[col].dtype):
            raise DataValidationError("complex numbers in a view", source=view,
                                      column=str(col))
    values = table.to_numpy(dtype=np.float64, na_value=np.nan)
    inf = np.isinf(values)
    if inf.any():
        i, j = np.argwhere(inf)[0]
        raise DataValidationError("infinite value", source=view,
                                  column=str(table.columns[j]), subject=str(table.index[i]))
    return values


def _check_columns(table: pd.DataFrame, what: str) -> None:
    dup = pd.Index(table.columns)[pd.Index(table.columns).duplicated()]
    if len(dup):
        raise DataValidationError("column name appears more than once", source=what,
                                  column=str(dup[0]))


def _standardize_observed(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centre and scale columns over observed (non-NaN) entries, free of overflow."""
    with np.errstate(invalid="ignore"):
        peak = np.nanmax(np.abs(values), axis=0)
    peak = np.where((peak > 0) & np.isfinite(peak), peak, 1.0)
    unit = values / peak
    center, scale = np.nanmean(unit, axis=0), np.nanstd(unit, axis=0)
    return (unit - center) / scale, center * peak, scale * peak


def _check_ids(index: pd.Index, what: str) -> np.ndarray:
    ids = np.asarray([str(i).strip() for i in index], dtype=object)
    seen: set[str] = set()
    for i in ids:
        if not i:
            raise DataValidationError("empty subject ID", source=what)
        if i in seen:
            raise DataValidationError("subject ID appears more than once", source=what,
                                      subject=i)
        seen.add(i)
    return ids


def make_views(tables: Mapping[str, pd.DataFrame], *,
               likelihoods: Mapping[str, str] | None = None,
               covariates: pd.DataFrame | None = None,
               outcome: pd.Series | None = None, outcome_kind: str | None = None,
               labels: pd.DataFrame | None = None, subjects: str = "union",
               standardize: bool = True, drop_constant: bool = True,
               name: str = "views") -> MultiViewData:
    """Align subject-indexed tables into a :class:`MultiViewData`.

    Parameters
    ----------
    tables : mapping view name → DataFrame
        Index: subject IDs; columns: features.  NaN marks missing entries.
    likelihoods : mapping view name → {"gaussian", "bernoulli", "binomial2"}
        Default "gaussian" for every view.
    covariates : DataFrame, optional
        Numeric, complete for every kept subject (used as model inputs).
    outcome : Series, optional
        Subject-indexed outcome (NaN where unknown); ``outcome_kind`` says
        "gaussian" or "bernoulli" (0/1).
    labels : DataFrame, optional
        Annotations kept with the data (never fitted).
    subjects : {"union", "intersection"}
        "union": a subject present in any view is kept, its missing views are
        NaN rows (the models mask them out).  "intersection": only subjects
        present in every view.  Covariates, when given, restrict to subjects
        that have them.
    standardize : bool
        Centre and scale Gaussian features to unit variance over observed
        entries (centres/scales recorded in ``preprocessing``).
    drop_constant : bool
        Drop features with fewer than two distinct observed values (with a
        :class:`~bayesimg.errors.DataWarning` naming them); if False, raise.
    """
    if not tables:
        raise DataValidationError("no views given")
    likelihoods = dict(likelihoods or {})
    unknown = set(likelihoods) - set(tables)
    if unknown:
        raise DataValidationError(f"likelihoods given for unknown view(s) {sorted(unknown)}")
    if subjects not in ("union", "intersection"):
        raise DataValidationError(f"subjects must be 'union' or 'intersection', got {subjects!r}")

    id_sets = {}
    for view_name, table in tables.items():
        if not isinstance(table, pd.DataFrame):
            raise DataValidationError(
                f"expected a pandas DataFrame, got {type(table).__name__}", source=view_name)
        if table.shape[1] == 0 or table.shape[0] == 0:
            raise DataValidationError("the view has no rows or no columns", source=view_name)
        id_sets[view_name] = _check_ids(table.index, view_name)
        dup_cols = pd.Index(table.columns)[pd.Index(table.columns).duplicated()]
        if len(dup_cols):
            raise DataValidationError("feature name appears more than once",
                                      source=view_name, column=str(dup_cols[0]))

    ordered: list[str] = []
    seen: set[str] = set()
    for ids in id_sets.values():
        for i in ids:
            if i not in seen:
                seen.add(i)
                ordered.append(i)
    if subjects == "intersection":
        common = set.intersection(*(set(ids) for ids in id_sets.values()))
        ordered = [i for i in ordered if i in common]
    dropped: dict[str, list[str]] = {}
    cov_values = cov_names = None
    for what, obj, kind in (("covariates", covariates, pd.DataFrame),
                            ("outcome", outcome, pd.Series), ("labels", labels, pd.DataFrame)):
        if obj is not None and not isinstance(obj, kind):
            raise DataValidationError(
                f"expected a subject-indexed pandas {kind.__name__}, got {type(obj).__name__}",
                source=what)
    if covariates is not None:
        _check_columns(covariates, "covariates")
        cov_ids = _check_ids(covariates.index, "covariates")
        cov_table = covariates.copy()
        cov_table.index = cov_ids
        missing_cov = [i for i in ordered if i not in set(cov_ids)]
        if missing_cov:
            dropped["no_covariates"] = missing_cov
            ordered = [i for i in ordered if i in set(cov_ids)]
        cov_table = cov_table.loc[ordered]
        cov_values = _numeric_block(cov_table, "covariates")
        if np.isnan(cov_values).any():
            i, j = np.argwhere(np.isnan(cov_values))[0]
            raise DataValidationError("missing covariate value (covariates must be complete)",
                                      source="covariates", column=str(cov_table.columns[j]),
                                      subject=ordered[i])
        cov_names = np.asarray(cov_table.columns, dtype=str)
    if not ordered:
        raise DataValidationError("no subject is left after aligning the views")

    prep: dict[str, Any] = {"dropped_subjects": dropped, "dropped_features": {},
                            "centers": {}, "scales": {}}
    views = []
    for view_name, table in tables.items():
        lik = likelihoods.get(view_name, "gaussian")
        if lik not in LIKELIHOODS:
            raise DataValidationError(f"likelihood must be one of {LIKELIHOODS}, got {lik!r}",
                                      source=view_name)
        table = table.copy()
        table.index = id_sets[view_name]
        table.columns = [str(c) for c in table.columns]
        aligned = table.reindex(ordered)
        values = _numeric_block(aligned, view_name)
        if lik in _ALLOWED_VALUES:
            allowed = _ALLOWED_VALUES[lik]
            bad = ~np.isnan(values) & ~np.isin(values, allowed)
            if bad.any():
                i, j = np.argwhere(bad)[0]
                raise DataValidationError(
                    f"value {values[i, j]!r} is not allowed for a {lik} view (allowed: "
                    f"{allowed})", source=view_name, column=aligned.columns[j],
                    subject=ordered[i])
        keep = np.array([np.unique(col[~np.isnan(col)]).size >= 2 for col in values.T])
        if not keep.all():
            bad_names = [c for c, k in zip(aligned.columns, keep, strict=True) if not k]
            if not drop_constant:
                raise DataValidationError(
                    f"{len(bad_names)} feature(s) have fewer than two distinct observed "
                    "values", source=view_name, column=bad_names[0])
            warnings.warn(f"view {view_name!r}: dropped {len(bad_names)} constant or "
                          f"all-missing feature(s), e.g. {bad_names[:5]}", DataWarning,
                          skip_file_prefixes=LIBRARY_FILES)
            prep["dropped_features"][view_name] = bad_names
            values = values[:, keep]
            if values.shape[1] == 0:
                raise DataValidationError("every feature of the view is constant or missing",
                                          source=view_name)
        feature_names = np.asarray(aligned.columns, dtype=str)[keep]
        if lik == "gaussian" and standardize:
            values, center, scale = _standardize_observed(values)
            prep["centers"][view_name] = center
            prep["scales"][view_name] = scale
        views.append(View(name=str(view_name), values=values, feature_names=feature_names,
                          likelihood=lik))

    y = outcome_name = None
    if outcome is not None:
        if outcome_kind not in OUTCOME_KINDS:
            raise DataValidationError(
                f"outcome_kind must be one of {OUTCOME_KINDS}, got {outcome_kind!r}")
        out_ids = _check_ids(outcome.index, "outcome")
        series = pd.Series(np.asarray(outcome), index=out_ids).reindex(ordered)
        y = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64)
        unparsed = np.isnan(y) & series.notna().to_numpy()
        if unparsed.any():
            i = int(np.flatnonzero(unparsed)[0])
            raise DataValidationError(
                f"non-numeric outcome value {series.iloc[i]!r} (use NaN for unknown)",
                source="outcome", subject=ordered[i])
        if np.isinf(y).any():
            raise DataValidationError("infinite outcome value", source="outcome",
                                      subject=ordered[int(np.flatnonzero(np.isinf(y))[0])])
        if outcome_kind == "bernoulli":
            bad = ~np.isnan(y) & ~np.isin(y, (0.0, 1.0))
            if bad.any():
                raise DataValidationError("a bernoulli outcome must be 0/1", source="outcome",
                                          subject=ordered[int(np.flatnonzero(bad)[0])])
        if np.isnan(y).all():
            raise DataValidationError("the outcome has no value for any kept subject",
                                      source="outcome")
        outcome_name = str(outcome.name or "outcome")

    label_table = None
    if labels is not None:
        label_table = labels.copy()
        label_table.index = _check_ids(labels.index, "labels")
        label_table = label_table.reindex(ordered)
    return MultiViewData(
        subjects=np.asarray(ordered, dtype=object), views=tuple(views),
        covariates=cov_values, covariate_names=cov_names, outcome=y,
        outcome_name=outcome_name, outcome_kind=outcome_kind if y is not None else None,
        labels=label_table, preprocessing=prep, name=name)
