"""Scale of the exact Gibbs sweep of MultiViewFactor: 100 subjects x 20,000 features x 15 factors.

Designs (``bayesimg.data.simulate_factor``, 10 planted factors, K = 15 fitted):

* ``gaussian``: one Gaussian view of 20,000 features, 10% of entries missing;
* ``bernoulli80``: one Bernoulli view of 20,000 features, 80% missing (the
  single-cell methylation shape of issue 17);
* ``both``: the two views together (40,000 columns).

Each (code tree, design) runs in a fresh subprocess and records

* the kernel's sweep alone, jitted: best CPU seconds and best wall seconds per
  sweep over 5 batches of ``--sweeps`` sweeps (one chain; target <= 0.1 s);
* unless ``draws`` is 0, a complete ``bayesimg.fit`` (1 chain, ``--warmup`` + ``--draws``): its
  compile/warm-up/sampling times, the process's CPU seconds, the peak resident
  memory of the process (``ru_maxrss``) and the resident memory after imports
  and data (so the fit's own share is visible), and the bytes of the kept draws.

"before" is the tree given by ``--before`` (default ``/work/main``, the main
branch when this was written), "after" is this tree.  The machine (2 cores)
is shared with other jobs while measuring, so wall times are inflated by the
load average recorded in the JSON; CPU seconds are the comparison.

    python benchmarks/factor_scale.py --out benchmarks/results/factor_scale.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

CHILD = textwrap.dedent("""
    import json, resource, sys, time, warnings
    warnings.simplefilter("ignore")
    import numpy as np, jax, jax.numpy as jnp
    import bayesimg
    from bayesimg.data.simulate_factor import simulate_factor
    from bayesimg.models import MultiViewFactor
    design, sweeps, warmup, draws = sys.argv[1], *map(int, sys.argv[2:5])
    sizes = {"gaussian": {"rna": 20000}, "bernoulli80": {"met": 20000},
             "both": {"rna": 20000, "met": 20000}}[design]
    liks = {v: "gaussian" if v == "rna" else "bernoulli" for v in sizes}
    miss = {v: 0.1 if v == "rna" else 0.8 for v in sizes}
    data, truth = simulate_factor(n=100, sizes=sizes, likelihoods=liks, missing=miss,
                                  n_factors=10, seed=0)
    rss_data = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    model = MultiViewFactor(15)
    args = model.model_args(data, "gibbs")
    kernel = model.gibbs_kernel(data)
    kw = {k: (jnp.asarray(v) if isinstance(v, np.ndarray) else v) for k, v in args.items()}
    state = kernel.init(jax.random.PRNGKey(0), 0, None, (), kw)
    step = jax.jit(lambda s: kernel.sample(s, (), kw))
    t0 = time.perf_counter()
    state = jax.block_until_ready(step(state))
    compile_s = time.perf_counter() - t0
    cpu, wall = [], []
    for _ in range(5):
        c0, t0 = time.process_time(), time.perf_counter()
        for _ in range(sweeps):
            state = step(state)
        jax.block_until_ready(state)
        cpu.append((time.process_time() - c0) / sweeps)
        wall.append((time.perf_counter() - t0) / sweeps)
    del state, step
    rss_sweep = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    fit_info = None
    if draws:
        c0, t0 = time.process_time(), time.perf_counter()
        fit = bayesimg.fit(model, data, method="gibbs", chains=1, warmup=warmup, draws=draws,
                           seed=1, progress=False)
        fit_cpu, fit_wall = time.process_time() - c0, time.perf_counter() - t0
        kept = sum(int(v.nbytes) for v in fit.posterior.data_vars.values())
        fit_info = {"chains": 1, "warmup": warmup, "draws": draws, "cpu_s": fit_cpu,
                    "wall_s": fit_wall, "timings": fit.timings,
                    "sampling_wall_s_per_sweep": fit.timings["sampling_seconds"] / draws,
                    "kept_draw_bytes": kept}
    print("RESULT" + json.dumps({
        "sweep_cpu_s_best": min(cpu), "sweep_wall_s_best": min(wall),
        "sweep_cpu_s_median": float(np.median(cpu)), "sweep_compile_s_wall": compile_s,
        "fit": fit_info, "peak_rss_sweep_only_mb": rss_sweep,
        "rss_after_data_mb": rss_data,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "observed_entries": int(sum(v.observed.sum() for v in data.views))}))
""")


def run_child(tree: Path, design: str, sweeps: int, warmup: int, draws: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    proc = subprocess.run([sys.executable, "-c", CHILD, design, str(sweeps), str(warmup),
                           str(draws)], capture_output=True, text=True, env=env, cwd=tree,
                          check=False)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT"):
            return json.loads(line[6:])
    return {"error": (proc.stderr or proc.stdout)[-2000:]}


def _git_head(tree: Path) -> str:
    try:
        return subprocess.run(["git", "-C", str(tree), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--designs", nargs="+", default=["gaussian", "bernoulli80", "both"])
    ap.add_argument("--before", default="/work/main")
    ap.add_argument("--no-before", action="store_true")
    ap.add_argument("--no-after", action="store_true")
    ap.add_argument("--sweeps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--draws", type=int, default=50)
    ap.add_argument("--before-fit", type=int, default=10,
                    help="warm-up and draws of the 'before' fit (its sweep is slow; 0: "
                         "the sweep alone)")
    ap.add_argument("--out", default=str(HERE / "results" / "factor_scale.json"))
    args = ap.parse_args(argv)
    load_at_start = os.getloadavg()
    sys.path.insert(0, str(HERE))
    from _common import write_json

    out = Path(args.out)
    old = json.loads(out.read_text()) if out.exists() else {}
    runs = {(r["tree"], r["design"]): r for r in old.get("runs", [])}
    trees = [] if args.no_after else [("after", ROOT, args.warmup, args.draws)]
    if not args.no_before:
        trees.insert(0, ("before", Path(args.before), args.before_fit, args.before_fit))
    for label, tree, warmup, draws in trees:
        for design in args.designs:
            res = run_child(tree, design, args.sweeps, warmup, draws)
            res.update({"tree": label, "design": design, "commit": _git_head(tree)})
            runs[(label, design)] = res
            print(json.dumps(res)[:400], flush=True)
    result = {
        "benchmark": "factor_scale",
        "shape": "100 subjects x 20,000 features per view x 15 factors (10 planted)",
        "target": "<= 0.1 s per sweep per chain on this 2-core machine",
        "load_average_at_start": load_at_start,
        "runs": sorted(runs.values(), key=lambda r: (r["design"], r["tree"])),
        "note": ("CPU only; the 2-core machine was shared with other jobs (load average in "
                 "machine), so wall seconds are inflated several-fold; CPU seconds per sweep "
                 "are the comparison. peak_rss_mb includes the JAX runtime and compilation "
                 "(rss_after_data_mb: the process before any fit)."),
    }
    write_json(out, result)


if __name__ == "__main__":
    main()
