r"""Gamma variates with a small compiled program: Marsaglia–Tsang, vectorised.

``jax.random.gamma`` maps a per-element rejection loop over its input and adds
log-space and gradient machinery; each call site compiles to a program of ~1100
StableHLO lines and about 3 CPU-seconds of XLA compile on our 2-core machine -- more
than the rest of a GSMTR Gibbs sweep.  The Gibbs kernels only need exact draws, so
:func:`gamma` implements the same method directly, for a whole array at once:

Marsaglia & Tsang (2000, ACM TOMS 26:363).  For shape a ≥ 1, with d = a − 1/3 and
c = 1/√(9d): propose x ~ N(0, 1), v = (1 + cx)³; accept d·v when v > 0 and
log u < x²/2 + d − dv + d log v (u ~ U(0, 1)).  The acceptance rate is ≥ 0.95 for
every a ≥ 1.  For a < 1 the boost G(a) = G(a + 1)·u^{1/a} (their §6).  One
``while_loop`` over rounds redraws (x, u, u_boost) for the whole array from one
uniform call (x = Φ⁻¹(u₀); the key of round i is ``fold_in(key, i)``) and keeps the
first accepted proposal of each element: the accepted value of every element is an exact
Gamma(a, 1) draw, independent across elements.  After :data:`MAX_ROUNDS` rounds
(failure probability < 0.05^64 per element for a finite shape) an element still
rejected is NaN -- only a NaN or infinite shape gets there.

The stream of random numbers differs from ``jax.random.gamma``'s, so a kernel
switching to it draws a different (equally exact) sequence for the same seed.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax
from jax.scipy.special import ndtri

from bayesimg.models.core import flat_random

#: rounds of proposals before an element is given up as NaN (non-finite shapes only)
MAX_ROUNDS = 64


def gamma(key, a, shape=None, dtype=None):
    """Gamma(a, 1) variates of ``shape`` (default ``a``'s shape; ``a`` broadcast to it)."""
    dtype = dtype or (a.dtype if hasattr(a, "dtype") and jnp.issubdtype(a.dtype, jnp.floating)
                      else jnp.result_type(float))
    a = jnp.asarray(a, dtype)
    shape = a.shape if shape is None else tuple(shape)
    a = jnp.broadcast_to(a, shape)
    boosted = a < 1.0
    d = jnp.where(boosted, a + 1.0, a) - 1.0 / 3.0
    c = 1.0 / jnp.sqrt(9.0 * d)
    tiny = jnp.finfo(dtype).tiny

    def round_(carry):
        i, out, done = carry
        # one uniform call per round (each random call site compiles its own hash):
        # x = Φ⁻¹(u₀), the acceptance u₁, the boost u₂ kept with the accepted proposal
        u = flat_random.uniform(jax.random.fold_in(key, i), (3,) + shape, dtype, minval=tiny)
        x = ndtri(u[0])
        v = (1.0 + c * x) ** 3
        v_pos = jnp.where(v > 0, v, 1.0)
        ok = (v > 0) & (jnp.log(u[1]) < 0.5 * x * x + d - d * v_pos + d * jnp.log(v_pos))
        value = jnp.where(boosted, d * v_pos * jnp.exp(jnp.log(u[2]) / a), d * v_pos)
        return i + 1, jnp.where(ok & ~done, value, out), done | ok

    def more(carry):
        i, _, done = carry
        return (i < MAX_ROUNDS) & ~jnp.all(done)

    start = (jnp.zeros((), jnp.int32), jnp.full(shape, jnp.nan, dtype), jnp.zeros(shape, bool))
    return lax.while_loop(more, round_, start)[1]
