"""SpikeSlabMTR finds planted effects on real genotypes, and its discoveries keep their FDR.

Data: :func:`bayesimg.data.simulate_discovery` on a small panel of the bundled 1000 Genomes
genotypes (503 subjects, real LD; 88 SNPs of MCM6, AGT and TTN pruned at r² 0.8), the demo's
age and sex as covariates.  Scenarios: sparse strong effects with independent noise, and
AR(1)-correlated noise across ROIs (misspecified for independent-noise models; the full
residual covariance models it).  A discovery is true when its SNP (or a SNP of its credible
set) is causal for that ROI or in r² ≥ 0.5 with a causal SNP
(:func:`bayesimg.metrics.score_discoveries`).

The model is the default one (each SNP's own ROI subset, with independent effects on it or
one shared effect: the planted effects act on 1-3 ROIs with mixed signs, which fixed
patterns capture poorly).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import bayesimg
from bayesimg.data.simulate_discovery import ld_r2, simulate_discovery
from bayesimg.metrics import score_discoveries
from bayesimg.models import GroupSparseMTR, SpikeSlabMTR
from bayesimg.report import credible_sets, discoveries, inclusion_probabilities

RUN = dict(chains=2, warmup=300, draws=400, progress=False)
ALPHA = 0.05


@pytest.fixture(scope="module")
def panel():
    return bayesimg.data.load_demo(genes=["MCM6", "AGT", "TTN"], ld_prune_r2=0.8, min_maf=0.05)


def _fit(data, seed, **model_kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return bayesimg.fit(SpikeSlabMTR(**model_kwargs), data,
                            method="gibbs", seed=seed, **RUN)


def _score(fit, data, truth, fdr=ALPHA):
    table = discoveries(fit, fdr=fdr)
    # a credible-set call is its signal block: the SNPs whose effects it sums
    members = {row.credible_set: row.cs_snps.split(",")
               for row in table.dropna(subset=["credible_set"]).itertuples()}
    return score_discoveries(table, truth, ld_r2(data), set_members=members), table


@pytest.fixture(scope="module")
def sparse_fit(panel):
    data, truth = simulate_discovery("sparse_strong", 3, genotypes=panel)
    return data, truth, _fit(data, 3)


def test_planted_snps_found_and_nulls_not(sparse_fit):
    data, truth, fit = sparse_fit
    probs = inclusion_probabilities(fit)
    causal = sorted(set(truth.effects["snp"]))
    r2 = ld_r2(data)
    pip = probs["snp_pip"].to_series()
    # each causal signal: its SNP or a proxy (r² ≥ 0.5) carries PIP
    for snp in causal:
        proxies = r2.index[r2.loc[snp] >= 0.5]
        assert pip[proxies].sum() > 0.8, (snp, pip[proxies])
    # SNPs in no LD with any causal SNP mostly stay out (one null SNP here has a marginal
    # z of −4.4, and a PIP to match; it makes no discovery: see below)
    unlinked = r2.index[(r2.loc[causal] < 0.1).all(axis=0)]
    assert pip[unlinked].median() < 0.1
    assert (pip[unlinked] > 0.5).sum() <= 1
    score, table = _score(fit, data, truth)
    assert score["power"] >= 0.75, (score, table)
    # Bayesian FDR bounds the expected false share (≤ 5%); one replicate of ~8 calls may
    # hold one false call (the pooled check over replicates is the slow test below)
    assert score["n_false"] <= 1, table
    # effects in original units, with the model's intervals around them
    assert table.attrs["units"].startswith("original units")
    assert (table["lower"] <= table["effect"]).all() and (table["effect"] <= table["upper"]).all()
    assert table["lfsr"].mean() <= ALPHA


def test_outputs_are_labelled_and_consistent(sparse_fit):
    data, _, fit = sparse_fit
    probs = fit.inclusion_probabilities()
    assert set(probs.data_vars) == {"gene_pip", "snp_pip", "snp_roi_pip", "lfsr"}
    assert probs["snp_roi_pip"].dims == ("snp", "phenotype")
    assert probs["gene_pip"].dims == ("gene",)
    # SNP×ROI inclusion implies SNP inclusion implies gene inclusion
    assert (probs["snp_roi_pip"] <= probs["snp_pip"] + 1e-12).all()
    gene_of = fit.tree["constant_data"]["snp_gene"].values
    for g in probs.coords["gene"].values:
        assert probs["snp_pip"].values[gene_of == g].max() <= float(probs["gene_pip"].sel(
            gene=g)) + 1e-12
    sets = fit.credible_sets()
    assert (sets["coverage"] >= 0.95).all() and (sets["purity"] >= 0.5).all()
    table = fit.discoveries(fdr=0.05)
    assert list(table.columns[:10]) == ["gene", "snp", "phenotype", "effect", "lower",
                                        "upper", "pip", "lfsr", "credible_set", "cs_purity"]
    # stricter FDR → a subset of the discoveries
    strict = fit.discoveries(fdr=0.01)
    assert len(strict) <= len(table)


def test_ar_noise_full_residual_keeps_fdr(panel):
    """AR(1)-correlated noise across ROIs, modelled by the full residual covariance."""
    data, truth = simulate_discovery("ar_noise", 4, genotypes=panel)
    fit = _fit(data, 4)
    score, table = _score(fit, data, truth)
    assert score["power"] >= 0.5, (score, table)
    assert score["fdr"] <= 0.2, table
    Sigma = fit.posterior["Sigma"].mean(("chain", "draw")).values
    corr = Sigma[0, 1] / np.sqrt(Sigma[0, 0] * Sigma[1, 1])
    assert 0.4 < corr < 0.8           # the simulated neighbour correlation is 0.6


def test_gsmtr_fit_gets_discoveries_by_lfsr_with_pip_nan(panel):
    data, _ = simulate_discovery("sparse_strong", 3, genotypes=panel)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = bayesimg.fit(GroupSparseMTR(20.0, 20.0), data, method="gibbs", seed=1, **RUN)
    table = discoveries(fit, fdr=0.05)
    assert table["pip"].isna().all() and table["credible_set"].isna().all()
    assert not table.attrs["pip_defined"]
    probs = inclusion_probabilities(fit)
    assert np.isnan(probs["snp_pip"].values).all()
    assert credible_sets(fit).empty


@pytest.mark.slow
def test_empirical_fdr_below_alpha_over_replicates(panel):
    """Pooled over replicates of two scenarios, the false share of discoveries ≤ α.

    (Failed with 44 false of 180 calls while a SNP's data-driven pattern was a signed rank-1
    vector: an ROI in its support by chance got the real ROIs' sign certainty; at the
    boundary — 9 false of 147, xfail — while ROI subsets were proposed only for
    Bonferroni-significant SNPs; passes since every SNP carries its own subset, 157 s on the
    loaded 2-core machine.)"""
    n_false = n_total = 0
    for scenario in ("sparse_strong", "ar_noise"):
        for seed in range(10, 20):
            data, truth = simulate_discovery(scenario, seed, genotypes=panel)
            score, _ = _score(_fit(data, seed), data, truth)
            n_false += score["n_false"]
            n_total += score["n_discoveries"]
    assert n_total > 0
    assert n_false / n_total <= ALPHA, (n_false, n_total)
