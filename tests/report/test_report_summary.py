"""Summary tables: labels, coordinate columns, raw intervals, sorting, approximations."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from report_synthetic import PHENOS, SNPS, FakeFit, make_svi_tree, make_tree

from bayesimg.errors import ModelSpecError
from bayesimg.report import CI_KIND, CI_PROB, summary, top_associations
from bayesimg.report.intervals import (
    compute_intervals,
    interval_columns,
    interval_label,
    validate_interval,
)


@pytest.fixture(scope="module")
def tree():
    return make_tree(n_draw=300)


def test_convention_is_95_percent_eti():
    assert CI_PROB == 0.95
    assert CI_KIND == "eti"
    assert interval_columns() == ("eti95_lb", "eti95_ub")
    assert interval_columns(0.975, "HDI") == ("hdi97.5_lb", "hdi97.5_ub")
    assert interval_columns(0.57) == ("eti57_lb", "eti57_ub")  # no 56.99999 float noise
    assert interval_label() == "95% ETI"
    with pytest.raises(ValueError):
        validate_interval(1.0, "eti")
    with pytest.raises(ValueError):
        validate_interval(0.9, "hpd")


def test_labels_and_coordinate_columns(tree):
    df = summary(tree)
    n_rows = len(SNPS) * len(PHENOS) + len(PHENOS) + 1 + 2
    assert len(df) == n_rows
    assert df.index.name == "parameter"
    assert "W[rs4988235, Left_Hippocampus_vol]" in df.index
    assert "sigma" in df.index
    assert list(df.columns[:5]) == ["variable", "snp", "phenotype", "gene", "mean"]
    assert list(df.columns[5:]) == ["sd", "eti95_lb", "eti95_ub", "rhat", "ess_bulk",
                                    "ess_tail", "mcse_mean"]
    rows = df[df["snp"] == "rs7412"]
    assert len(rows) == len(PHENOS)
    assert set(rows["variable"]) == {"W"}
    assert df.loc["mu[Right_Amygdala_vol]", "phenotype"] == "Right_Amygdala_vol"
    assert pd.isna(df.loc["sigma", "snp"])
    assert df.attrs["ci_prob"] == 0.95 and df.attrs["ci_kind"] == "eti"


def test_intervals_match_numpy_quantiles_unrounded(tree):
    df = summary(FakeFit(tree), var_names=["W"])
    w = tree["posterior"]["W"].sel(snp="rs429358", phenotype="Left_Thalamus_vol").values.ravel()
    row = df.loc["W[rs429358, Left_Thalamus_vol]"]
    assert row["eti95_lb"] == np.quantile(w, 0.025)
    assert row["eti95_ub"] == np.quantile(w, 0.975)
    assert row["mean"] == pytest.approx(w.mean(), rel=1e-14)
    assert row["sd"] == pytest.approx(w.std(ddof=1), rel=1e-12)
    # raw floats, not 2-significant-digit strings or rounded values
    assert df["mean"].dtype == np.float64
    assert row["mean"] != round(row["mean"], 4)


def test_hdi_matches_arviz():
    from arviz_stats import hdi

    tree = make_tree(n_draw=200, seed=4)
    df = summary(tree, var_names="mu", ci_prob=0.9, ci_kind="hdi")
    ref = hdi(tree, var_names=["mu"], prob=0.9)["mu"]
    got = df[["hdi90_lb", "hdi90_ub"]].to_numpy()
    np.testing.assert_allclose(got, np.asarray(ref.transpose("phenotype", "ci_bound")), rtol=0)


def test_diagnostic_columns_are_plausible_for_well_mixed_draws(tree):
    df = summary(tree)
    assert (df["rhat"] < 1.01).all()
    assert (df["ess_bulk"] > 400).all()
    assert (df["ess_tail"] > 400).all()
    assert np.allclose(df["mcse_mean"], df["sd"] / np.sqrt(df["ess_bulk"]), rtol=0.5)


def test_sorting_and_top(tree):
    df = summary(tree, var_names="W", sort_by="abs_mean", top=3)
    assert len(df) == 3
    means = summary(tree, var_names="W")["mean"].abs().sort_values(ascending=False)
    assert list(df.index) == list(means.index[:3])
    worst_ess = summary(tree, sort_by="ess_bulk", top=1)
    assert worst_ess["ess_bulk"].iloc[0] == summary(tree)["ess_bulk"].min()
    with pytest.raises(ModelSpecError, match="cannot sort"):
        summary(tree, sort_by="nonsense")


def test_unknown_variable_and_bad_input(tree):
    with pytest.raises(ModelSpecError, match="no variable"):
        summary(tree, var_names=["beta"])
    with pytest.raises(TypeError):
        summary(object())


def test_approximate_fit_has_no_rhat_or_ess():
    df = summary(make_svi_tree())
    assert df.attrs["approximate"] is True
    assert df[["rhat", "ess_bulk", "ess_tail", "mcse_mean"]].isna().all().all()
    assert df["mean"].notna().all()


def test_map_single_draw():
    tree = make_tree(n_chain=1, n_draw=1, method="map", sample_stats=False,
                     posterior_predictive=False)
    df = summary(tree, var_names="W")
    assert df["sd"].isna().all()
    assert (df["eti95_lb"] == df["mean"]).all()
    top = top_associations(tree, n=3)
    assert top["prob_sign"].isna().all()
    assert top["excludes_zero"].isna().all()


def test_top_associations_sign_probability(tree):
    top = top_associations(tree, var_name="W", n=4, by="prob_sign")
    assert len(top) == 4
    assert {"snp", "phenotype", "prob_positive", "prob_sign", "excludes_zero",
            "rhat", "ess_bulk"} <= set(top.columns)
    assert top["prob_sign"].is_monotonic_decreasing
    w = tree["posterior"]["W"]
    label = top.index[0]
    el = w.sel(snp=top["snp"].iloc[0], phenotype=top["phenotype"].iloc[0]).values.ravel()
    assert label == f"W[{top['snp'].iloc[0]}, {top['phenotype'].iloc[0]}]"
    assert top["prob_positive"].iloc[0] == pytest.approx((el > 0).mean())
    assert top["prob_sign"].iloc[0] == pytest.approx(max((el > 0).mean(), (el < 0).mean()))
    lb, ub = top["eti95_lb"], top["eti95_ub"]
    assert (top["excludes_zero"] == ((lb > 0) | (ub < 0))).all()
    by_mean = top_associations(tree, n=12)
    assert by_mean["mean"].abs().is_monotonic_decreasing
    with pytest.raises(ModelSpecError):
        top_associations(tree, by="p_value")


def test_large_matrix_is_vectorised():
    """20 000 elements are summarised in well under the per-element ArviZ time."""
    rng = np.random.default_rng(0)
    n_snp, n_ph = 2000, 10
    ds = xr.Dataset(
        {"W": (("chain", "draw", "snp", "phenotype"), rng.normal(size=(2, 40, n_snp, n_ph)))},
        coords={"snp": [f"rs{i}" for i in range(n_snp)],
                "phenotype": [f"ph{j}" for j in range(n_ph)]})
    tree = xr.DataTree.from_dict({"posterior": ds})
    tree.attrs["method"] = "nuts"
    df = summary(tree)
    assert len(df) == n_snp * n_ph
    assert df.index[-1] == "W[rs1999, ph9]"
    assert df["rhat"].notna().all()
    q = np.quantile(ds["W"].values[:, :, 1234, 5].ravel(), [0.025, 0.975])
    np.testing.assert_array_equal(df.loc["W[rs1234, ph5]", ["eti95_lb", "eti95_ub"]], q)


def test_compute_intervals_eti_equals_numpy():
    draws = np.random.default_rng(3).normal(size=(5, 101))
    lb, ub = compute_intervals(draws)
    np.testing.assert_array_equal(lb, np.quantile(draws, 0.025, axis=1))
    np.testing.assert_array_equal(ub, np.quantile(draws, 0.975, axis=1))
