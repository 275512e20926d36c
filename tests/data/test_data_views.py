"""MultiViewData / make_views: alignment, missing views, validation errors."""

import numpy as np
import pandas as pd
import pytest

from bayesimg.data import MultiViewData, make_views
from bayesimg.errors import DataValidationError, DataWarning


def _tables(rng):
    a = pd.DataFrame(rng.normal(size=(5, 3)), index=list("abcde"), columns=["x", "y", "z"])
    b = pd.DataFrame([[0, 1], [1, 0], [1, 1], [0, 0]], index=list("bcdf"),
                     columns=["p", "q"], dtype=float)
    return a, b


def test_union_alignment_marks_missing_view_rows():
    a, b = _tables(np.random.default_rng(0))
    d = make_views({"rna": a, "mut": b}, likelihoods={"mut": "bernoulli"})
    assert isinstance(d, MultiViewData)
    assert list(d.subjects) == list("abcdef")
    mut = d["mut"]
    assert np.isnan(mut.values[0]).all() and np.isnan(mut.values[4]).all()
    np.testing.assert_array_equal(mut.values[1], [0, 1])
    assert list(mut.subject_present) == [False, True, True, True, False, True]
    rna = d["rna"]
    np.testing.assert_allclose(np.nanmean(rna.values, axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(np.nanstd(rna.values, axis=0), 1)
    assert rna.dim == "feature_rna"


def test_intersection_and_subset_keep_everything_aligned():
    a, b = _tables(np.random.default_rng(1))
    d = make_views({"rna": a, "mut": b}, likelihoods={"mut": "bernoulli"},
                   subjects="intersection", standardize=False)
    assert list(d.subjects) == list("bcd")
    np.testing.assert_array_equal(d["rna"].values, a.loc[list("bcd")].to_numpy())
    s = d.subset_subjects([2, 0])
    assert list(s.subjects) == ["d", "b"]
    np.testing.assert_array_equal(s["mut"].values, b.loc[["d", "b"]].to_numpy())
    assert s.fingerprint() != d.fingerprint()


def test_errors_name_view_column_and_subject():
    a, b = _tables(np.random.default_rng(2))
    bad = b.copy()
    bad.loc["c", "q"] = 0.5
    with pytest.raises(DataValidationError) as err:
        make_views({"rna": a, "mut": bad}, likelihoods={"mut": "bernoulli"})
    assert err.value.source == "mut" and err.value.column == "q" and err.value.subject == "c"
    inf = a.copy()
    inf.loc["d", "y"] = np.inf
    with pytest.raises(DataValidationError) as err:
        make_views({"rna": inf})
    assert err.value.column == "y" and err.value.subject == "d"
    dup = pd.concat([a, a.iloc[:1]])
    with pytest.raises(DataValidationError, match="more than once"):
        make_views({"rna": dup})
    with pytest.raises(DataValidationError, match="likelihood"):
        make_views({"rna": a}, likelihoods={"rna": "poisson"})


def test_constant_feature_is_dropped_with_warning_or_refused():
    a, _ = _tables(np.random.default_rng(3))
    a["const"] = 1.0
    with pytest.warns(DataWarning, match="const"):
        d = make_views({"rna": a})
    assert "const" not in d["rna"].feature_names
    with pytest.raises(DataValidationError) as err:
        make_views({"rna": a}, drop_constant=False)
    assert err.value.column == "const"


def test_covariates_and_outcome():
    a, b = _tables(np.random.default_rng(4))
    cov = pd.DataFrame({"age": [30.0, 40, 50, 60, 70]}, index=list("abcde"))
    y = pd.Series([0, 1, 1, np.nan, 0, 1], index=list("abcdef"), name="case")
    d = make_views({"rna": a, "mut": b}, likelihoods={"mut": "bernoulli"}, covariates=cov,
                   outcome=y, outcome_kind="bernoulli")
    assert list(d.subjects) == list("abcde")
    assert d.preprocessing["dropped_subjects"]["no_covariates"] == ["f"]
    np.testing.assert_array_equal(d.outcome[:3], [0, 1, 1])
    assert np.isnan(d.outcome[3])
    with pytest.raises(DataValidationError, match="0/1"):
        make_views({"rna": a}, outcome=y * 2, outcome_kind="bernoulli")
