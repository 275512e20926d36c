"""Flat-drawn samplers (models.core.flat_random) give bitwise jax.random's numbers."""

import jax
import jax.numpy as jnp
import numpy as np

from bayesimg.models.core import flat_random


def test_flat_draws_are_bitwise_jax_random():
    key = jax.random.PRNGKey(7)
    shape = (4, 3, 5)
    logits = jax.random.normal(jax.random.PRNGKey(1), (3, 6), jnp.float64)
    pairs = [
        (flat_random.uniform(key, shape, jnp.float64, 0.5, 2.0),
         jax.random.uniform(key, shape, jnp.float64, 0.5, 2.0)),
        (flat_random.normal(key, shape, jnp.float64), jax.random.normal(key, shape, jnp.float64)),
        (flat_random.split(key, (2, 3)), jax.random.split(key, (2, 3))),
        (flat_random.categorical(key, logits, axis=0), jax.random.categorical(key, logits, axis=0)),
        (flat_random.categorical(key, logits), jax.random.categorical(key, logits)),
    ]
    # inside a compiled program too (the kernels' case)
    jitted = jax.jit(lambda k: (flat_random.normal(k, shape, jnp.float64),
                                jax.random.normal(k, shape, jnp.float64)))(key)
    for ours, theirs in pairs + [jitted]:
        assert ours.shape == theirs.shape and ours.dtype == theirs.dtype
        np.testing.assert_array_equal(np.asarray(ours), np.asarray(theirs))
    # a different key gives different numbers (the comparison can fail)
    assert not np.array_equal(flat_random.normal(jax.random.PRNGKey(8), shape, jnp.float64),
                              jax.random.normal(key, shape, jnp.float64))
