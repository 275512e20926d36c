"""Compile time and program size of each family's Gibbs programs (issue 19, item 3).

For each family at the size of ``benchmarks/first_fit.py`` (its ``_problem``), in a
fresh process with the persistent compilation cache off, the programs one chain of a
Gibbs fit compiles are lowered and compiled one at a time with ``jax.stages``:

* ``sweep``: one transition, ``kernel.sample`` (the model's Gibbs sweep alone);
* ``init``: the chain's start (``init_one``: the kernel's ``init``; for GSMTR without
  the first sweep, which the driver runs through ``advance``);
* ``advance``: the driver's chunk loop (``advance_one``: sweeps, post-processing,
  the per-draw pointwise log-likelihood, the draw buffer).

Each records trace+lower seconds, XLA compile seconds (wall and process CPU), the
StableHLO text size (lines, operations by kind, ``while``/``case`` counts) and XLA's
cost analysis (flops).  The driver's real programs map these over chains and devices
(``vmap``/``pmap``), which adds little to the size; the fit's compile time in
``first_fit.json`` is init + advance of that mapped form.

    nice -n 10 python benchmarks/compile_profile.py                 # all families
    nice -n 10 python benchmarks/compile_profile.py --families gsmtr glrr
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "compile_profile.json"
FAMILIES = ("gsmtr", "spike_slab", "glrr", "factor", "bnmix")
CHAINS, DRAWS = 2, 200
TARGET_COLD_COMPILE_S = 10.0
_OP = re.compile(r"=\s+(?:\"?)([a-z_]+\.[a-z_0-9.]+)")


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _hlo_stats(text: str) -> dict:
    ops = collections.Counter(m.group(1) for m in _OP.finditer(text))
    return {"lines": text.count("\n"), "ops": int(sum(ops.values())),
            "while": ops.get("stablehlo.while", 0), "case": ops.get("stablehlo.case", 0),
            "custom_call": ops.get("stablehlo.custom_call", 0),
            "top_ops": dict(ops.most_common(8))}


def _profile(name: str, fn, *args) -> dict:
    import jax

    w0 = time.perf_counter()
    lowered = jax.jit(fn).lower(*args)
    trace_s = time.perf_counter() - w0
    w1, c1 = time.perf_counter(), _cpu()
    compiled = lowered.compile()
    out = {"trace_lower_s": trace_s, "compile_wall_s": time.perf_counter() - w1,
           "compile_cpu_s": _cpu() - c1, **_hlo_stats(lowered.as_text())}
    try:
        cost = compiled.cost_analysis()
        cost = cost[0] if isinstance(cost, list) else cost
        out["flops"] = float(cost.get("flops", float("nan")))
    except Exception:  # noqa: BLE001 - cost analysis is optional per backend
        out["flops"] = None
    print(f"  {name}: {out['compile_cpu_s']:.1f} CPU s compile, {out['ops']} ops",
          file=sys.stderr)
    return out, compiled


def child(family: str) -> dict:
    """Profile one family's programs in this (fresh) process."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import jax
    from first_fit import _problem

    from bayesimg.inference.batched import batch_storage
    from bayesimg.inference.common import device_args
    from bayesimg.inference.loglik import pointwise_loglik_fn
    from bayesimg.inference.mcmc import chain_programs

    model, data = _problem(family)
    kwargs = device_args(model.model_args(data, "gibbs"))
    plan, _ = batch_storage(model, data, "gibbs", chains=CHAINS, draws=DRAWS, kwargs=kwargs)
    kernel = model.gibbs_kernel(data)
    init_one, advance_one = chain_programs(
        kernel, num_warmup=0, chunk=plan.chunk,
        record_extra=pointwise_loglik_fn(model.numpyro_model("gibbs"), model.observed),
        drop_sites=model.hidden_sites)
    key = jax.random.PRNGKey(0)
    out = {"chunk": plan.chunk}
    out["init"], init = _profile("init", init_one, key, kwargs)
    state = init(key, kwargs)
    out["sweep"], _ = _profile("sweep", lambda s, kw: kernel.sample(s, (), kw), state, kwargs)
    out["advance"], _ = _profile("advance", advance_one, state, kwargs, plan.chunk, 1)
    out["fit_programs_compile_cpu_s"] = out["init"]["compile_cpu_s"] + \
        out["advance"]["compile_cpu_s"]
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", nargs="+", default=list(FAMILIES), choices=FAMILIES)
    parser.add_argument("--child", choices=FAMILIES)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child)))
        return
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from _common import write_json
    from first_fit import SIZES

    load_start = os.getloadavg()
    previous = json.loads(OUT.read_text()).get("families", {}) if OUT.exists() else {}
    results = dict(previous)
    env = {**os.environ, "BAYESIMG_COMPILATION_CACHE": "0", "BAYESIMG_CPU_DEVICES": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    for family in args.families:
        print(family, file=sys.stderr)
        proc = subprocess.run([sys.executable, __file__, "--child", family], env=env, cwd=ROOT,
                              capture_output=True, text=True, timeout=1800)
        if proc.returncode != 0:
            results[family] = {"error": proc.stderr[-2000:]}
            continue
        sys.stderr.write(proc.stderr[-600:])
        results[family] = {"size": SIZES[family],
                           **json.loads(proc.stdout.strip().splitlines()[-1])}
    write_json(OUT, {
        "benchmark": "compile_profile", "families": results,
        "target_cold_compile_s": TARGET_COLD_COMPILE_S,
        "load_average_at_start": load_start,
        "note": "one chain's programs, lowered and compiled one at a time with jax.stages in "
                "a fresh process, persistent cache off; machine shared by 6 workers "
                "(2 cores), so wall and CPU seconds are inflated by contention"})
    print(json.dumps({f: {p: round(r[p]["compile_cpu_s"], 1) for p in ("sweep", "init",
                                                                       "advance")}
                      for f, r in results.items() if "sweep" in r}, indent=1))


if __name__ == "__main__":
    main()
