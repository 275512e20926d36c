"""WAIC (hand computation), PSIS-LOO (against arviz_stats) and model comparison."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import xarray as xr
from report_synthetic import FakeFit, make_svi_tree, make_tree

from bayesimg.errors import BayesimgWarning, ModelSpecError
from bayesimg.report import ICResult, compare, loo, waic


def _ll_tree(ll: np.ndarray, subjects=None, n_chain: int = 1) -> xr.DataTree:
    """A tree whose log-likelihood is ``ll`` (draws x subjects) split over chains."""
    s, n = ll.shape
    subjects = subjects or [f"s{i}" for i in range(n)]
    arr = ll.reshape(n_chain, s // n_chain, n)
    tree = xr.DataTree.from_dict({
        "posterior": xr.Dataset({"theta": (("chain", "draw"), arr[:, :, 0])}),
        "log_likelihood": xr.Dataset({"y": (("chain", "draw", "subject"), arr)},
                                     coords={"subject": subjects}),
    })
    tree.attrs["method"] = "nuts"
    return tree


LL = np.array([[-1.0, -2.0, -0.5],
               [-1.2, -1.5, -0.7],
               [-0.8, -2.5, -0.6],
               [-1.1, -1.9, -0.4]])


def test_waic_matches_hand_computation():
    res = waic(_ll_tree(LL))
    s, n = LL.shape
    elpd_i = []
    p_i = []
    for i in range(n):
        col = [float(v) for v in LL[:, i]]
        lppd = math.log(sum(math.exp(v) for v in col) / s)
        mean = sum(col) / s
        var = sum((v - mean) ** 2 for v in col) / (s - 1)
        p_i.append(var)
        elpd_i.append(lppd - var)
    elpd = sum(elpd_i)
    mean_e = elpd / n
    se = math.sqrt(n * sum((e - mean_e) ** 2 for e in elpd_i) / (n - 1))
    assert isinstance(res, ICResult) and res.kind == "waic"
    assert res.elpd == pytest.approx(elpd, rel=1e-12)
    assert res.p == pytest.approx(sum(p_i), rel=1e-12)
    assert res.se == pytest.approx(se, rel=1e-12)
    np.testing.assert_allclose(res.pointwise, elpd_i, rtol=1e-12)
    assert res.n_obs == 3 and res.n_draws == 4
    assert res.ic == pytest.approx(-2 * elpd)
    assert list(res.obs_labels) == ["s0", "s1", "s2"]
    assert res.warnings == []


def test_waic_warns_on_large_p_waic():
    ll = LL.copy()
    ll[:, 1] = [-1.0, -5.0, -0.2, -3.0]  # variance > 0.4
    with pytest.warns(BayesimgWarning, match="p_waic > 0.4"):
        res = waic(_ll_tree(ll))
    assert "s1" in res.warnings[0] and "loo()" in res.warnings[0]


def test_loo_matches_arviz_stats():
    from arviz_stats import loo as az_loo

    tree = make_tree(n_draw=250, seed=5)
    res = loo(FakeFit(tree))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = az_loo(tree, pointwise=True)
    assert res.kind == "loo"
    assert res.elpd == pytest.approx(ref.elpd, rel=1e-10)
    assert res.se == pytest.approx(ref.se, rel=1e-10)
    assert res.p == pytest.approx(ref.p, rel=1e-10)
    np.testing.assert_allclose(res.pointwise, ref.elpd_i.values, rtol=1e-10)
    np.testing.assert_allclose(res.pareto_k, ref.pareto_k.values, rtol=1e-10)
    assert res.good_k == pytest.approx(ref.good_k)
    assert res.n_obs == 40 and res.n_draws == 1000
    assert res.obs_labels[0] == "sub-000"
    assert (res.pareto_k < 0.7).all() and res.warnings == []
    # WAIC and LOO agree closely for a well-behaved model
    assert waic(tree).elpd == pytest.approx(res.elpd, abs=0.5)


def test_loo_reports_high_pareto_k_with_subject_labels():
    rng = np.random.default_rng(0)
    ll = rng.normal(-1.0, 0.1, size=(400, 12))
    ll[:, 4] = -np.exp(rng.normal(size=400))  # heavy-tailed importance ratios
    ll[:, 7] = -np.exp(3.0 * rng.normal(size=400))  # so heavy that k cannot be fitted
    tree = _ll_tree(ll, subjects=[f"sub-{i}" for i in range(12)], n_chain=2)
    with pytest.warns(BayesimgWarning, match="Pareto k > 0.7"):
        res = loo(tree)
    assert res.pareto_k[4] > 1.0
    assert np.isnan(res.pareto_k[7])
    assert "2 of 12 observations" in res.warnings[0]
    assert "(2 with k > 1.0, 1 not estimable)" in res.warnings[0]
    assert "sub-7, sub-4" in res.warnings[0]
    assert "Pareto k" in str(res)


def test_map_single_draw_cannot_be_evaluated():
    tree = make_tree(n_chain=1, n_draw=1, method="map", sample_stats=False,
                     posterior_predictive=False)
    with pytest.raises(ModelSpecError, match="MAP|1 draw"):
        loo(tree)
    with pytest.raises(ModelSpecError, match="1 draw"):
        waic(tree)


def test_svi_results_are_marked_approximate():
    with pytest.warns(BayesimgWarning, match="approximate"):
        res = loo(make_svi_tree())
    assert res.approximate
    assert any("approximate posterior (SVI)" in w for w in res.warnings)


def test_missing_log_likelihood_is_a_clear_error():
    tree = make_tree()
    del tree["log_likelihood"]
    with pytest.raises(ModelSpecError, match="log_likelihood"):
        loo(tree)


@pytest.fixture(scope="module")
def good_and_bad():
    return make_tree(seed=1, n_draw=200), make_tree(seed=2, n_draw=200, mu_offset=1.5)


@pytest.mark.parametrize("ic", ["loo", "waic"])
def test_compare_ranks_the_better_model_first(good_and_bad, ic):
    good, bad = good_and_bad
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BayesimgWarning)
        df = compare({"shifted": bad, "correct": FakeFit(good)}, ic=ic)
        res = {"correct": (loo if ic == "loo" else waic)(good),
               "shifted": (loo if ic == "loo" else waic)(bad)}
    assert list(df.index) == ["correct", "shifted"]
    assert list(df.columns) == ["rank", "elpd", "p", "elpd_diff", "se", "dse", "weight",
                                "warning", "estimate"]
    assert set(df["estimate"]) == {"psis" if ic == "loo" else "waic"}
    assert list(df["rank"]) == [0, 1]
    assert df.attrs["ic"] == ic
    diff = res["correct"].pointwise - res["shifted"].pointwise
    assert df.loc["shifted", "elpd_diff"] == pytest.approx(diff.sum())
    assert df.loc["shifted", "dse"] == pytest.approx(math.sqrt(diff.size * diff.var(ddof=1)))
    assert df.loc["correct", "elpd_diff"] == 0 and df.loc["correct", "dse"] == 0
    assert df.loc["shifted", "elpd_diff"] > 5 * df.loc["shifted", "dse"]
    assert df["weight"].sum() == pytest.approx(1.0)
    assert df.loc["correct", "weight"] > 0.99
    expected = "stacking" if ic == "loo" else "pseudo-BMA"
    assert df.attrs["weight_method"] == expected


def test_compare_accepts_precomputed_results(good_and_bad):
    good, bad = good_and_bad
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BayesimgWarning)
        df = compare({"a": waic(good), "b": waic(bad)}, ic="waic")
        with pytest.raises(ModelSpecError, match="precomputed WAIC"):
            compare({"a": waic(good), "b": bad}, ic="loo")
    assert df.index[0] == "a"


def test_compare_requires_the_same_subjects():
    a = make_tree(n_draw=100)
    b = make_tree(n_draw=100, subjects=[f"other-{i}" for i in range(40)])
    with pytest.raises(ModelSpecError, match="'first' and 'second'.*different subjects"):
        compare({"first": a, "second": b}, ic="waic")
    with pytest.raises(ModelSpecError, match="at least two"):
        compare({"only": a})


def test_compare_aligns_reordered_subjects():
    ll = np.random.default_rng(1).normal(-1, 0.2, size=(100, 5))
    names = [f"s{i}" for i in range(5)]
    a = _ll_tree(ll, names)
    b = _ll_tree(ll[:, ::-1], names[::-1])
    df = compare({"a": a, "b": b}, ic="waic")
    assert df["elpd_diff"].abs().max() == pytest.approx(0.0, abs=1e-12)
    assert df["dse"].max() == pytest.approx(0.0, abs=1e-12)


def test_stacking_falls_back_to_pseudo_bma_on_underflow():
    rng = np.random.default_rng(2)
    ll_a = rng.normal(-900.0, 0.05, size=(200, 6))
    ll_b = rng.normal(-905.0, 0.05, size=(200, 6))
    with pytest.warns(BayesimgWarning, match="pseudo-BMA"):
        df = compare({"a": _ll_tree(ll_a, n_chain=2), "b": _ll_tree(ll_b, n_chain=2)})
    assert df.attrs["weight_method"] == "pseudo-BMA"
    assert df.index[0] == "a" and df["weight"].sum() == pytest.approx(1.0)


def test_comparison_tables_concatenate_and_feed_arviz():
    import arviz_stats
    import pandas as pd
    fits = {"good": FakeFit(make_tree(seed=1)), "worse": FakeFit(make_tree(seed=2,
                                                                         mu_offset=0.5))}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = compare(fits, ic="loo")
    both = pd.concat([table, table.iloc[:1]])          # attrs hold ELPD data: no error
    assert len(both) == 3
    assert list(arviz_stats.compare(table.attrs["elpd_data"]).index) == list(table.index)
