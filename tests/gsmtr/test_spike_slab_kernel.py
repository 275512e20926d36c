"""SpikeSlabMTR's Gibbs kernel against brute force, and its input errors.

The kernel draws (δ_j, component) of one SNP from probabilities built from closed-form
Bayes factors (Sherman–Morrison for rank-1 patterns, Σ's eigenbasis for U = I) and a prior
inclusion probability with the gene indicator γ integrated out.  Here the same
probabilities are computed by brute force on a tiny problem (n = 6, c = 2, d = 3 SNPs in one
gene): the residual's exact Gaussian density vec(R) ~ N(0, Σ ⊗ I_n + v²U ⊗ x_jx_jᵀ) for
every component, and the prior by enumerating γ ∈ {0, 1}.
"""

from __future__ import annotations

import itertools

import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import bayesimg
from bayesimg.errors import DataValidationError, ModelSpecError
from bayesimg.models import SpikeSlabMTR
from bayesimg.models.gsmtr.spike_slab_gibbs import (
    draw_proposal,
    inverse_wishart,
    log_proposal,
    log_subset_prior,
    own_subset_bf,
    subset_eigen,
    update_logits,
)

N, C = 6, 2
RANK1 = np.array([[1.0, 1.0], [1.0, 0.0], [0.0, 1.0]])      # shared, ROI 1 only, ROI 2 only
SCALES = np.array([0.3, 1.0])
PI_GENE, PI_SNP = 0.3, 0.2
WEIGHTS = np.array([0.05, 0.1, 0.2, 0.15, 0.05, 0.1, 0.25, 0.1])   # (3 rank-1 + I) × 2 scales


SUBSETS = np.array([[1.0, 1.0]])                           # U = I


def _patterns(rank1=RANK1, subsets=SUBSETS):
    return [np.outer(u, u) for u in rank1] + [np.diag(m) for m in subsets]


def _brute_force(X, R, Sigma, delta_others, rank1=RANK1, subsets=SUBSETS, weights=WEIGHTS):
    """P(δ_0 = 0), P(δ_0 = 1, m) for SNP 0 given the others (δ_1, δ_2 = ``delta_others``)."""
    N, C = R.shape
    x = X[:, 0]
    r = R.ravel(order="F")                       # vec(R), columns stacked
    noise = np.kron(Sigma, np.eye(N))

    def log_prior(delta):
        total = 0.0
        for gamma in (0, 1):
            p = PI_GENE if gamma else 1.0 - PI_GENE
            for dj in delta:
                p *= (PI_SNP if dj else 1.0 - PI_SNP) if gamma else (0.0 if dj else 1.0)
            total += p
        return np.log(total)

    logs = [log_prior((0, *delta_others)) + stats.multivariate_normal(
        np.zeros(N * C), noise).logpdf(r)]
    for U, v in itertools.product(_patterns(rank1, subsets), SCALES):
        cov = noise + np.kron(v**2 * U, np.outer(x, x))
        logs.append(stats.multivariate_normal(np.zeros(N * C), cov).logpdf(r))
    logs = np.array(logs)
    logs[1:] += log_prior((1, *delta_others)) + np.log(weights)
    return np.exp(logs - np.logaddexp.reduce(logs))


def _kernel(X, R, Sigma, others_in, rank1=RANK1, subsets=SUBSETS, weights=WEIGHTS):
    x = X[:, 0]
    s = x @ x
    bhat = x @ R / s
    sigma_inv = np.linalg.inv(Sigma)
    kappa = np.sum((rank1 @ sigma_inv) * rank1, axis=1)
    logits, _, _ = update_logits(
        jnp.asarray(bhat), jnp.asarray(s), jnp.asarray(others_in), jnp.asarray(3.0),
        jnp.asarray(PI_GENE), jnp.asarray(PI_SNP), jnp.log(jnp.asarray(weights)),
        jnp.asarray(sigma_inv), jnp.asarray(kappa), jnp.asarray(rank1),
        subset_eigen(jnp.asarray(sigma_inv), jnp.asarray(subsets)), jnp.asarray(SCALES**2))
    logits = np.asarray(logits)
    return np.exp(logits - np.logaddexp.reduce(logits))


@pytest.mark.parametrize("others", [(0, 0), (1, 0)])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_inclusion_probabilities_match_brute_force_enumeration(others, seed):
    rng = np.random.default_rng(seed)
    X = rng.integers(0, 3, size=(N, 3)).astype(float)
    X -= X.mean(axis=0)
    A = rng.standard_normal((C, C))
    Sigma = A @ A.T + 0.3 * np.eye(C)
    # residual with SNP 0's contribution removed: a real effect on ROI 1 for seeds 1, 2
    R = rng.standard_normal((N, C)) @ np.linalg.cholesky(Sigma).T
    R[:, 0] += seed * 0.8 * X[:, 0]
    expected = _brute_force(X, R, Sigma, others)
    got = _kernel(X, R, Sigma, sum(others))
    np.testing.assert_allclose(got, expected, rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_roi_subset_patterns_match_brute_force_enumeration(seed):
    """c = 3 ROIs, patterns: shared (rank-1), ROIs {1, 2} (U = diag(1, 1, 0)), ROIs {1, 3},
    all ROIs (U = I): the subset Bayes factors from Σ⁻¹ restricted to the subset."""
    rng = np.random.default_rng(10 + seed)
    c = 3
    rank1 = np.ones((1, c))
    subsets = np.array([[1.0, 1.0, 0.0], [1.0, 0.0, 1.0], [1.0, 1.0, 1.0]])
    weights = rng.dirichlet(np.ones(4 * len(SCALES)))
    X = rng.integers(0, 3, size=(N, 3)).astype(float)
    X -= X.mean(axis=0)
    A = rng.standard_normal((c, c))
    Sigma = A @ A.T + 0.3 * np.eye(c)
    R = rng.standard_normal((N, c)) @ np.linalg.cholesky(Sigma).T
    R[:, :2] += seed * 0.8 * X[:, [0]]
    expected = _brute_force(X, R, Sigma, (1, 0), rank1, subsets, weights)
    got = _kernel(X, R, Sigma, 1, rank1, subsets, weights)
    np.testing.assert_allclose(got, expected, rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("mask", [(1, 0, 1), (0, 1, 0), (1, 1, 1)])
def test_own_subset_bayes_factor_matches_the_gaussian_densities(mask):
    """The ``"subsets"`` family's Bayes factor at a SNP's own S (Cholesky form) against
    b̂ ~ N(0, v²D_S + Σ/s) over N(0, Σ/s), for every slab scale."""
    rng = np.random.default_rng(4)
    c, s = 3, 40.0
    A = rng.standard_normal((c, c))
    Sigma = A @ A.T + 0.3 * np.eye(c)
    bhat = 0.4 * rng.standard_normal(c)
    mask = np.asarray(mask, float)
    got, _ = own_subset_bf(jnp.asarray(bhat), jnp.asarray(s), jnp.asarray(np.linalg.inv(Sigma)),
                           jnp.asarray(mask), jnp.asarray(SCALES**2))
    null = stats.multivariate_normal(np.zeros(c), Sigma / s).logpdf(bhat)
    expected = [stats.multivariate_normal(np.zeros(c), v**2 * np.diag(mask) + Sigma / s)
                .logpdf(bhat) - null for v in SCALES]
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-9)


def test_subset_pseudo_prior_draws_follow_its_density():
    """S ~ q_j (independent per-ROI Bernoulli given S ≠ ∅) by sequential sampling: the
    frequencies of all 7 non-empty subsets of 3 ROIs match exp(log q_j), and the subset
    prior P(S | φ) sums to 1 over them."""
    import jax

    prob = jnp.asarray([0.1, 0.6, 0.3])
    keys = jax.random.split(jax.random.PRNGKey(0), 20000)
    masks = np.asarray(jax.vmap(lambda k: draw_proposal(k, prob))(keys))
    subsets = np.array([m for m in itertools.product((0.0, 1.0), repeat=3) if any(m)])
    expected = np.exp(np.asarray(log_proposal(jnp.asarray(subsets), prob)))
    np.testing.assert_allclose(expected.sum(), 1.0, rtol=1e-12)
    assert not np.any(masks.sum(axis=1) == 0)
    counts = np.array([np.sum(np.all(masks == m, axis=1)) for m in subsets])
    assert stats.chisquare(counts, expected * len(masks)).pvalue > 1e-3
    prior = np.exp(np.asarray(log_subset_prior(jnp.asarray(subsets), 0.3)))
    np.testing.assert_allclose(prior.sum(), 1.0, rtol=1e-12)


def test_gene_prior_formula_changes_with_the_other_snps():
    """The collapsed prior: P(δ_j = 1 | others out) < π_snp = P(δ_j = 1 | another in)."""
    rng = np.random.default_rng(5)
    X = rng.standard_normal((N, 3))
    R = rng.standard_normal((N, C))
    p_alone = 1.0 - _kernel(X, R, np.eye(C), 0)[0]
    p_with = 1.0 - _kernel(X, R, np.eye(C), 1)[0]
    assert p_alone < p_with


def test_inverse_wishart_draws_have_the_right_mean():
    import jax

    df, scale = 9.0, np.array([[2.0, 0.5, 0.0], [0.5, 1.0, 0.3], [0.0, 0.3, 1.5]])
    c = 3
    key = jax.random.PRNGKey(0)
    keys = jax.random.split(key, 4000)

    def one(k):
        k1, k2 = jax.random.split(k)
        chi2 = 2.0 * jax.random.gamma(k1, (df - jnp.arange(c)) / 2.0)
        return inverse_wishart(k2, chi2, jnp.asarray(scale))

    draws = np.asarray(jax.vmap(one)(keys))
    mean = scale / (df - c - 1)
    np.testing.assert_allclose(draws.mean(axis=0), mean, atol=0.06)
    # the (1,1) entry is InvGamma((df − c + 1)/2, scale_11/2)
    ks = stats.kstest(draws[:, 0, 0], stats.invgamma((df - c + 1) / 2, scale=scale[0, 0] / 2).cdf)
    assert ks.pvalue > 1e-3


# ------------------------------------------------------------------------- inputs
@pytest.mark.parametrize("kwargs", [
    {"residual": "banded"},
    {"patterns": ["bogus"]},
    {"patterns": []},
    {"patterns": ["shared", "shared"]},
    {"patterns": [[0.0, 0.0]]},
    {"slab_scales": [0.1, -1.0]},
    {"slab_scales": []},
    {"gene_prior": (0.0, 1.0)},
    {"snp_prior": (1.0,)},
    {"dirichlet_alpha": 0.0},
    {"covariate_scale": -1.0},
    {"mixture_prior": "mash"},
])
def test_bad_settings_are_named_errors(kwargs):
    with pytest.raises(ModelSpecError):
        SpikeSlabMTR(**kwargs)


@pytest.fixture(scope="module")
def small_data():
    from _gsmtr_helpers import genotype_design, with_phenotypes
    design = genotype_design(40, 6, 3, seed=1)
    Y = np.random.default_rng(0).standard_normal((40, 3))
    return with_phenotypes(design, Y)


def test_nuts_svi_and_map_are_refused_with_a_pointer_to_gibbs(small_data):
    for method in ("nuts", "svi", "map"):
        with pytest.raises(ModelSpecError, match="gibbs"):
            bayesimg.fit(SpikeSlabMTR(), small_data, method=method, progress=False)


def test_data_errors(small_data):
    import dataclasses
    with pytest.raises(ModelSpecError, match="phenotypes"):
        SpikeSlabMTR(patterns=[[1.0, 1.0]]).model_args(small_data)
    uncentred = dataclasses.replace(small_data, phenotypes=small_data.phenotypes + 5.0)
    with pytest.raises(DataValidationError):
        SpikeSlabMTR().model_args(uncentred)
    snps = small_data.snps.copy()
    snps["gene"] = None
    with pytest.raises(DataValidationError):
        SpikeSlabMTR().model_args(dataclasses.replace(small_data, snps=snps))


def test_settings_round_trip_through_replace():
    model = SpikeSlabMTR(patterns=["shared", (1.0, 0.0, 1.0)], slab_scales=(0.1, 0.2),
                         residual="diagonal")
    again = model.replace(dirichlet_alpha=2.0)
    assert again.patterns == model.patterns and again.residual == "diagonal"
    assert again.dirichlet_alpha == 2.0
