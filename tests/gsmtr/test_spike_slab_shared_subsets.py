"""The ``"shared_subsets"`` family of SpikeSlabMTR (w_j = β_j 1_(S_j): one coefficient on
the SNP's own ROI subset) against brute-force Gaussian densities.

* Its Bayes factor at S is that of b̂ ~ N(0, v² 1_S1_Sᵀ + Σ/s) over N(0, Σ/s).
* The draw of β given S is the Gaussian conditional of β ~ N(0, v²), b̂ | β ~ N(β1_S, Σ/s).
* Repeated per-ROI flips (w integrated out) have the exact posterior over the 2^c − 1
  subsets as their stationary law — for both own-subset families (c = 3: enumerated).
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from bayesimg.models.gsmtr.spike_slab_gibbs import (
    draw_own_shared,
    flip_rois,
    log_subset_prior,
    own_shared_bf,
    own_subset_bf,
)

SCALES = np.array([0.1, 0.3, 0.9])
C, S_XX = 3, 40.0


def _problem(seed):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((C, C))
    Sigma = A @ A.T + 0.3 * np.eye(C)
    bhat = 0.3 * rng.standard_normal(C) + np.array([0.25, 0.25, 0.0])
    return Sigma, bhat


@pytest.mark.parametrize("mask", [(1, 0, 1), (0, 1, 0), (1, 1, 1)])
def test_shared_subset_bayes_factor_matches_the_gaussian_densities(mask):
    Sigma, bhat = _problem(1)
    mask = np.asarray(mask, float)
    got, _ = own_shared_bf(jnp.asarray(bhat), jnp.asarray(S_XX), jnp.asarray(np.linalg.inv(Sigma)),
                           jnp.asarray(mask), jnp.asarray(SCALES**2))
    null = stats.multivariate_normal(np.zeros(C), Sigma / S_XX).logpdf(bhat)
    expected = [stats.multivariate_normal(np.zeros(C), v**2 * np.outer(mask, mask)
                                          + Sigma / S_XX).logpdf(bhat) - null for v in SCALES]
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-9)


def test_shared_subset_effect_draw_is_the_gaussian_conditional():
    """β | b̂, S, v by completing the square densely (prior N(0, v²), likelihood
    N(b̂; β1_S, Σ/s)); the kernel's draw at ε = 0 and ε = 1 gives mean and mean + sd."""
    Sigma, bhat = _problem(2)
    mask = np.array([1.0, 1.0, 0.0])
    sigma_inv = np.linalg.inv(Sigma)
    v2 = SCALES[1] ** 2
    prec = 1.0 / v2 + S_XX * mask @ sigma_inv @ mask
    mean = S_XX * mask @ sigma_inv @ bhat / prec
    _, pieces = own_shared_bf(jnp.asarray(bhat), jnp.asarray(S_XX), jnp.asarray(sigma_inv),
                              jnp.asarray(mask), jnp.asarray(SCALES**2))
    at0 = np.asarray(draw_own_shared(pieces, v2, S_XX, 0.0, jnp.asarray(mask)))
    at1 = np.asarray(draw_own_shared(pieces, v2, S_XX, 1.0, jnp.asarray(mask)))
    np.testing.assert_allclose(at0, mean * mask, rtol=1e-10)
    np.testing.assert_allclose(at1 - at0, mask / np.sqrt(prec), rtol=1e-10)


@pytest.mark.parametrize("family", ["subsets", "shared_subsets"])
def test_per_roi_flips_leave_the_exact_subset_posterior_invariant(family):
    """P(S | b̂, v, φ) ∝ P(S | φ) BF(S) over the 7 non-empty subsets of 3 ROIs; the chain of
    flip sweeps visits them at those frequencies."""
    Sigma, bhat = _problem(3)
    sigma_inv = jnp.asarray(np.linalg.inv(Sigma))
    v2 = jnp.asarray([SCALES[1] ** 2])
    rate = 0.4
    bf = own_subset_bf if family == "subsets" else own_shared_bf

    def log_bf_at(mask):
        return bf(jnp.asarray(bhat), jnp.asarray(S_XX), sigma_inv, mask, v2)[0][0]

    subsets = np.array([m for m in itertools.product((0.0, 1.0), repeat=C) if any(m)])
    log_post = np.array([float(log_bf_at(jnp.asarray(m))) for m in subsets]) \
        + np.asarray(log_subset_prior(jnp.asarray(subsets), rate))
    expected = np.exp(log_post - np.logaddexp.reduce(log_post))

    def step(mask, key):
        mask = flip_rois(key, mask, log_bf_at, rate)
        return mask, mask

    n_steps = 6000
    _, chain = jax.lax.scan(step, jnp.ones(C), jax.random.split(jax.random.PRNGKey(0), n_steps))
    chain = np.asarray(chain)
    counts = np.array([np.sum(np.all(chain == m, axis=1)) for m in subsets])
    # successive sweeps are correlated: compare with a loose tolerance on each frequency
    np.testing.assert_allclose(counts / n_steps, expected, atol=0.03)
    assert expected.max() < 0.9        # the test has several subsets with weight
