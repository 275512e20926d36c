"""GSMTR side by side with the R package bgsmtr on its own example data.

Same data, same density: the bgsmtr example (632 subjects, 486 SNPs in 33 genes, 15
phenotypes; read from the folder given by ``--data``, never bundled) preprocessed exactly
as ``bgsmtr()`` does (:func:`bayesimg.data.bgsmtr_layout.load_bgsmtr_layout`), at two
fixed λ (bgsmtr's ``tuning='WAIC'`` mode, which samples at the λ it is given):

* λ₁ = λ₂ = 2 — the package's documented example (badly under-shrunk);
* the strong shrinkage its CV tuning picks: penalty γ = 100, i.e. λ = (γ / 2σ)² at the
  posterior σ — solved here as a fixed point with our Gibbs sampler (recorded).

For each λ it runs our exact Gibbs kernel, our NUTS (marginal form, whitened) and bgsmtr
(``benchmarks/peers/run_bgsmtr.R``, only when ``Rscript`` finds the package; or reuses a
run from ``--bgsmtr-runs``), and records

* ESS (bulk and tail; minimum and median over the 7,290 entries of W; σ²) per CPU-second
  (process CPU time including warm-up; bgsmtr's is its single-threaded Gibbs loop,
  burn-in included) and per wall-second, with the ratios ``speedup_vs_bgsmtr`` (Gibbs vs
  bgsmtr, median ESS of W per CPU-second — target ≥ 100) and ``gibbs_over_nuts``.  Our
  CPU time is the whole ``bayesimg.fit`` call (sampling plus the pointwise
  log-likelihood, convergence checks and the ArviZ tree; median of ``--gibbs-repeats``
  timed fits), after an identical fit compiled the program;
  ``speedup_vs_bgsmtr_first_fit_with_compile`` counts that first fit instead;
* agreement of the posterior means of W: z = Δmean / √(MCSE₁² + MCSE₂²) per entry
  (:func:`bayesimg.report.agreement.mean_agreement`), Gibbs vs bgsmtr and Gibbs vs NUTS.

    python benchmarks/gsmtr_vs_bgsmtr.py --data PATH/bgsmtr_example \\
        --out benchmarks/results/gsmtr_vs_bgsmtr.json
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import time
import warnings
from pathlib import Path

import numpy as np
from _common import write_json

import bayesimg as bi
from bayesimg import mcmc_stats as _mcmc_stats
from bayesimg.data.bgsmtr_layout import load_bgsmtr_layout, read_bgsmtr_run
from bayesimg.report.agreement import mean_agreement

HERE = Path(__file__).resolve().parent
R_SCRIPT = HERE / "peers" / "run_bgsmtr.R"


def ess_figures(W: np.ndarray, sigma2: np.ndarray, cpu_seconds: float,
                wall_seconds: float) -> dict:
    """W: (chain, draw, d, c); sigma2: (chain, draw)."""
    chains, draws = W.shape[:2]
    flat = np.moveaxis(W.reshape(chains, draws, -1), -1, 0)
    table = _mcmc_stats.convergence_table(flat, stats=("ess_bulk", "ess_tail", "rhat"))
    s2 = _mcmc_stats.convergence_table(sigma2[None], stats=("ess_bulk", "ess_tail"))
    out = {"chains": int(chains), "draws_per_chain": int(draws),
           "cpu_seconds": float(cpu_seconds), "wall_seconds": float(wall_seconds),
           "max_rhat_W": float(np.nanmax(table["rhat"])) if chains > 1 else None}
    for kind in ("bulk", "tail"):
        ess = table[f"ess_{kind}"]
        out[f"ess_{kind}_W_min"] = float(np.min(ess))
        out[f"ess_{kind}_W_median"] = float(np.median(ess))
        out[f"ess_{kind}_sigma2"] = float(s2[f"ess_{kind}"][0])
        for stat in ("min", "median"):
            out[f"ess_{kind}_W_{stat}_per_cpu_second"] = out[f"ess_{kind}_W_{stat}"] / cpu_seconds
            out[f"ess_{kind}_W_{stat}_per_wall_second"] = (out[f"ess_{kind}_W_{stat}"]
                                                           / wall_seconds)
        out[f"ess_{kind}_sigma2_per_cpu_second"] = out[f"ess_{kind}_sigma2"] / cpu_seconds
    return out


def run_ours(model, data, method, *, repeat_for_compile: bool, timed_repeats: int = 1,
             **opts):
    """Timed fit after a compiling one.

    ``repeat_for_compile=True`` (Gibbs: cheap) runs the identical fit first, so the timed
    fit reuses its compiled program, and records that first fit's CPU time, compile
    included, too.  ``False`` (NUTS: each fit costs minutes) compiles with a 5-draw fit
    (whose shorter warm-up is compiled into NUTS' adaptation schedule, so the timed fit
    compiles again: seconds, next to minutes of sampling).  ``timed_repeats`` > 1 times
    the same fit (same seed, so the same draws) that many times and uses the median CPU
    time; all are recorded.
    """
    first = {**opts, **({} if repeat_for_compile else {"warmup": 5, "draws": 5})}
    cpu0 = time.process_time()
    with warnings.catch_warnings():   # the compiling run is not a result
        warnings.simplefilter("ignore")
        bi.fit(model, data, method=method, **first, progress=False)
    first_cpu = time.process_time() - cpu0
    cpus, walls = [], []
    for _ in range(max(1, timed_repeats)):
        cpu0, wall0 = time.process_time(), time.perf_counter()
        fit = bi.fit(model, data, method=method, **opts, progress=False)
        cpus.append(time.process_time() - cpu0)
        walls.append(time.perf_counter() - wall0)
    cpu, wall = float(np.median(cpus)), float(np.median(walls))
    W = np.asarray(fit.posterior["W"].transpose("chain", "draw", "snp", "phenotype").values)
    figures = ess_figures(W, np.asarray(fit.posterior["sigma2"].values), cpu, wall)
    figures["timings"] = fit.timings
    figures["cpu_seconds_of_repeats"] = cpus
    figures["sweeps_per_chain"] = opts["warmup"] + opts["draws"]
    figures["cpu_seconds_per_sweep_per_chain"] = cpu / (opts["chains"] * (opts["warmup"]
                                                                         + opts["draws"]))
    if repeat_for_compile:
        figures["cpu_seconds_first_fit_with_compile"] = first_cpu
        figures["ess_bulk_W_median_per_cpu_second_first_fit"] = (
            figures["ess_bulk_W_median"] / first_cpu)
    return fit, W, figures


def strong_lambda(data, gamma: float, iterations: int = 3) -> tuple[float, list]:
    """λ with 2σ̄√λ = γ at the posterior mean σ̄ (fixed point, our Gibbs)."""
    lam, path = (gamma / 2.0) ** 2, []
    for _ in range(iterations):
        fit = bi.fit(bi.models.GroupSparseMTR(lambda1=lam, lambda2=lam), data, method="gibbs",
                     chains=2, warmup=300, draws=500, progress=False)
        sigma = float(np.sqrt(fit.posterior["sigma2"].values).mean())
        path.append({"lambda": lam, "posterior_mean_sigma": sigma})
        lam = (gamma / (2.0 * sigma)) ** 2
    return lam, path


def bgsmtr_available(r_libs: str | None) -> bool:
    if shutil.which("Rscript") is None:
        return False
    env = {**os.environ, **({"R_LIBS": r_libs} if r_libs else {})}
    probe = subprocess.run(["Rscript", "-e", "quit(status = !requireNamespace('bgsmtr', "
                            "quietly = TRUE))"], env=env, capture_output=True)
    return probe.returncode == 0


def bgsmtr_run(data_dir: Path, out_dir: Path, lam: float, iters: int, burn_in: int,
               r_libs: str | None, reuse: bool) -> dict | None:
    if not (reuse and (out_dir / "meta.txt").is_file()):
        if not bgsmtr_available(r_libs):
            return None
        env = {**os.environ, **({"R_LIBS": r_libs} if r_libs else {})}
        subprocess.run(["Rscript", str(R_SCRIPT), str(data_dir), str(out_dir), repr(lam),
                        repr(lam), str(iters), str(burn_in), "1"], env=env, check=True,
                       capture_output=True)
    return read_bgsmtr_run(out_dir)


def agreement_summary(a: np.ndarray, b: np.ndarray) -> dict:
    """a, b: (chain, draw, d, c) → z-score summary of the posterior means."""
    res = mean_agreement(np.moveaxis(a.reshape(a.shape[0], a.shape[1], -1), -1, 0),
                         np.moveaxis(b.reshape(b.shape[0], b.shape[1], -1), -1, 0))
    rel = np.abs(res["mean_a"] - res["mean_b"]).max() / np.abs(res["mean_b"]).max()
    return {k: res[k] for k in ("n", "max_abs_z", "frac_abs_z_gt_3", "mean_z2",
                                "p_value_chi2")} | {
        "max_abs_diff_over_max_abs_mean": float(rel),
        "corr_of_means": float(np.corrcoef(res["mean_a"], res["mean_b"])[0, 1])}


def plot(result: dict, means: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    settings = list(result["settings"])
    fig, axes = plt.subplots(1, 1 + len(settings), figsize=(5 * (1 + len(settings)), 4.2))
    ax = axes[0]
    methods = ["gibbs", "nuts", "bgsmtr"]
    width = 0.8 / len(settings)
    for j, label in enumerate(settings):
        vals = [result["settings"][label].get(m, {}).get(
            "ess_bulk_W_median_per_cpu_second", np.nan) or np.nan for m in methods]
        ax.bar(np.arange(3) + j * width, vals, width, label=label)
    ax.set_xticks(np.arange(3) + width * (len(settings) - 1) / 2, methods)
    ax.set_yscale("log")
    ax.set_ylabel("median bulk ESS of W per CPU-second")
    ax.legend(fontsize=8)
    ax.set_title("sampling efficiency")
    for ax, label in zip(axes[1:], settings, strict=True):
        if label not in means or "bgsmtr" not in means[label]:
            ax.set_axis_off()
            continue
        ours, theirs = means[label]["gibbs"].ravel(), means[label]["bgsmtr"].ravel()
        ax.scatter(theirs, ours, s=4, alpha=0.5)
        lim = np.abs(np.concatenate([ours, theirs])).max() * 1.05
        ax.plot([-lim, lim], [-lim, lim], "k:", lw=0.8)
        ax.set_xlabel("bgsmtr posterior mean of W")
        ax.set_ylabel("bayesimg Gibbs posterior mean of W")
        ag = result["settings"][label].get("agreement_gibbs_vs_bgsmtr", {})
        ax.set_title(f"{label}: mean z² = {ag.get('mean_z2', np.nan):.2f}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="folder with bgsmtr's example CSVs")
    parser.add_argument("--gamma", type=float, default=100.0)
    parser.add_argument("--strong-lambda", type=float, default=None,
                        help="skip the fixed-point search and use this λ")
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--gibbs-warmup", type=int, default=500)
    parser.add_argument("--gibbs-draws", type=int, default=2000)
    parser.add_argument("--gibbs-repeats", type=int, default=3,
                        help="time the Gibbs fit this many times; the median CPU time counts")
    parser.add_argument("--nuts-warmup", type=int, default=400)
    parser.add_argument("--nuts-draws", type=int, default=400)
    parser.add_argument("--bgsmtr-iter", type=int, default=2000)
    parser.add_argument("--bgsmtr-burn-in", type=int, default=501)
    parser.add_argument("--bgsmtr-runs", default="benchmarks/results/bgsmtr_runs",
                        help="where bgsmtr draws are written (git-ignored)")
    parser.add_argument("--reuse-bgsmtr", action="store_true",
                        help="reuse existing bgsmtr runs in --bgsmtr-runs")
    parser.add_argument("--r-libs", default=os.environ.get("R_LIBS"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="benchmarks/results/gsmtr_vs_bgsmtr.json")
    args = parser.parse_args(argv)

    data_dir = Path(args.data)
    data = load_bgsmtr_layout(data_dir)
    if args.strong_lambda is None:
        lam_strong, path = strong_lambda(data, args.gamma)
    else:
        lam_strong, path = args.strong_lambda, []
    settings = {"lambda=2": 2.0, f"gamma={args.gamma:g}": lam_strong}
    result = {"benchmark": "gsmtr_vs_bgsmtr", "data": repr(data), "config": vars(args),
              "strong_lambda": lam_strong, "strong_lambda_fixed_point": path,
              "settings": {}}
    means = {}
    for label, lam in settings.items():
        model = bi.models.GroupSparseMTR(lambda1=lam, lambda2=lam)
        entry = {"lambda1": lam, "lambda2": lam}
        print(f"[{label}] Gibbs", flush=True)
        _, W_gibbs, entry["gibbs"] = run_ours(model, data, "gibbs", repeat_for_compile=True,
                                              chains=args.chains,
                                              warmup=args.gibbs_warmup,
                                              draws=args.gibbs_draws, seed=args.seed,
                                              timed_repeats=args.gibbs_repeats)
        print(f"[{label}] NUTS", flush=True)
        _, W_nuts, entry["nuts"] = run_ours(model, data, "nuts", repeat_for_compile=False,
                                            chains=args.chains,
                                            warmup=args.nuts_warmup, draws=args.nuts_draws,
                                            seed=args.seed)
        means[label] = {"gibbs": W_gibbs.mean(axis=(0, 1))}
        entry["agreement_gibbs_vs_nuts"] = agreement_summary(W_gibbs, W_nuts)
        print(f"[{label}] bgsmtr", flush=True)
        run = bgsmtr_run(data_dir, Path(args.bgsmtr_runs) / label.replace("=", "_"), lam,
                         args.bgsmtr_iter, args.bgsmtr_burn_in, args.r_libs, args.reuse_bgsmtr)
        if run is None:
            entry["bgsmtr"] = {"available": False,
                               "why": "Rscript or the bgsmtr package not found"}
        else:
            if abs(run["meta"]["lam_1"] - lam) > 1e-6 * max(1.0, lam):
                raise SystemExit(f"bgsmtr run in {args.bgsmtr_runs} has λ={run['meta']['lam_1']}"
                                 f", expected {lam}; drop --reuse-bgsmtr")
            rows = [data.snp_names.tolist().index(s) for s in run["snp_names"]]
            cols = [data.phenotype_names.tolist().index(p) for p in run["phenotype_names"]]
            W_bg = np.zeros((1, run["W"].shape[0], data.n_snps, data.n_phenotypes))
            W_bg[0][:, np.asarray(rows)[:, None], np.asarray(cols)[None, :]] = run["W"]
            cpu = run["meta"]["cpu_gibbs_loop"]
            entry["bgsmtr"] = {"available": True, **ess_figures(
                W_bg, run["sigma2"][None], cpu, run["meta"]["elapsed_gibbs_loop"]),
                "cpu_seconds_note": "CPU time (user + system) of bgsmtr's Gibbs loop, burn-in "
                                    "included, read with proc.time() around the loop; setup, "
                                    "initial G-SMuRFS fit and summaries excluded",
                "cpu_seconds_whole_call": run["meta"]["cpu_user"] + run["meta"]["cpu_system"],
                "sweeps": run["meta"]["iter_num"],
                "cpu_seconds_per_sweep": cpu / run["meta"]["iter_num"],
                "posterior_mean_sigma2": float(run["sigma2"].mean()),
                "versions": {k: run["meta"][k] for k in ("bgsmtr_version", "r_version", "blas")}}
            means[label]["bgsmtr"] = W_bg.mean(axis=(0, 1))
            entry["agreement_gibbs_vs_bgsmtr"] = agreement_summary(W_gibbs, W_bg)
            for stat in ("median", "min"):
                for kind in ("bulk", "tail"):
                    key = f"ess_{kind}_W_{stat}_per_cpu_second"
                    entry[f"speedup_vs_bgsmtr_{kind}_{stat}"] = (entry["gibbs"][key]
                                                                 / entry["bgsmtr"][key])
            entry["speedup_vs_bgsmtr"] = entry["speedup_vs_bgsmtr_bulk_median"]
            # a fresh process's first fit pays the compile too (no persistent cache)
            entry["speedup_vs_bgsmtr_first_fit_with_compile"] = (
                entry["gibbs"]["ess_bulk_W_median_per_cpu_second_first_fit"]
                / entry["bgsmtr"]["ess_bulk_W_median_per_cpu_second"])
        entry["gibbs_over_nuts"] = (entry["gibbs"]["ess_bulk_W_median_per_cpu_second"]
                                    / entry["nuts"]["ess_bulk_W_median_per_cpu_second"])
        result["settings"][label] = entry
        write_json(args.out, result)   # partial results survive an interruption
    out = write_json(args.out, result)
    plot(result, means, out.with_suffix(".png"))
    for label, entry in result["settings"].items():
        print(label, {k: entry.get(k) for k in ("speedup_vs_bgsmtr", "gibbs_over_nuts")})


if __name__ == "__main__":
    main()
