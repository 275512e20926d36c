"""The persistent JAX compilation cache set up at import (``bayesimg._jax_setup``).

Each check runs a fresh interpreter (the cache is configured once, at import):

* ``BAYESIMG_COMPILATION_CACHE=<folder>`` puts the cache in a marked subfolder
  bayesimg creates there, and a second process gets a cache hit for a program the
  first one compiled;
* the user's files in that folder survive fills beyond the size cap (JAX's
  eviction sees only the subfolder), and a subfolder of that name that bayesimg did
  not make is refused (cache off, one warning naming it, nothing touched);
* ``=0`` turns it off;
* a folder that cannot be created leaves the cache off with exactly one warning,
  and JAX still compiles and runs;
* without the variable the cache is on, in ``$XDG_CACHE_HOME/bayesimg/jax``, capped at
  ``BAYESIMG_COMPILATION_CACHE_MAX_SIZE`` (least recently used programs evicted);
* the CI crash that once kept the cache opt-in (regression test): several fits in
  one process with the cache on, from two processes started together on one fresh
  folder and then from a third that loads their programs.  Every process must
  finish with the same draws and no cache warning, and the memory maps of its
  compiled programs -- freshly compiled or loaded from the cache -- must be released
  when the programs are freed (``tests/conftest.py`` does so after every module):
  the suite once kept them all, ~1000 maps per new-shape GSMTR Gibbs + SVI pair,
  until the process hit ``vm.max_map_count`` and died near 99%.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bayesimg._jax_setup import CACHE_MARKER, CACHE_SUBFOLDER
from bayesimg.folder_marker import claim_folder, is_marked

ROOT = Path(__file__).resolve().parents[2]

# compile one program (min compile time lowered so it is written), count cache hits
SCRIPT = """
import json, os, warnings
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
for i in range(int(os.environ.get("EXTRA_PROGRAMS", "0"))):   # fill up to the size cap
    jax.jit(lambda x, i=i: jnp.cumsum(jnp.cos(x) * (i + 2.0)))(jnp.arange(7.0 + i))
print(json.dumps({"dir": compilation_cache_dir(), "hits": len(hits),
                  "value": float(out.sum()), "max_size": jax.config.jax_compilation_cache_max_size,
                  "warnings": [str(w.message) for w in caught
                               if "compilation cache" in str(w.message)]}))
"""


def _run(**env_vars):
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                         env=_env(**env_vars), cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def _env(**env_vars):
    env = {k: v for k, v in os.environ.items()
           if k not in ("BAYESIMG_COMPILATION_CACHE", "JAX_COMPILATION_CACHE_DIR",
                        "BAYESIMG_COMPILATION_CACHE_MAX_SIZE")}
    env.update(env_vars, JAX_PLATFORMS="cpu", BAYESIMG_CPU_DEVICES="1")
    return env


def test_cache_folder_and_hit_in_a_second_process(tmp_path):
    folder = tmp_path / "cache"
    first = _run(BAYESIMG_COMPILATION_CACHE=str(folder))   # a new folder: created
    cache = folder / CACHE_SUBFOLDER
    assert first["dir"] == str(cache) and first["hits"] == 0 and not first["warnings"]
    assert is_marked(cache, CACHE_MARKER) and any(cache.glob("*-cache"))
    second = _run(BAYESIMG_COMPILATION_CACHE=str(folder))
    assert second["hits"] >= 1 and second["value"] == first["value"]


def test_cache_on_by_default_off_on_request(tmp_path):
    assert _run(BAYESIMG_COMPILATION_CACHE="0")["dir"] is None
    # the default folder, made unmarked by an earlier version, is bayesimg's: adopted
    legacy = tmp_path / "bayesimg" / "jax"
    legacy.mkdir(parents=True)
    (legacy / "0123-cache").write_bytes(b"old entry")
    default = _run(XDG_CACHE_HOME=str(tmp_path))
    assert default["dir"] == str(legacy) and is_marked(legacy, CACHE_MARKER)
    assert default["max_size"] == 1024**3 and not default["warnings"]


def test_size_cap_evicts_only_bayesimg_entries(tmp_path):
    # a user's existing folder, with files whose names JAX's eviction would match
    folder = tmp_path / "project"
    folder.mkdir()
    user_files = {"notes.txt": b"mine", "results-cache": b"x" * 50_000, "run-atime": b"1"}
    for name, data in user_files.items():
        (folder / name).write_bytes(data)
    out = _run(BAYESIMG_COMPILATION_CACHE=str(folder), BAYESIMG_COMPILATION_CACHE_MAX_SIZE="40K",
               EXTRA_PROGRAMS="12")
    assert out["max_size"] == 40 * 1024 and not out["warnings"]
    entries = list((folder / CACHE_SUBFOLDER).glob("*-cache"))
    # 13 programs of ~5-10 kB were written; only the most recent that fit remain
    assert 1 <= len(entries) < 13
    assert sum(p.stat().st_size for p in entries) <= 40 * 1024
    for name, data in user_files.items():
        assert (folder / name).read_bytes() == data


def test_subfolder_not_made_by_bayesimg_is_refused(tmp_path):
    foreign = tmp_path / "scratch" / CACHE_SUBFOLDER
    foreign.mkdir(parents=True)
    (foreign / "keep-cache").write_bytes(b"not ours")
    out = _run(BAYESIMG_COMPILATION_CACHE=str(tmp_path / "scratch"))
    assert out["dir"] is None
    assert len(out["warnings"]) == 1 and str(foreign) in out["warnings"][0]
    assert sorted(p.name for p in foreign.iterdir()) == ["keep-cache"]


def test_claim_folder(tmp_path):
    marker = ".bayesimg-test.json"
    assert claim_folder(tmp_path / "new" / "deep", marker) is None     # created, parents too
    assert is_marked(tmp_path / "new" / "deep", marker)
    assert claim_folder(tmp_path / "new" / "deep", marker) is None     # ours already
    (tmp_path / "empty").mkdir()
    assert claim_folder(tmp_path / "empty", marker) is None
    assert is_marked(tmp_path / "empty", marker)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "a.txt").write_text("mine")
    assert "did not create" in claim_folder(tmp_path / "full", marker)
    assert not (tmp_path / "full" / marker).exists()
    (tmp_path / "file").write_text("mine")
    assert "is a file" in claim_folder(tmp_path / "file", marker)
    (tmp_path / "link").symlink_to(tmp_path / "empty")
    assert "symlink" in claim_folder(tmp_path / "link", marker)
    assert not [p for p in tmp_path.iterdir() if ".claim." in p.name]    # no staging left


def test_unwritable_folder_fails_soft(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    out = _run(BAYESIMG_COMPILATION_CACHE=str(blocker / "cache"))
    assert out["dir"] is None
    assert len(out["warnings"]) == 1 and "BAYESIMG_COMPILATION_CACHE" in out["warnings"][0]
    assert abs(out["value"] - 7 * 17.0 - 3.0 * sum(math.sin(i) for i in range(7))) < 1e-9


# Fits of GSMTR (SVI: the cheapest to compile) on two data shapes; after each, the
# driver's and JAX's caches are freed as tests/conftest.py does.  Prints the draws, the
# cache hits and warnings, and the process's memory-map count after each fit.
FITS = """
import gc, json, warnings
warnings.simplefilter("always")
with warnings.catch_warnings(record=True) as caught:
    import bayesimg as bi
    from bayesimg.data import simulate_gsmtr
    from bayesimg.inference import clear_compile_cache
    import jax
    from jax import monitoring
    hits = []
    monitoring.register_event_listener(
        lambda event, **kw: hits.append(event) if event.endswith("cache_hits") else None)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    def maps():
        with open("/proc/self/maps") as f:
            return sum(1 for _ in f)
    draws, counts = [], []
    for n in (40, 44):
        ds, _ = simulate_gsmtr(n_subjects=n, n_snps=8, n_genes=2, n_phenotypes=2, seed=n)
        fit = bi.fit(bi.models.GroupSparseMTR(lambda1=5.0, lambda2=5.0), ds, method="svi",
                     steps=20, num_draws=5, progress=False)
        draws.append(fit.posterior["W"].values.ravel().tolist())
        clear_compile_cache(); jax.clear_caches(); gc.collect()
        counts.append(maps())
print(json.dumps({"draws": draws, "hits": len(hits), "maps": counts,
                  "warnings": [str(w.message) for w in caught if "cache" in str(w.message)]}))
"""


def test_processes_sharing_a_fresh_cache_and_programs_freed(tmp_path):
    if not Path("/proc/self/maps").exists():   # pragma: no cover - Linux only
        pytest.skip("needs /proc/self/maps")
    env = _env(BAYESIMG_COMPILATION_CACHE=str(tmp_path / "shared"))

    def start():
        return subprocess.Popen([sys.executable, "-X", "faulthandler", "-c", FITS],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=env, cwd=ROOT)

    def result(proc):
        out, err = proc.communicate(timeout=400)
        assert proc.returncode == 0, err[-3000:]
        return json.loads(out.strip().splitlines()[-1])

    together = [start(), start()]          # both compile and write the same programs
    cold = [result(p) for p in together]
    warm = result(start())                  # loads them
    assert warm["hits"] >= 3
    for run in cold + [warm]:
        assert run["draws"] == cold[0]["draws"]
        assert not run["warnings"]
        # a program's maps are released once it is freed, whether compiled or loaded
        # (the first fit also maps one-off things: thread stacks, libraries)
        assert run["maps"][-1] - run["maps"][0] < 40, run["maps"]
