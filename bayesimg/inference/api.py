"""``bayesimg.fit``: one entry point for every model and method."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from bayesimg.data.base import SubjectData
from bayesimg.errors import DataValidationError, ModelSpecError
from bayesimg.inference.common import check_positive_int
from bayesimg.inference.fit import Fit
from bayesimg.inference.sharding import check_shard_option, sharded_chain_method
from bayesimg.models.core.base import Model

METHODS = ("nuts", "gibbs", "svi", "map")
_MCMC_KEYS = {"chains", "warmup", "draws", "thin", "seed", "chain_method", "progress",
              "target_accept", "max_tree_depth", "dense_mass", "max_draw_bytes",
              "importance_threshold", "checkpoint", "checkpoint_every", "shard_data"}
_SVI_KEYS = {"guide", "steps", "learning_rate", "final_lr_fraction", "num_draws", "seed", "tol",
             "stop_on_convergence", "rank", "num_particles", "progress", "subsample_size",
             "checkpoint", "checkpoint_every", "shard_data"}


def fit(model: Model, data: SubjectData, method: str = "nuts", **options) -> Fit:
    """Fit ``model`` to ``data``.

    Parameters
    ----------
    method : {"nuts", "gibbs", "svi", "map"}
        ``nuts``/``gibbs``: MCMC (options ``chains=4, warmup=1000, draws=1000,
        thin=1, seed=0, chain_method="auto", target_accept=0.8,
        max_tree_depth=10``).  ``svi``: variational (``guide="mean_field"`` or
        ``"low_rank"``, ``steps``, ``learning_rate``, ``num_draws``, ``tol``).
        ``map``: posterior mode (point-mass guide).
    progress : bool
        Show the progress bar (default True).
    shard_data : bool or int
        Split the subjects (rows of the data) over all devices (``True``) or the
        first ``k`` (``k``): one big fit on several CPU devices, GPUs or hosts
        (:mod:`bayesimg.inference.sharding`).  n must be divisible by the
        device count; MCMC chains then run vectorised.  Default False.

    Returns
    -------
    Fit
        Wraps an ArviZ DataTree with named dims and per-subject log-likelihood.
    """
    check_fit_options(method, options)
    if isinstance(model, Model):
        data = model.as_data(data)
    try:
        if method in ("nuts", "gibbs"):
            from bayesimg.inference.sampling import sample
            return sample(model, data, kernel=method, **options)
        from bayesimg.inference.svi import optimize
        if method == "map":
            if options.get("guide", "map") != "map":
                raise ModelSpecError("method='map' uses the point-mass guide; drop guide=")
            options["guide"] = "map"
        return optimize(model, data, **options)
    except RuntimeError as exc:
        if "Cannot find valid initial parameters" not in str(exc):
            raise
        raise DataValidationError(
            f"{getattr(model, 'name', 'the model')}: the log density is not finite at any "
            "tried starting point; check the data for extreme or degenerate values "
            "(standardise with make_dataset / make_views) and the hyperparameters",
            source=getattr(data, "name", None)) from exc


def check_fit_options(method: str, options: Mapping[str, Any]) -> None:
    """Named errors for an unknown ``method``, unknown options or bad option values."""
    if method not in METHODS:
        raise ModelSpecError(f"method must be one of {METHODS}, got {method!r}")
    allowed = _MCMC_KEYS if method in ("nuts", "gibbs") else _SVI_KEYS
    unknown = set(options) - allowed
    if unknown:
        raise ModelSpecError(
            f"unknown option(s) {sorted(unknown)} for method={method!r}; "
            f"allowed: {sorted(allowed)}")
    _check_options(dict(options))


def _check_options(options: dict) -> None:
    """Named errors for option values the drivers would otherwise choke on."""
    if "seed" in options:
        check_positive_int("seed", options["seed"], 0)
    if "shard_data" in options:
        check_shard_option(options["shard_data"])
        sharded_chain_method(options.get("chain_method", "auto"), options["shard_data"])
    for key in ("max_tree_depth", "num_particles", "rank"):
        if key in options:
            check_positive_int(key, options[key])
    if "target_accept" in options:
        value = options["target_accept"]
        if not isinstance(value, float | int) or not 0.0 < float(value) < 1.0:
            raise ModelSpecError(f"target_accept must be a number in (0, 1), got {value!r}")
    if options.get("max_draw_bytes") is not None:
        value = options["max_draw_bytes"]
        if not isinstance(value, float | int) or not float(value) > 0:
            raise ModelSpecError(f"max_draw_bytes must be > 0 or None, got {value!r}")
    if options.get("tol") is not None:
        value = options["tol"]
        if not isinstance(value, float | int) or not (math.isfinite(value) and value >= 0):
            raise ModelSpecError(f"tol must be a finite number >= 0, got {value!r}")


def select_hyperparameter(model: Model, data: SubjectData,
                          grid: Iterable[Mapping[str, Any]], *, ic: str = "loo",
                          method: str = "nuts", **options):
    """Fit ``model`` at every setting in ``grid`` and rank them by LOO (or WAIC).

    ``ic="loo"`` (default) uses each fit's most reliable LOO (:func:`bayesimg.compare`:
    integrated LOO for GSMTR, else PSIS); ``ic="waic"`` the legacy WAIC.  A one-line
    warning says when the winner sits at the edge of the grid along a numeric setting
    (the optimum may lie beyond it) and which value to add.

    Hyperparameters such as GSMTR's λ₁, λ₂ enter the compiled program as
    arguments, so the whole grid compiles once, and MCMC settings of one shape
    run together in one program vmapped over the grid
    (:func:`bayesimg.fit_many`, in this process).

    Returns
    -------
    best : Fit
        The fit with the highest expected log predictive density.
    table : pandas.DataFrame
        :func:`bayesimg.report.compare` table, one row per setting.
    fits : dict[str, Fit]
        All fits, keyed by a label such as ``"lambda1=2, lambda2=2"``.
    """
    from bayesimg.errors import FitManyError
    from bayesimg.inference.many import FitJob, fit_many
    from bayesimg.report import compare
    progress = options.pop("progress", True)
    jobs = {}
    for setting in grid:
        label = ", ".join(f"{k}={v:g}" if isinstance(v, float | int) else f"{k}={v}"
                          for k, v in setting.items())
        if label in jobs:
            raise ModelSpecError(f"the hyperparameter grid holds {label!r} twice")
        jobs[label] = FitJob(model.replace(**setting), data, method, dict(options))
    if not jobs:
        raise ModelSpecError("the hyperparameter grid is empty")
    try:
        fits = dict(fit_many(jobs, progress=progress))
    except FitManyError as err:
        if isinstance(err.__cause__, Exception):  # the first failure, as a single fit raises it
            raise err.__cause__ from None
        raise
    table = compare(fits, ic=ic)
    _warn_grid_edge(table.index[0], list(jobs), [dict(g) for g in _settings(jobs)])
    return fits[table.index[0]], table, fits


def _settings(jobs) -> list[dict[str, Any]]:
    return [dict(job.model.settings()) for job in jobs.values()]


def _warn_grid_edge(best: str, labels: list[str], settings: list[dict[str, Any]]) -> None:
    """One line when the winner sits at the edge of the grid along a numeric setting."""
    from bayesimg.report.compare import warn_user

    where = labels.index(best)
    edges, hints = [], []
    for key in settings[0]:
        values = [s.get(key) for s in settings]
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
            continue
        distinct = sorted(set(values))
        if len(distinct) < 2:
            continue
        v = values[where]
        if v not in (distinct[0], distinct[-1]):
            continue
        side = "largest" if v == distinct[-1] else "smallest"
        ratio = distinct[-1] / distinct[-2] if side == "largest" else distinct[1] / distinct[0]
        if side == "largest":
            nxt = v * ratio if ratio > 0 and math.isfinite(ratio) else v * 10
        else:
            nxt = v / ratio if ratio > 0 and math.isfinite(ratio) else v / 10
        if isinstance(v, int) and not isinstance(nxt, int):
            nxt = int(round(nxt)) if side == "largest" else max(int(round(nxt)), 1)
        if nxt == v:
            continue
        edges.append(f"the {side} {key} ({distinct[0]:g} … {distinct[-1]:g})")
        hints.append(f"{key}={nxt:g}")
    if edges:
        warn_user(f"select_hyperparameter: the best setting ({best}) has {' and '.join(edges)} "
                  f"of the grid, so the optimum may lie beyond it; extend the grid (add "
                  f"{', '.join(hints)}) and select again")
