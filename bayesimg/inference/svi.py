"""Stochastic variational inference and MAP, compiled once per model and data shape.

Guides: ``"mean_field"`` (``AutoNormal``), ``"low_rank"``
(``AutoLowRankMultivariateNormal``) and ``"map"`` (``AutoDelta``: a point mass,
so the ELBO is the log joint density and its optimum the posterior mode; for
GSMTR's marginal form that is the G-SMuRFS estimator).

The optimiser (Adam with a step size decaying geometrically to
``final_lr_fraction`` of ``learning_rate``) runs in compiled chunks of
``lax.scan``; between chunks the loop records the ELBO, updates the progress bar
and checks convergence: the run is *converged* when the mean loss of the last
window differs from the window before by less than ``tol`` × (|mean| + 1)
(default 1e-5 for SVI, whose loss is a noisy estimate, and 1e-9 for MAP).
The whole ELBO history is kept in the fit (group ``svi``, variable ``elbo``).

Draws from the fitted guide form the posterior (one chain); they are an
approximation, flagged ``approximate`` so reports do not show R-hat/ESS and
LOO/WAIC are labelled approximate.
"""

from __future__ import annotations

import functools
import math
import time
import warnings

import jax
import numpy as np
import numpyro.optim as optim
import xarray as xr
from jax import lax
from numpyro.infer import SVI, Predictive, Trace_ELBO
from numpyro.infer.autoguide import AutoDelta, AutoLowRankMultivariateNormal, AutoNormal

from bayesimg.data.base import SubjectData
from bayesimg.errors import LIBRARY_FILES, ConvergenceWarning, ModelSpecError
from bayesimg.inference.checkpoint import Checkpoint, fingerprint_of
from bayesimg.inference.common import base_attrs, check_inputs, check_positive_int, device_args
from bayesimg.inference.convert import to_datatree
from bayesimg.inference.fit import Fit
from bayesimg.inference.loglik import batched_loglik
from bayesimg.inference.progress import progress_bar
from bayesimg.inference.sharding import shard_model_args, to_host
from bayesimg.models.core.base import Model

GUIDES = ("mean_field", "low_rank", "map")


def _make_guide(kind: str, model_fn, init_loc_fn, rank):
    if kind == "mean_field":
        return AutoNormal(model_fn, init_loc_fn=init_loc_fn, init_scale=0.05)
    if kind == "low_rank":
        return AutoLowRankMultivariateNormal(model_fn, init_loc_fn=init_loc_fn, rank=rank,
                                             init_scale=0.05)
    return AutoDelta(model_fn, init_loc_fn=init_loc_fn)


def optimize(model: Model, data: SubjectData, *, guide: str = "mean_field", steps: int = 20000,
             learning_rate: float = 0.01, final_lr_fraction: float | None = None,
             num_draws: int = 1000, seed: int = 0, tol: float | None = None,
             stop_on_convergence: bool = True, rank: int | None = None,
             num_particles: int = 1, progress: bool = True,
             subsample_size: int | None = None, shard_data: bool | int = False,
             checkpoint: str | None = None, checkpoint_every: int | None = None) -> Fit:
    """Fit ``model`` by SVI (``guide="mean_field"|"low_rank"``) or MAP (``guide="map"``).

    ``subsample_size``: optimise on random minibatches of that many subjects per
    step (stochastic gradients of the full-data ELBO; models declaring
    ``supports_subsampling``).  Draws and the pointwise log-likelihood are then
    computed on the full data.

    ``shard_data``: split the subjects over all (``True``) or ``k`` devices
    (:mod:`bayesimg.inference.sharding`).

    ``checkpoint``: a folder where the optimiser state and ELBO history are
    committed every ``checkpoint_every`` steps (default: every chunk); a run
    that finds a commit of the same run there continues from it, with the
    same result as an uninterrupted run (:mod:`bayesimg.inference.checkpoint`).
    """
    check_inputs(model, data)
    if subsample_size is not None:
        if not model.supports_subsampling:
            raise ModelSpecError(f"{model.name} does not support subject minibatches "
                                 "(subsample_size)")
        subsample_size = check_positive_int("subsample_size", subsample_size)
        if subsample_size >= data.n_subjects:
            subsample_size = None  # a minibatch of everyone is the full data
    if guide not in GUIDES:
        raise ModelSpecError(f"guide must be one of {GUIDES}, got {guide!r}")
    steps = check_positive_int("steps", steps)
    num_draws = check_positive_int("num_draws", num_draws)
    if not (learning_rate > 0):
        raise ModelSpecError(f"learning_rate must be > 0, got {learning_rate!r}")
    method = "map" if guide == "map" else "svi"
    if final_lr_fraction is None:
        final_lr_fraction = 0.01 if method == "map" else 0.1
    if tol is None:
        # the MAP loss is deterministic, so it can be converged much more tightly
        tol = 1e-9 if method == "map" else 1e-5
    model_fn = model.numpyro_model(method)
    args = model.model_args(data, method)
    kwargs, sharded = shard_model_args(model, data, method, args, device_args(args), shard_data)
    train_fn = model_fn if subsample_size is None else functools.partial(
        model_fn, subsample_size=subsample_size)
    guide_obj = _make_guide(guide, train_fn, model.init_strategy(data, method), rank)
    decay = final_lr_fraction ** (1.0 / steps)
    optimizer = optim.Adam(step_size=lambda i: learning_rate * decay**i)
    svi = SVI(train_fn, guide_obj, optimizer, Trace_ELBO(num_particles=num_particles))

    rng = jax.random.PRNGKey(seed)
    rng_init, rng_draw = jax.random.split(rng)
    t0 = time.perf_counter()
    state = svi.init(rng_init, **kwargs)
    chunk = max(10, min(1000, math.ceil(steps / 100)))

    @jax.jit
    def run_chunk(st, kw):
        return lax.scan(lambda s, _: svi.update(s, **kw), st, None, length=chunk)

    window = max(chunk, (steps // 20) // chunk * chunk)
    losses: list[np.ndarray] = []
    converged, done = False, 0
    compile_seconds = 0.0
    ckpt = None
    if checkpoint is not None:
        if checkpoint_every is not None:
            checkpoint_every = check_positive_int("checkpoint_every", checkpoint_every)
        ckpt = Checkpoint(checkpoint, fingerprint_of({
            "model": model.name, "settings": model.settings(), "data": data.fingerprint(),
            "method": method, "guide": guide, "steps": steps, "learning_rate": learning_rate,
            "final_lr_fraction": final_lr_fraction, "seed": seed, "tol": tol,
            "stop_on_convergence": stop_on_convergence, "rank": rank,
            "num_particles": num_particles, "subsample_size": subsample_size,
            "precision": str(jax.numpy.result_type(float))}), every=checkpoint_every)
        if ckpt.resuming:
            state = ckpt.state(state)
            losses = [ckpt.extra()["losses"]]
            done = int(ckpt.progress["done"])
            compile_seconds = float(ckpt.progress["compile_seconds"])
    with progress_bar(total=steps, desc=f"{method.upper()} {model.name}",
                      enabled=progress) as bar:
        bar.set_phase("compiling")
        bar.update(done)
        first_chunk = True
        while done < steps:
            t_chunk = time.perf_counter()
            state, chunk_losses = run_chunk(state, kwargs)
            chunk_losses = np.asarray(jax.device_get(chunk_losses))
            if first_chunk:
                compile_seconds += time.perf_counter() - t_chunk
                bar.set_phase("optimising")
                first_chunk = False
            losses.append(chunk_losses)
            done += chunk
            bar.update(chunk)
            history = np.concatenate(losses)
            if ckpt is not None and ckpt.due(chunk):
                ckpt.commit(state, {"done": done, "compile_seconds": compile_seconds}, {},
                            {"losses": history})
            if not np.all(np.isfinite(chunk_losses)):
                raise FloatingPointError(
                    f"{method.upper()} loss became {chunk_losses[~np.isfinite(chunk_losses)][0]} "
                    f"after {done} steps; lower learning_rate (now {learning_rate})")
            bar.set_postfix(elbo=f"{-history[-chunk:].mean():.4g}")
            converged = _converged(history, window, tol)
            if converged and stop_on_convergence:
                break
    fit_seconds = time.perf_counter() - t0
    history = np.concatenate(losses)
    if not converged:
        warnings.warn(
            f"{method.upper()} did not converge in {len(history)} steps (relative ELBO change "
            f"above tol={tol}); raise steps or learning_rate", ConvergenceWarning,
            skip_file_prefixes=LIBRARY_FILES)

    params = svi.get_params(state)
    n_draws = 1 if method == "map" else num_draws
    latent = [name for name, site in guide_obj.prototype_trace.items()
              if (site["type"] == "sample" and not site["is_observed"])
              or site["type"] == "deterministic"]
    predictive = Predictive(model_fn, guide=guide_obj, params=params, num_samples=n_draws,
                            return_sites=latent)
    draws = predictive(rng_draw, **kwargs)
    draws = {k: v for k, v in draws.items() if k in latent}
    loglik = batched_loglik(model_fn, model.observed, draws, kwargs)
    draws = to_host(draws)  # gathers per-subject latents split over several hosts
    samples = {k: np.asarray(v)[None] for k, v in draws.items() if k not in model.hidden_sites}
    loglik = {k: np.asarray(v)[None] for k, v in loglik.items()}

    settings = {"guide": guide, "steps_run": int(len(history)), "steps": steps,
                "learning_rate": learning_rate, "final_lr_fraction": final_lr_fraction,
                "num_draws": n_draws, "tol": tol, "num_particles": num_particles, "rank": rank,
                "subsample_size": subsample_size, **sharded}
    attrs = base_attrs(model, data, method, seed, settings)
    attrs["svi_converged"] = bool(converged)
    attrs["timings"] = {"compile_seconds": compile_seconds, "fit_seconds": fit_seconds}
    elbo = xr.Dataset({"elbo": (("step",), -history)}, coords={"step": np.arange(len(history))})
    tree = to_datatree(model, data, samples=samples, stats=None, loglik=loglik, attrs=attrs,
                       extra_groups={"svi": elbo})
    if ckpt is not None:
        ckpt.finish()
    return Fit(tree)


def _converged(history: np.ndarray, window: int, tol: float) -> bool:
    if len(history) < 2 * window:
        return False
    last = history[-window:].mean()
    previous = history[-2 * window:-window].mean()
    return bool(abs(last - previous) < tol * (abs(last) + 1.0))
