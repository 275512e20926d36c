"""Prediction: new subjects (:func:`predict`) and the training data's posterior predictive.

``bayesimg.predict(fit, new_data)`` (or ``fit.predict(new_data)``) works for every
family from the fit's DataTree alone (a saved-and-loaded fit predicts): the model
is rebuilt from the fit's attributes (:func:`model_from_fit`) and its
``predict_draws`` hook does the family's maths.  It returns an ``xarray.DataTree``:

* ``predictions`` — posterior predictive draws ``(chain, draw, subject, …)`` in the
  data's ORIGINAL units (the standardisation of the training data undone; the new
  data's own standardisation undone first, then the TRAINING centres applied);
* ``predictions_summary`` — ``<name>_mean`` (the posterior mean of the conditional
  expectation), ``<name>_sd`` (of the predictive draws), membership probabilities
  (mixtures), and, when the new data carry outcomes, ``log_pred_density`` (subject):
  log p(ỹ_i | training data) = log mean_s p(ỹ_i | θ_s) in original units, and
  ``log_pred_density_model`` in the fit's model units (those of ``fit.loo()``);
* ``log_likelihood`` — log p(ỹ_i | θ_s) per draw (original units), when outcomes given;
* ``predictions_constant_data`` — the inputs in model units.

Attributes say the units, the draws used and the family's notes.
"""

from __future__ import annotations

import json
import math

import jax
import numpy as np
import xarray as xr
from numpyro.infer import Predictive
from scipy.special import logsumexp

from bayesimg.data.base import SubjectData
from bayesimg.errors import ModelSpecError
from bayesimg.inference.common import device_args
from bayesimg.inference.fit import Fit
from bayesimg.models.core.base import Model
from bayesimg.models.core.predict import thin_indices

__all__ = ["add_posterior_predictive", "model_from_fit", "predict"]


def _model_classes() -> dict[str, type]:
    import bayesimg.models as models

    out: dict[str, type] = {}
    stack = list(Model.__subclasses__())
    while stack:
        cls = stack.pop()
        stack.extend(cls.__subclasses__())
        out.setdefault(cls.__name__, cls)
    for name in getattr(models, "__all__", ()):
        cls = getattr(models, name, None)
        if isinstance(cls, type) and issubclass(cls, Model):
            out[cls.__name__] = cls
    return out


def model_from_fit(fit) -> Model:
    """The model a fit was made with, rebuilt from its ``model_class``/``model_settings``."""
    tree = fit.tree if isinstance(fit, Fit) else fit
    attrs = tree.attrs
    classes = _model_classes()
    cls = classes.get(str(attrs.get("model_class", "")))
    if cls is None:
        by_name = {getattr(c, "name", None): c for c in classes.values()}
        cls = by_name.get(str(attrs.get("model", "")))
    if cls is None:
        raise ModelSpecError(
            f"cannot tell which model made this fit (model={attrs.get('model')!r}, "
            f"model_class={attrs.get('model_class')!r})")
    raw = attrs.get("model_settings", "{}")
    settings = json.loads(raw) if isinstance(raw, str) else dict(raw)
    settings = {k: tuple(v) if isinstance(v, list) else v for k, v in settings.items()}
    try:
        return cls(**settings)
    except TypeError as err:
        raise ModelSpecError(f"cannot rebuild {cls.__name__} from the fit's settings: {err}") \
            from err


def _selection(tree: xr.DataTree, num_draws: int | None) -> tuple[np.ndarray, int, np.ndarray]:
    post = tree["posterior"].dataset
    n_chains, n_draws = int(post.sizes["chain"]), int(post.sizes["draw"])
    idx = thin_indices(n_chains, n_draws, num_draws)
    flat = (np.arange(n_chains)[:, None] * n_draws + idx[None, :]).ravel()
    return idx, n_chains, flat


def predict(fit: Fit, new_data: SubjectData, *, num_draws: int | None = None,
            seed: int = 0) -> xr.DataTree:
    """Posterior predictive of subjects the fit never saw (see the module docstring).

    Parameters
    ----------
    fit : Fit
    new_data : Dataset or MultiViewData
        The new subjects, built like the training data (same SNP / phenotype /
        covariate / feature names; extra columns are ignored, missing ones are a
        named error).  Outcomes (phenotypes, views) are optional: with them the
        pointwise log predictive density is returned too.
    num_draws : int, optional
        Posterior draws used (evenly thinned per chain); default all.
    seed : int
        Seed of the predictive noise.
    """
    if not isinstance(fit, Fit):
        raise ModelSpecError(f"predict needs a bayesimg Fit, got {type(fit).__name__}")
    if num_draws is not None and (not isinstance(num_draws, int | np.integer) or num_draws < 1):
        raise ModelSpecError(f"num_draws must be a positive integer or None, got {num_draws!r}")
    tree = fit.tree
    if fit.n_chains * fit.n_draws < 2 and fit.method == "map":
        pass  # a MAP point: one draw, plug-in prediction
    model = model_from_fit(fit)
    idx, n_chains, flat = _selection(tree, num_draws)
    rng = np.random.default_rng(seed)
    res = model.predict_draws(tree, new_data, draws=flat, rng=rng)
    n_sel = idx.size
    lead = ("chain", "draw")
    base_coords = {"chain": np.arange(n_chains), "draw": idx, **res.coords}

    def per_chain(a):
        a = np.asarray(a)
        return a.reshape((n_chains, n_sel) + a.shape[1:])

    draws = xr.Dataset({name: (lead + dims, per_chain(v)) for name, (dims, v) in
                        res.draws.items()}, coords=base_coords)
    summary = {}
    for name, (dims, v) in res.means.items():
        summary[f"{name}_mean"] = (dims, np.mean(v, axis=0))
    for name, (dims, v) in res.draws.items():
        if not np.issubdtype(np.asarray(v).dtype, np.floating):
            continue
        summary[f"{name}_sd"] = (dims, np.std(v, axis=0, ddof=1) if v.shape[0] > 1
                                 else np.zeros(v.shape[1:]))
    for name, (dims, v) in res.probabilities.items():
        summary[name] = (dims, np.mean(v, axis=0))
        draws[name] = (lead + dims, per_chain(v))
    groups = {"predictions": draws}
    attrs = {"units": res.attrs.get("units", ""), "draws_used": int(flat.size),
             "model": fit.model_name, "method": fit.method,
             **{k: v for k, v in res.attrs.items() if k != "units"}}
    if res.log_density is not None:
        S = res.log_density.shape[0]
        lpd_model = logsumexp(res.log_density, axis=0) - math.log(S)
        jac = res.log_jacobian if res.log_jacobian is not None else np.zeros_like(lpd_model)
        unit = "subject" if "subject" in res.coords else "sample"
        summary["log_pred_density"] = ((unit,), lpd_model + jac)
        summary["log_pred_density_model"] = ((unit,), lpd_model)
        groups["log_likelihood"] = xr.Dataset(
            {"y": (lead + (unit,), per_chain(res.log_density + jac[None, :]))},
            coords={k: base_coords[k] for k in ("chain", "draw", unit)})
        attrs["log_pred_density"] = ("log mean_s p(new outcomes | θ_s), per subject, in "
                                     "original units; log_pred_density_model: in the fit's "
                                     "model units (as fit.loo())")
    groups["predictions_summary"] = xr.Dataset(summary, coords=res.coords)
    if res.inputs:
        groups["predictions_constant_data"] = xr.Dataset(
            {k: v for k, v in res.inputs.items()},
            coords={d: res.coords[d] for dims, _ in res.inputs.values() for d in dims
                    if d in res.coords})
    out = xr.DataTree.from_dict(groups)
    out.attrs.update({k: (v if isinstance(v, str | int | float) else json.dumps(v))
                      for k, v in attrs.items()})
    return out


def add_posterior_predictive(fit: Fit, model: Model | None = None,
                             data: SubjectData | None = None, *, num_draws: int = 100,
                             seed: int = 0) -> Fit:
    """A new :class:`Fit` with a ``posterior_predictive`` group (``fit`` is not changed).

    ``num_draws`` posterior draws in total, spread evenly over chains.  The draws are in
    the units of the fit's ``observed_data`` (the model's), so ArviZ's posterior
    predictive checks (``arviz_plots.plot_ppc_dist(fit.tree)``) work on the result.
    Without ``model``/``data`` (regression families: GSMTR, GLRR), the model is rebuilt
    from the fit and its training data read from the fit (``constant_data``,
    ``observed_data``).
    """
    if model is None or data is None:
        return _posterior_predictive_from_tree(fit, num_draws=num_draws, seed=seed)
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


def _posterior_predictive_from_tree(fit: Fit, *, num_draws: int, seed: int) -> Fit:
    from bayesimg.models.core.predict import training_dataset

    tree = fit.tree
    if "constant_data" not in tree.children or "X" not in tree["constant_data"].dataset:
        raise ModelSpecError(
            f"{fit.model_name}: pass model= and data= to add_posterior_predictive (the fit "
            "does not carry its training design)")
    model = model_from_fit(fit)
    idx, n_chains, flat = _selection(tree, max(1, int(num_draws)))
    res = model.predict_draws(tree, training_dataset(tree), draws=flat,
                              rng=np.random.default_rng(seed))
    cd = tree["constant_data"].dataset
    y = res.draws["y"][1]
    if "phenotype_center" in cd:   # back to the model units of observed_data
        y = (y - cd["phenotype_center"].values) / cd["phenotype_scale"].values
    ds = xr.Dataset({"y": (("chain", "draw", "subject", "phenotype"),
                           y.reshape((n_chains, idx.size) + y.shape[1:]))},
                    coords={"chain": np.arange(n_chains), "draw": idx,
                            **{k: v for k, v in res.coords.items()
                               if k in ("subject", "phenotype")}})
    new = tree.copy()
    new["posterior_predictive"] = xr.DataTree(ds)
    return Fit(new)
