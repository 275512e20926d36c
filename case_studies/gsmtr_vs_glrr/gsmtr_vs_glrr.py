# %% [markdown]
# # GSMTR versus GLRR on the 1000 Genomes demo genotypes, two planted truths
#
# The two regression families are fitted to the same real genotypes under two planted truths
# and compared by PSIS-LOO and WAIC (leave one subject out, `bi.compare`), by the error of the
# coefficient matrix against the truth, and by **held-out R²** of the phenotypes in K-fold
# cross-validation (GSMTR, GLRR and SpikeSlabMTR against `RidgeCV`), predicted with
# `fit.predict` for subjects the fits never saw.
#
# * Genotypes: the bundled demo (`bi.data.load_demo`), 503 Europeans of 1000 Genomes phase 3
#   (see `bayesimg/data/datasets/demo_1000g/SOURCE.md`), SNPs of MCM6, AGT and TTN, LD-pruned
#   within genes at r² 0.5, MAF ≥ 0.05: d = 43 SNPs with real LD. Nothing is downloaded.
# * Phenotypes (c = 8) simulated on those genotypes. **Panel A, low-rank truth**
#   (`simulate_glrr`, seed 1): B of rank 2 on 6 SNPs, singular values of XB 40 and 25, noise
#   Σ = ΛΛᵀ + diag ψ with two correlated factors — GLRR's generative model. **Panel B,
#   group-sparse truth** (`simulate_gsmtr`, seed 1): 2 active genes × 2 SNPs, iid noise —
#   GSMTR's generative model.
# * Models: GSMTR (λ₁ = λ₂ chosen by WAIC over a grid, as bgsmtr's `tuning='WAIC'`), GLRR
#   (rank bound 3, 2 noise factors) and GLRR with diagonal noise (`noise_factors=0`), all by
#   exact Gibbs.
#
# **Size.** `BAYESIMG_NOTEBOOK_SIZE=ci` (CI and the committed notebook): 2 chains ×
# (100 + 100) draws, panel A only, λ fixed at 200 (no grid), no diagonal-noise GLRR, the
# in-sample comparison on 250 subjects so that its compiled samplers serve the 2-fold
# cross-validation too (training sets of 250), and the chains' convergence warnings silenced
# (they are far too short to converge; the R-hat column shows it), and SpikeSlabMTR left out
# of the cross-validation (one compilation less; the tour fits it) — a check that the
# analysis runs, not a result. The README's numbers come from the full size (the default:
# 2 × (500 + 2000) draws, λ ∈ {2, 20, 200, 2000}, both panels, 5 folds of 2 × (500 + 1000)
# draws), which also writes `results/`.

# %%
import dataclasses
import json
import os
import time
import warnings
from pathlib import Path

import arviz_stats as azs
import numpy as np
import pandas as pd
from sklearn.linear_model import RidgeCV

import bayesimg as bi
from bayesimg.atomic import write_text_atomic
from bayesimg.data.simulate_glrr import simulate_glrr
from bayesimg.inference.common import versions

CI = os.environ.get("BAYESIMG_NOTEBOOK_SIZE", "full") == "ci"
OUT = Path("results")
MCMC = dict(chains=2, seed=0, progress=False,
            **(dict(warmup=100, draws=100) if CI else dict(warmup=500, draws=2000)))
CV_MCMC = {**MCMC, **(dict(warmup=100, draws=100) if CI else dict(warmup=500, draws=1000))}
LAMBDA_GRID = (200.0,) if CI else (2.0, 20.0, 200.0, 2000.0)
N_FOLDS = 2 if CI else 5
# At CI size the in-sample fits take as many subjects as a cross-validation training fold, so
# the fold fits reuse their compiled samplers (None: all subjects).
IN_SAMPLE_LIKE_A_FOLD = CI
if CI:
    warnings.simplefilter("ignore", bi.errors.ConvergenceWarning)
print("size:", "ci" if CI else "full", "|", MCMC, "| λ grid", LAMBDA_GRID, "|", N_FOLDS, "folds")

# %% [markdown]
# ## Two panels on the same genotypes
# Neither model has an intercept: for the in-sample comparison the phenotypes are centred
# exactly by an orthogonal rotation of the subjects (which leaves both likelihoods unchanged).
# Cross-validation uses the unrotated subjects, centred with each training fold's means.


# %%
def centre_by_rotation(data):
    """Orthogonal rotation of the subjects making every phenotype column mean exactly 0."""
    X, Y = data.genotypes, data.phenotypes
    n = Y.shape[0]
    u = np.full(n, 1.0 / np.sqrt(n))
    basis, _ = np.linalg.qr(Y)
    v = u - basis @ (basis.T @ u)
    v /= np.linalg.norm(v)
    h = v - u
    Q = np.eye(n) - 2.0 * np.outer(h, h) / (h @ h)
    return dataclasses.replace(data, genotypes=Q @ X, phenotypes=Q @ Y)


demo = bi.data.load_demo(genes=["MCM6", "AGT", "TTN"], ld_prune_r2=0.5, min_maf=0.05,
                         covariates=False)
low, low_truth = simulate_glrr(genotypes=demo, n_phenotypes=8, rank=2,
                               singular_values=[40.0, 25.0], n_active_snps=6,
                               noise_factors=2, noise_factor_sd=0.8, seed=1)
sparse, sparse_truth = bi.data.simulate_gsmtr(genotypes=demo, n_phenotypes=8,
                                              n_active_genes=2, snps_per_active_gene=2,
                                              effect_size=1.0, seed=1)
panels = {"low_rank_truth": (low, low_truth.B.to_numpy()),
          "group_sparse_truth": (sparse, sparse_truth.W.to_numpy())}
if CI:
    del panels["group_sparse_truth"]
demo

# %% [markdown]
# ## In-sample comparison: PSIS-LOO / WAIC, and the error of B against the truth


# %%
def gsmtr_lambda(data):
    """λ₁ = λ₂ by WAIC over the grid with GSMTR's exact Gibbs sampler."""
    if len(LAMBDA_GRID) == 1:
        return LAMBDA_GRID[0]
    grid = [{"lambda1": v, "lambda2": v} for v in LAMBDA_GRID]
    _, table, _ = bi.select_hyperparameter(bi.models.GroupSparseMTR(), data, grid, ic="waic",
                                           method="gibbs", **MCMC)
    return float(str(table.index[0]).split(",")[0].split("=")[1])


def models(lam):
    both = {"gsmtr": (bi.models.GroupSparseMTR(lambda1=lam, lambda2=lam), "W"),
            "glrr": (bi.models.GLRR(rank=3, noise_factors=2), "B")}
    return both if CI else {**both, "glrr_diag_noise": (bi.models.GLRR(rank=3, noise_factors=0),
                                                        "B")}


report, tables = {}, {}
for panel, (raw, B_true) in panels.items():
    n_fold = raw.n_subjects // N_FOLDS
    data = centre_by_rotation(raw.subset_subjects(np.arange(n_fold * (N_FOLDS - 1)))
                              if IN_SAMPLE_LIKE_A_FOLD else raw)
    lam = gsmtr_lambda(data)
    fits, rows = {}, {}
    for name, (model, site) in models(lam).items():
        t0 = time.perf_counter()
        fit = fits[name] = bi.fit(model, data, method="gibbs", **MCMC)
        wall = time.perf_counter() - t0
        draws = fit.posterior[site].values
        draws = draws.reshape((-1,) + draws.shape[2:])
        mean = draws.mean(0)
        lo, hi = np.quantile(draws, [0.025, 0.975], axis=0)
        diag = fit.diagnose()
        rows[name] = {"method": "gibbs", "wall_seconds": round(wall, 1),
                      "rel_error_B": float(np.linalg.norm(mean - B_true)
                                           / np.linalg.norm(B_true)),
                      "coverage_95_B": float(np.mean((lo <= B_true) & (B_true <= hi))),
                      "max_rhat": float(diag.max_rhat), "divergences": diag.n_divergent,
                      "min_ess_bulk_B": float(np.min(azs.ess(fit.tree, var_names=[site],
                                                             method="bulk")[site].values))}
        if name.startswith("glrr"):
            eff = fit.posterior["effective_rank"].values.astype(int).ravel()
            rows[name]["effective_rank_mode"] = int(np.bincount(eff).argmax())
    report[panel] = {"fits": rows, "gsmtr_lambda_by_waic": lam, "n": data.n_subjects,
                     "d": data.n_snps, "c": data.n_phenotypes}
    for ic in ("loo", "waic"):
        table = tables[(panel, ic)] = bi.compare(fits, ic=ic)
        report[panel][ic] = {k: {c: (float(v) if isinstance(v, int | float | np.floating) else v)
                                 for c, v in r.items()
                                 if c in ("elpd", "p", "elpd_diff", "dse", "weight")}
                             for k, r in table.to_dict(orient="index").items()}
        report[panel][ic + "_order"] = list(table.index)
pd.DataFrame({(p, m): r for p in panels for m, r in report[p]["fits"].items()}).T[
    ["rel_error_B", "coverage_95_B", "max_rhat", "min_ess_bulk_B"]].astype(float).round(3)

# %% [markdown]
# Panel A (low-rank truth), ranked by the most reliable leave-one-subject-out estimate
# `compare` has for each model:

# %%
tables[("low_rank_truth", "loo")]

# %%
bi.report.plot_compare(tables[("low_rank_truth", "loo")])

# %% [markdown]
# Panel B (group-sparse truth; full size only):

# %%
tables.get(("group_sparse_truth", "loo"), "panel B runs at full size only")

# %% [markdown]
# ## Held-out R² of the phenotypes (K-fold cross-validation)
# The subjects are split at random into K equal folds (the n mod K left over are left out,
# so every training set has the same shape and each model compiles once). In each fold the
# genotypes and phenotypes are centred with the training subjects' means; each model is fitted
# to the training subjects and `fit.predict` gives the posterior mean of the held-out
# subjects' phenotypes. Held-out R² per phenotype = 1 − Σ(y − ŷ)² / Σ(y − ȳ_train)² over the
# pooled out-of-fold predictions, averaged over the 8 phenotypes. Baseline: `RidgeCV`
# (one penalty per phenotype by efficient leave-one-out, on the same centred data). The
# "oracle" row predicts with the true coefficients.

# %%
CV_MODELS = {"gsmtr": lambda lam: bi.models.GroupSparseMTR(lambda1=lam, lambda2=lam),
             "glrr": lambda lam: bi.models.GLRR(rank=3, noise_factors=2),
             "spike_slab": lambda lam: bi.models.SpikeSlabMTR()}
if CI:
    del CV_MODELS["spike_slab"]
CENTRES = ("genotype_center", "genotype_scale", "phenotype_center", "phenotype_scale")


def fold_data(data, train, test):
    """Training and held-out subjects, centred with the training means (model units)."""
    X, Y = data.genotypes, data.phenotypes
    mx, my = X[train].mean(0), Y[train].mean(0)
    prep = {k: v for k, v in data.preprocessing.items() if k not in CENTRES}
    return [dataclasses.replace(data, subjects=data.subjects[i], genotypes=X[i] - mx,
                                phenotypes=Y[i] - my, covariates=None, preprocessing=prep)
            for i in (train, test)]


def held_out_r2(y, pred):
    return float(np.mean(1.0 - ((y - pred) ** 2).sum(0) / (y ** 2).sum(0)))


rng = np.random.default_rng(0)
cv = {}
for panel, (raw, B_true) in panels.items():
    lam = report[panel]["gsmtr_lambda_by_waic"]
    order = rng.permutation(raw.n_subjects)[: raw.n_subjects - raw.n_subjects % N_FOLDS]
    folds = np.array_split(order, N_FOLDS)
    preds = {m: [] for m in (*CV_MODELS, "ridge_cv", "oracle")}
    observed, rhat = [], {m: [] for m in CV_MODELS}
    for k, test in enumerate(folds):
        train = np.concatenate([f for j, f in enumerate(folds) if j != k])
        tr, te = fold_data(raw, train, test)
        observed.append(te.phenotypes)
        for m, make in CV_MODELS.items():
            with warnings.catch_warnings():   # convergence is recorded per fold below
                warnings.simplefilter("ignore", bi.errors.ConvergenceWarning)
                fit = bi.fit(make(lam), tr, method="gibbs", **CV_MCMC)
            rhat[m].append(round(float(fit.diagnose().max_rhat), 3))
            preds[m].append(fit.predict(te).predictions_summary["y_mean"].values)
        ridge = RidgeCV(alphas=np.logspace(-3, 4, 30), fit_intercept=False,
                        alpha_per_target=True).fit(tr.genotypes, tr.phenotypes)
        preds["ridge_cv"].append(ridge.predict(te.genotypes))
        preds["oracle"].append(te.genotypes @ B_true)
    y = np.concatenate(observed)
    cv[panel] = {"r2": {m: round(held_out_r2(y, np.concatenate(p)), 4) for m, p in preds.items()},
                 "max_rhat_per_fold": rhat, "folds": N_FOLDS, "subjects": int(y.shape[0])}
r2 = pd.DataFrame({p: c["r2"] for p, c in cv.items()})
r2.index.name = f"held-out R² ({N_FOLDS}-fold)"
r2

# %%
report["cross_validation"] = {**cv, "cv_mcmc": {k: v for k, v in CV_MCMC.items()
                                                if k != "progress"}}
report["versions"] = versions()
if not CI:
    write_text_atomic(OUT / "results.json", json.dumps(report, indent=2, default=str))
{p: {"loo_order": r["loo_order"], "waic_order": r["waic_order"]} for p, r in report.items()
 if p in panels}
