"""The vectorised Marsaglia–Tsang Gamma sampler the Gibbs kernels use (models.core.gamma):
its draws follow Gamma(a, 1) for small, unit, moderate and large shapes (boosted
a < 1 included), by Kolmogorov–Smirnov against scipy, and a non-finite shape gives NaN
instead of looping forever."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats

from bayesimg.models.core.gamma import gamma


def test_gamma_matches_scipy_for_every_shape_range():
    shapes = np.array([0.05, 0.4, 1.0, 2.5, 60.0, 5e4])
    draws = np.asarray(gamma(jax.random.PRNGKey(3), jnp.asarray(shapes), shape=(4000, 6)))
    assert np.all(draws > 0)
    for j, a in enumerate(shapes):
        assert stats.kstest(draws[:, j], stats.gamma(a).cdf).pvalue > 1e-3, a
    # a wrong shape is detected: the draws for a = 2.5 are not Gamma(2.7)
    assert stats.kstest(draws[:, 3], stats.gamma(2.7).cdf).pvalue < 1e-3


def test_gamma_nonfinite_shape_and_dtype():
    out = gamma(jax.random.PRNGKey(0), jnp.array([jnp.nan, 2.0, jnp.inf]))
    assert np.isnan(out[0]) and np.isfinite(out[1]) and np.isnan(out[2])
    assert gamma(jax.random.PRNGKey(0), jnp.ones(3, jnp.float32)).dtype == jnp.float32
