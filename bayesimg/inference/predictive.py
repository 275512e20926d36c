"""Posterior predictive draws of the observed sites, added to a fit as a new group."""

from __future__ import annotations

import jax
import numpy as np
import xarray as xr
from numpyro.infer import Predictive

from bayesimg.data.base import SubjectData
from bayesimg.inference.common import device_args
from bayesimg.inference.fit import Fit
from bayesimg.models.core.base import Model


def add_posterior_predictive(fit: Fit, model: Model, data: SubjectData, *, num_draws: int = 100,
                             seed: int = 0) -> Fit:
    """A new :class:`Fit` with a ``posterior_predictive`` group (``fit`` is not changed).

    ``num_draws`` posterior draws in total, spread evenly over chains, are pushed
    through the model with the observed sites left free.
    """
    post = fit.posterior
    n_chains, n_draws = post.sizes["chain"], post.sizes["draw"]
    per_chain = max(1, min(n_draws, num_draws // n_chains))
    idx = np.unique(np.linspace(0, n_draws - 1, per_chain).round().astype(int))
    samples = {name: np.asarray(post[name].values[:, idx]).reshape((-1,) + post[name].shape[2:])
               for name in post.data_vars}
    method = fit.method if fit.method in ("nuts", "gibbs", "svi", "map") else "nuts"
    model_fn = model.numpyro_model(method)
    kwargs = device_args(model.predictive_args(data, method))
    predictive = Predictive(model_fn, posterior_samples=samples,
                            return_sites=list(model.observed))
    draws = jax.device_get(predictive(jax.random.PRNGKey(seed), **kwargs))
    coords = model.coords(data)
    variables = {}
    for site, dims in model.observed.items():
        value = np.asarray(draws[site]).reshape((n_chains, len(idx)) + draws[site].shape[1:])
        variables[site] = (("chain", "draw") + tuple(dims), value)
    used = {d for dims in model.observed.values() for d in dims}
    ds = xr.Dataset(variables, coords={"chain": np.arange(n_chains), "draw": idx,
                                       **{d: coords[d] for d in used if d in coords}})
    tree = fit.tree.copy()
    tree["posterior_predictive"] = xr.DataTree(ds)
    return Fit(tree)
