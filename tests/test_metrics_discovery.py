"""Discovery scoring (bayesimg.metrics), the OLS scan baseline and the discovery scenarios."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bayesimg.baselines import bh_adjust, ols_scan, scan_discoveries
from bayesimg.metrics import (
    interval_coverage,
    label_discoveries,
    pip_calibration,
    power_at_fdr,
    power_fdr_curve,
    rmse,
    score_discoveries,
)

SNPS = ["s1", "s2", "s3", "s4", "s5"]


@pytest.fixture
def ld():
    """s1–s2 in r² 0.6 (proxies), s1–s3 in r² 0.4 (not), s4–s5 in r² 0.5 (exactly the rule)."""
    r2 = np.eye(5)
    for a, b, v in ((0, 1, 0.6), (0, 2, 0.4), (3, 4, 0.5), (1, 2, 0.2)):
        r2[a, b] = r2[b, a] = v
    return pd.DataFrame(r2, index=SNPS, columns=SNPS)


@pytest.fixture
def truth():
    return pd.DataFrame({"snp": ["s1", "s4", "s4"], "phenotype": ["A", "A", "B"],
                         "effect": [0.3, -0.2, 0.1]})


def test_a_proxy_at_r2_half_or_more_is_true_and_below_is_false(ld, truth):
    found = pd.DataFrame({"snp": ["s2", "s3", "s5", "s1"], "phenotype": ["A", "A", "B", "B"]})
    lab = label_discoveries(found, truth, ld)
    assert lab["true"].tolist() == [True, False, True, False]   # s1 causal for A only
    assert lab["detects"].tolist() == [(("s1", "A"),), (), (("s4", "B"),), ()]
    score = score_discoveries(found, truth, ld)
    assert score == {"n_discoveries": 4, "n_true": 2, "n_false": 2, "fdr": 0.5,
                     "n_causal": 3, "n_detected": 2, "power": pytest.approx(2 / 3)}
    # a stricter rule turns the r² = 0.5 proxy into a false discovery
    assert score_discoveries(found, truth, ld, threshold=0.55)["n_true"] == 1


def test_a_credible_set_is_one_discovery_true_if_any_member_is_causal(ld, truth):
    found = pd.DataFrame({"snp": ["s3", "s1", "s3", "s5"], "phenotype": ["A", "A", "B", "A"],
                          "credible_set": ["L1", "L1", "L1", None]})
    lab = label_discoveries(found, truth, ld)
    assert len(lab) == 3                       # (L1, A), (L1, B), (s5, A)
    assert lab["true"].tolist() == [True, False, True]
    assert lab["snps"].iloc[0] == ("s3", "s1")
    # the set's other members, listed apart, make (L1, B) true through s5–s4 at r² 0.5
    lab = label_discoveries(found, truth, ld, set_members={"L1": ["s3", "s1", "s5"]})
    assert lab["true"].tolist() == [True, True, True]
    assert score_discoveries(found, truth, ld)["fdr"] == pytest.approx(1 / 3)


def test_no_discoveries_and_zero_effects(ld, truth):
    empty = pd.DataFrame({"snp": [], "phenotype": []})
    assert score_discoveries(empty, truth, ld) == {
        "n_discoveries": 0, "n_true": 0, "n_false": 0, "fdr": 0.0, "n_causal": 3,
        "n_detected": 0, "power": 0.0}
    zero = truth.assign(effect=[0.3, 0.0, 0.0])       # zero effects are not causal
    found = pd.DataFrame({"snp": ["s4"], "phenotype": ["A"]})
    assert score_discoveries(found, zero, ld)["n_true"] == 0


def test_a_discovery_that_detects_two_causal_pairs_counts_both():
    r2 = pd.DataFrame(np.full((2, 2), 0.9), index=["a", "b"], columns=["a", "b"])
    truth = pd.DataFrame({"snp": ["a", "b"], "phenotype": ["R", "R"]})
    out = score_discoveries(pd.DataFrame({"snp": ["a"], "phenotype": ["R"]}), truth, r2)
    assert (out["n_detected"], out["power"], out["fdr"]) == (2, 1.0, 0.0)


def test_power_fdr_curve_pools_replicates_and_steps_at_ties(ld, truth):
    cand = pd.DataFrame({"snp": ["s1", "s3", "s2", "s4", "s5"],
                         "phenotype": ["A", "A", "A", "B", "A"],
                         "p": [1e-6, 1e-4, 1e-4, 0.01, 0.5]})
    lab = label_discoveries(cand, truth, ld)
    curve = power_fdr_curve([lab, lab], [3, 3], "p")
    assert curve["threshold"].tolist() == [1e-6, 1e-4, 0.01, 0.5]
    assert curve["n_discoveries"].tolist() == [2, 6, 8, 10]
    assert curve["n_false"].tolist() == [0, 2, 2, 2]     # s3 for A is false, twice
    # s2 re-detects (s1, A): no new power; s4→B and s5→A each add one pair per replicate
    assert curve["n_detected"].tolist() == [2, 2, 4, 6]
    assert curve["power"].iloc[-1] == pytest.approx(1.0)
    # FDR is not monotone in the threshold: 0, 1/3, 1/4, 1/5
    best = power_at_fdr(curve, alpha=0.2)
    assert best == {"power": pytest.approx(1.0), "fdr": 0.2, "threshold": 0.5,
                    "n_discoveries": 10}
    assert power_at_fdr(curve, alpha=0.19)["power"] == pytest.approx(2 / 6)
    assert power_at_fdr(curve.iloc[1:3], alpha=0.05) == {
        "power": 0.0, "fdr": 0.0, "threshold": pytest.approx(np.nan, nan_ok=True),
        "n_discoveries": 0}
    # PIPs: larger is stronger
    pip = lab.assign(pip=1 - lab["p"])
    assert power_fdr_curve(pip, 3, "pip", larger_is_stronger=True)["threshold"].iloc[0] \
        == pytest.approx(1 - 1e-6)
    with pytest.raises(ValueError):
        power_fdr_curve([lab, lab], [3], "p")


def test_pip_calibration_bins_and_detects_miscalibration():
    rng = np.random.default_rng(0)
    pips = rng.uniform(size=20_000)
    calibrated = pip_calibration(pips, rng.uniform(size=pips.size) < pips, bins=5)
    assert calibrated["n"].sum() == pips.size
    assert np.abs(calibrated["difference"]).max() < 0.03
    overconfident = pip_calibration(pips, rng.uniform(size=pips.size) < pips / 2, bins=5)
    assert overconfident["difference"].iloc[-1] < -0.3
    edges = pip_calibration([0.0, 0.5, 1.0, 1.0], [False, True, True, False], [0, 0.5, 1])
    assert edges["n"].tolist() == [1, 3]          # 1.0 falls in the last, closed bin
    assert edges["frac_causal"].tolist() == [0.0, pytest.approx(2 / 3)]
    with pytest.raises(ValueError):
        pip_calibration([1.2], [True])


def test_coverage_and_rmse():
    assert interval_coverage([0, 0, 1], [1, 1, 2], [0.5, 1.5, 1.0]) == pytest.approx(2 / 3)
    assert rmse([1.0, 2.0], [1.0, 0.0]) == pytest.approx(np.sqrt(2))
    with pytest.raises(ValueError):
        rmse([1.0], [1.0, 2.0])


def test_bh_adjust_matches_the_step_up_rule():
    p = np.array([0.01, 0.04, 0.03, 0.005, 0.2])
    # sorted 0.005, 0.01, 0.03, 0.04, 0.2 → ×5/rank 0.025, 0.025, 0.05, 0.05, 0.2
    assert bh_adjust(p) == pytest.approx([0.025, 0.05, 0.05, 0.025, 0.2])


def test_ols_scan_matches_one_regression_with_covariates():
    from bayesimg.data import Dataset
    rng = np.random.default_rng(1)
    n, d, c = 120, 4, 2
    X = rng.integers(0, 3, size=(n, d)).astype(float)
    X -= X.mean(axis=0)
    Z = rng.standard_normal((n, 2))
    Y = 0.8 * X[:, [1]] + Z @ np.array([[1.0, 0.5], [0.0, -1.0]]) + rng.standard_normal((n, c))
    snps = pd.DataFrame({"snp": [f"r{j}" for j in range(d)], "chrom": "1",
                         "pos": np.arange(d), "a1": "A", "a2": "G", "gene": "G1"})
    data = Dataset(subjects=np.array([f"i{i}" for i in range(n)]), genotypes=X, snps=snps,
                   phenotypes=Y, phenotype_names=np.array(["A", "B"]), covariates=Z,
                   covariate_names=np.array(["z1", "z2"]),
                   preprocessing={"phenotype_scale": np.array([1.0, 2.0])})
    scan = ols_scan(data)
    assert len(scan) == d * c and list(scan["snp"][:2]) == ["r0", "r0"]
    design = np.column_stack([np.ones(n), Z, X[:, 1]])
    coef, res, *_ = np.linalg.lstsq(design, Y[:, 1], rcond=None)
    se = np.sqrt(res[0] / (n - 4) * np.linalg.inv(design.T @ design)[3, 3])
    row = scan[(scan["snp"] == "r1") & (scan["phenotype"] == "B")].iloc[0]
    assert row["effect"] == pytest.approx(2.0 * coef[3])         # original units: × scale
    assert row["se"] == pytest.approx(2.0 * se)
    assert row["t"] == pytest.approx(coef[3] / se)
    assert row["upper"] - row["effect"] == pytest.approx(row["effect"] - row["lower"])
    bonf = scan_discoveries(scan, "bonferroni")
    bh = scan_discoveries(scan, "bh")
    assert set(bonf["snp"]) == {"r1"} and len(bh) >= len(bonf)
    assert (bonf["p"] * len(scan) <= 0.05).all()


def test_discovery_scenarios_are_deterministic_and_realistic():
    from bayesimg.data import simulate_discovery
    from bayesimg.data.simulate_discovery import SCENARIOS, discovery_panel
    data, truth = simulate_discovery("shared", seed=3)
    again, truth2 = simulate_discovery("shared", seed=3)
    other, _ = simulate_discovery("shared", seed=4)
    assert np.array_equal(data.phenotypes, again.phenotypes)
    assert truth.effects.equals(truth2.effects)
    assert not np.array_equal(data.phenotypes, other.phenotypes)
    assert np.allclose(data.phenotypes.mean(axis=0), 0.0, atol=1e-12)
    assert np.all(np.abs(data.phenotypes.var(axis=0) - 1.0) < 0.2)
    assert truth.h2.max() <= 0.10 + 1e-9 and truth.h2[truth.h2 > 0].min() >= 0.01
    # shared: each causal SNP acts on ≥ 6 ROIs with one sign
    per_snp = truth.effects.groupby("snp")["effect"]
    assert (per_snp.size() >= 6).all()
    assert (per_snp.apply(lambda e: len(set(np.sign(e)))) == 1).all()
    # the planted W generated Y: regressing Y - XW on the covariates leaves noise of var 1 - h2
    X = data.genotypes
    resid = data.phenotypes - X @ truth.W.to_numpy()
    assert np.allclose(resid.var(axis=0), 1 - truth.h2.to_numpy(), atol=0.2)
    # causal SNPs are never proxies of each other
    r2 = truth.ld_r2.loc[truth.causal_snps, truth.causal_snps].to_numpy()
    assert (r2[~np.eye(len(r2), dtype=bool)] < 0.5).all()

    ld, ld_truth = simulate_discovery("high_ld", seed=0)
    assert ld.n_snps == discovery_panel("high_ld").n_snps
    for snp in ld_truth.causal_snps:
        assert (ld_truth.ld_r2.loc[snp].drop(snp) >= 0.8).sum() >= 3
    ar, ar_truth = simulate_discovery("ar_noise", seed=0)
    cov = ar_truth.noise_cov.to_numpy()
    corr = cov / np.sqrt(np.outer(np.diag(cov), np.diag(cov)))
    assert corr[0, 1] == pytest.approx(0.6) and corr[0, 2] == pytest.approx(0.36)
    assert set(SCENARIOS) == {"sparse_strong", "many_weak", "shared", "high_ld", "ar_noise"}
    with pytest.raises(Exception, match="unknown scenario"):
        simulate_discovery("nope", 0)
