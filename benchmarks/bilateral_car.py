"""Bilateral GSMTR with an ROI graph (CAR) at c = 70: cost per sweep and recovery (issue 18).

35 left/right pairs (70 measures), n subjects, d SNPs.  Three noise models are fitted to
data simulated with ρ = 0.5 and a CAR over a graph of the 35 regions with ρ_s = 0.6:

* ``no_graph``: the left/right model alone (2 column groups, 2 Choleskys per sweep);
* ``ring``: a ring of 35 regions (eigenvalues in pairs: 18 groups, 37 column groups);
* ``knn``: a 4-nearest-neighbour graph of random points on the sphere (distinct
  eigenvalues: 35 groups, 71 column groups = one d×d Cholesky per column).

The data of the ``ring`` and ``knn`` rows are simulated from their own graph; the
``no_graph`` row is fitted to the ring's data.  Reported per row: the Gibbs kernel's
compile seconds and seconds per sweep (``sweeps`` sweeps in one jitted loop, timed on its
first and second call), then from a 2-chain fit the posterior mean and 95% interval of
ρ and ρ_s, W's 95% interval coverage, and the integrated LOO elpd (the graph's gain on
its own data).

Run: ``nice -n 10 python benchmarks/bilateral_car.py`` (≈ 15 min on a loaded 2-core
machine); writes ``results/bilateral_car.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("BAYESIMG_COMPILATION_CACHE", tempfile.mkdtemp())   # cold compiles

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_json  # noqa: E402

import bayesimg as bi  # noqa: E402
from bayesimg.data import simulate_gsmtr  # noqa: E402
from bayesimg.models import BilateralGSMTR  # noqa: E402
from bayesimg.models.gsmtr.pairs import pair_noise_cov  # noqa: E402
from bayesimg.models.gsmtr.roi_graph import car_correlation, spectrum  # noqa: E402

LOAD_AT_START = os.getloadavg()
P = 35


def ring_edges(regions):
    return [(regions[k], regions[(k + 1) % len(regions)]) for k in range(len(regions))]


def knn_edges(regions, rng, k=4):
    pts = rng.standard_normal((len(regions), 3))
    pts /= np.linalg.norm(pts, axis=1, keepdims=True)
    dist = np.linalg.norm(pts[:, None] - pts[None], axis=2)
    edges = set()
    for i in range(len(regions)):
        for j in np.argsort(dist[i])[1:k + 1]:
            edges.add((min(i, j), max(i, j)))
    return [(regions[i], regions[j]) for i, j in sorted(edges)]


def adjacency(edges, regions):
    index = {r: k for k, r in enumerate(regions)}
    A = np.zeros((len(regions), len(regions)))
    for a, b in edges:
        A[index[a], index[b]] = A[index[b], index[a]] = 1.0
    return A


def simulate(edges, regions, names, args, seed):
    values, vectors, _ = spectrum(adjacency(edges, regions))
    cov = pair_noise_cov(1.0, args.rho, np.arange(P), np.arange(P, 2 * P), 2 * P,
                         car_correlation(args.rho_spatial, values, vectors))
    data, truth = simulate_gsmtr(n_subjects=args.n, n_snps=args.d, n_genes=args.d // 5,
                                 n_phenotypes=2 * P, effect_size=0.3, seed=seed)
    rng = np.random.default_rng(seed)
    Y = data.genotypes @ truth.W.to_numpy() + rng.multivariate_normal(
        np.zeros(2 * P), cov, size=args.n)
    Y -= Y.mean(axis=0)
    X = data.genotypes - data.genotypes.mean(axis=0)
    return (dataclasses.replace(data, genotypes=X, phenotypes=Y,
                                phenotype_names=np.array(names)), truth.W.to_numpy())


def time_kernel(model, data, sweeps):
    """(compile seconds, seconds per sweep) of the Gibbs kernel alone: ``sweeps`` sweeps in
    one jitted loop, timed on its first call (compile + run) and its second (run)."""
    import jax
    import jax.numpy as jnp
    kernel = model.gibbs_kernel(data)
    kw = {k: (jnp.asarray(v) if isinstance(v, np.ndarray) else v)
          for k, v in model.model_args(data, "gibbs").items()}

    @jax.jit
    def run(key):
        state = kernel.init(key, 0, None, (), kw)
        state = jax.lax.fori_loop(0, sweeps, lambda i, st: kernel.sample(st, (), kw), state)
        return state.z["sigma2"]

    t0 = time.perf_counter()
    run(jax.random.PRNGKey(0)).block_until_ready()
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    run(jax.random.PRNGKey(1)).block_until_ready()
    second = time.perf_counter() - t0
    return first - second, second / (sweeps + 1)


def run_row(label, model, data, W_true, args):
    compile_s, per_sweep = time_kernel(model, data, args.sweeps)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = bi.fit(model, data, method="gibbs", chains=2, warmup=args.warmup,
                     draws=args.draws, seed=2, progress=False)
        elpd = float(fit.loo().elpd)
    row = {"label": label, "kernel_compile_s": compile_s, "seconds_per_sweep": per_sweep,
           "elpd_integrated_loo": elpd}
    post = fit.posterior
    for name in ("rho", "rho_spatial"):
        if name in post:
            v = np.asarray(post[name]).ravel()
            row[name] = {"mean": float(v.mean()),
                         "eti95": [float(x) for x in np.quantile(v, [0.025, 0.975])]}
    W = np.asarray(post["W"]).reshape((-1,) + W_true.shape)
    lo, hi = np.quantile(W, [0.025, 0.975], axis=0)
    row["W_coverage95"] = float(np.mean((lo <= W_true) & (W_true <= hi)))
    if model.roi_graph is not None:
        row["column_groups"] = 2 * len(model.resolve_roi_graph(data).mode_sizes)
    print(row, flush=True)
    return row


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--d", type=int, default=100)
    parser.add_argument("--rho", type=float, default=0.5)
    parser.add_argument("--rho-spatial", type=float, default=0.6)
    parser.add_argument("--sweeps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=150)
    parser.add_argument("--draws", type=int, default=150)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"
                                             / "bilateral_car.json"))
    args = parser.parse_args(argv)
    regions = [f"roi{k:02d}" for k in range(P)]
    names = [f"lh_{r}" for r in regions] + [f"rh_{r}" for r in regions]
    ring = ring_edges(regions)
    knn = knn_edges(regions, np.random.default_rng(0))
    ring_data, ring_W = simulate(ring, regions, names, args, seed=11)
    knn_data, knn_W = simulate(knn, regions, names, args, seed=12)
    rows = [run_row("no_graph (ring data)", BilateralGSMTR(lambda1=1.0, lambda2=1.0),
                    ring_data, ring_W, args),
            run_row("ring", BilateralGSMTR(lambda1=1.0, lambda2=1.0, roi_graph=ring),
                    ring_data, ring_W, args),
            run_row("knn", BilateralGSMTR(lambda1=1.0, lambda2=1.0, roi_graph=knn),
                    knn_data, knn_W, args)]
    write_json(args.out, {"benchmark": "bilateral_car", "settings": vars(args),
                          "truth": {"rho": args.rho, "rho_spatial": args.rho_spatial},
                          "rows": rows, "load_average_at_start": list(LOAD_AT_START),
                          "note": "shared machine: 2 cores, 7 workers"})


if __name__ == "__main__":
    main()
