# %% [markdown]
# # A genome-wide GSMTR scan of chromosome 2 on a local Dask cluster
#
# The whole of chromosome 2 is scanned for genes that affect a panel of (simulated) imaging
# phenotypes: the genes are cut into windows, GSMTR is fitted to every window with
# `bayesimg.fit_many` on a local Dask cluster, and the genes are ranked by their posterior
# effect size. The phenotypes are simulated with five planted causal genes, so the scan can be
# scored; nothing here is evidence about biology.
#
# * **Genotypes**: the bundled chr2 panel (`bi.data.load_chr2_panel()`): 503 Europeans of
#   1000 Genomes phase 3 (open access, as shipped with the R package gaston 1.6, GPL-3; see
#   `bayesimg/data/datasets/demo_1000g/SOURCE.md`), 4,524 SNPs in 901 hg19 protein-coding
#   genes ±10 kb after QC. Nothing is downloaded.
# * **Phenotypes**: 8 simulated measures, `simulate_gsmtr(panel, n_phenotypes=8,
#   n_active_genes=5, snps_per_active_gene=2, effect_size=0.5, noise_sd=1, seed=1)`, centred
#   (GSMTR has no intercept).
# * **Method**: windows of consecutive whole genes (`gene_windows`, ≤ 250 SNPs: 19 windows);
#   GSMTR by exact Gibbs on every window at λ₁ = λ₂ ∈ {500, 2000, 8000} (the λ of a window
#   share one compiled, vmapped program); λ = the grid value with the largest WAIC summed over
#   windows; gene evidence = posterior mean of ‖W_g‖_F / √(m_g c), the RMS effect per SNP ×
#   phenotype entry (per allele, noise-SD units), with its 95% interval.
#
# **Size.** `BAYESIMG_NOTEBOOK_SIZE=ci` (CI and the committed notebook): windows of ≤ 30 SNPs,
# one of them (the first holding a planted gene), λ ∈ {500, 2000}, 2 chains ×
# (100 + 100) draws, fitted in this process — a check that the pipeline runs, not a result.
# The full size (the default) fits all 19 windows × 3 λ = 57 fits on a local Dask cluster
# (`dist` extra), saving each fit to `output/fits/` as it finishes (a re-run resumes), and
# writes `output/` (git-ignored): ≈ 10 min on a loaded 2-core CPU.

# %%
import dataclasses
import json
import os
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

import bayesimg as bi
from bayesimg.atomic import write_text_atomic
from bayesimg.report.plots import register_notebook_display, save_figure

CI = os.environ.get("BAYESIMG_NOTEBOOK_SIZE", "full") == "ci"
SIMULATION = dict(n_phenotypes=8, n_active_genes=5, snps_per_active_gene=2, effect_size=0.5,
                  noise_sd=1.0, seed=1)
LAMBDAS = (500.0, 2000.0) if CI else (500.0, 2000.0, 8000.0)
MCMC = dict(chains=2, warmup=100, draws=100) if CI else dict(chains=2, warmup=500, draws=250,
                                                             thin=2)
MAX_SNPS = 30 if CI else 250
OUT = Path(tempfile.mkdtemp(prefix="chr2_scan_ci_")) if CI else Path("output")
CLIENT = None if CI else "local"        # CI: in this process; full: a local Dask cluster
CHR2_MB = 243.2                         # length of chromosome 2 in GRCh37
TOP = 20
t_start = time.perf_counter()
print("size:", "ci" if CI else "full", "|", MCMC, "| λ", LAMBDAS, "| windows ≤", MAX_SNPS,
      "SNPs")

# %% [markdown]
# ## Genotypes, simulated phenotypes, windows

# %%
data, truth = bi.data.simulate_gsmtr(bi.data.load_chr2_panel(), **SIMULATION)
data = dataclasses.replace(data, phenotypes=data.phenotypes - data.phenotypes.mean(axis=0),
                           name="chr2_scan")
windows = bi.data.gene_windows(data, max_snps=MAX_SNPS)
planted = list(truth.active_genes)
if CI:   # the first window holding a planted gene
    names = [next(n for n, w in windows.items() if set(planted) & set(w.gene_names))]
else:
    names = list(windows)
print(f"{data!r}\nplanted genes: {planted}; {len(names)} of {len(windows)} windows × "
      f"{len(LAMBDAS)} λ")
bi.data.describe_windows({n: windows[n] for n in names}).head()

# %% [markdown]
# ## Fits: one `FitJob` per window and λ, through `fit_many`
# Each fit is saved as it finishes; re-running skips finished fits, so an interrupted scan
# resumes where it stopped.


# %%
def job_name(window, lam):
    return f"{window}_lambda{lam:g}"


index = {name: i for i, name in enumerate(windows)}
jobs = {job_name(name, lam): bi.FitJob(bi.models.GroupSparseMTR(lam, lam), windows[name],
                                       method="gibbs", options={**MCMC, "seed": index[name]})
        for name in names for lam in LAMBDAS}
t0 = time.perf_counter()
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    results = bi.fit_many(jobs, out_dir=OUT / "fits", client=CLIENT, progress=False)
wall_fits, fit_warnings = time.perf_counter() - t0, [str(w.message) for w in caught]
print(f"{results!r}: {wall_fits:.0f} s, {len(fit_warnings)} sampler warnings")

# %% [markdown]
# ## λ₁ = λ₂ by WAIC summed over the windows (PSIS-LOO as a check)
# WAIC flags most subjects (each carries 8 phenotypes, p_waic,i > 0.4); PSIS-LOO's Pareto k
# says where its own estimate is reliable.

# %%
rows = []
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    for name in names:
        for lam in LAMBDAS:
            fit = results[job_name(name, lam)]
            ic, loo = fit.waic(), fit.loo(method="psis")
            rows.append({"window": name, "lambda": lam, "elpd_waic": ic.elpd, "p_waic": ic.p,
                         "se": ic.se, "elpd_loo": loo.elpd,
                         "pareto_k_over_0.7": int((loo.pareto_k > 0.7).sum())})
waic_warnings = [str(w.message) for w in caught]
waic = pd.DataFrame(rows)
totals = waic.groupby("lambda").agg(elpd_waic=("elpd_waic", "sum"), p_waic=("p_waic", "sum"),
                                    elpd_loo=("elpd_loo", "sum"),
                                    pareto_k_over_07=("pareto_k_over_0.7", "sum"))
lam = float(totals["elpd_waic"].idxmax())
per_window_best = waic.loc[waic.groupby("window")["elpd_waic"].idxmax(), "lambda"]
print(f"chosen λ = {lam:g}; windows preferring each λ on their own: "
      f"{per_window_best.value_counts().to_dict()}")
totals.round(1)

# %% [markdown]
# ## Gene-level evidence at the chosen λ


# %%
def gene_positions(genes):
    """Midpoint (bp) of each gene on chr2 in the bundled hg19 table."""
    table = bi.data.load_gene_table("hg19")
    table = table[(table["chrom"] == "2") & table["gene"].isin(set(genes))]
    span = table.groupby("gene").agg(start=("start", "min"), end=("end", "max"))
    return (span["start"] + span["end"]) / 2.0


frames, diagnostics = [], {}
for name in names:
    fit, window = results[job_name(name, lam)], windows[name]
    gn = fit.posterior["gene_norm"].transpose("chain", "draw", "gene")
    draws = gn.values.reshape(-1, gn.sizes["gene"])
    gene_names = gn["gene"].values.astype(str)
    sizes = pd.Series(window.snps["gene"].astype(str)).value_counts().reindex(gene_names)
    rms = draws / np.sqrt(sizes.to_numpy() * window.n_phenotypes)
    frames.append(pd.DataFrame({
        "gene": gene_names, "window": name, "n_snps": sizes.to_numpy(),
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
genes = genes.sort_values("rank").reset_index(drop=True)
genes[genes["planted"]][["gene", "window", "n_snps", "rank", "rms_mean", "rms_lo", "rms_hi"]]

# %%
genes.head(TOP)[["rank", "gene", "window", "n_snps", "rms_mean", "rms_lo", "rms_hi",
                 "norm_mean", "planted"]].set_index("rank").round(3)

# %% [markdown]
# ## Manhattan-style plot along chromosome 2, planted genes marked

# %%
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
if not CI:
    save_figure(fig, OUT / "manhattan.png")
register_notebook_display()
fig

# %% [markdown]
# ## Convergence and the record of the run

# %%
planted_rows = genes[genes["planted"]]
summary = {
    "size": "ci" if CI else "full",
    "data": {"subjects": data.n_subjects, "snps": data.n_snps, "genes": len(data.gene_names),
             "phenotypes": data.n_phenotypes},
    "simulation": SIMULATION, "planted_genes": planted, "planted_snps": list(truth.active_snps),
    "windows": {"n": len(windows), "fitted": len(names), "max_snps": MAX_SNPS},
    "mcmc": MCMC, "lambda_grid": list(LAMBDAS), "lambda_chosen": lam,
    "waic_total": {f"{k:g}": float(v) for k, v in totals["elpd_waic"].items()},
    "loo_total": {f"{k:g}": float(v) for k, v in totals["elpd_loo"].items()},
    "windows_preferring": {f"{k:g}": int(v) for k, v in per_window_best.value_counts().items()},
    "fit_many": {"jobs": len(jobs), "ran": len(results.ran), "reused": len(results.skipped),
                 "seconds": round(wall_fits, 1), "client": CLIENT or "in process",
                 "warnings": len(fit_warnings)},
    "waic_warnings": len(waic_warnings),
    "planted_ranks": {r["gene"]: int(r["rank"]) for _, r in planted_rows.iterrows()},
    "planted_in_top": {f"top{k}": int((planted_rows["rank"] <= k).sum()) for k in (5, 10, 20)},
    "max_rhat_gene_norm_sigma2": max(d["max_rhat"] for d in diagnostics.values()),
    "min_ess_bulk_gene_norm_sigma2": min(d["min_ess_bulk"] for d in diagnostics.values()),
    "max_rhat_all_parameters": max(d["max_rhat_all"] for d in diagnostics.values()),
    "wall_seconds_total": round(time.perf_counter() - t_start, 1)}
if not CI:
    genes.to_csv(OUT / "genes.csv", index=False)
    waic.to_csv(OUT / "lambda_waic.csv", index=False)
    bi.data.describe_windows({n: windows[n] for n in names}).to_csv(OUT / "windows.csv")
    with open(OUT / "warnings.txt", "a") as log:   # appended: a resumed run adds its own
        log.write(f"== {time.strftime('%Y-%m-%d %H:%M:%S')}: ran {len(results.ran)}, reused "
                  f"{len(results.skipped)} ==\n"
                  + "".join(f"{w}\n" for w in fit_warnings + waic_warnings))
    write_text_atomic(OUT / "summary.json", json.dumps(summary, indent=2, default=str))
{k: summary[k] for k in ("lambda_chosen", "planted_ranks", "planted_in_top",
                         "max_rhat_gene_norm_sigma2", "max_rhat_all_parameters")}
