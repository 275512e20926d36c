"""Numerical robustness (issue 7, point 5): Cholesky jitter and automatic warnings.

* :func:`bayesimg.models.core.conditionals.robust_cholesky` retries a failed factor
  with escalating jitter and reports the retries; the GSMTR Gibbs kernel exposes
  them as the ``cholesky_jitter`` sample stat and ``bayesimg.fit`` warns.
* Divergences and R-hat > 1.01 surface as a ``ConvergenceWarning`` with advice
  right after sampling, without calling ``diagnose`` by hand.
"""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
import xarray as xr

import bayesimg
from bayesimg.data import make_dataset
from bayesimg.data.io import GenotypeTable
from bayesimg.errors import ConvergenceWarning
from bayesimg.models import GroupSparseMTR
from bayesimg.models.core import linalg
from bayesimg.models.core.conditionals import (
    JITTER_TRIES,
    gaussian_columns_given_precision,
    gaussian_columns_wide,
    robust_cholesky,
)
from bayesimg.report.diagnostics import sampling_problems, warn_after_sampling


# --------------------------------------------------------------------------- unit
def _singular_gram(seed=0):
    """XᵀX of centred genotypes with a duplicated column, whose plain Cholesky fails."""
    for s in range(seed, seed + 200):
        rng = np.random.default_rng(s)
        G = rng.integers(0, 3, size=(30, 4)).astype(float)
        G[:, 1] = G[:, 0]
        X = G - G.mean(axis=0)
        gram = jax.jit(lambda x: x.T @ x)(jnp.asarray(X))
        if not bool(jnp.all(jnp.isfinite(jnp.linalg.cholesky(gram)))):
            return s, X, gram
    pytest.skip("no exactly singular Gram matrix failed to factor on this platform")


def test_robust_cholesky_is_exact_when_no_jitter_is_needed():
    A = jnp.asarray([[4.0, 1.0], [1.0, 3.0]])
    L, k = jax.jit(robust_cholesky)(A)
    assert int(k) == 0
    np.testing.assert_allclose(L, jnp.linalg.cholesky(A))


def test_robust_cholesky_retries_with_jitter_on_a_singular_matrix():
    _, _, gram = _singular_gram()
    L, k = jax.jit(robust_cholesky)(gram)
    assert 1 <= int(k) <= JITTER_TRIES
    assert bool(jnp.all(jnp.isfinite(L)))
    # the factor is of gram + ε I with a small ε relative to the diagonal
    eps = np.diag(np.asarray(L @ L.T - gram))
    assert np.allclose(eps, eps[0]) and 0 < eps[0] < 1e-3 * float(jnp.mean(jnp.diag(gram)))


def test_robust_cholesky_reports_failure_beyond_the_last_retry():
    L, k = jax.jit(robust_cholesky)(jnp.full((3, 3), jnp.nan))
    assert int(k) == JITTER_TRIES + 1
    assert not bool(jnp.all(jnp.isfinite(L)))


def test_gaussian_draws_survive_a_singular_precision():
    _, X, gram = _singular_gram()
    key = jax.random.PRNGKey(0)
    rhs = gram[:, :2]
    narrow = jax.jit(lambda k, g, r: gaussian_columns_given_precision(
        k, g, r, jnp.zeros(4), 1.0, return_jitter=True))
    draw, k = narrow(key, gram, rhs)
    assert int(k) >= 1 and bool(jnp.all(jnp.isfinite(draw)))
    # default signature unchanged: a single array
    assert gaussian_columns_given_precision(key, gram + jnp.eye(4), rhs, jnp.ones(4),
                                            1.0).shape == (4, 2)
    # wide form (d > n): duplicated subjects and an enormous prior variance make
    # X D⁻¹ Xᵀ + I numerically singular
    rows = np.random.default_rng(0).normal(size=(2, 6))
    Xw = jnp.asarray(np.vstack([rows, rows]))
    wide = jax.jit(lambda k, x: gaussian_columns_wide(k, x, jnp.ones((4, 1)),
                                                      jnp.full(6, 1e-30), 1.0,
                                                      return_jitter=True))
    draw, k = wide(key, Xw)
    assert 1 <= int(k) <= JITTER_TRIES and bool(jnp.all(jnp.isfinite(draw)))


def test_fast_triangular_calls_match_numpy():
    """linalg's Cholesky (lower triangle only) and transposed solve give the textbook
    answers, and the upper triangle of the input is never read."""
    rng = np.random.default_rng(0)
    M = rng.normal(size=(6, 6))
    A = M @ M.T + 6 * np.eye(6)
    B = rng.normal(size=(6, 3))
    garbage_upper = np.tril(A) + np.triu(np.full((6, 6), 1e6), 1)
    L = np.asarray(linalg.cholesky(jnp.asarray(garbage_upper)))
    np.testing.assert_allclose(L, np.linalg.cholesky(A), rtol=1e-12)
    np.testing.assert_allclose(linalg.solve_lower_t(jnp.asarray(L), jnp.asarray(B)),
                               np.linalg.solve(L.T, B), rtol=1e-10)
    np.testing.assert_allclose(linalg.cho_solve(jnp.asarray(L), jnp.asarray(B)),
                               np.linalg.solve(A, B), rtol=1e-10)


def test_factor_and_apply_retries_only_the_chains_that_need_it():
    """Vectorised over chains (as on a GPU), a singular matrix in one chain is retried
    with jitter while the other chain keeps its exact, unjittered result."""
    _, _, gram = _singular_gram()
    good = gram + jnp.eye(4)
    rhs = jnp.ones((4, 1))
    out, k = jax.jit(jax.vmap(lambda A: linalg.factor_and_apply(
        A, lambda L: linalg.cho_solve(L, rhs))))(jnp.stack([good, gram]))
    assert int(k[0]) == 0 and 1 <= int(k[1]) <= JITTER_TRIES
    np.testing.assert_allclose(out[0], np.linalg.solve(np.asarray(good), np.ones((4, 1))),
                               rtol=1e-10)
    assert bool(jnp.all(jnp.isfinite(out[1])))


# --------------------------------------------------------------------------- Gibbs + fit
def _duplicated_snp_dataset():
    seed, _, _ = _singular_gram()
    rng = np.random.default_rng(seed)
    n, d = 30, 4
    G = rng.integers(0, 3, size=(n, d)).astype(float)
    G[:, 1] = G[:, 0]
    ids = [f"s{i}" for i in range(n)]
    snps = pd.DataFrame({"snp": [f"rs{j}" for j in range(d)], "chrom": ["1"] * d,
                         "pos": np.arange(d), "a1": ["A"] * d, "a2": ["G"] * d,
                         "gene": ["g1", "g1", "g2", "g2"]})
    Y = pd.DataFrame(rng.normal(size=(n, 2)), index=ids, columns=["y1", "y2"])
    return make_dataset(GenotypeTable(np.asarray(ids), G, snps), Y, min_subjects=2)


def test_gibbs_on_duplicated_snps_jitters_and_warns():
    data = _duplicated_snp_dataset()
    assert bayesimg.current_precision() == "float64"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # λ tiny: the prior precision cannot lift the exactly singular XᵀX
        fit = bayesimg.fit(GroupSparseMTR(1e-200, 1e-200), data, method="gibbs", chains=2,
                           warmup=10, draws=20, progress=False)
    jitter = fit.tree["sample_stats"]["cholesky_jitter"].values
    assert jitter.shape == (2, 20) and (jitter > 0).all()
    assert np.isfinite(fit.posterior["W"].values).all()
    assert fit.posterior["W"].dtype == np.float64            # the CPU default precision
    messages = [str(w.message) for w in caught if issubclass(w.category, ConvergenceWarning)]
    assert len(messages) == 1
    assert "jitter" in messages[0] and "ld_prune" in messages[0]

    # the same data with a sensible λ need no jitter: the warning is not a tautology
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = bayesimg.fit(GroupSparseMTR(2.0, 2.0), data, method="gibbs", chains=2,
                           warmup=10, draws=20, progress=False)
    assert (fit.tree["sample_stats"]["cholesky_jitter"].values == 0).all()
    assert not any("jitter" in str(w.message) for w in caught)


def test_nuts_divergences_warn_with_advice():
    data = _duplicated_snp_dataset()
    model = GroupSparseMTR(2.0, 2.0, parameterization="hierarchical")
    with pytest.warns(ConvergenceWarning, match="divergent") as record:
        fit = bayesimg.fit(model, data, method="nuts", chains=2, warmup=20, draws=20,
                           target_accept=0.01, max_tree_depth=1, progress=False)
    assert int(fit.tree["sample_stats"]["diverging"].values.sum()) > 0
    text = " ".join(str(w.message) for w in record)
    assert "target_accept" in text and "non-centred" in text


# --------------------------------------------------------------------------- R-hat
def _tree(shift: float, method: str = "nuts") -> xr.DataTree:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 200))
    x[0] += shift                                   # one chain elsewhere
    post = xr.Dataset({"mu": (("chain", "draw"), x)},
                      coords={"chain": np.arange(4), "draw": np.arange(200)})
    ss = xr.Dataset({"diverging": (("chain", "draw"), np.zeros((4, 200), bool))},
                    coords={"chain": np.arange(4), "draw": np.arange(200)})
    tree = xr.DataTree.from_dict({"posterior": post, "sample_stats": ss})
    tree.attrs["method"] = method
    tree.attrs["approximate"] = 0
    return tree


def test_rhat_problems_warn_and_good_chains_do_not():
    assert sampling_problems(_tree(0.0)) == []
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not warn_after_sampling(_tree(0.0))
    problems = sampling_problems(_tree(3.0))
    assert len(problems) == 1 and "R-hat > 1.01" in problems[0] and "mu" in problems[0]
    with pytest.warns(ConvergenceWarning, match="Run longer"):
        assert warn_after_sampling(_tree(3.0))
