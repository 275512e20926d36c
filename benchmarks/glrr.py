"""GLRR benchmark: exact Gibbs, NUTS and SVI (ours) side by side with GSMTR on identical data.

Data: the bundled 1000 Genomes genotypes (LD-pruned at r² 0.5, MAF ≥ 0.05; genes added
until d ≈ ``--d``: real LD), ``--c`` simulated phenotypes, B of rank 5 on 10 SNPs with
signal singular values 100, 80, 60, 40, 20 (singular values of XB; the largest singular
value of the noise matrix is ≈ √n + √c ≈ 30 and the projected-noise edge σ̄(√d + √c) ≈ 15,
so the last layer sits just above it), noise Σ = ΛΛᵀ + diag ψ with 3 factors.

Per method: relative error ‖B̂ − B‖_F/‖B‖_F of the posterior mean, AUC of the SNP-row
norms of B̂ for the 10 active rows, coverage of the 95% intervals of B's entries, bulk and
tail ESS of B (min and median) per second of sampling, wall time (compile included and
excluded), peak memory.  Also: rank selection by the shrinkage prior (posterior mode of
``effective_rank``) and, with ``--rank-grid``, by PSIS-LOO/WAIC across R.

GLRR by its exact blocked Gibbs kernel (bayesimg.models.glrr.gibbs) and by NUTS on the same
data decides which sampler the docs recommend: ``ratios.gibbs_over_nuts_ess_per_second``
(bulk/tail, min/median ESS of B per second of warm-up + sampling, compile excluded; Gibbs
runs ``--gibbs-warmup`` + ``--gibbs-draws`` per chain, NUTS ``--warmup`` + ``--draws``: ESS
per second does not depend on the run length, and the cheap sweeps buy a steadier ESS
estimate), and ``gibbs_vs_nuts_agreement`` checks that the two agree on the posterior
mean of B within Monte Carlo error (bayesimg.report.agreement).  ``gibbs_over_nuts_wall``
compares the runs as configured (compile included, different lengths).  Record with
``BAYESIMG_COMPILATION_CACHE=0`` so that compile times are not read from a warm cache.

Octave/L2R2: the authors' MATLAB sampler is run only if ``octave`` is on PATH and
``--l2r2-path`` points at a local copy (never bundled: GPL-3); otherwise recorded as
"not available".

    python benchmarks/glrr.py --out benchmarks/results/glrr.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import time
import warnings
from pathlib import Path

import arviz_stats as azs
import jax
import numpy as np

import bayesimg as bi
from bayesimg.data.simulate_glrr import simulate_glrr
from bayesimg.errors import ConvergenceWarning
from bayesimg.inference.common import versions
from bayesimg.models.glrr import choose_rank
from bayesimg.report.agreement import mean_agreement


def _design(d_target: int):
    demo = bi.data.load_demo(ld_prune_r2=0.5, min_maf=0.05, covariates=False)
    counts = demo.snps["gene"].value_counts()
    genes, total = [], 0
    for gene, m in counts.items():
        if total >= d_target:
            break
        genes.append(gene)
        total += int(m)
    return bi.data.load_demo(ld_prune_r2=0.5, min_maf=0.05, covariates=False, genes=genes)


def _auc(scores, labels):
    pos, neg = scores[labels], scores[~labels]
    return float((np.sum(pos[:, None] > neg[None, :]) + 0.5 * np.sum(pos[:, None] == neg[None, :]))
                 / (len(pos) * len(neg)))


def _metrics(fit, site, truth_B, active, sampling_seconds):
    post = fit.posterior[site]
    draws = post.values.reshape((-1,) + post.shape[2:])
    mean = draws.mean(0)
    lo, hi = np.quantile(draws, [0.025, 0.975], axis=0)
    out = {
        "rel_error_B": float(np.linalg.norm(mean - truth_B) / np.linalg.norm(truth_B)),
        "snp_row_auc": _auc(np.linalg.norm(mean, axis=1), active),
        "coverage_95_B": float(np.mean((lo <= truth_B) & (truth_B <= hi))),
        "coverage_95_B_nonzero": float(np.mean(((lo <= truth_B) & (truth_B <= hi))[truth_B != 0])),
    }
    if not fit.approximate and fit.n_chains > 1:
        bulk = azs.ess(fit.tree, var_names=[site], method="bulk")[site].values
        tail = azs.ess(fit.tree, var_names=[site], method="tail")[site].values
        rhat = azs.rhat(fit.tree, var_names=[site])[site].values
        out.update({
            "ess_bulk_min": float(bulk.min()), "ess_bulk_median": float(np.median(bulk)),
            "ess_tail_min": float(tail.min()), "ess_tail_median": float(np.median(tail)),
            "ess_bulk_min_per_s": float(bulk.min() / sampling_seconds),
            "ess_bulk_median_per_s": float(np.median(bulk) / sampling_seconds),
            "ess_tail_min_per_s": float(tail.min() / sampling_seconds),
            "ess_tail_median_per_s": float(np.median(tail) / sampling_seconds),
            "rhat_max": float(rhat.max()),
        })
        stats = fit.tree.children.get("sample_stats")
        if stats is not None and "diverging" in stats:
            out["divergences"] = int(fit.tree["sample_stats"]["diverging"].sum())
    return out


def _run(label, model, data, method, **options):
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        fit = bi.fit(model, data, method=method, progress=False, **options)
    wall = time.perf_counter() - t0
    timings = fit.timings
    compile_s = timings.get("compile_seconds", 0.0)
    sampling = timings.get("warmup_seconds", 0.0) + timings.get("sampling_seconds", 0.0)
    if method in ("svi", "map"):
        sampling = timings.get("fit_seconds", wall) - compile_s
    print(f"{label}: {wall:.1f} s", flush=True)
    return fit, {"method": method, "wall_seconds": wall, "compile_seconds": compile_s,
                 "run_seconds_excluding_compile": sampling, "options": options}


def _octave(l2r2_path):
    if shutil.which("octave") is None:
        return {"status": "not available", "reason": "octave is not installed on this machine"}
    if not l2r2_path or not Path(l2r2_path).exists():
        return {"status": "not available",
                "reason": "no local copy of BIG-S2/L2R2 given (--l2r2-path)"}
    return {"status": "not available",
            "reason": "octave and L2R2 found; the authors' program is compared on its own "
                      "example data by benchmarks/l2r2_anchor.py, not on this benchmark's "
                      "data (GPL-3 code is never bundled)"}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--d", type=int, default=50)
    parser.add_argument("--c", type=int, default=50)
    parser.add_argument("--rank-bound", type=int, default=6)
    parser.add_argument("--noise-factors", type=int, default=4)
    parser.add_argument("--chains", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--draws", type=int, default=200)
    parser.add_argument("--gibbs-warmup", type=int, default=500)
    parser.add_argument("--gibbs-draws", type=int, default=1000)
    parser.add_argument("--svi-steps", type=int, default=3000)
    parser.add_argument("--rank-grid", type=int, nargs="*", default=[])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--l2r2-path", default=None)
    parser.add_argument("--out", default="benchmarks/results/glrr.json")
    parser.add_argument("--samplers-only", action="store_true",
                        help="rerun only GLRR Gibbs and NUTS (and their ratios/agreement) and "
                             "carry every other row over from the existing --out file, marked "
                             "with its date (for a change to the Gibbs kernel alone)")
    parser.add_argument("--replot", action="store_true",
                        help="only redraw the PNG from an existing JSON")
    args = parser.parse_args(argv)
    if args.replot:
        out = Path(args.out)
        _plot(json.loads(out.read_text()), out.with_suffix(".png"))
        return

    load_at_start = list(os.getloadavg())
    design = _design(args.d)
    data, truth = simulate_glrr(genotypes=design, n_phenotypes=args.c, rank=5,
                                singular_values=[100, 80, 60, 40, 20], n_active_snps=10,
                                noise_factors=3, noise_factor_sd=0.7, seed=args.seed)
    B = truth.B.to_numpy()
    active = np.isin(data.snp_names, truth.active_snps)
    mcmc = dict(chains=args.chains, warmup=args.warmup, draws=args.draws, seed=args.seed)
    glrr = bi.models.GLRR(rank=args.rank_bound, noise_factors=args.noise_factors)
    results = {}

    gibbs_mcmc = dict(mcmc, warmup=args.gibbs_warmup, draws=args.gibbs_draws)
    glrr_fits = {}
    for method, options in (("gibbs", gibbs_mcmc), ("nuts", mcmc)):
        fit, info = _run(f"glrr {method}", glrr, data, method, **options)
        info.update(_metrics(fit, "B", B, active, info["run_seconds_excluding_compile"]))
        eff = fit.posterior["effective_rank"].values.astype(int).ravel()
        info["effective_rank_posterior"] = np.bincount(
            eff, minlength=args.rank_bound + 1).tolist()
        info["rank_by_shrinkage"] = int(np.bincount(eff).argmax())
        for site in ("signal_singular_values", "whitened_singular_values"):
            info[site + "_mean"] = fit.posterior[site].mean(("chain", "draw")).values.tolist()
        S = fit.posterior["noise_cov"].mean(("chain", "draw")).values
        info["rel_error_noise_cov"] = float(np.linalg.norm(S - truth.noise_cov.to_numpy())
                                            / np.linalg.norm(truth.noise_cov.to_numpy()))
        noise_ess = azs.ess(fit.tree, var_names=["noise_cov"], method="bulk")["noise_cov"].values
        info["ess_bulk_min_noise_cov_per_s"] = float(
            noise_ess.min() / info["run_seconds_excluding_compile"])
        info["loo_elpd"] = fit.loo().elpd
        info["waic_elpd"] = fit.waic().elpd
        results[f"glrr_{method}"] = info
        glrr_fits[method] = fit
    draws_of = {m: np.moveaxis(f.posterior["B"].values, (0, 1), (-2, -1)).reshape(
        -1, f.n_chains, f.n_draws) for m, f in glrr_fits.items()}
    agree = mean_agreement(draws_of["gibbs"], draws_of["nuts"])
    agreement = {k: agree[k] for k in ("n", "max_abs_z", "frac_abs_z_gt_3", "mean_z2",
                                       "p_value_chi2")}
    gibbs_wins = (results["glrr_gibbs"]["ess_bulk_min_per_s"]
                  > results["glrr_nuts"]["ess_bulk_min_per_s"])
    glrr_fit = glrr_fits["gibbs" if gibbs_wins else "nuts"]
    if args.samplers_only:
        _merge_samplers(Path(args.out), results, agreement, gibbs_wins, args, load_at_start)
        return

    fit, info = _run("glrr svi", glrr, data, "svi", steps=args.svi_steps, learning_rate=0.02,
                     num_draws=1000, seed=args.seed)
    info.update(_metrics(fit, "B", B, active, info["run_seconds_excluding_compile"]))
    results["glrr_svi"] = info

    fit, info = _run("glrr map (sRRR)", glrr, data, "map", steps=args.svi_steps,
                     seed=args.seed)
    info.update(_metrics(fit, "B", B, active, info["run_seconds_excluding_compile"]))
    results["glrr_map_srrr"] = info

    # GSMTR's λ₁ = λ₂ chosen by WAIC over a grid with its exact Gibbs sampler (as bgsmtr)
    lam_grid = [{"lambda1": v, "lambda2": v} for v in (2.0, 20.0, 200.0, 2000.0)]
    _, lam_table, _ = bi.select_hyperparameter(bi.models.GroupSparseMTR(), data, lam_grid,
                                               ic="waic", method="gibbs", progress=False,
                                               **mcmc)
    lam = float(str(lam_table.index[0]).split(",")[0].split("=")[1])
    gsmtr = bi.models.GroupSparseMTR(lambda1=lam, lambda2=lam)
    for method in ("gibbs", "nuts"):
        fit, info = _run(f"gsmtr {method}", gsmtr, data, method, **mcmc)
        info.update(_metrics(fit, "W", B, active, info["run_seconds_excluding_compile"]))
        info["loo_elpd"] = fit.loo().elpd
        results[f"gsmtr_{method}"] = info
        if method == "gibbs":
            gsmtr_fit = fit
    table = bi.compare({"glrr": glrr_fit, "gsmtr": gsmtr_fit}, ic="loo")
    comparison = table[["elpd", "elpd_diff", "dse"]].to_dict(orient="index")

    best = "glrr_gibbs" if gibbs_wins else "glrr_nuts"
    rank_selection = {"by_shrinkage": results[best]["rank_by_shrinkage"]}
    if args.rank_grid:
        _, tab, _ = bi.select_hyperparameter(
            bi.models.GLRR(noise_factors=args.noise_factors), data,
            [{"rank": r} for r in args.rank_grid], ic="loo", progress=False,
            **(dict(gibbs_mcmc, method="gibbs") if gibbs_wins else mcmc))
        rank_selection["by_loo_one_se"] = choose_rank(tab)
        rank_selection["loo_table"] = tab[["elpd", "elpd_diff", "dse"]].to_dict(orient="index")

    nuts, svi, gibbs = results["glrr_nuts"], results["glrr_svi"], results["glrr_gibbs"]
    ess_ratio = {key: gibbs[key] / nuts[key]
                 for key in ("ess_bulk_min_per_s", "ess_bulk_median_per_s", "ess_tail_min_per_s",
                             "ess_tail_median_per_s", "ess_bulk_min_noise_cov_per_s")}
    result = {
        "benchmark": "glrr",
        "what": "GLRR (exact Gibbs, NUTS, SVI, MAP=sRRR) vs GSMTR (Gibbs, NUTS) on one "
                "simulated data set",
        "design": {"n": data.n_subjects, "d": data.n_snps, "c": data.n_phenotypes,
                   "true_rank": 5, "signal_singular_values": [100, 80, 60, 40, 20],
                   "singular_values_of_B": truth.singular_values.tolist(),
                   "active_snps": 10, "noise_factors": 3,
                   "genotypes": "bundled 1000 Genomes (real LD), LD-pruned r2 0.5, MAF >= 0.05"},
        "config": vars(args),
        "methods": results,
        "glrr_recommended_sampler": "gibbs" if gibbs_wins else "nuts",
        "gibbs_vs_nuts_agreement": agreement,
        "loo_compare_glrr_vs_gsmtr": comparison,
        "loo_compare_glrr_fit": best,
        "gsmtr_lambda_by_waic": lam,
        "rank_selection": rank_selection,
        "ratios": {
            "gibbs_over_nuts_ess_per_second": ess_ratio,
            "gibbs_over_nuts_wall": gibbs["wall_seconds"] / nuts["wall_seconds"],
            "glrr_nuts_wall_over_svi_wall": nuts["wall_seconds"] / svi["wall_seconds"],
            "rel_error_svi_over_nuts": svi["rel_error_B"] / nuts["rel_error_B"],
        },
        "l2r2_octave": _octave(args.l2r2_path),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "cpu_count": os.cpu_count(),
                    "jax_devices": [str(d) for d in jax.devices()],
                    "gpu": jax.default_backend() == "gpu",
                    "note": "no GPU; 2-core CPU shared with other engineers' jobs while this "
                            "ran, so wall times are inflated and noisy"},
        "versions": versions(),
        "precision": bi.current_precision(),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=2, default=float))
    tmp.replace(out)
    _plot(result, out.with_suffix(".png"))
    print(json.dumps({k: {m: v for m, v in r.items() if m in ("rel_error_B", "snp_row_auc",
                                                                "coverage_95_B",
                                                                "ess_bulk_min_per_s",
                                                                "wall_seconds")}
                      for k, r in results.items()}, indent=1))
    print(json.dumps({"gibbs_over_nuts_ess_per_second": ess_ratio,
                      "gibbs_vs_nuts_agreement": agreement}, indent=1))


def _merge_samplers(out, results, agreement, gibbs_wins, args, load_at_start):
    """Replace the GLRR Gibbs/NUTS rows of an existing result; other rows carried over."""
    old = json.loads(out.read_text())
    same = {k: v for k, v in vars(args).items() if k not in ("samplers_only", "out", "replot")}
    if {k: old["config"].get(k) for k in same} != same:
        raise SystemExit("--samplers-only needs the settings of the recorded run in --out")
    carried_from = old.get("recorded", old.get("machine", {}).get("date", "2026-11-22"))
    for name, row in old["methods"].items():
        if name not in results:
            row.setdefault("carried_over_from", carried_from)
    old["methods"].update(results)
    nuts, gibbs, svi = results["glrr_nuts"], results["glrr_gibbs"], old["methods"]["glrr_svi"]
    old["ratios"]["gibbs_over_nuts_ess_per_second"] = {
        key: gibbs[key] / nuts[key]
        for key in ("ess_bulk_min_per_s", "ess_bulk_median_per_s", "ess_tail_min_per_s",
                    "ess_tail_median_per_s", "ess_bulk_min_noise_cov_per_s")}
    old["ratios"]["gibbs_over_nuts_wall"] = gibbs["wall_seconds"] / nuts["wall_seconds"]
    old["ratios"]["glrr_nuts_wall_over_svi_wall"] = nuts["wall_seconds"] / svi["wall_seconds"]
    old["ratios"]["rel_error_svi_over_nuts"] = svi["rel_error_B"] / nuts["rel_error_B"]
    old["gibbs_vs_nuts_agreement"] = agreement
    old["glrr_recommended_sampler"] = "gibbs" if gibbs_wins else "nuts"
    old["rank_selection"]["by_shrinkage"] = results[
        "glrr_gibbs" if gibbs_wins else "glrr_nuts"]["rank_by_shrinkage"]
    old["samplers_rerun"] = {
        "what": "GLRR Gibbs and NUTS rerun after the Gibbs kernel changed (collapsed noise "
                "HMC); SVI, MAP, GSMTR rows and the GLRR-vs-GSMTR LOO comparison carried over "
                f"from {carried_from} (they do not use the Gibbs kernel; the LOO comparison "
                "used the old Gibbs fit)",
        "load_average_at_start": load_at_start, "load_average_at_end": list(os.getloadavg()),
        "machine_note": "2-core CPU shared by 6 workers (other helpers' jobs) while this ran, "
                        "so wall times are inflated and noisy",
        "versions": versions()}
    old["recorded"] = time.strftime("%Y-%m-%d")
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(old, indent=2, default=float))
    tmp.replace(out)
    _plot(old, out.with_suffix(".png"))
    print(json.dumps({"gibbs_over_nuts_ess_per_second":
                      old["ratios"]["gibbs_over_nuts_ess_per_second"],
                      "gibbs_vs_nuts_agreement": agreement}, indent=1))


def _plot(result, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = list(result["methods"])
    panels = [("rel_error_B", "relative error of B"), ("snp_row_auc", "SNP-row AUC"),
              ("coverage_95_B", "95% interval coverage of B"),
              ("ess_bulk_min_per_s", "min bulk ESS/s of B"), ("wall_seconds", "wall time (s)")]
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.6))
    for ax, (key, title) in zip(axes, panels, strict=True):
        vals = [result["methods"][m].get(key, np.nan) for m in methods]
        ax.bar(range(len(methods)), vals,
               color=["C0" if m.startswith("glrr") else "C1" for m in methods])
        ax.set_xticks(range(len(methods)), methods, rotation=45, ha="right", fontsize=8)
        ax.set_title(title, fontsize=10)
        if key == "coverage_95_B":
            ax.axhline(0.95, color="k", lw=0.8, ls="--")
        if key == "ess_bulk_min_per_s":
            ax.set_yscale("log")
            ax.set_title(title + " (log; SVI/MAP: none)", fontsize=10)
        if key == "wall_seconds":
            ax.set_yscale("log")
            ax.set_title(title + " (log)", fontsize=10)
    d = result["design"]
    fig.suptitle(f"GLRR vs GSMTR: n={d['n']}, d={d['d']}, c={d['c']}, true rank 5 "
                 "(signal s.v. 100…20), real-LD genotypes", fontsize=10)
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    tmp.replace(path)


if __name__ == "__main__":
    main()
