"""Static structure of a multi-view data set, shared by the factor model and its Gibbs kernel.

A leaf module: :mod:`bayesimg.models.factor.model` and :mod:`bayesimg.models.factor.gibbs`
both import it, and it imports neither.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from bayesimg.data.views import MultiViewData

KIND_CODES = {"gaussian": 0, "bernoulli": 1, "binomial2": 2}
TRIALS = {"gaussian": 0, "bernoulli": 1, "binomial2": 2}
OUTCOME_VIEW = "outcome"


# ---------------------------------------------------------------------------- layout
@dataclasses.dataclass(frozen=True)
class FactorLayout:
    """Static structure of a data set: views, sizes, likelihoods, column grouping."""

    views: tuple[str, ...]
    sizes: tuple[int, ...]
    likelihoods: tuple[str, ...]
    feature_names: tuple[np.ndarray, ...]
    outcome_kind: str | None
    outcome_name: str | None
    n_covariates: int
    covariate_names: np.ndarray | None
    weighted_views: tuple[bool, ...]   # Gibbs: per-entry weights instead of augmentation

    @property
    def n_views(self) -> int:
        return len(self.views)

    @property
    def n_columns(self) -> int:
        return sum(self.sizes) + (1 if self.outcome_kind else 0)

    @property
    def offsets(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(self.sizes)]).astype(int)

    def column_view(self) -> np.ndarray:
        """View index of every concatenated column (the outcome is view M)."""
        out = np.repeat(np.arange(self.n_views), self.sizes)
        if self.outcome_kind:
            out = np.append(out, self.n_views)
        return out

    def column_likelihood(self) -> list[str]:
        out = [lik for lik, d in zip(self.likelihoods, self.sizes, strict=True)
               for _ in range(d)]
        if self.outcome_kind:
            out.append(self.outcome_kind)
        return out

    def feature_labels(self) -> np.ndarray:
        labels = [f"{v}:{f}" for v, names in zip(self.views, self.feature_names, strict=True)
                  for f in names]
        if self.outcome_kind:
            labels.append(f"{OUTCOME_VIEW}:{self.outcome_name}")
        return np.asarray(labels, dtype=str)

    def key(self) -> tuple:
        return (self.views, self.sizes, self.likelihoods, self.outcome_kind,
                self.n_covariates, self.weighted_views)


def make_layout(data: MultiViewData, weighted_missing: float) -> FactorLayout:
    weighted = []
    for v in data.views:
        present = v.subject_present
        scattered = 1.0 - v.observed[present].mean() if present.any() else 0.0
        weighted.append(v.likelihood != "gaussian" or scattered > weighted_missing)
    return FactorLayout(
        views=tuple(data.view_names), sizes=tuple(v.n_features for v in data.views),
        likelihoods=tuple(v.likelihood for v in data.views),
        feature_names=tuple(np.asarray(v.feature_names, dtype=str) for v in data.views),
        outcome_kind=data.outcome_kind if data.outcome is not None else None,
        outcome_name=data.outcome_name if data.outcome is not None else None,
        n_covariates=data.n_covariates,
        covariate_names=None if data.covariate_names is None
        else np.asarray(data.covariate_names, dtype=str),
        weighted_views=tuple(weighted))


def split_columns(layout: FactorLayout) -> tuple[np.ndarray, np.ndarray]:
    """Indices of augmented (shared-information) and weighted columns."""
    col_view = layout.column_view()
    weighted_view = np.asarray(list(layout.weighted_views)
                               + [layout.outcome_kind == "bernoulli"], bool)
    weighted = weighted_view[col_view]
    return np.flatnonzero(~weighted), np.flatnonzero(weighted)
