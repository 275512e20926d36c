"""Compiled programs stored on disk under bayesimg's own key (stored_programs.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from bayesimg.inference.mcmc import ChainLayout, _disk_identity
from bayesimg.stored_programs import Unstable, args_signature, stable

ROOT = Path(__file__).resolve().parents[2]

_CHILD = textwrap.dedent("""
    import hashlib, json, sys, warnings
    import numpy as np
    import bayesimg as bi
    from bayesimg.data import simulate_gsmtr
    from bayesimg.inference.mcmc import clear_compile_cache

    def run():
        data, _ = simulate_gsmtr(n_subjects=40, n_snps=6, n_genes=2, n_phenotypes=2, seed=0)
        fit = bi.fit(bi.models.GroupSparseMTR(lambda1=5.0, lambda2=5.0), data,
                     method="gibbs", chains=2, warmup=5, draws=5, seed=3, progress=False)
        post = fit.posterior
        digest = hashlib.sha256(b"".join(np.ascontiguousarray(post[v].values).tobytes()
                                         for v in sorted(post.data_vars))).hexdigest()
        return {"loaded": fit.timings.get("programs_loaded"), "draws": digest}

    out = {"first": run()}
    if sys.argv[1] == "corrupt":
        # damage every stored program, forget the in-memory ones, fit again
        from bayesimg.stored_programs import folder
        for path in folder().glob("*.bexe"):
            blob = bytearray(path.read_bytes())
            blob[len(blob) // 2] ^= 0xFF
            path.write_bytes(bytes(blob))
        damaged = {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
                   for p in folder().glob("*.bexe")}
        clear_compile_cache()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out["after_damage"] = run()
        out["warnings"] = [str(w.message) for w in caught if "stored compiled" in str(w.message)]
        # that recompile was a hit in JAX's own cache (the first process filled it): an
        # executable loaded from there does not serialise completely, so it is not stored
        # and the damaged files stay as they were (a stored copy would fail in the next
        # process with "Function ... not found")
        out["damaged_left"] = all(
            hashlib.sha256(p.read_bytes()).hexdigest() == damaged[p.name]
            for p in folder().glob("*.bexe")) and len(damaged) == 2
    print(json.dumps(out))
""")


def _child(cache: Path, mode: str) -> dict:
    env = {**os.environ, "BAYESIMG_COMPILATION_CACHE": str(cache),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    env.pop("BAYESIMG_STORED_PROGRAMS", None)
    proc = subprocess.run([sys.executable, "-c", _CHILD, mode], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_second_process_loads_programs_with_identical_draws_and_survives_damage(tmp_path):
    first = _child(tmp_path, "plain")
    assert first["first"]["loaded"] == 0           # compiled, then stored
    stored = list((tmp_path / "bayesimg-jax-cache" / "bayesimg-programs").glob("*.bexe"))
    assert len(stored) == 2                         # init and advance
    second = _child(tmp_path, "corrupt")
    assert second["first"]["loaded"] == 2           # nothing traced or compiled
    assert second["first"]["draws"] == first["first"]["draws"]    # bit-identical
    # a damaged file is never loaded: compiled again, same draws, one warning
    assert second["after_damage"]["loaded"] == 0
    assert second["after_damage"]["draws"] == first["first"]["draws"]
    assert len(second["warnings"]) == 1 and "checksum" in second["warnings"][0]
    assert second["damaged_left"]


def test_key_parts_are_the_same_in_every_process():
    # sets by content, not by (hash-seed dependent) iteration order
    assert stable(frozenset({"b", "a", "c"})) == stable(frozenset({"c", "a", "b"}))
    assert stable({"y": 1, "x": 2}) == stable({"x": 2, "y": 1})
    a = np.arange(5000.0)
    b = a.copy()
    b[2500] += 1.0                        # same truncated repr, different content
    assert repr(a) == repr(b) and stable(a) != stable(b)
    assert stable(ChainLayout("parallel", 1, 2, 1)) != stable(ChainLayout("parallel", 1, 1, 2))
    with pytest.raises(Unstable):
        stable(object())                  # a memory address is no key
    sig = args_signature((np.zeros((3, 2)), {"k": 1}))
    assert sig != args_signature((np.zeros((3, 3)), {"k": 1}))
    assert sig != args_signature((np.zeros((3, 2), np.float32), {"k": 1}))


def test_only_bayesimg_models_are_stored():
    from bayesimg.models import GroupSparseMTR

    class Outside(GroupSparseMTR):       # code the key's source hash does not cover
        pass

    assert _disk_identity(("GSMTR",), {}, object, GroupSparseMTR) is not None
    assert _disk_identity(("GSMTR",), {}, object, Outside) is None
    assert _disk_identity(("GSMTR",), {}, object, None) is None
