"""Simulation-based calibration (Talts et al. 2018) of GSMTR's samplers.

Replicates r = 1..R: genotypes X_r (n = 30, d = 8 SNPs in 4 genes of 2, c = 2),
(W, σ²) drawn *exactly* from the prior that the joint density of MODELS.md §1
implies, Y = XW + σE; then the posterior is sampled.  If the sampler targets
that posterior, then for every scalar θ

* the central 50% / 95% posterior intervals cover θ_true with probability 0.50 /
  0.95 (averaged over the prior), and
* the rank of θ_true among L (thinned, near-independent) posterior draws is
  uniform on {0, …, L}.

The exact prior: integrating τ and ω out of the joint leaves
p(W | σ²) ∝ σ^{−dc} exp(−(√λ₁ Σ_k‖W_k‖_F + √λ₂ Σ_i‖w_i‖)/σ) with σ² ~ InvGamma(3, 1)
(test_gsmtr_density.py checks this marginal numerically); it is sampled by exact
per-gene rejection (the sampler of ``simulate_gsmtr_from_prior``, checked below against
closed forms and against an independent Gibbs chain on the joint).

Phenotypes are made exactly centred (GSMTR refuses uncentred Y) by an orthogonal
rotation of the subjects, which leaves the posterior exactly unchanged
(``_gsmtr_helpers.centre_by_rotation``).

All replicates have one shape, so the Gibbs and NUTS programs compile once each.
"""

from __future__ import annotations

import numpy as np
import pytest
from _gsmtr_helpers import (
    draws,
    exact_prior_draw,
    exact_prior_unit_gene,
    genotype_design,
    with_phenotypes,
)
from scipy import integrate, stats

import bayesimg
from bayesimg.data import simulate_gsmtr_from_prior
from bayesimg.models import GroupSparseMTR

N, D, C, GENE_SIZE = 30, 8, 2, 2
LAMBDA = 1.0
R_GIBBS = 200
R_NUTS = 40
# Shared with test_gsmtr_agreement.py (same shapes and settings → same compiled programs).
GIBBS = dict(chains=2, warmup=200, draws=2000)
NUTS = dict(chains=2, warmup=500, draws=1000)
L_RANK = 100            # draws kept for the rank statistic (every 40th of 2 × 2000)
N_BINS = 10


def simulate_replicate(r: int):
    rng = np.random.default_rng(10_000 + r)
    design = genotype_design(N, D, GENE_SIZE, seed=20_000 + r)
    W, sigma2 = exact_prior_draw(rng, design.gene_index, C, LAMBDA, LAMBDA)
    Y = design.genotypes @ W + np.sqrt(sigma2) * rng.standard_normal((N, C))
    return with_phenotypes(design, Y), W, sigma2


def _collect(method: str, n_rep: int, options: dict):
    model = GroupSparseMTR(LAMBDA, LAMBDA)
    truths, samples = [], []
    for r in range(n_rep):
        data, W, sigma2 = simulate_replicate(r)
        fit = bayesimg.fit(model, data, method=method, seed=r, progress=False, **options)
        theta = np.concatenate([draws(fit, "W").reshape(-1, D * C), draws(fit, "sigma2")[:, None]],
                               axis=1)
        truths.append(np.concatenate([W.ravel(), [sigma2]]))
        samples.append(theta.reshape(options["chains"], options["draws"], -1))
    return np.array(truths), np.array(samples)       # (R, D·C + 1), (R, chains, draws, D·C + 1)


@pytest.fixture(scope="module")
def gibbs_runs():
    return _collect("gibbs", R_GIBBS, GIBBS)


def _coverage(truths, samples, prob):
    flat = samples.reshape(samples.shape[0], -1, samples.shape[-1])
    lo = np.quantile(flat, (1 - prob) / 2, axis=1)
    hi = np.quantile(flat, (1 + prob) / 2, axis=1)
    return (lo <= truths) & (truths <= hi)                 # (R, D·C + 1)


def _check_coverage(truths, samples, prob):
    """Judge the per-replicate average coverage (replicates are iid, entries within a
    replicate are not): z = (mean − p)/(sd_r/√R) with the empirical sd of the R
    replicate averages; |z| ≤ 4 (two-sided 6e-5).  σ² alone is an iid Bernoulli per
    replicate: binomial SE √(p(1−p)/R), same 4-SE rule."""
    hit = _coverage(truths, samples, prob)
    per_rep = hit.mean(axis=1)
    R = len(per_rep)
    se = max(per_rep.std(ddof=1), 1e-12) / np.sqrt(R)
    z_all = (per_rep.mean() - prob) / se
    z_sigma = (hit[:, -1].mean() - prob) / np.sqrt(prob * (1 - prob) / R)
    return per_rep.mean(), se, z_all, hit[:, -1].mean(), z_sigma


# ------------------------------------------------------------------ the exact prior
def test_exact_prior_sampler_one_snp_is_laplace():
    """m = 1 SNP, c = 1: the kernel is exp(−(√λ₁ + √λ₂)|u|), a Laplace law."""
    rng = np.random.default_rng(0)
    lam1, lam2 = 2.0, 0.5
    u = np.array([exact_prior_unit_gene(rng, 1, 1, lam1, lam2)[0, 0] for _ in range(4000)])
    rate = np.sqrt(lam1) + np.sqrt(lam2)
    assert stats.kstest(u, stats.laplace(scale=1 / rate).cdf).pvalue > 1e-3


def test_exact_prior_sampler_two_snps_radial_law():
    """The SBC's gene shape (m = 2, c = 2): (r₁, r₂) = (‖u₁‖, ‖u₂‖) has density
    ∝ r₁ r₂ exp(−√λ₁ √(r₁² + r₂²) − √λ₂ (r₁ + r₂)); the marginal CDF of r₁, from a
    numerical 2-D integral, must match the sampler (KS)."""
    rng = np.random.default_rng(1)
    lam1, lam2 = LAMBDA, LAMBDA
    r1 = np.array([np.linalg.norm(exact_prior_unit_gene(rng, 2, 2, lam1, lam2)[0])
                   for _ in range(4000)])
    grid = np.linspace(0, 40, 4001)
    a, b = np.meshgrid(grid, grid, indexing="ij")
    dens = a * b * np.exp(-np.sqrt(lam1) * np.hypot(a, b) - np.sqrt(lam2) * (a + b))
    marginal = integrate.trapezoid(dens, grid, axis=1)
    cdf = integrate.cumulative_trapezoid(marginal, grid, initial=0)
    cdf /= cdf[-1]
    assert stats.kstest(r1, lambda x: np.interp(x, grid, cdf)).pvalue > 1e-3


# ------------------------------------------------------------------ Gibbs SBC
def test_gibbs_interval_coverage(gibbs_runs):
    truths, samples = gibbs_runs
    for prob in (0.5, 0.95):
        mean, se, z_all, cov_sigma, z_sigma = _check_coverage(truths, samples, prob)
        assert abs(z_all) <= 4, (prob, mean, se, z_all)
        assert abs(z_sigma) <= 4, (prob, cov_sigma, z_sigma)


# σ² and four W entries in different genes/phenotypes (flat index i·C + j)
SBC_QUANTITIES = {"sigma2": D * C, "W[0,0]": 0, "W[3,1]": 7, "W[4,0]": 8, "W[7,1]": 15}


@pytest.mark.parametrize("name", list(SBC_QUANTITIES))
def test_gibbs_sbc_ranks_uniform(gibbs_runs, name):
    """Talts et al. (2018): ranks of θ_true among L = 100 draws thinned 40× (the Gibbs
    ESS here is ~2500 of 4000 draws, so the kept draws are nearly independent), in 10
    bins, chi-square test of uniformity at α = 0.001 per quantity (5 quantities: family
    false-alarm ≤ 0.005).  Bins of {0..100} are unequal (101 ranks), so the expected
    counts are exact per bin."""
    truths, samples = gibbs_runs
    j = SBC_QUANTITIES[name]
    kept = samples[:, :, :: GIBBS["draws"] * GIBBS["chains"] // L_RANK, j]
    kept = kept.reshape(kept.shape[0], -1)
    assert kept.shape[1] == L_RANK
    ranks = np.sum(kept < truths[:, j : j + 1], axis=1)
    bins = ranks * N_BINS // (L_RANK + 1)
    counts = np.bincount(bins, minlength=N_BINS)
    probs = np.bincount(np.arange(L_RANK + 1) * N_BINS // (L_RANK + 1),
                        minlength=N_BINS) / (L_RANK + 1)
    pvalue = stats.chisquare(counts, len(ranks) * probs).pvalue
    assert pvalue > 1e-3, (name, counts, pvalue)


# ------------------------------------------------------------------ NUTS coverage
def test_nuts_interval_coverage():
    """NUTS on the marginal (whitened) form, fewer replicates (R = 40): same per-replicate
    4-SE rule (its SE is ~2.2× the Gibbs one)."""
    truths, samples = _collect("nuts", R_NUTS, NUTS)
    for prob in (0.5, 0.95):
        mean, se, z_all, cov_sigma, z_sigma = _check_coverage(truths, samples, prob)
        assert abs(z_all) <= 4, (prob, mean, se, z_all)
        assert abs(z_sigma) <= 4, (prob, cov_sigma, z_sigma)


# ------------------------------------------------------------------ the simulator
def test_prior_rejection_sampler_matches_gibbs_on_the_joint():
    """Two independent algorithms for the same prior: the exact rejection sampler and
    a 500-sweep Gibbs chain on the joint of MODELS.md §1 (τ, ω | W inverse Gaussian,
    W | τ, ω Gaussian).  The mean of |u_ij| over R iid draws each must agree (|z| ≤ 4;
    per-draw averages are iid, so their SEs are exact)."""
    from bayesimg.data.simulate import _prior_unit_gene

    R, m = 300, 3
    rng = np.random.default_rng(7)
    rejection = [np.mean(np.abs(_prior_unit_gene(rng, m, C, LAMBDA, LAMBDA)[0]))
                 for _ in range(R)]
    gibbs = [np.mean(np.abs(_prior_unit_gene(rng, m, C, LAMBDA, LAMBDA, max_proposals=0)[0]))
             for _ in range(R)]
    a, b = np.array(rejection), np.array(gibbs)
    z = (a.mean() - b.mean()) / np.hypot(a.std(ddof=1) / np.sqrt(R), b.std(ddof=1) / np.sqrt(R))
    assert abs(z) <= 4, (a.mean(), b.mean(), z)


def test_simulate_gsmtr_from_prior_matches_model_prior():
    """The library simulator's mean |w_ij|/σ equals that of exact prior draws (|z| ≤ 4),
    and its τ, ω are consistent with W (conditionally W/σ·√(1/τ+1/ω) is N(0, 1))."""
    R = 300
    sim, zs = [], []
    for r in range(R):
        data, truth = simulate_gsmtr_from_prior(lambda1=LAMBDA, lambda2=LAMBDA, n_subjects=N,
                                                n_snps=D, gene_size=GENE_SIZE, n_phenotypes=C,
                                                seed=r)
        assert truth.exact
        W = truth.W.to_numpy()
        sim.append(np.mean(np.abs(W)) / truth.sigma)
        prec = 1.0 / truth.tau[data.gene_index] + 1.0 / truth.omega
        zs.append((W / truth.sigma * np.sqrt(prec)[:, None]).ravel())
    rng = np.random.default_rng(5)
    gene_index = np.repeat(np.arange(D // GENE_SIZE), GENE_SIZE)
    exact = []
    for _ in range(R):
        W, sigma2 = exact_prior_draw(rng, gene_index, C, LAMBDA, LAMBDA)
        exact.append(np.mean(np.abs(W)) / np.sqrt(sigma2))
    sim, exact = np.array(sim), np.array(exact)
    z = (sim.mean() - exact.mean()) / np.hypot(sim.std(ddof=1) / np.sqrt(R),
                                              exact.std(ddof=1) / np.sqrt(R))
    assert abs(z) <= 4, (sim.mean(), exact.mean(), z)
    assert stats.kstest(np.concatenate(zs), "norm").pvalue > 1e-3
