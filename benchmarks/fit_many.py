"""Many small fits of one shape: naive loops vs ``bayesimg.fit_many`` (batched, Dask).

A λ grid of ``--fits`` GSMTR fits (``GroupSparseMTR(lambda1=λ, lambda2=λ)``, NUTS on the
marginal form by default, or the exact Gibbs kernel with ``--method gibbs``) on one
simulated data set, all with the same chains, warm-up and draws, run four ways in this
order:

``mcmc_run_loop``
    the peer reference: ``numpyro.infer.MCMC(NUTS(model_fn, ...)).run(key, **data)`` built
    per fit, as a user writes it (same model function, init strategy and kernel settings;
    every ``run`` traces and compiles again because the data and λ are baked in);
``fit_loop``
    a Python loop of ``bayesimg.fit`` (compiled once, λ as an argument);
``batched``
    ``bayesimg.fit_many(jobs)`` in this process: one program vmapped over the fits, X
    passed once;
``dask``
    ``bayesimg.fit_many(jobs, client=..., out_dir=...)`` on a local Dask cluster of
    ``--workers`` single-thread worker processes (one JAX device each), writing one
    ``.nc`` per fit; ``cluster_start_seconds`` (spawning the workers) is counted in the
    speed-up.

Recorded per way: wall seconds, bulk ESS of W (min and median over entries, per fit),
ESS per second (sum over fits of the median ESS / wall), peak resident memory (this
process: cumulative maximum after each way; the Dask workers: their own maximum), and the
ratios ``speedup_batched_vs_mcmc_run_loop``, ``speedup_dask_vs_mcmc_run_loop``,
``speedup_batched_vs_fit_loop`` and ``speedup_dask_vs_fit_loop``.

    python benchmarks/fit_many.py --out benchmarks/results/fit_many.json
    python benchmarks/fit_many.py --quick --out /tmp/fit_many_quick.json   # smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time
import warnings

import arviz_stats as azs
import jax
import numpy as np
from _common import peak_rss_mb, write_json
from numpyro.infer import MCMC, NUTS

import bayesimg as bi
from bayesimg.errors import ConvergenceWarning
from bayesimg.inference.common import device_args


def _ess_w(w) -> tuple[float, float]:
    ess = np.asarray(azs.ess(np.asarray(w), method="bulk"))
    return float(np.min(ess)), float(np.median(ess))


def _summary(wall: float, ess: list[tuple[float, float]], **extra) -> dict:
    return {"wall_seconds": wall, "min_ess_bulk_W": [e[0] for e in ess],
            "median_ess_bulk_W": [e[1] for e in ess],
            "ess_per_second": float(sum(e[1] for e in ess) / wall),
            "peak_rss_mb_so_far": peak_rss_mb(), **extra}


def _mcmc_run_loop(models, data, args) -> dict:
    per_fit = []
    ess = []
    t_all = time.perf_counter()
    for k, model in enumerate(models):
        t0 = time.perf_counter()
        if args.method == "nuts":
            kernel = NUTS(model.numpyro_model("nuts"), init_strategy=model.init_strategy(data,
                                                                                        "nuts"),
                          target_accept_prob=0.8, max_tree_depth=10)
        else:
            kernel = model.gibbs_kernel(data)
        mcmc = MCMC(kernel, num_warmup=args.warmup, num_samples=args.draws,
                    num_chains=args.chains, progress_bar=False,
                    chain_method="parallel" if jax.local_device_count() >= args.chains
                    else "sequential")
        mcmc.run(jax.random.PRNGKey(args.seed + k),
                 **device_args(model.model_args(data, args.method)))
        w = mcmc.get_samples(group_by_chain=True)["W"]
        jax.block_until_ready(w)
        per_fit.append(time.perf_counter() - t0)
        ess.append(_ess_w(w))
    return _summary(time.perf_counter() - t_all, ess, per_fit_seconds=per_fit)


def _options(args, k: int) -> dict:
    return {"chains": args.chains, "warmup": args.warmup, "draws": args.draws,
            "seed": args.seed + k}


def _fit_loop(models, data, args) -> dict:
    per_fit, ess, timings = [], [], []
    t_all = time.perf_counter()
    for k, model in enumerate(models):
        t0 = time.perf_counter()
        fit = bi.fit(model, data, method=args.method, progress=False, **_options(args, k))
        per_fit.append(time.perf_counter() - t0)
        ess.append(_ess_w(fit.posterior["W"].values))
        timings.append(fit.timings)
    return _summary(time.perf_counter() - t_all, ess, per_fit_seconds=per_fit,
                    timings=timings)


def _jobs(models, data, args) -> dict:
    return {f"fit{k:02d}": bi.FitJob(model, data, method=args.method, options=_options(args, k))
            for k, model in enumerate(models)}


def _batched(models, data, args) -> dict:
    t0 = time.perf_counter()
    fits = bi.fit_many(_jobs(models, data, args), progress=False)
    wall = time.perf_counter() - t0
    ess = [_ess_w(fits[name].posterior["W"].values) for name in fits]
    timings = [fits[name].timings for name in fits]
    batch = {k: float(sum(t.get(k, 0.0) for t in timings))
             for k in ("compile_seconds", "warmup_seconds", "sampling_seconds")}
    return _summary(wall, ess, batch_sizes=sorted(set(fits.batch_sizes.values())),
                    timings_summed_over_fits=batch)


def _worker_peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _dask(models, data, args) -> dict:
    from distributed import Client

    from bayesimg.inference.many import local_cluster
    t0 = time.perf_counter()
    with local_cluster(args.workers) as cluster, Client(cluster) as client, \
            tempfile.TemporaryDirectory() as out_dir:
        client.wait_for_workers(args.workers)
        start = time.perf_counter() - t0
        t1 = time.perf_counter()
        fits = bi.fit_many(_jobs(models, data, args), out_dir=out_dir, client=client,
                           progress=False)
        run = time.perf_counter() - t1
        worker_rss = client.run(_worker_peak_rss_mb)
        ess = [_ess_w(fits[name].posterior["W"].values) for name in fits]
        files = len([f for f in os.listdir(out_dir) if f.endswith(".nc")])
    return _summary(start + run, ess, cluster_start_seconds=start, fit_many_seconds=run,
                    workers=args.workers, files_written=files,
                    batch_sizes=sorted(set(fits.batch_sizes.values())),
                    worker_peak_rss_mb=sorted(worker_rss.values()))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fits", type=int, default=16)
    parser.add_argument("--method", choices=("nuts", "gibbs"), default="nuts")
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--d", type=int, default=40)
    parser.add_argument("--c", type=int, default=4)
    parser.add_argument("--chains", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--draws", type=int, default=500)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip", nargs="*", default=[],
                        choices=("mcmc_run_loop", "fit_loop", "batched", "dask"))
    parser.add_argument("--quick", action="store_true",
                        help="smoke-test size: 4 fits, n=60, d=10, c=2, 50 + 50 draws")
    parser.add_argument("--out", default="benchmarks/results/fit_many.json")
    args = parser.parse_args(argv)
    if args.quick:
        args.fits, args.n, args.d, args.c, args.warmup, args.draws = 4, 60, 10, 2, 50, 50

    data, _ = bi.data.simulate_gsmtr(n_subjects=args.n, n_snps=args.d, n_phenotypes=args.c,
                                     n_active_genes=2, seed=args.seed)
    lambdas = np.geomspace(0.5, 50.0, args.fits)
    models = [bi.models.GroupSparseMTR(lambda1=float(lam), lambda2=float(lam), whiten=False)
              for lam in lambdas]
    result = {"benchmark": "fit_many",
              "what": f"{args.fits} GSMTR fits of one shape ({args.method}, a λ grid) run "
                      "as a loop of MCMC.run, a loop of bayesimg.fit, fit_many batched in "
                      "process and fit_many on a local Dask cluster",
              "config": vars(args), "lambdas": lambdas.tolist()}
    ways = {"mcmc_run_loop": _mcmc_run_loop, "fit_loop": _fit_loop, "batched": _batched,
            "dask": _dask}
    with warnings.catch_warnings():
        # short runs on purpose: convergence is not what is measured here
        warnings.simplefilter("ignore", ConvergenceWarning)
        for name, way in ways.items():
            if name in args.skip:
                continue
            print(f"{name} ...", flush=True)
            result[name] = way(models, data, args)
            print(f"  {result[name]['wall_seconds']:.1f} s", flush=True)
            write_json(args.out, result)   # partial results survive an interruption
    for a, b in (("batched", "mcmc_run_loop"), ("dask", "mcmc_run_loop"),
                 ("batched", "fit_loop"), ("dask", "fit_loop")):
        if a in result and b in result:
            result[f"speedup_{a}_vs_{b}"] = (result[b]["wall_seconds"]
                                            / result[a]["wall_seconds"])
    out = write_json(args.out, result)
    print(json.dumps({k: v for k, v in result.items() if k.startswith("speedup")}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
