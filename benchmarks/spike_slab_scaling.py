"""SpikeSlabMTR Gibbs: cost per sweep against the same linear-algebra floor as GSMTR's.

The floor is :func:`gsmtr_scaling.floor_seconds` — one Cholesky factorisation and two
triangular solves with c right-hand sides (d×d when d ≤ n, the n×n Bhattacharya form when
d > n): what one exact draw of GSMTR's W cannot avoid.  The spike-and-slab sweep has no
factorisation of that size at all (SNP-by-SNP updates with closed-form Bayes factors, a
c×c eigendecomposition per sweep), so ``per_sweep_over_cholesky_floor`` compares the two
samplers' cost per sweep on the same shapes and machine (target ≤ 2).  Timed like
``gsmtr_scaling.py``: the kernel's sweep jitted in blocks of ten, median over repeats, and
GSMTR's sweep beside it (``gsmtr_seconds_per_sweep``).

Mixing: a short driver run (1 chain) gives the bulk ESS per sweep of the residual
variances (diagonal of Σ, median), of π_snp and of the total log-likelihood, and the
wall and CPU seconds of the run.

    python benchmarks/spike_slab_scaling.py --out benchmarks/results/spike_slab_scaling.json

On a shared, loaded machine run it on one core with single-threaded XLA (both the floor
and the sweep then run single-threaded; multi-threaded BLAS under contention inflates the
floor by orders of magnitude):

    XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1" \
        taskset -c 1 python benchmarks/spike_slab_scaling.py
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

import jax
import numpy as np
from _common import write_json
from gsmtr_scaling import _data, floor_seconds, pure_sweep_seconds

import bayesimg as bi
from bayesimg import mcmc_stats as _mcmc_stats

SHAPES = [(503, 339, 8), (2000, 250, 20), (2000, 500, 20), (2000, 1000, 20), (2000, 500, 100),
          (500, 2000, 20)]


def _ess_per_sweep(values: np.ndarray, sweeps: int) -> float:
    """Bulk ESS per sweep of one scalar's draws (chain, draw)."""
    ess = _mcmc_stats.convergence_table(values[None], stats=("ess_bulk",))["ess_bulk"][0]
    return float(ess) / sweeps


def mixing(model, data, sweeps, warmup):
    opts = dict(method="gibbs", chains=1, chain_method="sequential", progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bi.fit(model, data, warmup=1, draws=2, **opts)            # compile (cached)
        wall, cpu = time.perf_counter(), time.process_time()
        fit = bi.fit(model, data, warmup=warmup, draws=sweeps, **opts)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    post = fit.posterior
    Sigma = post["Sigma"].values                                   # (1, S, c, c)
    diag = [_ess_per_sweep(Sigma[:, :, k, k], sweeps) for k in range(Sigma.shape[-1])]
    loglik = fit.tree["log_likelihood"]["y"].values.sum(axis=-1)   # (1, S)
    ess_sigma = float(np.median(diag))
    return {"sweeps": sweeps, "warmup": warmup, "fit_wall_seconds": wall,
            "fit_cpu_seconds": cpu,
            "ess_bulk_Sigma_diag_median_per_sweep": ess_sigma,
            "ess_bulk_pi_snp_per_sweep": _ess_per_sweep(post["pi_snp"].values, sweeps),
            "ess_bulk_total_loglik_per_sweep": _ess_per_sweep(loglik, sweeps),
            "ess_per_second_Sigma_diag_median": ess_sigma * sweeps / wall,
            "snps_in_mean": float(post["snp_in"].values.sum(axis=-1).mean())}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sweeps", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--block", type=int, default=10)
    parser.add_argument("--shapes", nargs="*", default=[",".join(map(str, s)) for s in SHAPES],
                        help="n,d,c triples")
    parser.add_argument("--out", default="benchmarks/results/spike_slab_scaling.json")
    args = parser.parse_args(argv)
    rows = []
    result = {"benchmark": "spike_slab_scaling", "config": vars(args), "rows": rows,
              "backend": jax.default_backend(),
              "xla_flags": os.environ.get("XLA_FLAGS", ""),
              "cpu_affinity": sorted(os.sched_getaffinity(0)),
              "ratio": "per_sweep_over_cholesky_floor = SpikeSlabMTR seconds per sweep / "
                       "GSMTR's floor (Cholesky + 2 triangular solves) on the same shape"}
    for n, d, c in (tuple(int(v) for v in shape.split(",")) for shape in args.shapes):
        data = _data(n, d, c)
        model = bi.models.SpikeSlabMTR()
        floor, what = floor_seconds(data.genotypes, c, repeats=args.repeats, block=args.block)
        sweep = pure_sweep_seconds(model, data, repeats=args.repeats, block=args.block)
        gsmtr = pure_sweep_seconds(bi.models.GroupSparseMTR(20.0, 20.0), data,
                                   repeats=args.repeats, block=args.block)
        row = {"n": n, "d": data.n_snps, "c": c, "floor": what, "floor_seconds": floor,
               "seconds_per_sweep": sweep, "gsmtr_seconds_per_sweep": gsmtr,
               "per_sweep_over_cholesky_floor": sweep / floor,
               "per_sweep_over_gsmtr_sweep": sweep / gsmtr,
               "n_mixture_components": len(model.component_labels(data))}
        row.update(mixing(model, data, args.sweeps, args.warmup))
        rows.append(row)
        print({k: row[k] for k in ("n", "d", "c", "seconds_per_sweep", "floor_seconds",
                                   "per_sweep_over_cholesky_floor")}, flush=True)
        write_json(args.out, result)
    write_json(args.out, result)


if __name__ == "__main__":
    main()
