"""What every driver does around its sampler: arguments, attributes, packaging."""

from __future__ import annotations

import datetime as _dt
import platform
from importlib import metadata
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from bayesimg.data.base import SubjectData
from bayesimg.errors import DataValidationError, ModelSpecError
from bayesimg.models.core.base import Model


def device_args(model_args: dict[str, Any]) -> dict[str, Any]:
    """Model arguments as JAX arrays in the working precision (None kept)."""
    out = {}
    for key, value in model_args.items():
        if value is None or isinstance(value, int | str):
            out[key] = value
            continue
        arr = np.asarray(value)
        if np.issubdtype(arr.dtype, np.floating):
            out[key] = jnp.asarray(arr, dtype=jnp.result_type(float))
        else:
            out[key] = jnp.asarray(arr)
    return out


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("bayesimg", "jax", "jaxlib", "numpyro", "arviz", "numpy", "xarray"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            continue
    return out


def base_attrs(model: Model, data: SubjectData, method: str, seed: int,
               settings: dict[str, Any]) -> dict[str, Any]:
    """Attributes stored with every fit: enough to say how it was made."""
    return {
        "method": method,
        "model": model.name,
        "model_class": type(model).__name__,
        "model_settings": model.settings(),
        "settings": settings,
        "seed": int(seed),
        "data_name": data.name,
        "data_fingerprint": data.fingerprint(),
        "n_subjects": data.n_subjects,
        "versions": versions(),
        "backend": jax.default_backend(),
        "precision": "float64" if jax.config.jax_enable_x64 else "float32",
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "approximate": method in ("svi", "map"),
        "association_site": model.association_site or "",
        "trace_sites": list(model.trace_sites),
    }


def check_inputs(model: Model, data: Any) -> None:
    if not isinstance(model, Model):
        raise ModelSpecError(f"expected a bayesimg Model, got {type(model).__name__}")
    if not isinstance(data, SubjectData):
        raise DataValidationError(
            f"expected a bayesimg Dataset or MultiViewData, got {type(data).__name__}; build "
            "one with bayesimg.data.make_dataset(...), bayesimg.data.make_views(...) or "
            "bayesimg.data.load_demo()")
    check_data_arrays(data)
    try:
        model.validate(data)
    except AttributeError as exc:
        # a Dataset model handed a MultiViewData (or the reverse) reaches for a
        # field the object does not have
        raise DataValidationError(
            f"{type(model).__name__} cannot fit a {type(data).__name__} ({exc}); genotype "
            "models (GroupSparseMTR, GLRR) take a Dataset from bayesimg.data.make_dataset, "
            "view models (BNMix, MultiViewFactor) a MultiViewData from "
            "bayesimg.data.make_views") from exc


def _arrays_of(data: SubjectData):
    """(label, array, column names, source) of every numeric block of ``data``."""
    if hasattr(data, "views"):
        for v in data.views:
            yield f"view {v.name!r}", v.values, v.feature_names, v.name
        yield "covariates", getattr(data, "covariates", None), \
            getattr(data, "covariate_names", None), None
        outcome = getattr(data, "outcome", None)
        if outcome is not None:
            yield "outcome", np.asarray(outcome).reshape(len(outcome), -1), \
                [getattr(data, "outcome_name", None) or "outcome"], None
        return
    snps = getattr(data, "snps", None)
    yield ("genotypes", getattr(data, "genotypes", None),
           None if snps is None else np.asarray(snps["snp"], dtype=str), None)
    yield "phenotypes", getattr(data, "phenotypes", None), getattr(data, "phenotype_names", None), \
        None
    yield "covariates", getattr(data, "covariates", None), getattr(data, "covariate_names", None), \
        None


def check_data_arrays(data: SubjectData) -> None:
    """Checks every model needs before anything reaches JAX.

    At least one subject, unique subject IDs and column names, real numeric
    arrays (no object/str/complex dtypes), and no value so large that its square
    overflows in the working precision (float32 overflows above ~1.8e19 squared,
    float64 above ~1.3e154): such data would reach the compiled program as inf.
    Infinite values are refused here for every model; NaN is left to each
    model's ``validate`` (some models treat it as a missing entry).
    """
    subjects = np.asarray(data.subjects)
    if subjects.shape[0] == 0:
        raise DataValidationError(f"the data object {data.name!r} holds no subjects")
    ids = pd.Index([str(s) for s in subjects])
    if ids.has_duplicates:
        raise DataValidationError("subject ID appears more than once in the data object",
                                  source=data.name, subject=str(ids[ids.duplicated()][0]))
    dtype = jnp.result_type(float)
    limit = float(np.sqrt(np.finfo(dtype).max)) * 1e-3
    for label, arr, names, source in _arrays_of(data):
        if arr is None:
            continue
        arr = np.asarray(arr)
        if arr.dtype == bool:
            continue
        if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
            raise DataValidationError(
                f"{label} must be a real numeric array, got dtype {arr.dtype}",
                source=source or data.name)
        if names is not None:
            cols = pd.Index([str(c) for c in names])
            if cols.has_duplicates:
                raise DataValidationError(f"{label}: column name appears more than once",
                                          source=source or data.name,
                                          column=str(cols[cols.duplicated()][0]))
        if arr.ndim != 2:
            continue
        inf = np.isinf(arr)
        if inf.any():
            i, j = np.argwhere(inf)[0]
            raise DataValidationError(
                f"{label}: infinite value (no model accepts inf; NaN marks a missing entry "
                "where a model allows it)", source=source or data.name,
                column=None if names is None else str(names[j]), subject=str(subjects[i]))
        with np.errstate(invalid="ignore"):
            big = np.isfinite(arr) & (np.abs(arr) > limit)
        if big.any():
            i, j = np.argwhere(big)[0]
            raise DataValidationError(
                f"{label}: value {float(arr[i, j]):.3g} is too large for {np.dtype(dtype).name} "
                f"arithmetic (above {limit:.2g}, its square overflows); standardise the data "
                "(make_dataset / make_views do)", source=source or data.name,
                column=None if names is None else str(names[j]), subject=str(subjects[i]))


def check_positive_int(name: str, value, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ModelSpecError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)
