"""Multi-view factor analysis: bayesimg (exact Gibbs) side by side with mofapy2 (MOFA+).

Identical simulated data (``bayesimg.data.simulate_factor``: 3 Gaussian views,
D = 1000/500/200, K = 10 sparse factors, 10% missing) at each N.  Each method
runs in its own fresh subprocess (imports excluded) and reports wall and CPU
seconds, peak resident memory, factors recovered (|r| > 0.9 after optimal
matching), and the coverage of its 95% intervals for Z (MOFA+: mean ± 1.96 sd
of its variational posterior).  scikit-learn FactorAnalysis + varimax is run as
the minimum bar.

bayesimg is timed three ways, against the same mofapy2 run:

* **cold** (``cpu_ratio_mofa_over_bayesimg``): a fresh process with an empty
  persistent compilation cache (a new temporary folder), so JAX
  compilation is included;
* **cached** (``cached_cpu_ratio_mofa_over_bayesimg``): a second fresh process
  with that cache, as any later session fitting the same shapes (compiled
  programs are loaded from disk; tracing remains);
* **warm** (``warm_cpu_ratio_mofa_over_bayesimg``): a second fit in the cold
  process (the compiled sampler is reused in memory).

mofapy2 is *not* a dependency of bayesimg: it lives in its own virtual
environment (default ``/work/venv_mofa``; ``python -m venv`` + ``pip install
mofapy2==0.7.5 scikit-learn``).

Results are merged into ``--out`` (one entry per N and seed), so sizes can be
run separately to keep each run under 10 minutes:

    python benchmarks/factor.py --sizes 500 1000 --out benchmarks/results/factor.json
    python benchmarks/factor.py --sizes 5000 --out benchmarks/results/factor.json
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent

OURS = textwrap.dedent("""
    import json, resource, sys, time, warnings
    import numpy as np
    warnings.simplefilter("ignore")
    import bayesimg
    from bayesimg.data.simulate_factor import simulate_factor, factor_recovery
    from bayesimg.models import MultiViewFactor
    from bayesimg.models.factor import outputs as fo
    n, seed, warmup, draws, chains, timing_only = map(int, sys.argv[1:7])
    data, truth = simulate_factor(n=n, seed=seed)
    def run(s):
        c0, t0 = time.process_time(), time.perf_counter()
        fit = bayesimg.fit(MultiViewFactor(10), data, method="gibbs", chains=chains,
                           warmup=warmup, draws=draws, seed=s, progress=False)
        return fit, time.process_time() - c0, time.perf_counter() - t0
    fit, cpu, wall = run(1)
    if timing_only:
        print("RESULT" + json.dumps({
            "cpu_s": cpu, "wall_s": wall, "timings": fit.timings,
            "compilation_cache": bayesimg._jax_setup.compilation_cache_dir(),
            "z_mean_checksum": float(np.abs(fit.posterior["Z"].values.mean((0, 1))).sum())}))
        sys.exit(0)
    Z = fit.posterior["Z"].values.reshape(-1, n, 10)
    n_rec, corr, perm, sign = factor_recovery(Z.mean(0), truth.Z)
    Zm = Z[:, :, perm] * sign
    lo, hi = np.quantile(Zm, [0.025, 0.975], axis=0)
    cover = float(np.mean((lo <= truth.Z) & (truth.Z <= hi)))
    imp = fo.impute(fit, data, n_draws=100)
    hit = tot = 0
    for v in data.view_names:
        miss = ~imp[v]["observed"].values
        y = truth.complete[v][miss]
        lo, hi = imp[v]["lower"].values[miss], imp[v]["upper"].values[miss]
        hit += int(np.sum((lo <= y) & (y <= hi)))
        tot += int(miss.sum())
    info = json.loads(fit.tree.attrs["alignment"])
    fit2, cpu2, wall2 = run(2)   # same shapes: the compiled sampler is reused
    out = {"cpu_s": cpu, "wall_s": wall, "warm_cpu_s": cpu2, "warm_wall_s": wall2,
           "timings": fit.timings, "recovered": n_rec, "abs_r": corr.round(4).tolist(),
           "z_coverage95": cover, "impute_coverage95": hit / tot,
           "subspace_agreement": info.get("subspace_agreement"),
           "rotated_factors": info.get("rotated_factors"), "n_active": info.get("n_active"),
           "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
           "settings": {"chains": chains, "warmup": warmup, "draws": draws},
           "precision": bayesimg.current_precision(),
           "compilation_cache": bayesimg._jax_setup.compilation_cache_dir(),
           "z_mean_checksum": float(np.abs(fit.posterior["Z"].values.mean((0, 1))).sum())}
    print("RESULT" + json.dumps(out))
""")

MOFA = textwrap.dedent("""
    import json, resource, sys, time, warnings
    import numpy as np
    warnings.simplefilter("ignore")
    from mofapy2.run.entry_point import entry_point
    from sklearn.decomposition import FactorAnalysis
    path = sys.argv[1]
    d = np.load(path)
    views = [d[k] for k in ("v1", "v2", "v3")]
    c0, t0 = time.process_time(), time.perf_counter()
    ent = entry_point()
    ent.set_data_options(scale_views=False)
    ent.set_data_matrix([[v] for v in views], likelihoods=["gaussian"] * 3)
    ent.set_model_options(factors=10)
    ent.set_train_options(iter=1000, convergence_mode="fast", seed=1, verbose=False, quiet=True)
    ent.build()
    ent.run()
    cpu, wall = time.process_time() - c0, time.perf_counter() - t0
    ex = ent.model.nodes["Z"].getExpectations()
    Z = np.asarray(ex["E"])
    sd = np.sqrt(np.maximum(np.asarray(ex["E2"]) - Z**2, 0.0))
    iters = len([e for e in ent.model.getTrainingStats()["elbo"] if not np.isnan(e)]) \\
        if hasattr(ent.model, "getTrainingStats") else None
    np.savez(path + ".mofa.npz", Z=Z, sd=sd)
    # scikit-learn factor analysis + varimax on the mean-imputed concatenated data
    Y = np.hstack(views)
    Y = np.where(np.isnan(Y), np.nanmean(Y, axis=0), Y)
    c1 = time.process_time()
    fa = FactorAnalysis(n_components=10, rotation="varimax", random_state=0).fit(Y)
    Zfa = fa.transform(Y)
    fa_cpu = time.process_time() - c1
    np.savez(path + ".fa.npz", Z=Zfa)
    print("RESULT" + json.dumps({"cpu_s": cpu, "wall_s": wall, "iterations": iters,
          "fa_cpu_s": fa_cpu,
          "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
""")


def _run(cmd: list[str], env=None) -> dict:
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT"):
            return json.loads(line[len("RESULT"):])
    raise RuntimeError(f"{cmd[:2]} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")


def _versions(python: str, pkgs: list[str]) -> dict:
    code = ("import json, importlib.metadata as m; print(json.dumps({p: m.version(p) for p in "
            f"{pkgs!r}}}))")
    try:
        out = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True)
        return json.loads(out.stdout)
    except (subprocess.CalledProcessError, json.JSONDecodeError, FileNotFoundError):
        return {}


def benchmark_size(n: int, seed: int, mofa_python: str | None, warmup: int, draws: int,
                   chains: int) -> dict:
    sys.path.insert(0, str(HERE.parent))
    from bayesimg.data.simulate_factor import factor_recovery, simulate_factor
    data, truth = simulate_factor(n=n, seed=seed)
    entry: dict = {"n": n, "seed": seed, "design": "3 gaussian views D=1000/500/200, K=10, "
                   "20% features per active view, 10% missing"}
    ours_cmd = [sys.executable, "-c", OURS, str(n), str(seed), str(warmup), str(draws),
                str(chains)]
    with tempfile.TemporaryDirectory(prefix="bayesimg-jax-cache-") as cache:
        # cold: an empty persistent compilation cache; cached: a second process using it
        assert not os.listdir(cache)
        env = dict(os.environ, BAYESIMG_COMPILATION_CACHE=cache)
        entry["bayesimg"] = _run(ours_cmd + ["0"], env=env)
        entry["bayesimg_cached"] = _run(ours_cmd + ["1"], env=env)
    if mofa_python:
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "sim.npz")
            np.savez(path, **{v.name: v.values for v in data.views})
            res = _run([mofa_python, "-c", MOFA, path])
            mofa = np.load(path + ".mofa.npz")
            fa = np.load(path + ".fa.npz")
        n_rec, corr, perm, sign = factor_recovery(mofa["Z"], truth.Z)
        Zm, sd = mofa["Z"][:, perm] * sign, mofa["sd"][:, perm]
        cover = float(np.mean(np.abs(Zm - truth.Z) <= 1.96 * sd))
        # MOFA's Z scale is not pinned to 1: also report coverage after rescaling
        entry["mofapy2"] = {**res, "recovered": n_rec, "abs_r": corr.round(4).tolist(),
                            "z_coverage95": cover}
        fa_rec, fa_corr, _, _ = factor_recovery(fa["Z"], truth.Z)
        entry["sklearn_fa_varimax"] = {"cpu_s": res["fa_cpu_s"], "recovered": fa_rec,
                                       "abs_r": fa_corr.round(4).tolist()}
        ours = entry["bayesimg"]
        entry["cpu_ratio_mofa_over_bayesimg"] = res["cpu_s"] / ours["cpu_s"]
        entry["wall_ratio_mofa_over_bayesimg"] = res["wall_s"] / ours["wall_s"]
        entry["cached_cpu_ratio_mofa_over_bayesimg"] = (res["cpu_s"]
                                                        / entry["bayesimg_cached"]["cpu_s"])
        entry["warm_cpu_ratio_mofa_over_bayesimg"] = res["cpu_s"] / ours["warm_cpu_s"]
    return entry


def plot(results: dict, path: Path) -> None:
    from matplotlib.figure import Figure
    runs = results["runs"]
    ns = sorted({r["n"] for r in runs})
    fig = Figure(figsize=(10, 3.4))
    axes = [fig.add_subplot(1, 3, i + 1) for i in range(3)]
    for label, key, col in (("bayesimg Gibbs (cold)", "bayesimg", "C0"),
                            ("mofapy2 0.7.5", "mofapy2", "C1")):
        pts = [(r["n"], r[key]) for r in runs if key in r]
        if not pts:
            continue
        x = [p[0] for p in pts]
        axes[0].plot(x, [p[1]["cpu_s"] for p in pts], "o", color=col, label=label)
        axes[1].plot(x, [p[1]["recovered"] for p in pts], "o", color=col, label=label)
        axes[2].plot(x, [p[1]["z_coverage95"] for p in pts], "o", color=col, label=label)
    pts = [(r["n"], r["bayesimg_cached"]["cpu_s"]) for r in runs if "bayesimg_cached" in r]
    axes[0].plot([p[0] for p in pts], [p[1] for p in pts], "+", color="C0",
                 label="bayesimg Gibbs (new process, cache)")
    pts = [(r["n"], r["bayesimg"]["warm_cpu_s"]) for r in runs]
    axes[0].plot([p[0] for p in pts], [p[1] for p in pts], "x", color="C0",
                 label="bayesimg Gibbs (compiled)")
    pts = [(r["n"], r["sklearn_fa_varimax"]["recovered"]) for r in runs
           if "sklearn_fa_varimax" in r]
    axes[1].plot([p[0] for p in pts], [p[1] for p in pts], "s", color="C2", mfc="none",
                 label="sklearn FA + varimax")
    axes[0].set(xscale="log", yscale="log", xlabel="N", ylabel="CPU seconds",
                title="time (fit, CPU-s)")
    axes[1].set(xscale="log", xlabel="N", ylabel="factors with |r| > 0.9", ylim=(0, 10.5),
                title="factors recovered (of 10)")
    axes[2].axhline(0.95, color="grey", lw=0.6)
    axes[2].set(xscale="log", xlabel="N", ylabel="coverage", ylim=(0, 1.02),
                title="95% interval coverage of Z")
    for ax in axes:
        ax.set_xticks([], minor=True)
        ax.set_xticks(ns, [str(n) for n in ns])
        ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[500, 1000])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--mofa-python", default="/work/venv_mofa/bin/python")
    ap.add_argument("--no-mofa", action="store_true")
    ap.add_argument("--warmup", type=int, default=150)
    ap.add_argument("--draws", type=int, default=100)
    ap.add_argument("--chains", type=int, default=2)
    ap.add_argument("--out", default=str(HERE / "results" / "factor.json"))
    ap.add_argument("--png", default=None)
    args = ap.parse_args(argv)
    out = Path(args.out)
    results = json.loads(out.read_text()) if out.exists() else {"runs": []}
    mofa = None if args.no_mofa or not Path(args.mofa_python).exists() else args.mofa_python
    for n in args.sizes:
        for seed in args.seeds:
            entry = benchmark_size(n, seed, mofa, args.warmup, args.draws, args.chains)
            entry["recorded"] = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
            results["runs"] = [r for r in results["runs"]
                               if not (r["n"] == n and r["seed"] == seed)] + [entry]
            print(json.dumps({k: entry[k] for k in entry if k not in ("design",)}, default=str)
                  [:600], flush=True)
    try:
        load = os.getloadavg()
    except OSError:
        load = None
    results["machine"] = {"platform": platform.platform(), "cpus": os.cpu_count(),
                          "load_average_at_end": load, "gpu": None,
                          "note": "CPU only, no GPU; machine shared with other jobs while "
                                  "measuring (load average above), so wall times are "
                                  "inflated; CPU seconds are the comparison"}
    results["versions"] = {"bayesimg_env": _versions(sys.executable, ["bayesimg", "jax",
                                                                      "numpyro", "numpy"]),
                           "mofa_env": _versions(args.mofa_python, ["mofapy2", "numpy",
                                                                    "scikit-learn"])
                           if mofa else {}}
    results["runs"].sort(key=lambda r: (r["n"], r["seed"]))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1, default=str))
    plot(results, Path(args.png) if args.png else out.with_suffix(".png"))


if __name__ == "__main__":
    main()
