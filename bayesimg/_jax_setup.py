"""JAX start-up settings, applied once when bayesimg is imported.

* **CPU devices.**  NumPyro runs chains in parallel only across JAX devices, and
  the CPU counts as one device unless told otherwise *before the backend
  starts* (``numpyro.set_host_device_count`` is silently ignored afterwards).
  We set ``jax_num_cpu_devices`` to the number of cores (override with the
  environment variable ``BAYESIMG_CPU_DEVICES``).  If JAX was already
  initialised by the user we leave it alone; chains then run vectorised or in
  sequence (the driver says which).
* **Precision.**  float64 on CPU (exact Cholesky/Gibbs maths, stable
  diagnostics), float32 on GPU (JAX's default, much faster there).  Override
  with ``BAYESIMG_PRECISION=float32|float64`` or :func:`set_precision` early.
"""

from __future__ import annotations

import os
import warnings

import jax

_state = {"cpu_devices_set": False}


def _configure_cpu_devices() -> None:
    wanted = os.environ.get("BAYESIMG_CPU_DEVICES")
    if "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", ""):
        return
    n = int(wanted) if wanted else (os.cpu_count() or 1)
    if n <= 1:
        return
    try:
        jax.config.update("jax_num_cpu_devices", n)
        _state["cpu_devices_set"] = True
    except RuntimeError:
        # backend already initialised by the user's own JAX code: keep theirs
        pass


def set_precision(precision: str) -> None:
    """Use ``"float64"`` or ``"float32"`` for all later bayesimg computations."""
    if precision not in ("float32", "float64"):
        raise ValueError(f"precision must be 'float32' or 'float64', got {precision!r}")
    jax.config.update("jax_enable_x64", precision == "float64")


def current_precision() -> str:
    return "float64" if jax.config.jax_enable_x64 else "float32"


def _configure_precision() -> None:
    wanted = os.environ.get("BAYESIMG_PRECISION")
    if wanted:
        set_precision(wanted)
        return
    platforms = os.environ.get("JAX_PLATFORMS", "") or os.environ.get("JAX_PLATFORM_NAME", "")
    if "cuda" in platforms or "gpu" in platforms:
        return
    try:
        backend = jax.default_backend()
    except RuntimeError as err:  # pragma: no cover - broken installs
        warnings.warn(f"JAX backend could not start: {err}", stacklevel=2)
        return
    if backend == "cpu":
        set_precision("float64")


def configure() -> None:
    _configure_cpu_devices()
    _configure_precision()
