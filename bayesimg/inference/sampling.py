"""MCMC fits (NUTS or a model's exact Gibbs kernel) through the compiled driver."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
from numpyro.infer import NUTS

from bayesimg.data.base import SubjectData
from bayesimg.inference.checkpoint import Checkpoint, fingerprint_of
from bayesimg.inference.common import base_attrs, check_inputs, check_positive_int, device_args
from bayesimg.inference.convert import streaming_group, to_datatree
from bayesimg.inference.fit import Fit
from bayesimg.inference.loglik import pointwise_loglik_fn
from bayesimg.inference.mcmc import choose_layout, compiled_mcmc, program_warmup, steps_per_call
from bayesimg.inference.sharding import shard_model_args, sharded_chain_method
from bayesimg.inference.storage import DEFAULT_MAX_DRAW_BYTES, LOGLIK_PREFIX, plan_storage
from bayesimg.models.core.base import Model


def sample(model: Model, data: SubjectData, *, kernel: str = "nuts", chains: int = 4,
           warmup: int = 1000, draws: int = 1000, thin: int = 1, seed: int = 0,
           chain_method: str = "auto", progress: bool = True, target_accept: float = 0.8,
           max_tree_depth: int = 10, dense_mass: bool = False,
           max_draw_bytes: float | None = DEFAULT_MAX_DRAW_BYTES,
           importance_threshold: float = 0.05, checkpoint: str | None = None,
           checkpoint_every: int | None = None, shard_data: bool | int = False) -> Fit:
    """Sample the posterior of ``model`` on ``data`` with NUTS or its Gibbs kernel.

    Parameters
    ----------
    kernel : {"nuts", "gibbs"}
    chains, warmup, draws, thin : int
        ``draws`` kept per chain, every ``thin``-th transition after ``warmup``.
    seed : int
        Same seed, data and settings give the same draws (on CPU).
    chain_method : {"auto", "parallel", "vectorized", "sequential"}
        "auto": parallel over CPU devices, vectorised on GPU.
    max_draw_bytes : float or None
        Budget for the kept draws of all sites and chains (default 2 GiB).
        Above it every k-th draw is kept and large sites get exact streaming
        summaries over all draws (:mod:`bayesimg.inference.storage`); ``None``
        keeps everything.
    importance_threshold : float
        ``P(|x| > threshold)`` is streamed for large sites when thinning.
    checkpoint : path or None
        Folder where the run commits its state and draws as it goes
        (:mod:`bayesimg.inference.checkpoint`); if it already holds a commit of
        the same run, sampling continues from there and gives the same draws
        as an uninterrupted run.  Removed when the run completes.
    checkpoint_every : int or None
        Commit at most every that many transitions per chain (default: at
        every chunk, about 5% of the run).
    shard_data : bool or int
        Split the subjects over all (``True``) or ``k`` devices and run the chains
        vectorised in one program (:mod:`bayesimg.inference.sharding`).
    """
    check_inputs(model, data)
    chains = check_positive_int("chains", chains)
    warmup = check_positive_int("warmup", warmup, 0)
    draws = check_positive_int("draws", draws)
    thin = check_positive_int("thin", thin)
    model_fn = model.numpyro_model(kernel)
    layout = choose_layout(chains, sharded_chain_method(chain_method, shard_data))
    kernel_settings, make_kernel = mcmc_kernel(model, data, kernel, model_fn,
                                               target_accept=target_accept,
                                               max_tree_depth=max_tree_depth,
                                               dense_mass=dense_mass)
    args = model.model_args(data, kernel)
    kwargs, sharded = shard_model_args(model, data, kernel, args, device_args(args), shard_data)
    # the data placement changes the compiled program: part of its cache key and settings
    kernel_settings = {**kernel_settings, **sharded}
    storage = plan_storage(_stored_sizes(model_fn, kwargs, model), chains, draws,
                           max_draw_bytes=max_draw_bytes, threshold=importance_threshold,
                           not_streamed=model.label_dependent_sites)
    # the buffer (compiled) depends only on the draw size, never on warmup or draws, so
    # a short trial run and the long run after it share one program
    chunk = storage.chunk
    per_call = steps_per_call(warmup, draws)
    ckpt = None
    if checkpoint is not None:
        if checkpoint_every is not None:
            checkpoint_every = check_positive_int("checkpoint_every", checkpoint_every)
            per_call = min(per_call, checkpoint_every)
        ckpt = Checkpoint(checkpoint, fingerprint_of({
            "model": model.name, "settings": model.settings(), "data": data.fingerprint(),
            "method": kernel, "chains": chains, "warmup": warmup, "draws": draws, "thin": thin,
            "seed": seed, "layout": [layout.method, layout.n_devices, layout.per_device],
            "kernel_settings": kernel_settings, "keep_every": storage.keep_every,
            "precision": str(jnp.result_type(float))}), every=checkpoint_every)
    program = compiled_mcmc(
        (model.static_key(data), kernel, tuple(sorted(kernel_settings.items()))),
        make_kernel, num_warmup=program_warmup(kernel, warmup), layout=layout, chunk=chunk,
        record_extra=pointwise_loglik_fn(model_fn, model.observed),
        drop_sites=model.hidden_sites, store_for=stored_model_class(model, kernel))
    out = program.run(jax.random.PRNGKey(seed), kwargs, num_samples=draws, thin=thin,
                      progress=progress, desc=f"{kernel.upper()} {model.name}", storage=storage,
                      checkpoint=ckpt, per_call=per_call, num_warmup=warmup)
    settings = {"chains": chains, "warmup": warmup, "draws": draws, "thin": thin,
                "chain_method": layout.method, "devices": layout.n_devices, **kernel_settings}
    fit = mcmc_fit(model, data, kernel=kernel, seed=seed, settings=settings, out=out,
                   storage=storage, stacklevel=5)
    if ckpt is not None:
        ckpt.finish()
    return fit


def stored_model_class(model: Model, kernel: str) -> type | None:
    """The model class whose programs may be kept on disk (:mod:`bayesimg.stored_programs`),
    or ``None``: the exact Gibbs kernels only, whose programs take every
    data value as an argument (the driver already reuses them across data sets in a
    process); NUTS's init strategy may hold data-derived start values."""
    return type(model) if kernel == "gibbs" else None


def mcmc_kernel(model: Model, data: SubjectData, kernel: str, model_fn, *,
                target_accept: float = 0.8, max_tree_depth: int = 10,
                dense_mass: bool = False) -> tuple[dict, Callable[[], Any]]:
    """``(kernel_settings, make_kernel)``: NUTS on ``model_fn`` or the model's Gibbs kernel."""
    if kernel == "nuts":
        init_strategy = model.init_strategy(data, "nuts")
        kernel_settings = {"target_accept": float(target_accept),
                           "max_tree_depth": int(max_tree_depth), "dense_mass": bool(dense_mass)}
        start = start_values_digest(init_strategy)
        if start is not None:
            # start values computed from the data are closed over by the compiled program:
            # part of its key, so another data set of the same layout never reuses them
            kernel_settings["start_values"] = start

        def make_kernel():
            return NUTS(model_fn, init_strategy=init_strategy,
                        target_accept_prob=target_accept, max_tree_depth=max_tree_depth,
                        dense_mass=dense_mass)
    elif kernel == "gibbs":
        kernel_settings = {}

        def make_kernel():
            return model.gibbs_kernel(data)
    else:  # pragma: no cover - guarded by the api
        raise ValueError(kernel)
    return kernel_settings, make_kernel


def start_values_digest(init_strategy) -> str | None:
    """SHA-256 of the start values an ``init_to_value`` strategy holds, or ``None`` for a
    strategy without data-derived values (e.g. ``init_to_uniform``)."""
    values = getattr(init_strategy, "keywords", {}).get("values")
    if not values:
        return None
    digest = hashlib.sha256()
    for name in sorted(values):
        arr = np.ascontiguousarray(np.asarray(values[name]))
        digest.update(f"{name}:{arr.dtype.str}:{arr.shape};".encode())
        digest.update(arr.tobytes())
    return digest.hexdigest()[:16]


def mcmc_fit(model: Model, data: SubjectData, *, kernel: str, seed: int, settings: dict,
             out: dict[str, Any], storage, stacklevel: int | None = None) -> Fit:
    """Package one run's host arrays ``out`` (``samples``, ``stats``, ``extra``,
    ``timings``, ``streaming``; leading dims chain, draw) as a :class:`Fit`.

    Sampling problems (divergences, R-hat, Cholesky jitter) are warned about
    with this ``stacklevel`` (of :func:`warn_after_sampling`'s ``warnings.warn``;
    5 points at the caller of ``bayesimg.fit``); ``None``: no warning.
    """
    attrs = base_attrs(model, data, kernel, seed, settings)
    attrs["timings"] = out["timings"]
    extra_groups = {}
    if storage.thinned:
        attrs["draw_storage"] = storage.describe()
        extra_groups["posterior_streaming"] = streaming_group(model, data, out["streaming"],
                                                              storage.describe())
    stats = dict(out["stats"])
    if "diverging" in stats:
        stats["diverging"] = stats["diverging"].astype(bool)
    tree = to_datatree(model, data, samples=_numpy(out["samples"]), stats=_numpy(stats),
                       loglik=_numpy(out["extra"]), attrs=attrs, extra_groups=extra_groups)
    fit = Fit(tree)
    if stacklevel is not None:
        # divergences, R-hat > 1.01 and Cholesky jitter surface at once, with advice
        from bayesimg.report.diagnostics import warn_after_sampling
        warn_after_sampling(fit, stacklevel=stacklevel)
    return fit


def _stored_sizes(model_fn, kwargs: dict, model: Model) -> dict[str, int]:
    """Elements per draw of every stored site and of each pointwise log-likelihood.

    Traced abstractly (``jax.eval_shape``): nothing is computed.
    """
    arrays = {k: v for k, v in kwargs.items() if isinstance(v, jax.Array)}
    static = {k: v for k, v in kwargs.items() if k not in arrays}

    def placeholder(site):
        if site["type"] == "sample" and not site["is_observed"]:
            fn = site["fn"]
            return jnp.zeros(fn.batch_shape + fn.event_shape)
        return None

    def shapes(arr):
        substituted = numpyro.handlers.substitute(model_fn, substitute_fn=placeholder)
        tr = numpyro.handlers.trace(numpyro.handlers.seed(substituted, 0)).get_trace(
            **static, **arr)
        return {name: site["value"] for name, site in tr.items()
                if site["type"] in ("sample", "deterministic")}

    traced = jax.eval_shape(shapes, arrays)
    sizes = {}
    for name, value in traced.items():
        if name in model.observed:
            sizes[f"{LOGLIK_PREFIX}{name}"] = int(value.shape[0]) if value.shape else 1
        elif name not in model.hidden_sites:
            sizes[name] = int(np.prod(value.shape, dtype=np.int64))
    return sizes


def _numpy(d):
    return {k: np.asarray(v) for k, v in d.items()}
