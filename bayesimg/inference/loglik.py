"""Pointwise log-likelihood per leave-one-out unit, computed inside compiled programs.

For an observed site with dims ``(unit, *rest)`` (e.g. ``y`` with
``(subject, phenotype)``) the log-density of every cell is summed over
``rest``: one value per unit (subject) and draw, the quantity WAIC and
PSIS-LOO need for leave-one-subject-out.  It is computed per draw, inside the
sampler, so no second pass over the posterior (and no hours-long
``from_numpyro(log_likelihood=True)``) is ever needed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import jax
import numpy as np
from numpyro.infer.util import log_likelihood

from bayesimg.inference.sharding import to_host


def pointwise_loglik_fn(model_fn, observed: Mapping[str, tuple[str, ...]]) -> Callable:
    """``f(sample, kwargs) -> {site: (n_units,) log-likelihood}`` for one draw."""

    def per_unit(sample, kwargs):
        cells = log_likelihood(model_fn, sample, batch_ndims=0, **kwargs)
        out = {}
        for site in observed:
            value = cells[site]
            out[site] = value.sum(axis=tuple(range(1, value.ndim))) if value.ndim > 1 else value
        return out

    return per_unit


def batched_loglik(model_fn, observed, samples: dict, kwargs: dict, batch: int = 256):
    """Pointwise log-likelihood for a flat batch of draws (leading axis), chunked.

    Every chunk has the same length -- ``batch``, or the power of two at or above the
    number of draws if that is smaller -- the last one padded by repeating its final
    draw (rows dropped after), so the number of draws never changes the compiled
    program: one program serves 300 or 301 draws.
    """
    f = jax.jit(jax.vmap(pointwise_loglik_fn(model_fn, observed), in_axes=(0, None)))
    samples = to_host(samples)   # slicing and padding on the host: no program per length
    n = next(iter(samples.values())).shape[0]
    size = min(batch, 1 << max(0, n - 1).bit_length())
    parts = []
    for start in range(0, n, size):
        stop = min(start + size, n)
        take = np.minimum(np.arange(start, start + size), stop - 1)
        chunk = jax.tree.map(lambda x, t=take: x[t], samples)
        out = to_host(f(chunk, kwargs))  # (subjects may span several hosts)
        parts.append(jax.tree.map(lambda x, m=stop - start: x[:m], out))
    return jax.tree.map(lambda *xs: np.concatenate(xs, axis=0), *parts)
