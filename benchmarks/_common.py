"""What every benchmark records: machine, versions, peak memory; atomic JSON output."""

from __future__ import annotations

import json
import os
import platform
import resource
import time
from pathlib import Path

import jax
import numpy as np

import bayesimg as bi
from bayesimg.atomic import write_text_atomic
from bayesimg.inference.common import versions
from bayesimg.inference.convert import _json_default


def machine() -> dict:
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {"platform": platform.platform(), "processor": platform.processor(),
            "cpu_count": os.cpu_count(), "jax_devices": [str(d) for d in jax.devices()],
            "gpu": jax.default_backend() == "gpu", "load_average_at_end": load,
            "precision": bi.current_precision(), "versions": versions()}


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_json(path: str | Path, result: dict) -> Path:
    """Write ``result`` (plus machine and peak memory) atomically."""
    result = {**result, "machine": machine(), "peak_rss_mb": peak_rss_mb()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_text_atomic(path, json.dumps(result, indent=2, default=_json_default))


def median_seconds(fn, *args, repeats: int = 5) -> float:
    """Median wall time of ``fn(*args)`` (a JAX function) after one warm-up call."""
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t0)
    return float(np.median(times))
