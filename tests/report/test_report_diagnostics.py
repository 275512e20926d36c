"""Convergence verdicts, and the vectorised R-hat/ESS/MCSE against arviz_stats."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import xarray as xr
from report_synthetic import FakeFit, make_svi_tree, make_tree

from bayesimg import mcmc_stats as ms
from bayesimg.errors import ConvergenceWarning
from bayesimg.report import Diagnostics, diagnose, warn_if_problems
from bayesimg.report.diagnostics import BFMI_MIN, ESS_MIN, RHAT_MAX


def _ar1(rng, shape, phi):
    e = rng.normal(size=shape)
    x = np.empty(shape)
    x[..., 0] = e[..., 0]
    for t in range(1, shape[-1]):
        x[..., t] = phi * x[..., t - 1] + e[..., t]
    return x


def _awkward_arrays():
    """AR(1) draws with shifted chains, a constant, NaN, ties, odd and tiny draw counts."""
    rng = np.random.default_rng(11)
    for n_chain, n_draw in [(4, 60), (2, 7), (1, 30), (4, 4), (3, 101)]:
        for phi in (0.0, 0.6, 0.97, -0.5):
            x = _ar1(rng, (8, n_chain, n_draw), phi)
            x[0] += 2.0 * np.arange(n_chain)[:, None]
            x[1] = 3.0
            x[2, 0, 0] = np.nan
            x[3] = np.round(x[3])
            yield x


def test_vectorised_statistics_equal_arviz_stats():
    from arviz_stats.base.array import array_stats

    for x in _awkward_arrays():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            ours = ms.convergence_table(x, stats=(*ms.ALL_STATS, "ess_mean"))
            ref = {
                "ess_mean": array_stats.ess(x, method="mean"),
                "rhat": array_stats.rhat(x),
                "ess_bulk": array_stats.ess(x, method="bulk"),
                "ess_tail": array_stats.ess(x, method="tail", prob=ms.TAIL_ESS_PROBS),
                "mcse_mean": array_stats.mcse(x, method="mean"),
            }
        for key, expected in ref.items():
            np.testing.assert_allclose(ours[key], np.asarray(expected, float), rtol=1e-10,
                                       equal_nan=True, err_msg=f"{key} for shape {x.shape}")


def test_blocking_gives_the_same_answer(monkeypatch):
    x = _ar1(np.random.default_rng(2), (50, 3, 40), 0.5)
    whole = ms.convergence_table(x)
    monkeypatch.setattr(ms, "_BLOCK_VALUES", 7 * 3 * 40)  # 8 blocks of 7 elements
    blocked = ms.convergence_table(x)
    for key in whole:
        np.testing.assert_array_equal(whole[key], blocked[key])


def test_well_mixed_chains_pass():
    diag = diagnose(FakeFit(make_tree()))
    assert isinstance(diag, Diagnostics)
    assert diag.ok, str(diag)
    assert diag.problems == []
    assert 0.99 < diag.max_rhat < RHAT_MAX
    assert diag.min_ess_bulk > ESS_MIN and diag.min_ess_tail > ESS_MIN
    assert diag.n_divergent == 0
    assert diag.n_max_treedepth == 0 and diag.max_tree_depth == 10
    assert diag.bfmi.shape == (4,) and (diag.bfmi > BFMI_MIN).all()
    assert diag.n_params == 12 + 3 + 1 + 2
    assert "Verdict: OK" in str(diag)
    assert not warn_if_problems(diag)


def test_shifted_chains_fail_and_name_the_parameter():
    tree = make_tree(shift_chains=0.5)
    diag = diagnose(tree)
    assert not diag.ok
    assert diag.max_rhat > RHAT_MAX
    assert diag.worst_rhat[0][0].startswith("mu[")
    assert all(name.startswith("mu[") for name, _ in diag.worst_rhat[:3])
    assert "mu[" in diag.problems[0] and "R-hat" in diag.problems[0]
    assert "mu[Left_Hippocampus_vol]" in diag.worst_parameters
    text = str(diag)
    assert "Verdict: PROBLEMS" in text and "mu[" in text
    # restricting to well-mixed variables passes
    assert diagnose(tree, var_names=["W", "sigma"]).ok


def test_model_declared_exclusions_are_not_flagged_but_reported():
    """Elements a model lists under ``alignment["convergence_exclude"]`` (e.g. loadings
    of factors switched off by ARD) leave R-hat/ESS, with a note saying so."""
    import json

    from report_synthetic import PHENOS

    from bayesimg.report.diagnostics import sampling_problems

    def excluding(phenos):
        spec = {"reason": "switched off by the prior",
                "elements": [{"var": "mu", "sel": {"phenotype": p}} for p in phenos]}
        return make_tree(shift_chains=0.5,
                         attrs={"alignment": json.dumps({"convergence_exclude": spec})})

    assert sampling_problems(make_tree(shift_chains=0.5))     # mu's chains disagree
    every = excluding(PHENOS)
    assert sampling_problems(every) == []
    diag = diagnose(every)
    assert diag.ok, str(diag)
    assert any("3 parameter(s) not checked" in m and "switched off by the prior" in m
               for m in diag.messages)
    # excluding one of three still flags the others, and the warning says what was left out
    one = excluding(PHENOS[:1])
    problems = sampling_problems(one)
    assert len(problems) == 1 and "1 parameter(s) not checked" in problems[0]
    assert f"mu[{PHENOS[0]}]" not in problems[0] and f"mu[{PHENOS[1]}]" in problems[0]
    assert not diagnose(one).ok


def test_rhat_matches_arviz_on_a_tree():
    from arviz_stats import rhat

    tree = make_tree(shift_chains=0.2, n_draw=100)
    diag = diagnose(tree, var_names="mu")
    ref = float(rhat(tree, var_names=["mu"])["mu"].max())
    assert diag.max_rhat == pytest.approx(ref, rel=1e-12)


def test_divergences_are_counted():
    diag = diagnose(make_tree(n_divergent=7))
    assert diag.n_divergent == 7
    assert not diag.ok
    assert any("7 divergent" in p for p in diag.problems)
    with pytest.warns(ConvergenceWarning, match="divergent"):
        assert warn_if_problems(diag)


def test_low_bfmi_and_tree_depth():
    tree = make_tree()
    ss = tree["sample_stats"].to_dataset()
    rng = np.random.default_rng(0)
    energy = np.cumsum(rng.normal(size=ss["energy"].shape), axis=1)  # random walk
    depth = np.full(ss["energy"].shape, 4)
    depth[0, :25] = 8
    tree["sample_stats"] = xr.DataTree(ss.assign(energy=(("chain", "draw"), energy),
                                                 tree_depth=(("chain", "draw"), depth)))
    tree.attrs["settings"] = '{"max_tree_depth": 8, "target_accept": 0.8}'
    diag = diagnose(tree)
    assert (diag.bfmi < BFMI_MIN).all()
    assert any("E-BFMI" in p for p in diag.problems)
    assert diag.max_tree_depth == 8 and diag.n_max_treedepth == 25
    assert any("maximum tree depth" in m for m in diag.messages)
    assert not any("tree depth" in p for p in diag.problems)  # efficiency only


def test_gibbs_without_sampler_stats():
    diag = diagnose(make_tree(method="gibbs", sample_stats=False))
    assert diag.ok
    assert diag.n_divergent is None and diag.bfmi is None and diag.n_max_treedepth is None


def test_single_chain_notes_rhat_unavailable():
    diag = diagnose(make_tree(n_chain=1, n_draw=800))
    assert np.isnan(diag.max_rhat)
    assert any("at least 2 chains" in m for m in diag.messages)


def test_svi_reports_elbo_not_rhat():
    good = diagnose(make_svi_tree(converged=True))
    assert good.approximate and good.ok
    assert np.isnan(good.max_rhat) and np.isnan(good.min_ess_bulk)
    assert good.svi_converged is True
    assert any("do not apply" in m for m in good.messages)
    assert "n/a" in str(good)
    bad = diagnose(make_svi_tree(converged=False))
    assert not bad.ok
    assert any("ELBO did not converge" in p for p in bad.problems)
    with pytest.warns(ConvergenceWarning, match="ELBO"):
        warn_if_problems(bad)


def test_map_point_estimate():
    tree = make_tree(n_chain=1, n_draw=1, method="map", sample_stats=False,
                     posterior_predictive=False)
    diag = diagnose(tree)
    assert diag.approximate and diag.ok
    assert any("single point estimate" in m for m in diag.messages)
