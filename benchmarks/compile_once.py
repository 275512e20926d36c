"""Refitting cost: bayesimg's compiled-once driver versus plain ``numpyro.infer.MCMC.run``.

Fits the same GSMTR model (marginal form, NUTS) to ``--refits`` simulated data sets of
one shape, first with ``numpyro.infer.MCMC`` built per data set as users usually do
(every ``run`` traces and compiles again, the data being baked into the program), then
with ``bayesimg.fit``, which compiles once and passes data as arguments.  Both use the
same model function, kernel settings, chains and draws.  Writes JSON (wall times, ESS per
second, peak memory, machine, versions) and the ratio ``speedup_vs_numpyro_mcmc_run``.

    python benchmarks/compile_once.py --out benchmarks/results/compile_once.json
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import time
from pathlib import Path

import arviz_stats as azs
import jax
import numpy as np
from numpyro.infer import MCMC, NUTS

import bayesimg as bi
from bayesimg.inference.common import device_args, versions


def _datasets(n_sets, n, d, c, seed):
    return [bi.data.simulate_gsmtr(n_subjects=n, n_snps=d, n_phenotypes=c, n_active_genes=2,
                                   seed=seed + k)[0] for k in range(n_sets)]


def _plain_numpyro(model, data, chains, warmup, draws, seed):
    kwargs = device_args(model.model_args(data))
    mcmc = MCMC(NUTS(model.numpyro_model("nuts"), init_strategy=model.init_strategy(data, "nuts")),
                num_warmup=warmup, num_samples=draws, num_chains=chains,
                chain_method="parallel" if jax.local_device_count() >= chains else "sequential",
                progress_bar=False)
    t0 = time.perf_counter()
    mcmc.run(jax.random.PRNGKey(seed), **kwargs)
    w = mcmc.get_samples(group_by_chain=True)["W"]
    jax.block_until_ready(w)
    wall = time.perf_counter() - t0
    ess = azs.ess(np.asarray(w), method="bulk")
    return wall, float(np.min(ess)), float(np.median(ess))


def _bayesimg(model, data, chains, warmup, draws, seed):
    t0 = time.perf_counter()
    fit = bi.fit(model, data, method="nuts", chains=chains, warmup=warmup, draws=draws,
                 seed=seed, progress=False)
    wall = time.perf_counter() - t0
    ess = azs.ess(fit.tree, var_names=["W"])["W"].values
    return wall, float(np.min(ess)), float(np.median(ess)), fit.timings


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--refits", type=int, default=4)
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--d", type=int, default=40)
    parser.add_argument("--c", type=int, default=4)
    parser.add_argument("--chains", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--draws", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="benchmarks/results/compile_once.json")
    args = parser.parse_args(argv)

    model = bi.models.GroupSparseMTR(lambda1=5.0, lambda2=5.0, whiten=False)
    sets = _datasets(args.refits, args.n, args.d, args.c, args.seed)
    plain = [_plain_numpyro(model, ds, args.chains, args.warmup, args.draws, args.seed)
             for ds in sets]
    ours = [_bayesimg(model, ds, args.chains, args.warmup, args.draws, args.seed) for ds in sets]
    plain_wall = sum(p[0] for p in plain)
    ours_wall = sum(o[0] for o in ours)
    result = {
        "benchmark": "compile_once",
        "what": "refitting GSMTR (NUTS, marginal form) on same-shaped data sets",
        "config": vars(args),
        "numpyro_mcmc_run": {"wall_seconds": [p[0] for p in plain],
                             "min_ess_bulk_W": [p[1] for p in plain],
                             "median_ess_bulk_W": [p[2] for p in plain],
                             "median_ess_per_second": float(np.median(
                                 [p[2] / p[0] for p in plain]))},
        "bayesimg_fit": {"wall_seconds": [o[0] for o in ours],
                         "min_ess_bulk_W": [o[1] for o in ours],
                         "median_ess_bulk_W": [o[2] for o in ours],
                         "timings": [o[3] for o in ours],
                         "median_ess_per_second": float(np.median(
                             [o[2] / o[0] for o in ours]))},
        "speedup_vs_numpyro_mcmc_run": plain_wall / ours_wall,
        "speedup_vs_numpyro_mcmc_run_after_first": (sum(p[0] for p in plain[1:])
                                                    / sum(o[0] for o in ours[1:])),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "cpu_count": __import__("os").cpu_count(),
                    "jax_devices": [str(d) for d in jax.devices()],
                    "gpu": jax.default_backend() == "gpu"},
        "versions": versions(),
        "precision": bi.current_precision(),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=2))
    tmp.replace(out)
    print(json.dumps({k: result[k] for k in ("speedup_vs_numpyro_mcmc_run",
                                             "speedup_vs_numpyro_mcmc_run_after_first")}))


if __name__ == "__main__":
    main()
