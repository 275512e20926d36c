"""Genome-wide GSMTR scan of chromosome 2 on a local Dask cluster (simulated phenotypes).

    python case_studies/chr2_scan/run.py            # all windows (see README for timings)
    python case_studies/chr2_scan/run.py --quick    # 3 windows, to check the pipeline

Steps:

1. genotypes: the bundled chr2 panel (``bayesimg.data.load_chr2_panel``): 503 European
   individuals of 1000 Genomes phase 3, 4,524 SNPs in 901 hg19 protein-coding genes (±10 kb);
2. phenotypes: 8 simulated imaging measures with 5 planted causal genes
   (``bayesimg.data.simulate_gsmtr``, 2 causal SNPs per gene, effects 0.5·U(0.7, 1.3) per
   allele on ≥ half the phenotypes, noise SD 1), centred;
3. windows: consecutive whole genes, the fewest windows of ≤ 250 SNPs
   (``bayesimg.data.gene_windows``): 19 windows of 229–249 SNPs;
4. fits: GSMTR by exact Gibbs on every window at λ₁ = λ₂ ∈ {500, 2000, 8000}, all through
   ``bayesimg.fit_many(..., out_dir=output/fits, client="local")`` — each fit is saved as it
   finishes, and re-running skips finished fits (an interrupted scan resumes);
5. λ: the grid value with the largest WAIC summed over the windows (one λ for the whole
   scan, so gene evidence compares across windows);
6. gene evidence at that λ: the posterior mean of ‖W_g‖_F / √(m_g c), the RMS effect per
   SNP × phenotype entry of gene g (per allele, in noise-SD units); a Manhattan-style plot
   along chr2 with the planted genes marked, a table of the top genes, and where the
   planted genes rank.

Outputs (git-ignored) go to ``case_studies/chr2_scan/output/`` (``output/quick/`` for
``--quick``; the fits in ``output/fits/`` are shared, so a full run reuses the quick one's).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
SIMULATION = dict(n_phenotypes=8, n_active_genes=5, snps_per_active_gene=2, effect_size=0.5,
                  noise_sd=1.0, seed=1)
LAMBDAS = (500.0, 2000.0, 8000.0)
MCMC = dict(chains=2, warmup=500, draws=250, thin=2)
MAX_SNPS = 250
CHR2_MB = 243.2  # length of chromosome 2 in GRCh37
TOP = 20


def scan_data():
    """Genotypes, simulated phenotypes (centred: GSMTR has no intercept) and the truth."""
    import bayesimg as bi
    data, truth = bi.data.simulate_gsmtr(bi.data.load_chr2_panel(), **SIMULATION)
    centred = data.phenotypes - data.phenotypes.mean(axis=0)
    return dataclasses.replace(data, phenotypes=centred, name="chr2_scan"), truth


def job_name(window: str, lam: float) -> str:
    return f"{window}_lambda{lam:g}"


def quick_windows(windows: dict, planted: list[str]) -> list[str]:
    """The windows holding the first two planted genes, and the first one holding none."""
    holding = [name for name, w in windows.items() if set(planted) & set(w.gene_names)]
    empty = [name for name in windows if name not in holding]
    return [n for n in windows if n in set(holding[:2] + empty[:1])]


def run_fits(windows: dict, names: list[str], out: Path, workers: int | None):
    import bayesimg as bi
    index = {name: i for i, name in enumerate(windows)}
    jobs = {job_name(name, lam): bi.FitJob(bi.models.GroupSparseMTR(lam, lam), windows[name],
                                           method="gibbs",
                                           options={**MCMC, "seed": index[name]})
            for name in names for lam in LAMBDAS}
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results = bi.fit_many(jobs, out_dir=out, client="local", n_workers=workers)
    return results, time.perf_counter() - t0, [str(w.message) for w in caught]


def choose_lambda(results, names: list[str]) -> tuple[float, pd.DataFrame, list[str]]:
    """λ with the largest WAIC summed over windows; the per-window table, with PSIS-LOO
    as a check (WAIC flags most subjects: each carries 8 phenotypes, p_waic,i > 0.4)."""
    rows = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for name in names:
            for lam in LAMBDAS:
                fit = results[job_name(name, lam)]
                ic, loo = fit.waic(), fit.loo()
                rows.append({"window": name, "lambda": lam, "elpd_waic": ic.elpd,
                             "p_waic": ic.p, "se": ic.se, "elpd_loo": loo.elpd,
                             "pareto_k_over_0.7": int((loo.pareto_k > 0.7).sum())})
    table = pd.DataFrame(rows)
    totals = table.groupby("lambda")["elpd_waic"].sum()
    return float(totals.idxmax()), table, [str(w.message) for w in caught]


def gene_positions(genes) -> pd.Series:
    """Midpoint (bp) of each gene on chr2 in the bundled hg19 table."""
    import bayesimg as bi
    table = bi.data.load_gene_table("hg19")
    table = table[(table["chrom"] == "2") & table["gene"].isin(set(genes))]
    span = table.groupby("gene").agg(start=("start", "min"), end=("end", "max"))
    return (span["start"] + span["end"]) / 2.0


def gene_evidence(results, windows: dict, names: list[str], lam: float,
                  planted: list[str]) -> tuple[pd.DataFrame, dict]:
    frames, diagnostics = [], {}
    for name in names:
        fit, window = results[job_name(name, lam)], windows[name]
        gn = fit.posterior["gene_norm"].transpose("chain", "draw", "gene")
        draws = gn.values.reshape(-1, gn.sizes["gene"])
        genes = gn["gene"].values.astype(str)
        sizes = pd.Series(window.snps["gene"].astype(str)).value_counts().reindex(genes)
        rms = draws / np.sqrt(sizes.to_numpy() * window.n_phenotypes)
        frames.append(pd.DataFrame({
            "gene": genes, "window": name, "n_snps": sizes.to_numpy(),
            "rms_mean": rms.mean(0), "rms_lo": np.quantile(rms, 0.025, 0),
            "rms_hi": np.quantile(rms, 0.975, 0), "norm_mean": draws.mean(0)}))
        diag = fit.diagnose(var_names=["gene_norm", "sigma2"])
        diagnostics[name] = {"max_rhat": float(diag.max_rhat),
                             "min_ess_bulk": float(diag.min_ess_bulk),
                             "max_rhat_all": float(fit.diagnose().max_rhat)}
    genes = pd.concat(frames, ignore_index=True)
    genes["position"] = genes["gene"].map(gene_positions(genes["gene"]))
    genes["planted"] = genes["gene"].isin(planted)
    genes["rank"] = genes["rms_mean"].rank(ascending=False, method="min").astype(int)
    return genes.sort_values("rank").reset_index(drop=True), diagnostics


def manhattan(genes: pd.DataFrame, windows: dict, names: list[str], lam: float, path: Path):
    from matplotlib.figure import Figure

    from bayesimg.report.plots import save_figure
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    ax = fig.add_subplot()
    for k, name in enumerate(names):
        here = genes[(genes["window"] == name) & ~genes["planted"]]
        ax.scatter(here["position"] / 1e6, here["rms_mean"], s=10,
                   color=("#4c72b0", "#9aa9c7")[k % 2], linewidths=0)
    hits = genes[genes["planted"]]
    ax.scatter(hits["position"] / 1e6, hits["rms_mean"], s=46, color="#c0392b", zorder=3,
               label="planted causal gene")
    for _, row in hits.iterrows():
        ax.annotate(f"{row['gene']} (#{row['rank']})", (row["position"] / 1e6, row["rms_mean"]),
                    xytext=(4, 4), textcoords="offset points", fontsize=8, color="#c0392b")
    for _, row in genes[~genes["planted"]].head(3).iterrows():
        ax.annotate(row["gene"], (row["position"] / 1e6, row["rms_mean"]), xytext=(4, -10),
                    textcoords="offset points", fontsize=7, color="#333333")
    ax.set_xlim(0, CHR2_MB)
    ax.set_xlabel("chromosome 2 position (Mb, GRCh37); colours alternate by window")
    ax.set_ylabel("posterior mean of ‖W_g‖_F / √(m_g c)")
    ax.set_title(f"GSMTR gene-level evidence, {len(genes)} genes in {len(names)} windows "
                 f"(λ₁ = λ₂ = {lam:g})")
    ax.legend(loc="upper right", frameon=False)
    save_figure(fig, path)


def report(args, out: Path, data, truth, windows, names, results, wall_fits, lam, waic,
           genes, diagnostics, fit_warnings, waic_warnings, t_start) -> dict:
    import bayesimg as bi
    from bayesimg.atomic import write_text_atomic
    from bayesimg.inference.common import versions
    from bayesimg.report.markdown import markdown_table
    shapes = bi.data.describe_windows({n: windows[n] for n in names})
    totals = waic.groupby("lambda").agg(elpd_waic=("elpd_waic", "sum"), p_waic=("p_waic", "sum"),
                                        elpd_loo=("elpd_loo", "sum"),
                                        pareto_k_over_07=("pareto_k_over_0.7", "sum"))
    per_window_best = waic.loc[waic.groupby("window")["elpd_waic"].idxmax(), "lambda"]
    planted = genes[genes["planted"]][["gene", "window", "n_snps", "rank", "rms_mean",
                                       "rms_lo", "rms_hi"]]
    top = genes.head(TOP)[["rank", "gene", "window", "position", "n_snps", "rms_mean",
                           "rms_lo", "rms_hi", "norm_mean", "planted"]]
    n_planted = len(truth.active_genes)
    in_scan = int(genes["planted"].sum())
    summary = {
        "mode": "quick" if args.quick else "full",
        "data": {"subjects": data.n_subjects, "snps": data.n_snps,
                 "genes": len(data.gene_names), "phenotypes": data.n_phenotypes},
        "simulation": SIMULATION, "planted_genes": list(truth.active_genes),
        "planted_snps": list(truth.active_snps),
        "windows": {"n": len(windows), "fitted": len(names), "max_snps": args.max_snps,
                    "snps_min": int(shapes["n_snps"].min()),
                    "snps_max": int(shapes["n_snps"].max()),
                    "distinct_shapes": int(len(shapes[["n_snps", "n_genes"]]
                                               .drop_duplicates()))},
        "mcmc": MCMC, "lambda_grid": list(LAMBDAS), "lambda_chosen": lam,
        "waic_total": {f"{k:g}": float(v) for k, v in totals["elpd_waic"].items()},
        "loo_total": {f"{k:g}": float(v) for k, v in totals["elpd_loo"].items()},
        "windows_preferring": {f"{k:g}": int(v) for k, v in
                               per_window_best.value_counts().items()},
        "fit_many": {"jobs": len(names) * len(LAMBDAS), "ran": len(results.ran),
                     "reused": len(results.skipped), "seconds": round(wall_fits, 1),
                     "workers": args.workers or "cpu count",
                     "warnings_this_call": len(fit_warnings)},
        "waic_warnings": len(waic_warnings),
        "planted_ranks": {r["gene"]: int(r["rank"]) for _, r in planted.iterrows()},
        "planted_in_top": {f"top{k}": int((planted["rank"] <= k).sum()) for k in (5, 10, 20)},
        "max_rhat_gene_norm_sigma2": max(d["max_rhat"] for d in diagnostics.values()),
        "min_ess_bulk_gene_norm_sigma2": min(d["min_ess_bulk"] for d in diagnostics.values()),
        "max_rhat_all_parameters": max(d["max_rhat_all"] for d in diagnostics.values()),
        "windows_max_rhat_all_over_1.01": sum(d["max_rhat_all"] > 1.01
                                              for d in diagnostics.values()),
        "wall_seconds_total": round(time.perf_counter() - t_start, 1),
        "versions": versions(),
    }
    genes.to_csv(out / "genes.csv", index=False)
    waic.to_csv(out / "lambda_waic.csv", index=False)
    shapes.to_csv(out / "windows.csv")
    with open(out / "warnings.txt", "a") as log:  # appended: a resumed call adds its own
        log.write(f"== {time.strftime('%Y-%m-%d %H:%M:%S')}: ran {len(results.ran)}, reused "
                  f"{len(results.skipped)} ==\n" + "".join(f"{w}\n" for w in
                                                            fit_warnings + waic_warnings))
    write_text_atomic(out / "summary.json", json.dumps(summary, indent=2, default=str))
    mode = "quick run (3 windows)" if args.quick else "full scan"
    lines = [
        f"# chr2 GSMTR scan — {mode}\n",
        f"Data: {data.n_subjects} subjects × {data.n_snps} SNPs in {len(data.gene_names)} "
        f"genes, {data.n_phenotypes} simulated phenotypes; {n_planted} planted genes "
        f"({', '.join(truth.active_genes)}), {in_scan} of them in the fitted windows.\n",
        f"Windows: {len(names)} fitted of {len(windows)} (≤ {args.max_snps} SNPs: "
        f"{summary['windows']['snps_min']}–{summary['windows']['snps_max']} SNPs, "
        f"{summary['windows']['distinct_shapes']} distinct shapes).\n",
        f"fit_many: {summary['fit_many']['jobs']} jobs, ran {len(results.ran)}, reused "
        f"{len(results.skipped)}, {wall_fits:.0f} s on a local Dask cluster; whole run "
        f"{summary['wall_seconds_total']:.0f} s.\n",
        "## λ₁ = λ₂ by WAIC summed over windows (PSIS-LOO as a check)\n",
        markdown_table(totals.rename_axis("λ"), floatfmt=".1f"), "",
        f"Chosen: **λ = {lam:g}**; windows preferring each value on their own: "
        + ", ".join(f"{k} → {v}" for k, v in summary["windows_preferring"].items()) + ".\n",
        "## Planted genes\n",
        markdown_table(planted.set_index("gene"), floatfmt=".3g"), "",
        f"Planted genes in the top 5 / 10 / 20 of {len(genes)}: "
        f"{summary['planted_in_top']['top5']} / {summary['planted_in_top']['top10']} / "
        f"{summary['planted_in_top']['top20']} (of {in_scan}).\n",
        f"## Top {TOP} genes\n",
        markdown_table(top.set_index("rank"), floatfmt=".3g"), "",
        f"Convergence at λ = {lam:g}: gene norms and σ² max R-hat "
        f"{summary['max_rhat_gene_norm_sigma2']:.3f}, min bulk ESS "
        f"{summary['min_ess_bulk_gene_norm_sigma2']:.0f}; all parameters (W, ω, τ, …) max "
        f"R-hat {summary['max_rhat_all_parameters']:.3f} "
        f"({summary['windows_max_rhat_all_over_1.01']} of {len(names)} windows above 1.01; "
        "warnings.txt lists the sampler's warnings).\n",
    ]
    write_text_atomic(out / "results.md", "\n".join(lines))
    manhattan(genes, windows, names, lam, out / "manhattan.png")
    return summary


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="fit 3 windows only (2 with planted genes, 1 without)")
    parser.add_argument("--workers", type=int, default=None,
                        help="Dask worker processes (default: one per CPU core)")
    parser.add_argument("--max-snps", type=int, default=MAX_SNPS)
    parser.add_argument("--out", default=str(HERE / "output"))
    args = parser.parse_args(argv)
    t_start = time.perf_counter()
    import bayesimg as bi

    root = Path(args.out)
    out = root / "quick" if args.quick else root
    out.mkdir(parents=True, exist_ok=True)
    data, truth = scan_data()
    windows = bi.data.gene_windows(data, max_snps=args.max_snps)
    names = quick_windows(windows, truth.active_genes) if args.quick else list(windows)
    print(f"{data!r}; planted genes {truth.active_genes}; {len(names)} of {len(windows)} "
          f"windows × {len(LAMBDAS)} λ", flush=True)
    results, wall_fits, fit_warnings = run_fits(windows, names, root / "fits", args.workers)
    print(f"{results!r}", flush=True)
    lam, waic, waic_warnings = choose_lambda(results, names)
    genes, diagnostics = gene_evidence(results, windows, names, lam, truth.active_genes)
    summary = report(args, out, data, truth, windows, names, results, wall_fits, lam, waic,
                     genes, diagnostics, fit_warnings, waic_warnings, t_start)
    print(json.dumps({k: summary[k] for k in ("lambda_chosen", "planted_ranks",
                                              "planted_in_top", "fit_many",
                                              "wall_seconds_total")}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
