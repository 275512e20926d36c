"""Simulation-based calibration (Talts et al. 2018) of SpikeSlabMTR's Gibbs sampler, and
the calibration of its posterior inclusion probabilities.

Replicates r = 1..R: genotypes X_r (n = 40, d = 6 SNPs in 2 genes of 3, c = 2 ROIs), every
parameter drawn from the model's prior — π_gene, π_snp ~ their Beta priors, γ_g, δ_j, mixture
weights ω_p ρ_t (pattern and slab-scale weights ~ Dirichlet(1) each), a component per
included SNP (patterns: shared, single, independent and the own-subset families
``"subsets"`` (w = D_S·N(0, v²I)) and ``"shared_subsets"`` (w = β 1_S, β ~ N(0, v²)), whose
SNP-own ROI subset S_j is drawn from independent per-ROI inclusion at the family's rate φ_f
given S ≠ ∅, φ_f from its grid prior), w_j ~ N(0, v²U), Σ ~ InvWishart(c + 2,
I) — and Y = XW + E, rows of E ~ N(0, Σ); then the posterior is sampled.  Two SNPs are LD
proxies of others (r ≈ 0.8; one pair within a gene, one across genes), so the pair moves
run.  If the sampler targets the posterior, the rank of every true scalar among L thinned
posterior draws is uniform on {0, …, L} (discrete quantities get randomised ranks), and
among SNPs with PIP in a bin the fraction truly included matches the bin's mean PIP.

Phenotypes are centred exactly by an orthogonal rotation of the subjects (X and Y), which
leaves the posterior unchanged (``_gsmtr_helpers.centre_by_rotation``).  All replicates
have one shape, so the sampler compiles once.
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest
from _gsmtr_helpers import draws, genotype_design, with_phenotypes
from scipy import stats

import bayesimg
from bayesimg.models import SpikeSlabMTR
from bayesimg.models.gsmtr.spike_slab import ROI_RATE_GRID

N, D, C, GENE_SIZE = 40, 6, 2, 3
PATTERNS = ("shared", "single", "independent", "subsets", "shared_subsets")
SCALES = (0.3, 0.8)
RUN = dict(chains=2, warmup=150, draws=500, progress=False)
L_RANK = 99


def _prior_draw(rng, design):
    model = SpikeSlabMTR(patterns=PATTERNS, slab_scales=SCALES)
    rank1 = np.array([np.ones(C), *np.eye(C)])
    families = model._own_families()
    n_comp = (len(rank1) + 1 + len(families)) * len(SCALES)   # + independent, families
    grid = np.asarray(ROI_RATE_GRID)
    # one rate φ_f per own-subset family (subsets, shared_subsets)
    rates = [rng.choice(grid, p=np.exp(row)) for row in model._roi_rate_log_prior(C)]
    gene_index = design.gene_index
    pi_gene, pi_snp = rng.beta(*model.gene_prior), rng.beta(*model.snp_prior)
    gene_in = rng.random(gene_index.max() + 1) < pi_gene
    snp_in = gene_in[gene_index] & (rng.random(D) < pi_snp)
    # the default product prior: pattern weights × slab-scale weights, Dirichlet(1) each
    weights = np.outer(rng.dirichlet(np.ones(n_comp // len(SCALES))),
                       rng.dirichlet(np.ones(len(SCALES)))).ravel()
    W = np.zeros((D, C))
    for j in np.flatnonzero(snp_in):
        m = rng.choice(n_comp, p=weights)
        p, t = divmod(m, len(SCALES))
        v = SCALES[t]
        if p < len(rank1):
            W[j] = rank1[p] * v * rng.standard_normal()
        else:
            mask = np.ones(C)                         # independent: all ROIs
            family = p - len(rank1) - 1               # own-subset family (−1: independent)
            while family >= 0:                        # S ~ Bernoulli(φ_f)^C | S ≠ ∅
                mask = (rng.random(C) < rates[family]).astype(float)
                if mask.any():
                    break
            shared = family >= 0 and families[family] == "shared_subsets"
            coef = rng.standard_normal() if shared else rng.standard_normal(C)
            W[j] = mask * v * coef
    Sigma = stats.invwishart(df=C + 2, scale=np.eye(C)).rvs(random_state=rng)
    truth = {"Sigma_11": Sigma[0, 0], "Sigma_12": Sigma[0, 1], "W_11": W[0, 0],
             "W_21": W[1, 0], "pi_snp": pi_snp, "n_in": snp_in.sum(),
             **{f"roi_rate_{f}": rate for f, rate in zip(families, rates, strict=True)}}
    return model, W, Sigma, snp_in, truth


def _with_ld(design, rng):
    """SNP 2 copies SNP 1, and SNP 4 (gene 2) copies SNP 3 (gene 1), in ~80% of subjects
    (r ≈ 0.8): LD partners within and across genes, so the kernel's pair moves run too."""
    X = design.genotypes.copy()
    for source, proxy in ((0, 1), (2, 3)):          # a pair within gene 1, one across genes
        copy = rng.random(N) < 0.8
        X[:, proxy] = np.where(copy, X[:, source], X[:, proxy])
    X -= X.mean(axis=0)
    return dataclasses.replace(design, genotypes=X)


def _posterior_quantities(fit):
    Sigma = draws(fit, "Sigma")
    W = draws(fit, "W")
    return {"Sigma_11": Sigma[:, 0, 0], "Sigma_12": Sigma[:, 0, 1], "W_11": W[:, 0, 0],
            "W_21": W[:, 1, 0], "pi_snp": draws(fit, "pi_snp"),
            **{f"roi_rate_{f}": draws(fit, "roi_rate")[:, i]
               for i, f in enumerate(fit.posterior["subset_family"].values)},
            "n_in": draws(fit, "snp_in").sum(axis=1)}


def _run(n_rep: int, seed0: int):
    ranks, pips, included, n_in_var = [], [], [], []
    for r in range(n_rep):
        rng = np.random.default_rng(seed0 + r)
        design = _with_ld(genotype_design(N, D, GENE_SIZE, seed=seed0 + 50_000 + r), rng)
        model, W, Sigma, snp_in, truth = _prior_draw(rng, design)
        E = rng.standard_normal((N, C)) @ np.linalg.cholesky(Sigma).T
        data = with_phenotypes(design, design.genotypes @ W + E)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = bayesimg.fit(model, data, method="gibbs", seed=r, **RUN)
        post = _posterior_quantities(fit)
        keep = np.linspace(0, len(post["W_11"]) - 1, L_RANK).round().astype(int)
        row = {}
        for name, value in post.items():
            x = value[keep]
            below, ties = np.sum(x < truth[name]), np.sum(x == truth[name])
            row[name] = below + rng.integers(0, ties + 1)      # randomised rank for ties
        ranks.append(row)
        pips.append(draws(fit, "snp_in").mean(axis=0))
        included.append(snp_in)
        n_in_var.append(post["n_in"].var())
    return ranks, np.concatenate(pips), np.concatenate(included), np.asarray(n_in_var)


def _rank_pvalues(ranks, n_bins):
    out = {}
    for name in ranks[0]:
        values = np.array([r[name] for r in ranks])
        counts = np.bincount(values * n_bins // (L_RANK + 1), minlength=n_bins)
        out[name] = stats.chisquare(counts).pvalue
    return out


def _calibration_gaps(pips, included, min_count):
    bins = np.minimum((pips * 5).astype(int), 4)
    gaps = {}
    for b in range(5):
        sel = bins == b
        if sel.sum() >= min_count:
            gaps[b] = (pips[sel].mean(), included[sel].mean(), int(sel.sum()))
    return gaps


@pytest.fixture(scope="module")
def small_runs():
    return _run(60, 1000)


def test_sbc_ranks_uniform(small_runs):
    ranks = small_runs[0]
    pvalues = _rank_pvalues(ranks, n_bins=5)
    assert min(pvalues.values()) > 1e-3, pvalues


def test_pips_calibrated(small_runs):
    _, pips, included, n_in_var = small_runs
    gaps = _calibration_gaps(pips, included, min_count=25)
    assert len(gaps) >= 2, gaps
    for b, (mean_pip, frac, count) in gaps.items():
        assert abs(mean_pip - frac) <= 0.2, (b, mean_pip, frac, count)
    # overall: expected and observed numbers of included SNPs agree.  Given the data the
    # true count of a replicate has the posterior variance of n_in (the SNPs of a gene or
    # an LD pair are dependent: Σ PIP (1 − PIP) would ignore their covariance)
    assert abs(pips.sum() - included.sum()) <= 3 * np.sqrt(n_in_var.sum()) + 3


@pytest.mark.slow
def test_sbc_and_pip_calibration_large():
    ranks, pips, included, _ = _run(300, 5000)
    pvalues = _rank_pvalues(ranks, n_bins=10)
    assert min(pvalues.values()) > 1e-3, pvalues
    for b, (mean_pip, frac, count) in _calibration_gaps(pips, included, 60).items():
        assert abs(mean_pip - frac) <= 0.1, (b, mean_pip, frac, count)
