"""Turn sampler output into an ArviZ 1.x ``xarray.DataTree`` with named dims.

Every array is numpy (never JAX: ArviZ maths on JAX arrays is slow and warns
about int64 truncation).  Every axis gets the dim name the model declared; an
axis the model did not name is an error, so no output ever carries
``W_dim_0``.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import xarray as xr

from bayesimg.data.base import SubjectData
from bayesimg.errors import ModelSpecError
from bayesimg.models.core.base import Model
from bayesimg.models.core.linalg import JITTER_TRIES

SAMPLE_DIMS = ("chain", "draw")


def _dataset(arrays: dict[str, np.ndarray], dims_of: dict[str, tuple[str, ...]],
             coords: dict[str, np.ndarray], model_name: str, lead=SAMPLE_DIMS) -> xr.Dataset:
    variables = {}
    used = set()
    for name, value in arrays.items():
        value = np.asarray(value)
        if name not in dims_of:
            if value.ndim > len(lead):
                raise ModelSpecError(
                    f"model {model_name!r} declares no dims for site {name!r} "
                    f"(shape {value.shape[len(lead):]}); add it to Model.dims")
            site_dims = ()
        else:
            site_dims = tuple(dims_of[name])
        full = tuple(lead) + site_dims
        if value.ndim != len(full):
            raise ModelSpecError(
                f"site {name!r} has shape {value.shape} but dims {full} were declared")
        for dim, size in zip(full, value.shape, strict=True):
            if dim in coords and len(coords[dim]) != size:
                raise ModelSpecError(
                    f"site {name!r}: dim {dim!r} has {size} entries but {len(coords[dim])} labels")
        used.update(site_dims)
        variables[name] = (full, value)
    ds_coords = {dim: np.asarray(coords[dim]) for dim in used if dim in coords}
    for dim, size in zip(lead, next(iter(arrays.values())).shape if arrays else (), strict=False):
        ds_coords[dim] = np.arange(size)
    return xr.Dataset(variables, coords=ds_coords)


def to_datatree(model: Model, data: SubjectData, *, samples: dict[str, np.ndarray],
                stats: dict[str, np.ndarray] | None, loglik: dict[str, np.ndarray],
                attrs: dict[str, Any], extra_groups: dict[str, xr.Dataset] | None = None,
                ) -> xr.DataTree:
    """Assemble posterior, sample_stats, log_likelihood, observed and constant data."""
    coords = model.coords(data)
    dims = dict(model.dims)
    samples, alignment = model.align_draws(dict(samples), data)
    if alignment:
        attrs = {**attrs, "alignment": alignment}
    groups: dict[str, xr.Dataset] = {}
    groups["posterior"] = _dataset(samples, dims, coords, model.name)
    for name in model.helper_sites & set(groups["posterior"].data_vars):
        groups["posterior"][name].attrs["role"] = "helper"   # read by report._tree
    if stats:
        groups["sample_stats"] = _dataset(stats, {}, coords, model.name)
        if "cholesky_jitter" in groups["sample_stats"]:
            # retries the kernels' jittered Cholesky allows: a count above it means even
            # the largest jitter failed (read by report.diagnostics, which imports no model)
            groups["sample_stats"]["cholesky_jitter"].attrs["jitter_tries"] = JITTER_TRIES
    unit_dims = {site: (obs_dims[0],) for site, obs_dims in model.observed.items()}
    groups["log_likelihood"] = _dataset(loglik, unit_dims, coords, model.name)
    observed = model.observed_data(data)
    if observed:
        groups["observed_data"] = _dataset(observed, dict(model.observed), coords, model.name,
                                           lead=())
    constant = model.constant_data(data)
    if constant:
        groups["constant_data"] = _dataset({k: v for k, (_, v) in constant.items()},
                                           {k: d for k, (d, _) in constant.items()},
                                           coords, model.name, lead=())
    groups.update(extra_groups or {})
    tree = xr.DataTree.from_dict({name: ds for name, ds in groups.items()})
    tree.attrs.update(_serialisable(attrs))
    return tree


def streaming_group(model: Model, data: SubjectData, streaming: dict[str, dict[str, np.ndarray]],
                    plan: dict[str, Any]) -> xr.Dataset:
    """``posterior_streaming`` group: ``<site>_<stat>`` over all draws, with the site's dims."""
    coords = model.coords(data)
    values, dims = {}, {}
    for site, stats in streaming.items():
        for stat, arr in stats.items():
            values[f"{site}_{stat}"] = np.asarray(arr)
            dims[f"{site}_{stat}"] = tuple(model.dims.get(site, ()))
    ds = _dataset(values, dims, coords, model.name, lead=())
    ds.attrs.update(_serialisable({"draw_storage": plan}))
    return ds


def _serialisable(attrs: dict[str, Any]) -> dict[str, Any]:
    """netCDF attrs take str/number/bool only: nested values become JSON strings."""
    out = {}
    for key, value in attrs.items():
        if isinstance(value, bool):
            out[key] = int(value)
        elif isinstance(value, str | int | float | np.integer | np.floating):
            out[key] = value
        else:
            out[key] = json.dumps(value, default=_json_default)
    return out


def _json_default(value):
    """JSON fallback for numpy arrays, scalars and sets (also used by the benchmarks)."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.integer | np.floating):
        return value.item()
    if isinstance(value, tuple | set | frozenset):
        return list(value)
    return str(value)
