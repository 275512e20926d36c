"""One MCMC driver for every kernel (NUTS, exact Gibbs kernels), compiled once.

Plain ``numpyro.infer.MCMC.run`` closes over the data and recompiles on every
call (~30 s of compile for ~4 s of sampling on a small model).  This driver
instead builds two programs whose data are *arguments*:

``init(keys, data)``
    initial kernel states of all chains;
``advance(states, data, n_slots, thin)``
    runs ``n_slots × thin`` kernel transitions per chain and records, every
    ``thin`` transitions, the constrained sample, the kernel's sample stats and
    the pointwise log-likelihood per LOO unit, into a fixed-size buffer.

Both are compiled once per (model structure, kernel settings, data shapes) and
cached in-process, so refits on new data or new hyperparameters (λ grids,
folds) reuse them.  The Python loop around ``advance`` moves finished chunks
to host memory (bounded device memory), drives the progress bar (with a
separate, visible compile phase) and is where a run can stop and resume: the
kernel state holds its own RNG key, so chunking does not change the draws.

Chain layout: ``"parallel"`` maps chains over JAX devices (``pmap``; vectorised
within a device when chains outnumber devices), ``"vectorized"`` vmaps all
chains on one device (the GPU default), ``"sequential"`` runs them one after the
other through the same compiled program.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from bayesimg.errors import ModelSpecError
from bayesimg.inference.progress import progress_bar
from bayesimg.inference.storage import StoragePlan, StreamingSummary
from bayesimg.inference.threads import blas_threads_for

CHAIN_METHODS = ("auto", "parallel", "vectorized", "sequential")


@dataclasses.dataclass(frozen=True)
class ChainLayout:
    """How chains are spread: sequential groups × devices × vectorised per device."""

    method: str
    n_sequential: int
    n_devices: int
    per_device: int

    @property
    def n_chains(self) -> int:
        return self.n_sequential * self.n_devices * self.per_device


def choose_layout(chains: int, chain_method: str = "auto") -> ChainLayout:
    """Pick how to run ``chains`` chains on the available devices."""
    if chains < 1:
        raise ModelSpecError(f"chains must be >= 1, got {chains}")
    if chain_method not in CHAIN_METHODS:
        raise ModelSpecError(f"chain_method must be one of {CHAIN_METHODS}, got {chain_method!r}")
    n_dev = jax.local_device_count()
    if chain_method == "auto":
        if jax.default_backend() != "cpu":
            chain_method = "vectorized"
        elif n_dev > 1 and chains > 1:
            chain_method = "parallel"
        else:
            chain_method = "sequential"
    if chain_method == "parallel":
        used = math.gcd(chains, n_dev)
        if used == 1 and chains > 1:
            return ChainLayout("sequential", chains, 1, 1)
        return ChainLayout("parallel", 1, used, chains // used)
    if chain_method == "vectorized":
        return ChainLayout("vectorized", 1, 1, chains)
    return ChainLayout("sequential", chains, 1, 1)


_STAT_FIELDS: dict[str, Callable[[Any], Any]] = {
    "diverging": lambda s: s.diverging,
    "energy": lambda s: s.energy,
    "lp": lambda s: -s.potential_energy,
    "n_steps": lambda s: s.num_steps,
    "tree_depth": lambda s: jnp.ceil(jnp.log2(s.num_steps + 1.0)).astype(jnp.int32),
    "acceptance_rate": lambda s: s.accept_prob,
    "step_size": lambda s: s.adapt_state.step_size,
}


def state_stats(state) -> dict[str, Any]:
    """Sample stats available on a kernel state (HMC fields, or a Gibbs kernel's ``stats``)."""
    out = {}
    for name, getter in _STAT_FIELDS.items():
        try:
            out[name] = getter(state)
        except AttributeError:
            continue
    extra = getattr(state, "stats", None)
    if isinstance(extra, dict):
        out.update(extra)
    return out


class CompiledMCMC:
    """Compiled init/advance programs for one kernel and chain layout."""

    def __init__(self, kernel, *, num_warmup: int, layout: ChainLayout, chunk: int,
                 record_extra: Callable[[dict, dict], dict] | None = None,
                 drop_sites: frozenset[str] = frozenset()):
        self.kernel = kernel
        self.num_warmup = num_warmup
        self.layout = layout
        self.chunk = chunk
        self.record_extra = record_extra
        self.drop_sites = drop_sites
        self._compiled_shapes: set = set()

        def init_one(key, kwargs):
            return kernel.init(key, num_warmup, None, (), kwargs)

        def advance_one(state, kwargs, n_slots, thin):
            postprocess = kernel.postprocess_fn((), kwargs)

            def record(st):
                sample = postprocess(getattr(st, kernel.sample_field))
                extra = {} if record_extra is None else record_extra(sample, kwargs)
                kept = {k: v for k, v in sample.items() if k not in drop_sites}
                return kept, state_stats(st), extra

            shapes = jax.eval_shape(record, state)
            buffer = jax.tree.map(lambda s: jnp.zeros((chunk,) + s.shape, s.dtype), shapes)

            def body(j, carry):
                st, buf = carry
                st = lax.fori_loop(0, thin, lambda _, s: kernel.sample(s, (), kwargs), st)
                buf = jax.tree.map(lambda b, v: b.at[j].set(v), buf, record(st))
                return st, buf

            return lax.fori_loop(0, n_slots, body, (state, buffer))

        vinit = jax.vmap(init_one, in_axes=(0, None))
        vadvance = jax.vmap(advance_one, in_axes=(0, None, None, None))
        if layout.n_devices > 1:
            devices = jax.local_devices()[: layout.n_devices]
            self._init = jax.pmap(vinit, in_axes=(0, None), devices=devices)
            self._advance = jax.pmap(vadvance, in_axes=(0, None, None, None), devices=devices)
        else:
            self._init = jax.jit(
                lambda keys, kw: jax.tree.map(lambda x: x[None], vinit(keys[0], kw)))
            self._advance = jax.jit(
                lambda st, kw, n, t: jax.tree.map(lambda x: x[None], vadvance(
                    jax.tree.map(lambda x: x[0], st), kw, n, t)))

    # ---------------------------------------------------------------- running
    def run(self, rng_key, kwargs: dict, *, num_samples: int, thin: int = 1,
            progress: bool = True, desc: str = "MCMC",
            storage: StoragePlan | None = None) -> dict[str, Any]:
        """Run all chains; return host arrays with leading dims (chain, draw).

        With a thinning ``storage`` plan only every ``keep_every``-th draw is
        kept and ``out["streaming"]`` holds exact summaries over all draws.
        """
        L = self.layout
        keys = jax.random.split(rng_key, L.n_chains).reshape(
            L.n_sequential, L.n_devices, L.per_device, -1)
        total_steps = self.num_warmup + num_samples * thin
        signature = jax.tree.map(lambda x: (x.shape, str(x.dtype)),
                                 {k: v for k, v in kwargs.items() if v is not None})
        needs_compile = str(signature) not in self._compiled_shapes
        timings = {"compile_seconds": 0.0, "warmup_seconds": 0.0, "sampling_seconds": 0.0}
        per_group, summaries = [], []
        with (blas_threads_for(L.n_devices),
              progress_bar(total=total_steps * L.n_chains, desc=desc, enabled=progress) as bar):
            for g in range(L.n_sequential):
                t0 = time.perf_counter()
                if needs_compile:
                    bar.set_phase("compiling")
                states = self._init(keys[g], kwargs)
                if needs_compile:
                    # a zero-length call compiles the advance program
                    states, _ = self._advance(states, kwargs, 0, 1)
                    jax.block_until_ready(states)
                    timings["compile_seconds"] += time.perf_counter() - t0
                    self._compiled_shapes.add(str(signature))
                    needs_compile = False
                streams = {site: StreamingSummary(storage.threshold)
                           for site in (storage.streamed_sites if storage else ())}
                states, chunks = self._run_group(states, kwargs, num_samples, thin, bar, timings,
                                                 storage, streams)
                per_group.append(chunks)
                summaries.append(streams)
        out = _stack_groups(per_group, L)
        out["timings"] = timings
        out["streaming"] = _merge_streams(summaries)
        return out

    def _run_group(self, states, kwargs, num_samples, thin, bar, timings, storage=None,
                   streams=None):
        L = self.layout
        keep_every = storage.keep_every if storage else 1
        # warm-up: thin=1 slots, nothing kept
        bar.set_phase("warmup")
        t0 = time.perf_counter()
        done = 0
        while done < self.num_warmup:
            n = min(self.chunk, self.num_warmup - done)
            states, _ = self._advance(states, kwargs, n, 1)
            jax.block_until_ready(states)
            done += n
            bar.update(n * L.n_devices * L.per_device)
        timings["warmup_seconds"] += time.perf_counter() - t0
        bar.set_phase("sampling")
        t0 = time.perf_counter()
        kept, done, n_div = [], 0, 0
        while done < num_samples:
            n = min(self.chunk, num_samples - done)
            states, buf = self._advance(states, kwargs, n, thin)
            host = jax.tree.map(lambda x, n=n: np.asarray(x[:, :, :n]), jax.device_get(buf))
            for site, stream in (streams or {}).items():
                x = host[0][site]
                stream.update(x.reshape((-1,) + x.shape[2:]))
            if keep_every > 1:
                # keep global draw indices i with (i + 1) % keep_every == 0
                first = (-(done + 1)) % keep_every
                host = jax.tree.map(lambda x, f=first: x[:, :, f::keep_every], host)
            kept.append(host)
            if "diverging" in host[1]:
                n_div += int(host[1]["diverging"].sum())
                bar.set_postfix(divergences=n_div)
            done += n
            bar.update(n * thin * L.n_devices * L.per_device)
        timings["sampling_seconds"] += time.perf_counter() - t0
        joined = jax.tree.map(lambda *xs: np.concatenate(xs, axis=2), *kept)
        return states, joined


def _stack_groups(per_group, layout: ChainLayout) -> dict[str, Any]:
    """(sequential, device, per_device, draw, ...) → (chain, draw, ...)."""
    stacked = jax.tree.map(lambda *xs: np.stack(xs, axis=0), *per_group)

    def flat(x):
        return x.reshape((layout.n_chains,) + x.shape[3:])

    samples, stats, extra = jax.tree.map(flat, stacked)
    return {"samples": samples, "stats": stats, "extra": extra}


def _merge_streams(per_group: list[dict[str, StreamingSummary]]) -> dict[str, dict]:
    """Pool the per-group (chain-block) running summaries into one result per site."""
    if not per_group or not per_group[0]:
        return {}
    out = {}
    for site in per_group[0]:
        parts = [g[site] for g in per_group]
        merged = StreamingSummary(parts[0].threshold)
        merged.n = parts[0].n
        for field in ("mean", "m2", "n_positive", "n_exceeds"):
            setattr(merged, field, np.concatenate([getattr(p, field) for p in parts], axis=0))
        out[site] = merged.result()
    return out


_PROGRAMS: dict[tuple, CompiledMCMC] = {}


def compiled_mcmc(cache_key: tuple, make_kernel: Callable[[], Any], **kwargs) -> CompiledMCMC:
    """The cached :class:`CompiledMCMC` for ``cache_key`` (built on first use)."""
    key = cache_key + tuple(sorted((k, repr(v)) for k, v in kwargs.items()
                                   if k not in ("record_extra",)))
    key = key + (jax.config.jax_enable_x64,)
    program = _PROGRAMS.get(key)
    if program is None:
        program = CompiledMCMC(make_kernel(), **kwargs)
        _PROGRAMS[key] = program
    return program


def clear_compile_cache() -> None:
    """Forget compiled programs (frees memory; the next fit compiles again)."""
    _PROGRAMS.clear()
