"""The persistent JAX compilation cache set up at import (``bayesimg._jax_setup``).

Each check runs a fresh interpreter (the cache is configured once, at import):

* ``BAYESIMG_COMPILATION_CACHE=<folder>`` puts the cache there, and a second
  process gets a cache hit for a program the first one compiled;
* ``=0`` turns it off;
* a folder that cannot be created leaves the cache off with exactly one warning,
  and JAX still compiles and runs;
* without the variable the folder is ``$XDG_CACHE_HOME/bayesimg/jax``.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# compile one program (min compile time lowered so it is written), count cache hits
SCRIPT = """
import json, warnings
warnings.simplefilter("always")
with warnings.catch_warnings(record=True) as caught:
    import bayesimg.models  # the computing subpackages configure JAX on import
import jax, jax.numpy as jnp
from jax import monitoring
from bayesimg._jax_setup import compilation_cache_dir
hits = []
monitoring.register_event_listener(
    lambda event, **kw: hits.append(event) if event.endswith("cache_hits") else None)
if compilation_cache_dir():
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
out = jax.jit(lambda x: jnp.sin(x) * 3.0 + 17.0)(jnp.arange(7.0))
print(json.dumps({"dir": compilation_cache_dir(), "hits": len(hits),
                  "value": float(out.sum()),
                  "warnings": [str(w.message) for w in caught
                               if "compilation cache" in str(w.message)]}))
"""


def _run(**env_vars):
    env = {k: v for k, v in os.environ.items()
           if k not in ("BAYESIMG_COMPILATION_CACHE", "JAX_COMPILATION_CACHE_DIR")}
    env.update(env_vars, JAX_PLATFORMS="cpu", BAYESIMG_CPU_DEVICES="1")
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                         env=env, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_cache_folder_and_hit_in_a_second_process(tmp_path):
    folder = tmp_path / "cache"
    first = _run(BAYESIMG_COMPILATION_CACHE=str(folder))
    assert first["dir"] == str(folder) and first["hits"] == 0 and not first["warnings"]
    assert any(folder.iterdir())
    second = _run(BAYESIMG_COMPILATION_CACHE=str(folder))
    assert second["hits"] >= 1 and second["value"] == first["value"]


def test_cache_off_and_default_folder(tmp_path):
    assert _run(BAYESIMG_COMPILATION_CACHE="0")["dir"] is None
    assert _run(XDG_CACHE_HOME=str(tmp_path))["dir"] is None   # opt-in
    default = _run(XDG_CACHE_HOME=str(tmp_path), BAYESIMG_COMPILATION_CACHE="1")
    assert default["dir"] == str(tmp_path / "bayesimg" / "jax")


def test_unwritable_folder_fails_soft(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    out = _run(BAYESIMG_COMPILATION_CACHE=str(blocker / "cache"))
    assert out["dir"] is None
    assert len(out["warnings"]) == 1 and "BAYESIMG_COMPILATION_CACHE" in out["warnings"][0]
    assert abs(out["value"] - 7 * 17.0 - 3.0 * sum(math.sin(i) for i in range(7))) < 1e-9
