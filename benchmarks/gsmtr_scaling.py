"""GSMTR Gibbs: cost per sweep against the linear-algebra floor, and scaling in n, d, c.

Per sweep the exact Gibbs kernel cannot avoid one Cholesky factorisation and two
triangular solves with c right-hand sides: of the d×d precision XᵀX + D when d ≤ n, of
the n×n matrix X D⁻¹ Xᵀ + I (plus forming it, n²d) when d > n (Bhattacharya et al.).
This script times, in the same process and on the same JAX backend,

* ``floor``: exactly those operations, jitted in blocks of ten like the sweep, on the
  same shapes;
* ``sweep``: one full Gibbs sweep (W, τ, ω, σ²) of the kernel, jitted in blocks of ten
  (median over repeats); the driver's cost per kept draw, which also records the
  per-subject log-likelihood for LOO (n·d·c), is reported beside it;

and reports ``per_sweep_over_cholesky_floor`` (target ≤ 2).  For scaling it varies n, d
and c around a base shape, estimates bulk ESS per sweep from a short run, and reports the
seconds per effective sample of W (median over entries) and of σ².

    python benchmarks/gsmtr_scaling.py --out benchmarks/results/gsmtr_scaling.json
"""

from __future__ import annotations

import argparse
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from _common import median_seconds, write_json

import bayesimg as bi
from bayesimg import mcmc_stats as _mcmc_stats
from bayesimg.inference.common import device_args
from bayesimg.models.core.linalg import cho_solve, cholesky, solve_lower, solve_lower_t


def _data(n, d, c, seed=0):
    """Standardised-genotype-like X (0/1/2 counts, centred) and Y with a few effects."""
    rng = np.random.default_rng(seed)
    maf = rng.uniform(0.05, 0.5, d)
    X = rng.binomial(2, maf, size=(n, d)).astype(float)
    X -= X.mean(axis=0)
    X = X[:, X.std(axis=0) > 0]
    d = X.shape[1]
    W = np.zeros((d, c))
    W[rng.choice(d, min(5, d), replace=False)] = rng.normal(0, 0.3, (min(5, d), c))
    Y = X @ W + rng.normal(size=(n, c))
    Y = (Y - Y.mean(0)) / Y.std(0)
    genes = np.arange(d) // 10
    table = pd.DataFrame({"snp": [f"s{i}" for i in range(d)], "chrom": "1",
                          "pos": np.arange(d), "a1": "A", "a2": "G",
                          "gene": [f"g{k}" for k in genes]})
    return bi.data.Dataset(subjects=np.array([f"i{i}" for i in range(n)], dtype=object),
                           genotypes=X, snps=table, phenotypes=Y,
                           phenotype_names=np.array([f"p{j}" for j in range(c)]),
                           name=f"sim n={n} d={d} c={c}")


def floor_seconds(X, c, repeats=5, block=10):
    """Seconds of the linear algebra one exact draw of W cannot avoid, timed like the sweep
    (``block`` draws per jitted call, each depending on the last so none is hoisted).

    d ≤ n: one d×d Cholesky of XᵀX + D and the two triangular solves of the draw
    (:func:`bayesimg.models.core.conditionals.gaussian_columns_given_precision`).  d > n: the
    n×n matrix X D⁻¹ Xᵀ + I (n²d), its Cholesky and a solve (Bhattacharya et al.).
    Written with the cheapest calls the sampler uses (:mod:`bayesimg.models.core.linalg`:
    no symmetrising pass, no materialised transpose), so the ratio measures the sweep's
    overhead, not a slower floor.
    """
    n, d = X.shape
    key = jax.random.PRNGKey(0)
    Xj = jnp.asarray(X)
    prec = jnp.asarray(np.random.default_rng(1).uniform(0.5, 2.0, d))
    rhs = jax.random.normal(key, (d, c)) if d <= n else jax.random.normal(key, (n, c))
    if d <= n:
        gram = Xj.T @ Xj

        def one(prec):
            L = cholesky(gram + jnp.diag(prec))
            draw = solve_lower_t(L, solve_lower(L, rhs) + rhs)
            return prec + 1e-12 * jnp.abs(draw[:, 0])
        label = "d×d Cholesky + 2 triangular solves"
    else:
        def one(prec):
            L = cholesky((Xj / prec[None, :]) @ Xj.T + jnp.eye(n))
            return prec + 1e-12 * jnp.abs(Xj.T @ cho_solve(L, rhs)[:, 0])
        label = "n×n form (n²d) + Cholesky + solves"

    @jax.jit
    def floor(prec):
        return jax.lax.fori_loop(0, block, lambda _, q: one(q), prec)

    return median_seconds(floor, prec, repeats=repeats) / block, label


def pure_sweep_seconds(model, data, repeats=5, block=10):
    """Seconds per Gibbs sweep of the kernel alone (``block`` sweeps per jitted call)."""
    kernel = model.gibbs_kernel(data)
    kwargs = device_args(model.model_args(data, "gibbs"))
    state = kernel.init(jax.random.PRNGKey(0), 0, None, (), kwargs)

    @jax.jit
    def sweeps(state):
        return jax.lax.fori_loop(0, block, lambda _, s: kernel.sample(s, (), kwargs), state)

    return median_seconds(sweeps, state, repeats=repeats) / block


def sweep_figures(data, sweeps, warmup, repeats=5, block=10):
    model = bi.models.GroupSparseMTR(lambda1=20.0, lambda2=20.0)
    opts = dict(method="gibbs", chains=1, chain_method="sequential", progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bi.fit(model, data, warmup=1, draws=2, **opts)            # compile (cached)
        fit = bi.fit(model, data, warmup=warmup, draws=sweeps, **opts)
    t = fit.timings
    per_draw_driver = (t["warmup_seconds"] + t["sampling_seconds"]) / (warmup + sweeps)
    per_sweep = pure_sweep_seconds(model, data, repeats=repeats, block=block)
    W = fit.posterior["W"].values  # (chain, draw, d, c)
    flat = np.moveaxis(W.reshape(1, sweeps, -1), -1, 0)
    ess = _mcmc_stats.convergence_table(flat, stats=("ess_bulk",))["ess_bulk"]
    s2 = _mcmc_stats.convergence_table(fit.posterior["sigma2"].values[None],
                                       stats=("ess_bulk",))["ess_bulk"][0]
    med = float(np.median(ess))
    return {"seconds_per_sweep": per_sweep,
            "driver_seconds_per_kept_draw": per_draw_driver,
            "driver_note": "a kept draw also records the per-subject log-likelihood (n·d·c)",
            "sweeps": sweeps,
            "ess_bulk_W_median_per_sweep": med / sweeps,
            "ess_bulk_sigma2_per_sweep": float(s2) / sweeps,
            "seconds_per_effective_sample_W_median": per_sweep * sweeps / med,
            "seconds_per_effective_sample_sigma2": per_sweep * sweeps / float(s2)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", type=int, nargs=3, default=(2000, 500, 20),
                        metavar=("N", "D", "C"))
    parser.add_argument("--n-grid", type=int, nargs="*", default=[1000, 5000, 20000, 50000])
    parser.add_argument("--d-grid", type=int, nargs="*", default=[250, 500, 1000, 2000, 4000])
    parser.add_argument("--c-grid", type=int, nargs="*", default=[10, 100, 1000])
    parser.add_argument("--sweeps", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=5,
                        help="timed repeats of the floor and of the sweep (median)")
    parser.add_argument("--block", type=int, default=10,
                        help="sweeps (floor draws) per timed jitted call")
    parser.add_argument("--out", default="benchmarks/results/gsmtr_scaling.json")
    args = parser.parse_args(argv)

    n0, d0, c0 = args.base
    shapes = [("n", (n, d0, c0)) for n in args.n_grid]
    shapes += [("d", (n0, d, c0)) for d in args.d_grid]
    shapes += [("c", (n0, d0, c)) for c in args.c_grid]
    rows = []
    result = {"benchmark": "gsmtr_scaling", "config": vars(args), "rows": rows,
              "backend": jax.default_backend()}
    for axis, (n, d, c) in shapes:
        data = _data(n, d, c)
        floor, what = floor_seconds(data.genotypes, c, repeats=args.repeats,
                                    block=args.block)
        row = {"vary": axis, "n": n, "d": data.n_snps, "c": c,
               "branch": "d<=n (d×d Cholesky)" if data.n_snps <= n else "d>n (Bhattacharya)",
               "floor_seconds": floor, "floor": what}
        row.update(sweep_figures(data, args.sweeps, args.warmup, args.repeats, args.block))
        row["per_sweep_over_cholesky_floor"] = row["seconds_per_sweep"] / floor
        rows.append(row)
        print({k: row[k] for k in ("vary", "n", "d", "c", "seconds_per_sweep",
                                   "per_sweep_over_cholesky_floor")}, flush=True)
        write_json(args.out, result)
    out = write_json(args.out, result)
    _plot(rows, out.with_suffix(".png"))


def _plot(rows, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    for ax, axis in zip(axes, ("n", "d", "c"), strict=True):
        sel = [r for r in rows if r["vary"] == axis]
        x = [r[axis] for r in sel]
        ax.loglog(x, [r["seconds_per_sweep"] for r in sel], "o-", label="Gibbs sweep")
        ax.loglog(x, [r["floor_seconds"] for r in sel], "s--", label="linear-algebra floor")
        ax.loglog(x, [r["seconds_per_effective_sample_W_median"] for r in sel], "^-",
                  label="s per effective sample (W, median)")
        ax.set_xlabel(axis)
        ax.set_ylabel("seconds")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
