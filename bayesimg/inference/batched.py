"""Many same-shaped MCMC fits in one compiled program, vmapped over fits and chains.

A λ/rank grid, permutation nulls or cross-validation folds of equal size are
fits of one model structure, kernel and argument shapes.  Instead of running
them one after the other, :func:`sample_batch` runs ``F`` of them as one
program: the per-chain ``init``/``advance`` of
:func:`~bayesimg.inference.mcmc.chain_programs` mapped over chains and over
fits, on the same device layout (``pmap`` over CPU devices) as a single fit.

* Model arguments that are the same object (or equal) in every fit — the
  genotype matrix of a λ grid — enter once with ``in_axes=None`` and are never
  copied per fit; those that differ (λ₁, λ₂, a permuted Y, a fold's data) are
  stacked on a leading fit axis (``in_axes=0``).  ``BatchedMCMC.fit_axes``
  records which is which.  The outer ``vmap`` over fits wraps the inner one
  over chains; when the stacked arguments are small (λ values, up to
  :data:`REPEAT_BYTES` of copies) they are instead repeated per chain and one
  ``vmap`` runs over (fit, chain) pairs — the same arithmetic, about 1.5×
  faster to compile.
* Fit ``f`` with seed ``s`` gets exactly the chain keys ``bayesimg.fit(...,
  seed=s)`` uses (``jax.random.split(PRNGKey(s), chains)``, same chain layout),
  so a batched fit reproduces the single fit's draws up to the rounding of the
  batched arithmetic (XLA may sum a wider matrix product in another order).
  Gibbs kernels stay within rounding (measured: 4e-16 after 400 sweeps of
  GSMTR); NUTS trajectories amplify rounding, so over long runs (hundreds of
  warm-up iterations) a batched NUTS fit draws a different, equally valid
  sequence from the same posterior.
* Fits on nearby subject counts share a program where the model's sampler allows
  zero-padded subjects (:mod:`bayesimg.inference.padding`: the folds of a K-fold
  split, 42 and 43 subjects, run as one batch of 44-row arguments).
* The program is compiled once per (model structure, kernel settings, number
  of fits, which arguments are shared, shapes) and cached like single fits
  (:func:`~bayesimg.inference.mcmc.compiled_mcmc`).

Batches keep every draw: fits whose draws would be thinned under their
``max_draw_bytes`` budget go through :func:`bayesimg.fit` one at a time
(:func:`bayesimg.fit_many` arranges that).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from bayesimg.data.base import SubjectData
from bayesimg.errors import ModelSpecError
from bayesimg.inference.common import check_inputs, check_positive_int, device_args
from bayesimg.inference.fit import Fit
from bayesimg.inference.loglik import pointwise_loglik_fn
from bayesimg.inference.mcmc import (
    ChainLayout,
    CompiledMCMC,
    choose_layout,
    compiled_mcmc,
    program_warmup,
)
from bayesimg.inference.padding import (
    drop_padding,
    pad_subjects,
    record_without_count,
    subject_bucket,
    without_count,
)
from bayesimg.inference.sampling import (
    _stored_sizes,
    mcmc_fit,
    mcmc_kernel,
    stored_model_class,
)
from bayesimg.inference.storage import DEFAULT_MAX_DRAW_BYTES, StoragePlan, plan_storage
from bayesimg.models.core.base import Model

#: stacked (per-fit) arguments up to this many bytes in all are repeated per chain, so that
#: one vmap over (fit, chain) pairs replaces two nested ones (faster to compile)
REPEAT_BYTES = 64 * 1024**2


class BatchedMCMC(CompiledMCMC):
    """:class:`CompiledMCMC` for ``n_fits`` fits at once.

    Internally the fits' chains form one flat chain layout (``per_device`` =
    ``n_fits × fit_layout.per_device``, fit-major), so the run loop, chunking
    and progress bar of :class:`CompiledMCMC` apply unchanged;
    :meth:`split_fits` turns its output back into one result per fit.

    Parameters
    ----------
    n_fits : int
    fit_axes : tuple of (argument name, 0 or None)
        0: the argument is stacked over fits; None: shared by all fits.
    fit_layout : ChainLayout
        The chain layout of one fit (as :func:`choose_layout` gives it).
    repeat_per_chain : bool
        False: ``vmap`` over fits (stacked arguments, ``in_axes=0``) of a ``vmap``
        over chains.  True: one ``vmap`` over (fit, chain) pairs, the stacked
        arguments repeated per chain: the same arithmetic, compiled about 1.5×
        faster (NUTS and Gibbs on GSMTR), for ``per_device − 1`` extra copies of
        the stacked arguments (:func:`sample_batch` chooses it when those are
        small, :data:`REPEAT_BYTES`).
    """

    def __init__(self, kernel, *, n_fits: int, fit_axes: tuple[tuple[str, int | None], ...],
                 fit_layout: ChainLayout, num_warmup: int, chunk: int, record_extra=None,
                 drop_sites: frozenset[str] = frozenset(), repeat_per_chain: bool = False):
        self.n_fits = int(n_fits)
        self.fit_axes = dict(fit_axes)
        self.fit_layout = fit_layout
        self.repeat_per_chain = bool(repeat_per_chain)
        flat = ChainLayout(fit_layout.method, fit_layout.n_sequential, fit_layout.n_devices,
                           fit_layout.per_device * self.n_fits)
        super().__init__(kernel, num_warmup=num_warmup, layout=flat, chunk=chunk,
                         record_extra=record_extra, drop_sites=drop_sites)

    def _device_programs(self, init_one, advance_one):
        F, P = self.n_fits, self.fit_layout.per_device

        def axes(kw):
            return {k: self.fit_axes.get(k) for k in kw}

        if self.repeat_per_chain:
            # one vmap over the F·P (fit, chain) pairs; the per-fit arguments repeated
            # per chain (shared ones stay unbatched, never copied)
            def per_chain(kw):
                return {k: (jnp.repeat(v, P, axis=0) if self.fit_axes.get(k) == 0 else v)
                        for k, v in kw.items()}

            def flat_init(keys, kw):
                return jax.vmap(init_one, in_axes=(0, axes(kw)))(keys, per_chain(kw))

            def flat_advance(states, kw, n_slots, thin):
                return jax.vmap(advance_one, in_axes=(0, axes(kw), None, None))(
                    states, per_chain(kw), n_slots, thin)

            return flat_init, flat_advance

        def unflat(tree):   # (F·P, ...) -> (F, P, ...)
            return jax.tree.map(lambda x: x.reshape((F, P) + x.shape[1:]), tree)

        def flat(tree):     # (F, P, ...) -> (F·P, ...)
            return jax.tree.map(lambda x: x.reshape((F * P,) + x.shape[2:]), tree)

        def init(keys, kw):
            per_fit = jax.vmap(jax.vmap(init_one, in_axes=(0, None)), in_axes=(0, axes(kw)))
            return flat(per_fit(unflat(keys), kw))

        def advance(states, kw, n_slots, thin):
            per_fit = jax.vmap(jax.vmap(advance_one, in_axes=(0, None, None, None)),
                               in_axes=(0, axes(kw), None, None))
            return flat(per_fit(unflat(states), kw, n_slots, thin))

        return init, advance

    def _chain_keys(self, rng_key):
        """``rng_key``: one key per fit, ``(n_fits, 2)``; each split as a single fit does."""
        L, F = self.fit_layout, self.n_fits
        keys = jnp.stack([jax.random.split(rng_key[f], L.n_chains) for f in range(F)])
        keys = keys.reshape((F, L.n_sequential, L.n_devices, L.per_device, -1))
        return jnp.moveaxis(keys, 0, 2).reshape(
            (L.n_sequential, L.n_devices, F * L.per_device, -1))

    def split_fits(self, out: dict[str, Any], n_real: int | None = None
                   ) -> list[dict[str, Any]]:
        """:meth:`run`'s output (flat chains) → one output per fit, chains in single-fit order.

        ``n_real``: the first that many fits are real, the rest padding (dropped; the
        batch's time is shared among the real fits only).
        """
        L, F = self.fit_layout, self.n_fits
        n_real = F if n_real is None else int(n_real)

        def per_fit(x):
            x = np.asarray(x)
            x = x.reshape((L.n_sequential, L.n_devices, F, L.per_device) + x.shape[1:])
            return np.moveaxis(x, 2, 0).reshape((F, L.n_chains) + x.shape[4:])

        arrays = {k: jax.tree.map(per_fit, out[k]) for k in ("samples", "stats", "extra")}
        return [{**{k: jax.tree.map(lambda x, f=f: np.array(x[f]), v) for k, v in arrays.items()},
                 "timings": self._fit_timings(out["timings"], f, n_real), "streaming": {}}
                for f in range(n_real)]

    def _fit_timings(self, batch: dict[str, float], f: int, n_real: int) -> dict[str, float]:
        """Fit ``f``'s share: the compilation is the first fit's (the others reuse it);
        warm-up and sampling are the batch's wall time divided by the number of real
        fits, so sums over the fits are the batch's totals."""
        out = {k: v / n_real for k, v in batch.items()}
        out["compile_seconds"] = batch.get("compile_seconds", 0.0) if f == 0 else 0.0
        out["batched_fits"] = n_real
        out["batch_lanes"] = self.n_fits
        return out


def stack_arguments(args: Sequence[Mapping[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Merge the model arguments of several fits: ``(arguments, fit_axes)``.

    An argument that is the same object, or an equal array (same shape, dtype
    and values), in every fit is kept once (axis ``None``); arrays that differ
    are stacked on a new leading axis (axis 0).  Non-array arguments (None,
    int, str) must agree.  Raises :class:`ModelSpecError` when the fits cannot
    share a program (different argument names, shapes or dtypes).
    """
    if not args:
        raise ModelSpecError("no fits to batch")
    names = list(args[0])
    merged: dict[str, Any] = {}
    axes: dict[str, Any] = {}
    for i, a in enumerate(args[1:], start=1):
        if list(a) != names:
            raise ModelSpecError(f"fit {i} has model arguments {sorted(a)}, fit 0 {sorted(names)}")
    for name in names:
        values = [a[name] for a in args]
        first = values[0]
        if first is None or isinstance(first, bool | int | str):
            for v in values[1:]:
                if type(v) is not type(first) or v != first:
                    raise ModelSpecError(
                        f"model argument {name!r} is {first!r} in one fit and {v!r} in another; "
                        "non-array arguments must agree within a batch")
            merged[name], axes[name] = first, None
            continue
        if all(v is first or _same_array(v, first) for v in values[1:]):
            merged[name], axes[name] = first, None
            continue
        arrays = [np.asarray(v) for v in values]
        shapes = {(a.shape, a.dtype.str) for a in arrays}
        if len(shapes) > 1:
            raise ModelSpecError(f"model argument {name!r} differs in shape or dtype between "
                                 f"fits ({sorted(shapes)}); such fits cannot share a program")
        merged[name], axes[name] = np.stack(arrays), 0
    return merged, axes


def _same_array(a, b) -> bool:
    if a is None or b is None or isinstance(a, bool | int | str) or isinstance(b, bool | int | str):
        return False
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.dtype.kind in "fc":
        return bool(np.array_equal(a, b, equal_nan=True))
    return bool(np.array_equal(a, b))


def batch_storage(model: Model, data: SubjectData, kernel: str, *, chains: int, draws: int,
                  max_draw_bytes: float | None = DEFAULT_MAX_DRAW_BYTES,
                  importance_threshold: float = 0.05,
                  kwargs: Mapping[str, Any] | None = None) -> tuple[StoragePlan, dict[str, int]]:
    """The storage plan of one fit (as :func:`bayesimg.fit` would make it) and its site sizes.

    ``kwargs``: the fit's device arguments if already built (only shapes are used).
    """
    model_fn = model.numpyro_model(kernel)
    if kwargs is None:
        kwargs = device_args(model.model_args(data, kernel))
    sizes = _stored_sizes(model_fn, dict(kwargs), model)
    plan = plan_storage(sizes, chains, draws, max_draw_bytes=max_draw_bytes,
                        threshold=importance_threshold)
    return plan, sizes


def sample_batch(models: Sequence[Model], datas: Sequence[SubjectData], seeds: Sequence[int], *,
                 kernel: str = "nuts", chains: int = 4, warmup: int = 1000, draws: int = 1000,
                 thin: int = 1, chain_method: str = "auto", progress: bool = True,
                 target_accept: float = 0.8, max_tree_depth: int = 10, dense_mass: bool = False,
                 max_draw_bytes: float | None = DEFAULT_MAX_DRAW_BYTES,
                 importance_threshold: float = 0.05, warn: bool = True) -> list[Fit]:
    """Sample ``len(models)`` posteriors of one structure and shape in one compiled program.

    ``models[i]`` is fitted to ``datas[i]`` with seed ``seeds[i]``; the options
    are those of :func:`bayesimg.inference.sampling.sample` and are the same for
    every fit.  Returns one :class:`Fit` per fit, each as :func:`bayesimg.fit`
    with that seed would give it; its ``timings`` hold ``batched_fits`` and its
    share of the batch (:meth:`BatchedMCMC._fit_timings`).
    ``warn``: emit the usual sampling-problem warning for each fit.
    """
    if not (len(models) == len(datas) == len(seeds)) or not models:
        raise ModelSpecError("sample_batch needs as many models, data sets and seeds, at least 1")
    chains = check_positive_int("chains", chains)
    warmup = check_positive_int("warmup", warmup, 0)
    draws = check_positive_int("draws", draws)
    thin = check_positive_int("thin", thin)
    seeds = [check_positive_int("seed", s, 0) for s in seeds]
    model, data = models[0], datas[0]
    key = model.static_key(data)
    for m, d in zip(models, datas, strict=True):
        check_inputs(m, d)
        if type(m) is not type(model) or m.static_key(d) != key:
            raise ModelSpecError(
                f"fits of one batch need one model structure: {m!r} on {d.name!r} differs "
                f"from {model!r} on {data.name!r}")
    n_wanted = len(models)
    # pad the batch to a bucket size with copies of its last fit (dropped below): each
    # fit's chains run on their own lanes with their own keys, so the padding changes
    # no draw, and grids/fold sets of neighbouring sizes share one compiled program
    pad = fit_bucket(n_wanted) - n_wanted
    models = [*models, *[models[-1]] * pad]
    datas = [*datas, *[datas[-1]] * pad]
    seeds = [*seeds, *[seeds[-1]] * pad]
    model_fn = model.numpyro_model(kernel)
    layout = choose_layout(chains, chain_method)
    kernel_settings, make_kernel = mcmc_kernel(model, data, kernel, model_fn,
                                               target_accept=target_accept,
                                               max_tree_depth=max_tree_depth,
                                               dense_mass=dense_mass)
    # subjects padded to one bucket size where the sampler allows it (padding.py): folds
    # of 42 and 43 subjects share a program
    n_to = subject_bucket(max(d.n_subjects for d in datas))
    merged, axes = stack_arguments([pad_subjects(m, d, kernel, m.model_args(d, kernel), n_to)
                                    for m, d in zip(models, datas, strict=True)])
    kwargs = device_args(merged)
    n_fits = len(models)
    one = without_count({k: (v[0] if axes[k] == 0 else v) for k, v in kwargs.items()})
    storage, sizes = batch_storage(model, data, kernel, chains=chains, draws=draws,
                                   max_draw_bytes=max_draw_bytes,
                                   importance_threshold=importance_threshold, kwargs=one)
    if storage.thinned:
        raise ModelSpecError(
            f"the draws of one fit ({storage.bytes_per_draw * draws / 1e9:.2g} GB) exceed "
            f"max_draw_bytes and would be thinned; run such fits through bayesimg.fit")
    batch_chunk = plan_storage(sizes, chains * n_fits, draws, max_draw_bytes=None).chunk
    stacked_bytes = sum(np.asarray(v).nbytes for k, v in merged.items() if axes[k] == 0)
    repeat = stacked_bytes * (layout.per_device - 1) <= REPEAT_BYTES
    program = compiled_mcmc(
        (key, kernel, tuple(sorted(kernel_settings.items()))), make_kernel,
        program_class=BatchedMCMC, n_fits=n_fits, fit_axes=tuple(sorted(axes.items())),
        fit_layout=layout, num_warmup=program_warmup(kernel, warmup), chunk=batch_chunk,
        repeat_per_chain=repeat,
        record_extra=record_without_count(pointwise_loglik_fn(model_fn, model.observed)),
        drop_sites=model.hidden_sites, store_for=stored_model_class(model, kernel))
    rng = jnp.stack([jax.random.PRNGKey(s) for s in seeds])
    out = program.run(rng, kwargs, num_samples=draws, thin=thin, progress=progress,
                      desc=f"{kernel.upper()} {model.name} ×{n_wanted}", num_warmup=warmup)
    settings = {"chains": chains, "warmup": warmup, "draws": draws, "thin": thin,
                "chain_method": layout.method, "devices": layout.n_devices, **kernel_settings}
    per_fit = program.split_fits(out, n_wanted)
    for d, o in zip(datas, per_fit, strict=False):
        o["extra"] = drop_padding(o["extra"], d.n_subjects)
    return [mcmc_fit(m, d, kernel=kernel, seed=s, settings=settings, out=o, storage=storage,
                     stacklevel=4 if warn else None)
            for m, d, s, o in zip(models[:n_wanted], datas[:n_wanted], seeds[:n_wanted],
                                  per_fit, strict=True)]


def fit_bucket(n_fits: int) -> int:
    """Fits per compiled batch program for a batch of ``n_fits``: the next power of two.

    A grid of 3 or 4 λ values, or of 5 to 8, runs one program; the price is up to
    ``n − 1`` padded lanes of sampling (a 5-value grid samples 8 fits' chains), small
    next to a compile for the small fits where compiling dominates.
    """
    return 1 << max(0, int(n_fits) - 1).bit_length()
