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

import collections
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
from bayesimg.inference.checkpoint import Checkpoint
from bayesimg.inference.progress import progress_bar
from bayesimg.inference.sharding import to_host
from bayesimg.inference.storage import StoragePlan, StreamingSummary
from bayesimg.inference.threads import blas_threads_for
from bayesimg.stored_programs import StoredProgram, Unstable, stable

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


#: A run advances in calls of about this fraction of its warm-up or draws (progress bar,
#: checkpoint commits); the recording buffer's size does not depend on it.
CALL_FRACTION = 20


def steps_per_call(warmup: int, draws: int) -> int:
    """Transitions (warm-up) or kept draws (sampling) per call: ~5% of the longer phase."""
    return max(1, math.ceil(max(warmup, draws) / CALL_FRACTION))


def program_warmup(kernel_name: str, warmup: int) -> int:
    """The warm-up length compiled into a kernel's program: NUTS builds its step-size and
    mass-matrix adaptation schedule from it; the Gibbs kernels have no adaptation and
    ignore it, so their programs are built with 0 and any warm-up length reuses them."""
    return warmup if kernel_name == "nuts" else 0


def first_transition_in_advance(kernel) -> bool:
    """True when ``kernel.init`` is ``init_before_first_sweep`` followed by one ``sample``:
    :func:`chain_programs` then builds init without that transition, and the driver runs
    it through the advance program right after init (same draws, one copy of the sweep in
    the compiled programs instead of two)."""
    return getattr(kernel, "init_before_first_sweep", None) is not None


def chain_programs(kernel, *, num_warmup: int, chunk: int,
                   record_extra: Callable[[dict, dict], dict] | None = None,
                   drop_sites: frozenset[str] = frozenset()):
    """``init_one(key, kwargs)`` and ``advance_one(state, kwargs, n_slots, thin)`` of one chain.

    ``advance_one`` runs ``n_slots × thin`` transitions and records, every
    ``thin``, the kept sample sites, the kernel's stats and ``record_extra``
    into a ``chunk``-slot buffer.  :class:`CompiledMCMC` maps them over chains
    and devices, :class:`~bayesimg.inference.batched.BatchedMCMC` over fits too.
    """

    # a kernel whose init ends with one ordinary transition may hand that transition to
    # the advance program (see ``first_transition_in_advance``): compiled once, not twice
    init = getattr(kernel, "init_before_first_sweep", None) or kernel.init

    def init_one(key, kwargs):
        return init(key, num_warmup, None, (), kwargs)

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

    return init_one, advance_one


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
        self._first_in_advance = first_transition_in_advance(kernel)
        vinit, vadvance = self._device_programs(*chain_programs(
            kernel, num_warmup=num_warmup, chunk=chunk, record_extra=record_extra,
            drop_sites=drop_sites))
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

    def store_as(self, identity: list) -> None:
        """Keep this program's executables on disk under ``identity``
        (:mod:`bayesimg.stored_programs`)."""
        self._init = StoredProgram(self._init, [*identity, "init"])
        self._advance = StoredProgram(self._advance, [*identity, "advance"])

    @property
    def programs_loaded(self) -> int:
        """Executables this program loaded from disk instead of compiling."""
        return sum(getattr(p, "loaded", 0) for p in (self._init, self._advance))

    def _device_programs(self, init_one, advance_one):
        """``(init, advance)`` over the chains of one device (a subclass adds axes).

        One chain per device is not vmapped but given its axis of length 1 by
        hand: a vmapped batch of 1 makes XLA's program slower to compile (+40%
        on the factor model's Gibbs sweep) for the same draws.
        """
        if self.layout.per_device == 1:
            return _unit_axis(init_one), _unit_axis(advance_one)
        return (jax.vmap(init_one, in_axes=(0, None)),
                jax.vmap(advance_one, in_axes=(0, None, None, None)))

    def _chain_keys(self, rng_key):
        """The chains' keys, laid out ``(sequential, device, per_device, 2)``."""
        L = self.layout
        return jax.random.split(rng_key, L.n_chains).reshape(
            L.n_sequential, L.n_devices, L.per_device, -1)

    # ---------------------------------------------------------------- running
    def run(self, rng_key, kwargs: dict, *, num_samples: int, thin: int = 1,
            progress: bool = True, desc: str = "MCMC",
            storage: StoragePlan | None = None,
            checkpoint: Checkpoint | None = None,
            per_call: int | None = None, num_warmup: int | None = None) -> dict[str, Any]:
        """Run all chains; return host arrays with leading dims (chain, draw).

        Each call of the compiled program advances ``per_call`` warm-up transitions or
        kept draws (at most the buffer's ``chunk``; default: :func:`steps_per_call`), so
        the compiled program, whose buffer size is fixed, serves runs of any length.

        With a thinning ``storage`` plan only every ``keep_every``-th draw is
        kept and ``out["streaming"]`` holds exact summaries over all draws.
        With a :class:`~bayesimg.inference.checkpoint.Checkpoint` the kernel
        states and kept draws are committed as the run goes, and a run that
        finds a commit there continues from it (same draws as if never stopped).

        ``num_warmup``: warm-up transitions of this run (default: the program's).  Only
        a kernel that adapts (NUTS) compiles its warm-up length into the program; a
        program built with ``num_warmup=0`` for a kernel that ignores it (the Gibbs
        kernels) serves runs of any warm-up length (:func:`program_warmup`).
        """
        L = self.layout
        keys = self._chain_keys(rng_key)
        num_warmup = self.num_warmup if num_warmup is None else int(num_warmup)
        per_call = per_call or steps_per_call(num_warmup, num_samples)
        total_steps = num_warmup + num_samples * thin
        signature = jax.tree.map(lambda x: (x.shape, str(x.dtype)),
                                 {k: v for k, v in kwargs.items() if v is not None})
        needs_compile = str(signature) not in self._compiled_shapes
        resume = checkpoint.progress if checkpoint is not None and checkpoint.resuming else {}
        timings = dict(resume.get("timings") or
                       {"compile_seconds": 0.0, "warmup_seconds": 0.0, "sampling_seconds": 0.0})
        saved_streams = checkpoint.extra() if resume else {}
        start_group = int(resume.get("group", 0))
        per_group, summaries = [], []
        chains_per_group = L.n_devices * L.per_device
        with (blas_threads_for(L.n_devices),
              progress_bar(total=total_steps * L.n_chains, desc=desc, enabled=progress) as bar):
            for g in range(L.n_sequential):
                streams = {site: StreamingSummary(storage.threshold)
                           for site in (storage.streamed_sites if storage else ())}
                _restore_streams(streams, saved_streams, g)
                if g < start_group:  # finished before the interruption
                    parts = checkpoint.parts(g)
                    per_group.append(jax.tree.map(lambda *xs: np.concatenate(xs, axis=2),
                                                  *parts))
                    summaries.append(streams)
                    bar.update(total_steps * chains_per_group)
                    continue
                t0 = time.perf_counter()
                if needs_compile:
                    bar.set_phase("compiling")
                states = self._init(keys[g], kwargs)
                if needs_compile:
                    # a zero-length call compiles the advance program
                    states, _ = self._advance(states, kwargs, 0, 1)
                    jax.block_until_ready(states)
                    timings["compile_seconds"] += time.perf_counter() - t0
                    timings["programs_loaded"] = self.programs_loaded
                    self._compiled_shapes.add(str(signature))
                    needs_compile = False
                if self._first_in_advance:
                    # the transition the kernel's init ends with (one slot, not kept)
                    states, _ = self._advance(states, kwargs, 1, 1)
                group_resume = resume if (g == start_group and resume.get("started")) else {}
                if group_resume:
                    states = checkpoint.state(states)
                run = _GroupRun(g, group_resume, checkpoint, summaries, timings,
                                num_warmup)
                states, chunks = self._run_group(states, kwargs, num_samples, thin, bar, timings,
                                                 storage, streams, run, per_call)
                per_group.append(chunks)
                summaries.append(streams)
                if checkpoint is not None and g + 1 < L.n_sequential:
                    run.commit_group_done(states)
        out = _stack_groups(per_group, L)
        out["timings"] = timings
        out["streaming"] = _merge_streams(summaries)
        return out

    def _run_group(self, states, kwargs, num_samples, thin, bar, timings, storage,
                   streams, run: _GroupRun, per_call: int):
        L = self.layout
        keep_every = storage.keep_every if storage else 1
        per_step = L.n_devices * L.per_device
        # warm-up: nothing kept, so each chunk is one slot of n transitions (the
        # recorded sample, stats and log-likelihood cost ~20% of a cheap sweep)
        bar.set_phase("warmup")
        t0 = time.perf_counter()
        done = run.warmup_done
        bar.update(done * per_step)
        while done < run.num_warmup:
            n = min(per_call, run.num_warmup - done)
            states, _ = self._advance(states, kwargs, 1, n)
            jax.block_until_ready(states)
            done += n
            bar.update(n * per_step)
            run.after_warmup_chunk(states, n, done, streams)
        timings["warmup_seconds"] += time.perf_counter() - t0
        bar.set_phase("sampling")
        t0 = time.perf_counter()
        done, n_div = run.sampling_done, run.n_div
        kept = _Draws(num_samples // keep_every)
        for part in run.kept_parts():
            kept.add(part)
        bar.update(done * thin * per_step)
        while done < num_samples:
            n = min(self.chunk, per_call, num_samples - done)
            states, buf = self._advance(states, kwargs, n, thin)
            host = jax.tree.map(lambda x, n=n: x[:, :, :n], to_host(buf))
            for site, stream in (streams or {}).items():
                x = host[0][site]
                stream.update(x.reshape((-1,) + x.shape[2:]))
            if keep_every > 1:
                # keep global draw indices i with (i + 1) % keep_every == 0
                first = (-(done + 1)) % keep_every
                host = jax.tree.map(lambda x, f=first: x[:, :, f::keep_every], host)
            kept.add(host)
            if "diverging" in host[1]:
                n_div += int(host[1]["diverging"].sum())
                bar.set_postfix(divergences=n_div)
            done += n
            bar.update(n * thin * per_step)
            timings["sampling_seconds"] += time.perf_counter() - t0
            t0 = time.perf_counter()
            run.after_sampling_chunk(states, n * thin, done, n_div, host, kept.n_parts, streams)
        timings["sampling_seconds"] += time.perf_counter() - t0
        return states, kept.result()


class _Draws:
    """Kept draws of one chain group, copied chunk by chunk into arrays allocated once.

    Leaves are ``(device, per_device, draw, ...)``; a chunk fills the next draws.  (A
    final ``np.concatenate`` along the draw axis costs 2.5× as much CPU: it copies
    with strides.)
    """

    def __init__(self, total: int):
        self.total = total
        self.filled = 0
        self.n_parts = 0
        self.arrays = None

    def add(self, part) -> None:
        n = jax.tree.leaves(part)[0].shape[2]
        if self.arrays is None:
            self.arrays = jax.tree.map(
                lambda x: np.empty(x.shape[:2] + (self.total,) + x.shape[3:], x.dtype), part)
        where = (slice(None), slice(None), slice(self.filled, self.filled + n))
        jax.tree.map(lambda a, x: a.__setitem__(where, x), self.arrays, part)
        self.filled += n
        self.n_parts += 1

    def result(self):
        if self.filled != self.total:   # pragma: no cover - a bug, not a user error
            raise RuntimeError(f"kept {self.filled} draws, expected {self.total}")
        return self.arrays


def _unit_axis(fn):
    """``fn`` over a leading chain axis of length 1 on its first argument and its output."""

    def mapped(first, *rest):
        out = fn(jax.tree.map(lambda x: x[0], first), *rest)
        return jax.tree.map(lambda x: x[None], out)

    return mapped


class _GroupRun:
    """Where one chain group stands, and committing it to a checkpoint (if any)."""

    def __init__(self, group: int, resume: dict, checkpoint: Checkpoint | None,
                 finished_streams: list[dict], timings: dict, num_warmup: int):
        self.group = group
        self.num_warmup = num_warmup
        self.checkpoint = checkpoint
        self.finished_streams = finished_streams
        self.timings = timings
        self.warmup_done = int(resume.get("warmup_done", 0))
        self.sampling_done = int(resume.get("sampling_done", 0))
        self.n_div = int(resume.get("n_div", 0))
        self.n_parts = int(resume.get("n_parts", 0))
        self.parts_written = self.n_parts

    def kept_parts(self) -> list:
        if self.checkpoint is None or not self.n_parts:
            return []
        return self.checkpoint.parts(self.group)[: self.n_parts]

    def _commit(self, states, streams, **progress) -> None:
        all_streams = [*self.finished_streams, streams or {}]
        self.checkpoint.commit(
            states, {"group": self.group, "timings": self.timings, **progress},
            {self.group: progress.get("n_parts", 0)}, _streams_to_arrays(all_streams))

    def after_warmup_chunk(self, states, n: int, done: int, streams) -> None:
        if self.checkpoint is not None and self.checkpoint.due(n):
            self._commit(states, streams, started=True, warmup_done=done, sampling_done=0,
                         n_div=0, n_parts=0)

    def after_sampling_chunk(self, states, n: int, done: int, n_div: int, part,
                             n_parts: int, streams) -> None:
        """``part``: the chunk just kept, the ``n_parts``-th of this group."""
        if self.checkpoint is None:
            return
        self.checkpoint.add_part(self.group, n_parts - 1, part)
        self.parts_written = n_parts
        if self.checkpoint.due(n):
            self._commit(states, streams, started=True, warmup_done=self.num_warmup,
                         sampling_done=done, n_div=n_div, n_parts=n_parts)

    def commit_group_done(self, states) -> None:
        """The group finished: the next resume starts the next group afresh."""
        self.checkpoint.commit(
            states, {"group": self.group + 1, "started": False, "timings": self.timings},
            {self.group: self.parts_written}, _streams_to_arrays(self.finished_streams))


_STREAM_FIELDS = ("mean", "m2", "n_positive", "n_exceeds")


def _streams_to_arrays(groups: list[dict[str, StreamingSummary]]) -> dict[str, np.ndarray]:
    out = {}
    for g, streams in enumerate(groups):
        for site, stream in streams.items():
            if stream.mean is None:
                continue
            out[f"stream/{g}/{site}/n"] = np.asarray(stream.n)
            for field in _STREAM_FIELDS:
                out[f"stream/{g}/{site}/{field}"] = getattr(stream, field)
    return out


def _restore_streams(streams: dict[str, StreamingSummary], saved: dict, group: int) -> None:
    for site, stream in streams.items():
        prefix = f"stream/{group}/{site}/"
        if prefix + "n" not in saved:
            continue
        stream.n = int(saved[prefix + "n"])
        for field in _STREAM_FIELDS:
            setattr(stream, field, saved[prefix + field])


def _stack_groups(per_group, layout: ChainLayout) -> dict[str, Any]:
    """(sequential, device, per_device, draw, ...) → (chain, draw, ...)."""
    if len(per_group) == 1:   # one group (parallel or vectorised chains): no copy
        stacked = jax.tree.map(lambda x: x[None], per_group[0])
    else:
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


#: Compiled programs kept for reuse, least recently used first.  Each holds XLA
#: executables (machine code and buffers), so the cache is bounded: a long session that
#: fits many differently shaped models (a scan over windows, a notebook) keeps the
#: :data:`MAX_CACHED_PROGRAMS` most recently used and compiles an evicted one again.
_PROGRAMS: collections.OrderedDict[tuple, CompiledMCMC] = collections.OrderedDict()
MAX_CACHED_PROGRAMS = 32


def compiled_mcmc(cache_key: tuple, make_kernel: Callable[[], Any], *,
                  program_class: type[CompiledMCMC] = CompiledMCMC,
                  store_for: type | None = None, **kwargs) -> CompiledMCMC:
    """The cached ``program_class`` program for ``cache_key`` (built on first use).

    ``store_for``: the model class, when the program may also be kept on disk under this
    key (:mod:`bayesimg.stored_programs`): only for classes defined inside the
    bayesimg package, whose code the stored programs' key covers.
    """
    settings = {k: v for k, v in kwargs.items() if k not in ("record_extra",)}
    key = cache_key + tuple(sorted((k, repr(v)) for k, v in settings.items()))
    key = key + (jax.config.jax_enable_x64, program_class.__qualname__)
    program = _PROGRAMS.get(key)
    if program is None:
        program = program_class(make_kernel(), **kwargs)
        identity = _disk_identity(cache_key, settings, program_class, store_for)
        if identity is not None:
            program.store_as(identity)
        _PROGRAMS[key] = program
        while len(_PROGRAMS) > max(1, MAX_CACHED_PROGRAMS):
            _PROGRAMS.popitem(last=False)
    else:
        _PROGRAMS.move_to_end(key)
    return program


def _disk_identity(cache_key: tuple, settings: dict, program_class: type,
                   model_class: type | None) -> list | None:
    """The program's key on disk, the same in every process (``None``: not stored)."""
    if model_class is None or not model_class.__module__.startswith("bayesimg."):
        return None
    try:
        return stable([model_class.__module__, list(cache_key), settings,
                       program_class.__qualname__])
    except Unstable:
        return None


def clear_compile_cache() -> None:
    """Forget compiled programs (frees memory; the next fit compiles again)."""
    _PROGRAMS.clear()
