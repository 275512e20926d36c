r"""``jax.random`` samplers drawn as a flat vector and reshaped: the same numbers, a
smaller program.

On CPU, JAX lowers the Threefry-2x32 hash behind every ``jax.random`` call to a
5-round loop over arrays of the output's shape, and XLA:CPU compiles that loop as one
LLVM kernel whose compile time grows with the *rank* of the shape, not its size.
Measured on our 2-core machine (``jax`` 0.12, float64): ``uniform`` of shape
(10, 3, 11) 1.3 CPU-s of XLA compile, of shape (330,) 0.2; (2, 300) 0.6 against
(600,) 0.2.  A Gibbs sweep with a handful of matrix-shaped draws spent several seconds
compiling hashes.

The bits of a draw depend only on each element's flat (row-major) index: with
``jax_threefry_partitionable`` (the default) the hash counters are the flat index
split into two 32-bit words, and without it a flat ``iota`` reshaped.  So drawing
``prod(shape)`` values and reshaping gives **bitwise the same numbers** as the
``jax.random`` call with ``shape`` (``tests/core/test_flat_random.py`` checks it for
each sampler here); swapping these in changes no kernel's draws.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp


def uniform(key, shape, dtype=None, minval=0.0, maxval=1.0):
    """``jax.random.uniform(key, shape, dtype, minval, maxval)``, drawn flat."""
    shape = tuple(shape)
    return jax.random.uniform(key, (math.prod(shape),), dtype, minval, maxval).reshape(shape)


def normal(key, shape, dtype=None):
    """``jax.random.normal(key, shape, dtype)``, drawn flat."""
    shape = tuple(shape)
    return jax.random.normal(key, (math.prod(shape),), dtype).reshape(shape)


def split(key, shape):
    """``jax.random.split(key, shape)`` for a tuple ``shape``, split flat."""
    shape = tuple(shape)
    keys = jax.random.split(key, math.prod(shape))
    return keys.reshape(shape + keys.shape[1:])


def categorical(key, logits, axis=-1):
    """``jax.random.categorical(key, logits, axis)`` (one draw per batch element): the
    Gumbel-max trick with ``jax.random.gumbel``'s default-mode variates,
    −log(−log u), u ~ U(tiny, 1), drawn flat."""
    logits = jnp.asarray(logits)
    u = uniform(key, logits.shape, logits.dtype, jnp.finfo(logits.dtype).tiny, 1.0)
    return jnp.argmax(-jnp.log(-jnp.log(u)) + logits, axis=axis)
