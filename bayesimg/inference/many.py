"""``fit_many``: many independent fits — λ/rank/K grids, folds, permutation nulls, scans.

    jobs = {f"lam{l:g}": bi.FitJob(bi.models.GroupSparseMTR(lambda1=l, lambda2=l), data,
                                   method="gibbs", options={"draws": 500, "seed": 1})
            for l in (1, 10, 100)}
    fits = bi.fit_many(jobs, out_dir="fits/")                   # in this process
    fits = bi.fit_many(jobs, out_dir="fits/", client="local")   # on a local Dask cluster

**Validation first.**  Names, methods, options, the data and the output folder
are checked before any work starts (named errors).

**Batching.**  MCMC jobs with one model structure (``static_key``), method,
options other than ``seed`` and model-argument shapes (after padding the subjects to a
bucket size where the sampler allows it, :mod:`bayesimg.inference.padding`) form a group; a group
runs as batches of one compiled program vmapped over fits
(:mod:`bayesimg.inference.batched`: arguments equal in all fits, such as X
across a λ grid, are passed once; a batch is padded to the next power of two
fits, so grids of neighbouring lengths share a program).  A batch is capped so that
the kept draws of its (padded) fits stay within ``memory_budget`` (default: the jobs'
``max_draw_bytes``, 2 GiB).  A job whose draws would be thinned, one with
``checkpoint`` or ``shard_data``, and SVI/MAP jobs run alone through
:func:`bayesimg.fit`.  Every fit is what ``bayesimg.fit`` with the job's seed
gives (same chain keys, same layout) up to floating-point rounding, which long
NUTS runs amplify into a different but equally valid sequence of draws
(:mod:`bayesimg.inference.batched`).

**Where.**  ``client=None``: in this process.  ``client="local"``: a
:class:`distributed.LocalCluster` of ``n_workers`` spawned single-thread
worker processes (``BAYESIMG_CPU_DEVICES=1``, one BLAS thread), created and
closed here (:func:`local_cluster`; the workers are spawned and re-import the
calling script, so a script calls it under ``if __name__ == "__main__":``).
A :class:`distributed.Client` of any cluster (an existing ``LocalCluster``,
``SSHCluster``, dask-jobqueue's ``SLURMCluster``/``PBSCluster``) is used as
given; start its workers with ``BAYESIMG_CPU_DEVICES=1`` (dask-jobqueue:
``job_script_prologue=["export BAYESIMG_CPU_DEVICES=1"]``) so that JAX does not
claim every core in every worker (a warning says so otherwise).  On a cluster
each task is one batch — groups are sliced so that all workers get work — or
one job; each worker imports bayesimg (and JAX) itself and compiles each
program once.

**Results on disk, resumable.**  With ``out_dir`` every fit is written to
``out_dir/<name>.nc`` (or ``.zarr``) atomically (:meth:`Fit.save`) by the
process that ran it, as soon as its task is done, with the attributes
``job_name`` and ``job_fingerprint`` (a hash of the data fingerprint, model
class and settings, method, all options with their defaults, and the seed).
A later call skips every job whose file holds the same fingerprint, so an
interrupted run resumes where it stopped; a file with another fingerprint, or
one that cannot be read, raises :class:`~bayesimg.errors.ResultFileError`
unless ``overwrite=True``.  The returned mapping then loads each fit from its
file when asked for it, so a genome-wide scan never holds all fits in memory.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import inspect
import json
import math
import os
import time
import traceback
import warnings
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from bayesimg.data.base import SubjectData
from bayesimg.errors import LIBRARY_FILES, FitManyError, ModelSpecError, ResultFileError
from bayesimg.inference.common import check_inputs, check_positive_int, device_args
from bayesimg.inference.convert import _json_default
from bayesimg.inference.fit import Fit, load
from bayesimg.inference.padding import pad_subjects, without_count
from bayesimg.models.core.base import Model

#: attributes written into every saved fit
NAME_ATTR = "job_name"
FINGERPRINT_ATTR = "job_fingerprint"
FORMATS = ("nc", "zarr")

#: environment of the worker processes of ``client="local"``
WORKER_ENV = {"BAYESIMG_CPU_DEVICES": "1", "OMP_NUM_THREADS": "1",
              "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
_XLA_SINGLE_THREAD = "--xla_cpu_multi_thread_eigen=false"


@dataclasses.dataclass(frozen=True, eq=False)
class FitJob:
    """One fit for :func:`fit_many`: ``bayesimg.fit(model, data, method, **options)``.

    ``name`` names the result (and the output file ``<name>.nc``); it may be
    left out when the jobs are given as a mapping name → job.  ``options`` are
    :func:`bayesimg.fit`'s (``progress`` is ignored: :func:`fit_many` shows one
    bar over the jobs).
    """

    model: Model
    data: SubjectData
    method: str = "nuts"
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    name: str | None = None


class FitResults(Mapping):
    """Job name → :class:`Fit`, in job order; with an output folder each fit is
    loaded from its file when asked for (not kept in memory).

    Attributes
    ----------
    ran, skipped : list of str
        Jobs fitted by this call, and those whose saved result was reused.
    failed : dict[str, str]
        Jobs that failed (not in the mapping), with the error.
    paths : dict[str, Path]
        Output file of every job (empty without ``out_dir``).
    batch_sizes : dict[str, int]
        How many fits ran in the same compiled program as each job (1: alone).
    seconds : float
        Wall time of the call.
    """

    def __init__(self, names: list[str], fits: dict[str, Fit], paths: dict[str, Path],
                 ran: list[str], skipped: list[str], failed: dict[str, str],
                 batch_sizes: dict[str, int], seconds: float):
        self._names = [n for n in names if n not in failed]
        self._fits = fits
        self.paths = paths
        self.ran = ran
        self.skipped = skipped
        self.failed = failed
        self.batch_sizes = batch_sizes
        self.seconds = seconds

    def __getitem__(self, name: str) -> Fit:
        if name in self._fits:
            return self._fits[name]
        if name in self.paths and name in self._names:
            return load(self.paths[name])
        raise KeyError(name)

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def __repr__(self) -> str:
        return (f"<FitResults: {len(self)} fit(s); ran {len(self.ran)}, reused "
                f"{len(self.skipped)}, failed {len(self.failed)}; {self.seconds:.1f} s>")


@dataclasses.dataclass
class _Prepared:
    """A validated job: what to run, its fingerprint, and its batch group (None: alone)."""

    index: int
    name: str
    job: FitJob
    options: dict[str, Any]
    fingerprint: str
    group: tuple | None = None
    fit_bytes: int = 0
    budget: float | None = None


# ---------------------------------------------------------------------- API
def fit_many(jobs: Mapping[str, FitJob] | Iterable[FitJob], *,
             out_dir: str | os.PathLike | None = None, client: Any = None,
             n_workers: int | None = None, overwrite: bool = False, file_format: str = "nc",
             batch_size: int | None = None, memory_budget: float | None = None,
             progress: bool = True) -> FitResults:
    """Run many independent fits, batched and optionally on a Dask cluster.

    Parameters
    ----------
    jobs : mapping name → FitJob, or iterable of FitJob with ``name``
    out_dir : folder or None
        Write each fit to ``out_dir/<name>.<file_format>`` as it finishes and
        resume from there (see the module docstring).  None: keep fits in memory.
    client : None, "local" or distributed.Client
        None: run in this process.  ``"local"``: a local Dask cluster of
        ``n_workers`` (default: CPU count) single-thread worker processes,
        closed at the end.  A ``distributed.Client``: its cluster, as given.
    overwrite : bool
        Replace output files that belong to other jobs (or cannot be read)
        instead of raising :class:`~bayesimg.errors.ResultFileError`.  Files
        of the same job are always reused.
    file_format : {"nc", "zarr"}
    batch_size : int or None
        At most this many fits per compiled batch (default: no cap but memory).
    memory_budget : float or None
        Bytes of kept draws per batch (default: the jobs' ``max_draw_bytes``).
    progress : bool
        One progress bar over the jobs.

    Returns
    -------
    FitResults
        Mapping job name → Fit (loaded lazily from ``out_dir``), with ``ran``,
        ``skipped``, ``failed`` and ``paths``.

    Raises
    ------
    ModelSpecError, DataValidationError
        A bad job (duplicate or unusable name, unknown method or option, data
        the model refuses), before anything runs.
    ResultFileError
        An existing output file of another job, or an unreadable one.
    FitManyError
        Some jobs failed while running; the others finished (``err.results``)
        and their files are in ``out_dir``.
    """
    t_start = time.perf_counter()
    if file_format not in FORMATS:
        raise ModelSpecError(f"file_format must be one of {FORMATS}, got {file_format!r}")
    if batch_size is not None:
        batch_size = check_positive_int("batch_size", batch_size)
    if n_workers is not None:
        n_workers = check_positive_int("n_workers", n_workers)
    if memory_budget is not None and not (isinstance(memory_budget, float | int)
                                          and memory_budget > 0):
        raise ModelSpecError(f"memory_budget must be a number > 0, got {memory_budget!r}")
    named = _named_jobs(jobs, check_filenames=out_dir is not None)
    if client is not None and client != "local":
        _require_distributed()
        import distributed
        if not isinstance(client, distributed.Client):
            raise ModelSpecError("client must be None, 'local' or a distributed.Client, got "
                                 f"{type(client).__name__}")
    size_cache: dict = {}
    prepared = [_prepare(i, name, job, size_cache) for i, (name, job) in enumerate(named)]
    size_cache.clear()

    out = None if out_dir is None else Path(out_dir)
    paths: dict[str, Path] = {}
    skipped: list[str] = []
    if out is not None:
        if out.exists() and not out.is_dir():
            raise ResultFileError("out_dir is a file, not a folder", path=str(out))
        for p in prepared:
            paths[p.name] = out / f"{file_stem(p.name)}.{file_format}"
            if _reusable(paths[p.name], p, overwrite):
                skipped.append(p.name)
        out.mkdir(parents=True, exist_ok=True)
    todo = [p for p in prepared if p.name not in set(skipped)]

    fits: dict[str, Fit] = {}
    ran: list[str] = []
    failed: dict[str, str] = {}
    exceptions: dict[str, BaseException] = {}
    batch_sizes: dict[str, int] = {}
    caught: dict[tuple, list[str]] = {}
    batch_notes: list[str] = []

    from bayesimg.inference.progress import progress_bar
    with progress_bar(total=len(prepared), desc="fit_many", enabled=progress) as bar:
        bar.update(len(skipped))
        bar.set_phase("running")

        def collect(results: list[dict]) -> None:
            for r in results:
                name = r["name"]
                batch_sizes[name] = r.get("batch_size", 1)
                for category, message in r.get("warnings", ()):
                    caught.setdefault((category, message), []).append(name)
                if r.get("batch_error"):
                    batch_notes.append(r["batch_error"])
                if "error" in r:
                    failed[name] = r["error"]
                    if r.get("exception") is not None:
                        exceptions[name] = r["exception"]
                else:
                    ran.append(name)
                    if "fit" in r and r["fit"] is not None:
                        fits[name] = r["fit"]
                bar.update(1)
            if failed:
                bar.set_postfix(failed=len(failed))

        tasks = _plan_tasks(todo, n_parts=1 if client is None else
                            _worker_count(client, n_workers), batch_size=batch_size,
                            memory_budget=memory_budget)
        if not tasks:
            pass  # everything was reused: no cluster to start
        elif client is None:
            for task in tasks:
                collect(_run_task(_specs(task), _task_datas(task), out, file_format,
                                  remote=False))
        else:
            _run_dask(tasks, out, file_format, client, n_workers, collect)

    for note in dict.fromkeys(batch_notes):
        warnings.warn(note, RuntimeWarning, skip_file_prefixes=LIBRARY_FILES)
    for (category, message), names in caught.items():
        warnings.warn(f"[{', '.join(names)}] {message}", category, skip_file_prefixes=LIBRARY_FILES)
    names = [p.name for p in prepared]
    results = FitResults(names, fits, paths, [n for n in names if n in set(ran)], skipped,
                         {n: failed[n] for n in names if n in failed}, batch_sizes,
                         time.perf_counter() - t_start)
    if failed:
        first = next(iter(results.failed))
        err = FitManyError(
            f"{len(failed)} of {len(prepared)} job(s) failed (the others finished"
            f"{' and are saved' if out is not None else ''}): "
            + "; ".join(f"{n}: {e}" for n, e in list(results.failed.items())[:5])
            + (" ..." if len(failed) > 5 else ""),
            failures=results.failed, results=results)
        raise err from exceptions.get(first)
    return results


def job_fingerprint(model: Model, data: SubjectData, method: str,
                    options: Mapping[str, Any]) -> str:
    """What makes two fits the same fit: data, model class and settings, method, options, seed.

    Options equal to the driver's default are left out (leaving an option out
    and giving its default agree, and a later version adding an option does
    not invalidate saved results); the seed always counts.
    """
    defaults = _driver_defaults(method)
    kept = {k: v for k, v in options.items()
            if k != "progress" and (k == "seed" or k not in defaults or defaults[k] != v)}
    kept.setdefault("seed", defaults.get("seed", 0))
    payload = {"data": data.fingerprint(),
               "model": f"{type(model).__module__}.{type(model).__qualname__}",
               "model_settings": model.settings(), "method": method, "options": kept}
    text = json.dumps(payload, sort_keys=True, default=_json_default)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


# ---------------------------------------------------------------- validation
def _named_jobs(jobs, *, check_filenames: bool) -> list[tuple[str, FitJob]]:
    if isinstance(jobs, FitJob):
        raise ModelSpecError("fit_many takes several jobs: a mapping name → FitJob or a list "
                             "of FitJob(..., name=...)")
    if isinstance(jobs, Mapping):
        items = list(jobs.items())
    else:
        items = []
        for i, job in enumerate(jobs):
            if isinstance(job, FitJob) and job.name is None:
                raise ModelSpecError(f"job #{i} has no name: give FitJob(..., name=...) or pass "
                                     "a mapping name → FitJob")
            items.append((getattr(job, "name", None), job))
    if not items:
        raise ModelSpecError("fit_many got no jobs")
    seen: set[str] = set()
    stems: dict[str, str] = {}
    out = []
    for name, job in items:
        if not isinstance(job, FitJob):
            raise ModelSpecError(f"job {name!r} is a {type(job).__name__}, not a bayesimg.FitJob")
        if not isinstance(name, str) or not name:
            raise ModelSpecError(f"job names must be non-empty strings, got {name!r}")
        if name in seen:
            raise ModelSpecError(f"job name {name!r} is used more than once")
        seen.add(name)
        stem = file_stem(name)
        if check_filenames and stem in stems:
            raise ModelSpecError(f"job names {stems[stem]!r} and {name!r} map to the same file "
                                 f"name {stem!r}; rename one")
        stems[stem] = name
        if check_filenames and (any(c in name for c in '/\\\0') or name.startswith(".")
                                or len(name) > 200):
            raise ModelSpecError(f"job name {name!r} cannot be a file name (no '/', '\\', "
                                 "leading '.', or more than 200 characters)")
        out.append((name, job))
    return out


_NOT_PORTABLE = str.maketrans({c: "_" for c in '<>:"|?*'})


def file_stem(name: str) -> str:
    """The output file name of job ``name``: characters Windows refuses (``<>:"|?*``) → ``_``."""
    return name.translate(_NOT_PORTABLE)


def _driver_defaults(method: str) -> dict[str, Any]:
    if method in ("nuts", "gibbs"):
        from bayesimg.inference.sampling import sample as driver
    else:
        from bayesimg.inference.svi import optimize as driver
    skip = {"model", "data", "kernel", "progress"}
    return {k: p.default for k, p in inspect.signature(driver).parameters.items()
            if k not in skip and p.default is not inspect.Parameter.empty}


def _prepare(index: int, name: str, job: FitJob, size_cache: dict) -> _Prepared:
    """Validate one job (named errors) and find its batch group."""
    from bayesimg.inference.api import check_fit_options
    from bayesimg.inference.mcmc import CHAIN_METHODS
    method = job.method
    if not isinstance(job.options, Mapping):
        raise ModelSpecError(f"job {name!r}: options must be a mapping, got "
                             f"{type(job.options).__name__}")
    options = {k: v for k, v in job.options.items() if k != "progress"}
    try:
        check_fit_options(method, options)
        if method == "map" and options.get("guide", "map") != "map":
            raise ModelSpecError("method='map' uses the point-mass guide; drop guide=")
        check_inputs(job.model, job.data)
        full = {**_driver_defaults(method), **options}
        if method == "map":
            full["guide"] = "map"
        p = _Prepared(index, name, job, options,
                      job_fingerprint(job.model, job.data, method, full))
        if method not in ("nuts", "gibbs"):
            from bayesimg.inference.svi import GUIDES
            if full["guide"] not in GUIDES:
                raise ModelSpecError(f"guide must be one of {GUIDES}, got {full['guide']!r}")
            job.model.model_args(job.data, method)  # the model's own checks of the data
            return p
        chains = check_positive_int("chains", full["chains"])
        check_positive_int("warmup", full["warmup"], 0)
        draws = check_positive_int("draws", full["draws"])
        check_positive_int("thin", full["thin"])
        if full["chain_method"] not in CHAIN_METHODS:
            raise ModelSpecError(f"chain_method must be one of {CHAIN_METHODS}, "
                                 f"got {full['chain_method']!r}")
        args = job.model.model_args(job.data, method)  # the model's own checks of the data
    except ModelSpecError as err:
        raise ModelSpecError(f"job {name!r}: {err}") from err
    except Exception as err:
        err.add_note(f"(fit_many job {name!r})")
        raise
    if full.get("checkpoint") or full.get("shard_data"):
        return p  # these run alone, through bayesimg.fit
    # shapes after the subject padding sample_batch applies (fits on nearby subject
    # counts group together; padding.py)
    args = pad_subjects(job.model, job.data, method, args)
    structure = (method, f"{type(job.model).__module__}.{type(job.model).__qualname__}",
                 repr(job.model.static_key(job.data)), _arg_signature(args))
    sizes = size_cache.get(structure)
    if sizes is None:
        from bayesimg.inference.batched import batch_storage
        _, sizes = batch_storage(job.model, job.data, method, chains=chains, draws=draws,
                                 kwargs=device_args(without_count(args)))
        size_cache[structure] = sizes
    from bayesimg.inference.storage import plan_storage
    plan = plan_storage(sizes, chains, draws, max_draw_bytes=full["max_draw_bytes"],
                        threshold=full["importance_threshold"])
    if plan.thinned:
        return p  # thinned storage: alone, through bayesimg.fit
    same = {k: v for k, v in full.items() if k != "seed"}
    p.group = structure + (json.dumps(same, sort_keys=True, default=_json_default),)
    p.fit_bytes = plan.bytes_per_draw * plan.draws_kept
    p.budget = full["max_draw_bytes"]
    return p


def _arg_signature(args: Mapping[str, Any]) -> tuple:
    """Names, shapes and dtypes of array arguments, values of the others."""
    out = []
    for key in sorted(args):
        value = args[key]
        if value is None or isinstance(value, bool | int | str):
            out.append((key, repr(value)))
        else:
            arr = np.asarray(value)
            out.append((key, arr.shape, arr.dtype.str))
    return tuple(out)


def _reusable(path: Path, p: _Prepared, overwrite: bool) -> bool:
    """True: ``path`` holds this job's result.  False: (re)compute it."""
    if not (path.exists() or path.is_symlink()):
        return False
    try:
        found = _read_fingerprint(path)
    except Exception as err:  # noqa: BLE001 - any unreadable file is reported the same way
        if overwrite:
            return False
        raise ResultFileError(
            f"job {p.name!r}: the existing output cannot be read ({type(err).__name__}: {err}); "
            "delete it or pass overwrite=True to recompute it", path=str(path)) from err
    if found == p.fingerprint:
        return True
    if overwrite:
        return False
    raise ResultFileError(
        f"job {p.name!r}: the existing output was made by a different job (data, model, "
        f"method, options or seed; fingerprint {found or 'missing'} vs {p.fingerprint}); "
        "delete it, choose another out_dir or pass overwrite=True to replace it",
        path=str(path))


def _read_fingerprint(path: Path) -> str | None:
    """The job fingerprint stored in a saved fit (reads the attributes only)."""
    if path.suffix == ".zarr":
        import xarray as xr
        with xr.open_datatree(path, engine="zarr", consolidated=False) as opened:
            has_posterior = "posterior" in opened.children
            value = opened.attrs.get(FINGERPRINT_ATTR)
    else:
        import h5py
        with h5py.File(path, "r") as opened:
            has_posterior = "posterior" in opened
            value = opened.attrs.get(FINGERPRINT_ATTR)
    if not has_posterior:
        raise ValueError("no posterior group")
    if isinstance(value, bytes):
        value = value.decode()
    return None if value is None else str(value)


# ------------------------------------------------------------------ planning
def _plan_tasks(todo: list[_Prepared], *, n_parts: int, batch_size: int | None,
                memory_budget: float | None) -> list[list[_Prepared]]:
    """Tasks: batches of one group (cut by memory and into ≥ ``n_parts`` slices) or one job."""
    from bayesimg.inference.storage import DEFAULT_MAX_DRAW_BYTES
    groups: dict[tuple, list[_Prepared]] = {}
    tasks: list[list[_Prepared]] = []
    for p in todo:
        if p.group is None:
            tasks.append([p])
        else:
            groups.setdefault(p.group, []).append(p)
    # slice groups only to keep every worker busy: with at least as many groups as
    # workers, each group stays one task and compiles once
    slices_per_group = max(1, math.ceil(n_parts / max(1, len(groups) + len(tasks))))
    for members in groups.values():
        budget = memory_budget or members[0].budget or DEFAULT_MAX_DRAW_BYTES
        cap = max(1, int(budget // max(1, members[0].fit_bytes)))
        # a batch runs padded to the next power of two (batched.fit_bucket): keep the
        # padded batch within the budget
        cap = 1 << (cap.bit_length() - 1)
        if batch_size is not None:
            cap = min(cap, batch_size)
        n = len(members)
        parts = max(math.ceil(n / cap), min(n, slices_per_group))
        for idx in np.array_split(np.arange(n), parts):
            tasks.append([members[i] for i in idx])
    tasks.sort(key=lambda t: t[0].index)
    return tasks


def _specs(task: list[_Prepared]) -> list[dict[str, Any]]:
    """What a worker needs to run a task (data passed separately, once per distinct object)."""
    data_ids: dict[int, int] = {}
    specs = []
    for p in task:
        slot = data_ids.setdefault(id(p.job.data), len(data_ids))
        specs.append({"name": p.name, "model": p.job.model, "data": slot,
                      "method": p.job.method, "options": p.options,
                      "fingerprint": p.fingerprint})
    return specs


def _task_datas(task: list[_Prepared]) -> list[SubjectData]:
    seen: dict[int, SubjectData] = {}
    for p in task:
        seen.setdefault(id(p.job.data), p.job.data)
    return list(seen.values())


# ----------------------------------------------------------------- execution
def _run_task(specs: list[dict], datas: list[SubjectData], out_dir: Path | None,
              file_format: str, remote: bool = True) -> list[dict]:
    """Run one task — a batch of same-shaped MCMC fits, or one job — and save each fit.

    Runs in a Dask worker or in the calling process.  Returns one record per
    job: name, path (or the fit itself without ``out_dir``), seconds, batch
    size, warnings, or the error.  A batch that fails as a whole is run again
    one job at a time, so that only the failing job(s) are lost.
    """
    note = None
    if len(specs) > 1:
        try:
            return _run_batch(specs, datas, out_dir, file_format, remote)
        except Exception as err:  # noqa: BLE001 - fall back to single fits, reported below
            note = (f"a batch of {len(specs)} fits ({specs[0]['name']} ...) failed as a whole "
                    f"({type(err).__name__}: {err}); its jobs ran one at a time")
    records = [_run_single(spec, datas[spec["data"]], out_dir, file_format, remote)
               for spec in specs]
    if note:
        records[0]["batch_error"] = note
    return records


def _run_batch(specs, datas, out_dir, file_format, remote) -> list[dict]:
    from bayesimg.inference.batched import sample_batch
    options = dict(specs[0]["options"])
    options.pop("seed", None)
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fits = sample_batch([s["model"] for s in specs], [datas[s["data"]] for s in specs],
                            [s["options"].get("seed", 0) for s in specs],
                            kernel=specs[0]["method"], progress=False, warn=False, **options)
    seconds = (time.perf_counter() - t0) / len(specs)
    shared = _warning_items(caught)
    records = []
    for spec, fit in zip(specs, fits, strict=True):
        from bayesimg.report.diagnostics import warn_after_sampling
        with warnings.catch_warnings(record=True) as own:
            warnings.simplefilter("always")
            warn_after_sampling(fit)
        try:
            records.append(_finish(spec, fit, out_dir, file_format, seconds=seconds,
                                   batch_size=len(specs),
                                   warnings=shared + _warning_items(own)))
        except Exception as err:  # noqa: BLE001 - e.g. a failed save: this job only
            records.append(_error_record(spec, err, remote))
    return records


def _run_single(spec, data, out_dir, file_format, remote) -> dict:
    from bayesimg.inference.api import fit as fit_one
    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fit = fit_one(spec["model"], data, spec["method"], progress=False,
                          **spec["options"])
        return _finish(spec, fit, out_dir, file_format, seconds=time.perf_counter() - t0,
                       batch_size=1, warnings=_warning_items(caught))
    except Exception as err:  # noqa: BLE001 - reported per job by fit_many
        return _error_record(spec, err, remote)


def _error_record(spec, err: Exception, remote: bool) -> dict:
    return {"name": spec["name"], "error": f"{type(err).__name__}: {err}",
            "traceback": traceback.format_exc(), "exception": None if remote else err}


def _finish(spec, fit: Fit, out_dir, file_format, *, seconds, batch_size, warnings) -> dict:
    fit.tree.attrs[NAME_ATTR] = spec["name"]
    fit.tree.attrs[FINGERPRINT_ATTR] = spec["fingerprint"]
    record = {"name": spec["name"], "seconds": seconds, "batch_size": batch_size,
              "warnings": warnings}
    if out_dir is None:
        record["fit"] = fit
    else:
        # fit_many checked this path before fitting: free, or a result it may replace
        # (an unreadable or stale file only with overwrite=True, else ResultFileError)
        record["path"] = str(fit.save(Path(out_dir) / f"{file_stem(spec['name'])}.{file_format}",
                                      overwrite=True))
    return record


def _warning_items(caught) -> list[tuple[type, str]]:
    return list(dict.fromkeys((w.category, str(w.message)) for w in caught))


# ---------------------------------------------------------------------- Dask
def _require_distributed():
    try:
        import distributed
    except ImportError as err:
        raise ImportError("fit_many(client=...) runs on Dask distributed, which is not "
                          "installed: pip install 'bayesimg[dist]'") from err
    return distributed


def _worker_count(client, n_workers: int | None) -> int:
    if client == "local":
        return n_workers or os.cpu_count() or 1
    threads = sum(client.nthreads().values())
    return max(1, threads or n_workers or 1)


def worker_env() -> dict[str, str]:
    """Environment of ``client="local"`` worker processes: one JAX device, one thread."""
    flags = " ".join(f for f in os.environ.get("XLA_FLAGS", "").split()
                     if "xla_force_host_platform_device_count" not in f
                     and "xla_cpu_multi_thread_eigen" not in f)
    return {**WORKER_ENV, "XLA_FLAGS": f"{flags} {_XLA_SINGLE_THREAD}".strip()}


@contextlib.contextmanager
def _environ(values: Mapping[str, str]):
    """Set environment variables inside the block (restored after)."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def local_cluster(n_workers: int | None = None, **kwargs):
    """A :class:`distributed.LocalCluster` of single-thread worker processes, one JAX device each.

    What ``fit_many(client="local")`` starts (and closes); use it to keep one
    cluster over several calls: ``with local_cluster(4) as c, Client(c) as client: ...``.
    The worker environment (:func:`worker_env`) is also set in this process
    while the workers are spawned: a spawned worker re-imports the calling
    script, and a script that imports bayesimg at the top would otherwise
    configure JAX in every worker before the worker's own environment applies.
    """
    distributed = _require_distributed()
    env = worker_env()
    options = {"n_workers": n_workers or os.cpu_count() or 1, "threads_per_worker": 1,
               "processes": True, "dashboard_address": None, "env": env,
               # no dashboard; the scheduler's health/metrics HTTP routes on a free local
               # port (not 8787, which another cluster on the machine may hold)
               "scheduler_kwargs": {"dashboard_address": "127.0.0.1:0"}, **kwargs}
    with _environ(env):
        return distributed.LocalCluster(**options)


def _worker_devices() -> int:
    """Run on a worker: how many JAX devices it has (imports bayesimg there)."""
    import jax

    import bayesimg  # noqa: F401 - configures JAX as every task will
    return jax.local_device_count()


def _run_dask(tasks, out_dir, file_format, client, n_workers, collect) -> None:
    distributed = _require_distributed()
    own_client = own_cluster = None
    futures: dict = {}
    try:
        if client == "local":
            own_cluster = local_cluster(n_workers)
            client = own_client = distributed.Client(own_cluster)
        else:
            _check_worker_devices(client)
        scattered: dict[int, Any] = {}
        for task in tasks:
            for data in _task_datas(task):
                if id(data) not in scattered:
                    scattered[id(data)] = client.scatter(data, hash=False)
        for task in tasks:
            refs = [scattered[id(d)] for d in _task_datas(task)]
            future = client.submit(_run_task, _specs(task), refs,
                                   None if out_dir is None else str(out_dir), file_format,
                                   True, pure=False, key=f"bayesimg-fit_many-{task[0].name}-"
                                   f"{os.urandom(4).hex()}")
            futures[future] = task
        for future in distributed.as_completed(list(futures)):
            try:
                records = future.result()
            except Exception as err:  # noqa: BLE001 - a lost worker, an unpicklable result
                text = f"{type(err).__name__}: {err}"
                records = [{"name": p.name, "error": text, "exception": err}
                           for p in futures[future]]
            collect(records)
    except BaseException:
        if futures and (own_client or client) is not None:
            (own_client or client).cancel(list(futures))
        raise
    finally:
        if own_client is not None:
            own_client.close()
        if own_cluster is not None:
            own_cluster.close()


def _check_worker_devices(client) -> None:
    try:
        devices = client.run(_worker_devices)
        threads = client.nthreads()
    except Exception:  # noqa: BLE001 - a check only
        return
    crowded = [w for w, n in devices.items() if n > threads.get(w, 1)]
    if crowded:
        warnings.warn(
            f"{len(crowded)} Dask worker(s) have more JAX CPU devices than threads "
            f"({devices[crowded[0]]} vs {threads.get(crowded[0], 1)}), so each fit spreads "
            "over several cores and workers compete; start the workers with "
            "BAYESIMG_CPU_DEVICES=1 in their environment", RuntimeWarning,
            skip_file_prefixes=LIBRARY_FILES)
