"""What every driver does around its sampler: arguments, attributes, packaging."""

from __future__ import annotations

import datetime as _dt
import platform
from importlib import metadata
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from bayesimg.data.base import SubjectData
from bayesimg.errors import DataValidationError, ModelSpecError
from bayesimg.models.base import Model


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
    model.validate(data)


def check_positive_int(name: str, value, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ModelSpecError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)
