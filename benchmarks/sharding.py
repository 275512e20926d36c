"""One big GSMTR fit with the subjects sharded over k devices vs on one device.

``bayesimg.fit(..., shard_data=k)`` splits the rows of X and Y over k devices
(:mod:`bayesimg.inference.sharding`); XLA partitions the likelihood and adds the
all-reduces.  On a big-n GSMTR (default n = 20,000, d = 200, c = 20) this script
times, in one process, the same work with the data on one device (the default
placement) and sharded over k devices (default: all of them):

* ``gradient``: one value-and-gradient of the NUTS potential (the marginal,
  whitened form: X @ W over all subjects), jitted, median over repeats; the
  two results are also compared (``gradient_max_rel_diff``);
* ``gibbs_sweep``: seconds per sweep of the exact Gibbs kernel inside the
  driver (1 chain, compile excluded).  For d <= n a sweep uses XᵀX, XᵀY built
  once, so only the recorded per-subject log-likelihood (n·d·c per kept draw)
  and the start are split;
* ``svi_fit``: a short mean-field SVI fit of fixed length through ``bayesimg.fit``
  (set-up, optimisation, 100 draws and their log-likelihood; compile excluded,
  and also recorded with it);

and reports ``speedup_sharded_vs_single_device`` (one device's time / the sharded
time) for each.  On CPU the devices are the ``BAYESIMG_CPU_DEVICES`` (default: the
core count) host devices that bayesimg creates at import; on a GPU box they are the
GPUs, unchanged.  n is rounded down to a multiple of k (JAX splits the subject
axis into equal blocks).

    python benchmarks/sharding.py --out benchmarks/results/sharding.json
    BAYESIMG_CPU_DEVICES=4 python benchmarks/sharding.py --devices 4
    python benchmarks/sharding.py --quick --out /tmp/sharding.json   # smoke test
"""

from __future__ import annotations

import argparse
import time
import warnings

import jax
import numpy as np
import pandas as pd
from _common import median_seconds, write_json
from numpyro.infer.util import initialize_model, potential_energy

import bayesimg as bi
from bayesimg.inference.common import device_args
from bayesimg.inference.sharding import shard_model_args


def _data(n: int, d: int, c: int, seed: int = 0):
    """Centred 0/1/2 genotypes, genes of 10 SNPs, standardised Y with a few effects."""
    rng = np.random.default_rng(seed)
    X = rng.binomial(2, rng.uniform(0.05, 0.5, d), size=(n, d)).astype(float)
    X -= X.mean(axis=0)
    W = np.zeros((d, c))
    W[rng.choice(d, min(5, d), replace=False)] = rng.normal(0, 0.3, (min(5, d), c))
    Y = X @ W + rng.normal(size=(n, c))
    Y = (Y - Y.mean(0)) / Y.std(0)
    table = pd.DataFrame({"snp": [f"s{i}" for i in range(d)], "chrom": "1",
                          "pos": np.arange(d), "a1": "A", "a2": "G",
                          "gene": [f"g{i // 10}" for i in range(d)]})
    return bi.data.Dataset(subjects=np.array([f"i{i}" for i in range(n)], dtype=object),
                           genotypes=X, snps=table, phenotypes=Y,
                           phenotype_names=np.array([f"p{j}" for j in range(c)]),
                           name=f"sim n={n} d={d} c={c}")


def gradient_times(model, data, k: int, repeats: int) -> dict:
    model_fn = model.numpyro_model("nuts")
    args = model.model_args(data, "nuts")
    single = device_args(args)
    sharded, _ = shard_model_args(model, data, "nuts", args, single, k)
    z = initialize_model(jax.random.PRNGKey(0), model_fn, model_kwargs=single).param_info.z

    @jax.jit
    def value_and_grad(z, kwargs):
        return jax.value_and_grad(lambda p: potential_energy(model_fn, (), kwargs, p))(z)

    out = {"single_device": median_seconds(value_and_grad, z, single, repeats=repeats),
           "sharded": median_seconds(value_and_grad, z, sharded, repeats=repeats)}
    ref, got = value_and_grad(z, single), value_and_grad(z, sharded)
    diffs = jax.tree.map(lambda a, b: float(np.max(np.abs(np.asarray(a) - np.asarray(b)))
                                            / max(float(np.max(np.abs(np.asarray(a)))), 1e-300)),
                         ref, got)
    out["max_rel_diff"] = max(jax.tree.leaves(diffs))
    return out


def gibbs_times(model, data, k: int, warmup: int, draws: int) -> dict:
    out = {}
    for label, extra in (("single_device", {}), ("sharded", {"shard_data": k})):
        fit = bi.fit(model, data, method="gibbs", chains=1, warmup=warmup, draws=draws,
                     chain_method="vectorized", seed=0, progress=False, **extra)
        t = fit.timings
        out[label] = (t["warmup_seconds"] + t["sampling_seconds"]) / (warmup + draws)
        out[f"{label}_compile_seconds"] = t["compile_seconds"]
    return out


def svi_times(model, data, k: int, steps: int) -> dict:
    out = {}
    for label, extra in (("single_device", {}), ("sharded", {"shard_data": k})):
        t0 = time.perf_counter()
        fit = bi.fit(model, data, method="svi", steps=steps, num_draws=100, seed=0,
                     stop_on_convergence=False, progress=False, **extra)
        wall = time.perf_counter() - t0
        out[label] = wall - fit.timings["compile_seconds"]
        out[f"{label}_wall_seconds"] = wall
        out[f"{label}_compile_seconds"] = fit.timings["compile_seconds"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--d", type=int, default=200)
    parser.add_argument("--c", type=int, default=20)
    parser.add_argument("--devices", type=int, default=None,
                        help="shard over the first k devices (default: all)")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--gibbs-warmup", type=int, default=50)
    parser.add_argument("--gibbs-draws", type=int, default=200)
    parser.add_argument("--svi-steps", type=int, default=1000)
    parser.add_argument("--quick", action="store_true",
                        help="a tiny size, to check that the script runs")
    parser.add_argument("--out", default="benchmarks/results/sharding.json")
    args = parser.parse_args()
    if args.quick:
        args.n, args.d, args.c = 400, 20, 3
        args.repeats, args.gibbs_warmup, args.gibbs_draws, args.svi_steps = 3, 5, 10, 50
    warnings.simplefilter("ignore")  # convergence warnings of deliberately short runs

    k = args.devices or jax.device_count()
    n = args.n - args.n % k
    data = _data(n, args.d, args.c)
    model = bi.models.GroupSparseMTR(lambda1=2.0, lambda2=2.0)
    result = {
        "description": "GSMTR with the subjects sharded over k devices vs one device",
        "n": n, "d": args.d, "c": args.c, "devices": k,
        "device_kind": jax.devices()[0].device_kind, "backend": jax.default_backend(),
        "seconds": {}, "speedup_sharded_vs_single_device": {},
    }
    tasks = (("gradient", lambda: gradient_times(model, data, k, args.repeats)),
             ("gibbs_sweep", lambda: gibbs_times(model, data, k, args.gibbs_warmup,
                                                 args.gibbs_draws)),
             ("svi_fit", lambda: svi_times(model, data, k, args.svi_steps)))
    for name, task in tasks:
        times = task()
        speedup = times["single_device"] / times["sharded"]
        result["seconds"][name] = times
        result["speedup_sharded_vs_single_device"][name] = speedup
        print(f"{name}: one device {times['single_device']:.4g} s, sharded over {k} "
              f"{times['sharded']:.4g} s, speed-up {speedup:.2f}x", flush=True)
        write_json(args.out, result)
    result["gradient_max_rel_diff"] = result["seconds"]["gradient"]["max_rel_diff"]
    print(f"wrote {write_json(args.out, result)}")


if __name__ == "__main__":
    main()
