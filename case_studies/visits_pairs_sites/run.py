"""Repeated visits, left/right pairs, two sites: L2R2, BilateralGSMTR, GLRR, GSMTR, SpikeSlabMTR.

Real genotypes (the bundled 1000 Genomes demo: 503 Europeans, SNPs of MCM6, AGT and TTN,
LD-pruned at r² 0.5, MAF ≥ 0.05, d = 43) with simulated imaging of the shape a
longitudinal consortium study has (the truth is in the JSON):

* 2–4 visits per subject (uniform), baseline age U(60, 80) years, then yearly visits with
  ±0.1-year jitter; a population atrophy trend per ROI (age slope);
* 8 subcortical volumes in 4 left/right pairs (``Left-Hippocampus`` …), residuals of each
  pair correlated (ρ = 0.6), independent across pairs;
* two scanner sites (each subject scanned at one), a site offset per ROI;
* a subject random intercept per ROI (sd 0.7 against residual sd 0.6: visits of a subject
  are strongly correlated);
* genetics: B of rank 2 on 6 causal SNPs (2 per gene), layer 1 bilateral on hippocampus
  and amygdala, layer 2 on thalamus and putamen, the genetic mean of the most affected ROI
  with sd 0.35; volumes then put in mm³-like units (mean and scale per ROI).

This is L2R2's generative model up to its noise (pair-block Σ, which its factor noise
ΛΛᵀ + diag ψ represents with K = 4 factors), so the comparison should pick L2R2.

Like-for-like comparison: the models that ignore visits (BilateralGSMTR, GLRR, GSMTR,
SpikeSlabMTR) are fitted to the visit rows (each visit a row, age and site as covariates),
L2R2 to the same visits grouped by subject.  All are scored by the same grouped K-fold
(5 folds of *subjects*; a subject's visits are all held out together): the held-out
density of all visits of a subject, log (1/S) Σ_s Π_t p(y_it | θ_s) for the cross-sectional
models (their visits independent given θ; the product is taken per draw, not per visit)
and L2R2's own per-subject predictive density, both in the phenotypes' original units.
``bi.compare`` then ranks the five K-fold results (one estimand, same folds).  L2R2's
integrated LOO on all subjects is reported beside its K-fold.

Held-out prediction: R² of every held-out visit (original units, per ROI, averaged) from
the K-fold predictive means, beside a RidgeCV and a covariates-only (age, site) OLS
baseline on the same folds.  No discovery analysis here.

Run (20–30 minutes on 2 cores shared by 6 workers, load 4–17)::

    nice -n 10 python case_studies/visits_pairs_sites/run.py

writes ``case_studies/visits_pairs_sites/results/results.json``.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import platform
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.special import logsumexp
from sklearn.linear_model import LinearRegression, RidgeCV

import bayesimg as bi
from bayesimg.atomic import write_text_atomic
from bayesimg.data import Dataset
from bayesimg.inference.common import versions
from bayesimg.inference.convert import _json_default
from bayesimg.report.compare import ICResult

OUT = Path(__file__).resolve().parent / "results"
ROIS = ["Hippocampus", "Amygdala", "Thalamus", "Putamen"]
PHEN = [f"{side}-{roi}" for roi in ROIS for side in ("Left", "Right")]
MEANS = np.repeat([4200.0, 1600.0, 7600.0, 5000.0], 2)      # mm³-like scales per ROI
K_FOLDS = 5
#: ``BAYESIMG_CASE_SIZE=smoke``: 100 subjects, 2 × (50 + 50) draws, nothing written (a check)
SMOKE = os.environ.get("BAYESIMG_CASE_SIZE") == "smoke"
MCMC = dict(chains=2, seed=0, progress=False,
            **(dict(warmup=50, draws=50) if SMOKE else dict(warmup=300, draws=300)))
RHO, RESID_SD, SUBJECT_SD, GENETIC_SD = 0.6, 0.6, 0.7, 0.35


def simulate(geno: Dataset, seed: int = 1):
    """Long table of visits (original units) and the truth, on the demo genotypes."""
    rng = np.random.default_rng(seed)
    X = geno.genotypes
    n, d = X.shape
    c = len(PHEN)
    genes = geno.snps["gene"].to_numpy()
    causal = np.concatenate([rng.choice(np.flatnonzero(genes == g), 2, replace=False)
                             for g in np.unique(genes)])
    U = np.zeros((d, 2))
    U[causal, 0] = rng.choice([-1, 1], causal.size) * rng.uniform(0.6, 1.2, causal.size)
    U[causal, 1] = rng.choice([-1, 1], causal.size) * rng.uniform(0.6, 1.2, causal.size)
    V = np.zeros((c, 2))
    V[:4, 0] = [1.0, 1.0, 0.6, 0.6]                    # bilateral hippocampus, amygdala
    V[4:, 1] = [1.0, 0.7, 0.8, 0.8]                    # thalamus (asymmetric), putamen
    B = U @ V.T
    B *= GENETIC_SD / np.max(np.std(X @ B, axis=0))
    age_slope = -rng.uniform(0.02, 0.06, c)            # per year, in sd units
    site_offset = rng.normal(0.0, 0.4, c)
    site = rng.integers(0, 2, n)
    subject_effect = rng.normal(0.0, SUBJECT_SD, (n, c))
    pair = np.array([[1.0, RHO], [RHO, 1.0]]) * RESID_SD**2
    chol = np.linalg.cholesky(np.kron(np.eye(c // 2), pair))
    n_visits = rng.integers(2, 5, n)
    age0 = rng.uniform(60.0, 80.0, n)
    rows = []
    for i in range(n):
        for t in range(n_visits[i]):
            age = age0[i] + t + rng.normal(0.0, 0.1)
            y = (X[i] @ B + age_slope * (age - 70.0) + site_offset * site[i]
                 + subject_effect[i] + chol @ rng.standard_normal(c))
            rows.append({"subject": geno.subjects[i], "visit": f"v{t}", "age": age,
                         "site": "AB"[site[i]],
                         **dict(zip(PHEN, MEANS * (1.0 + 0.1 * y), strict=True))})
    truth = {"causal_snps": list(geno.snp_names[causal]), "B_sd_units": B,
             "age_slope_per_year": age_slope, "site_offset": site_offset,
             "subject_sd": SUBJECT_SD, "residual_sd": RESID_SD, "pair_rho": RHO,
             "n_visits": int(n_visits.sum())}
    return pd.DataFrame(rows), truth


def visit_rows(geno: Dataset, visits: pd.DataFrame) -> tuple[Dataset, np.ndarray]:
    """Each visit a row (genotypes repeated, age and site as covariates), standardised
    over the visit rows; and the subject of every row."""
    index = {s: i for i, s in enumerate(geno.subjects)}
    rows = visits["subject"].map(index).to_numpy()
    Y = visits[PHEN].to_numpy(float)
    Z = site_design(visits)
    pc, ps = Y.mean(0), Y.std(0)
    zc, zs = Z.mean(0), Z.std(0)
    prep = {"phenotype_center": pc, "phenotype_scale": ps, "covariate_center": zc,
            "covariate_scale": zs, "genotype_center": geno.preprocessing["genotype_center"],
            "genotype_scale": geno.preprocessing["genotype_scale"]}
    ids = (visits["subject"] + ":" + visits["visit"]).to_numpy(str)
    data = Dataset(subjects=ids, genotypes=geno.genotypes[rows], snps=geno.snps,
                   phenotypes=(Y - pc) / ps, phenotype_names=np.asarray(PHEN),
                   covariates=(Z - zc) / zs, covariate_names=np.asarray(["age", "site[B]"]),
                   preprocessing=prep, name="visit rows")
    return data, np.asarray(visits["subject"], dtype=str)


def site_design(visits: pd.DataFrame) -> np.ndarray:
    """(visits, 2): age and the site-B indicator, the visit rows' covariates."""
    return np.column_stack([visits["age"], visits["site"] == "B"]).astype(float)


def grouped_kfold(name, model, data, unit, fold, *, y_rows, y_of_pred):
    """Fit K fold models in one ``fit_many`` and score the held-out subjects.

    ``unit`` (rows of ``data``,): the subject of each row; ``fold`` (subject → fold);
    returns the K-fold ICResult (per subject, original units) and the held-out predictive
    means of every visit (aligned with ``y_rows``)."""
    row_fold = np.array([fold[u] for u in unit])
    jobs = {f"{name}_fold{f}": bi.FitJob(model, data.subset_subjects(
        np.flatnonzero(row_fold != f)), "gibbs", MCMC) for f in range(K_FOLDS)}
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fits = bi.fit_many(jobs, progress=False)
    seconds = time.perf_counter() - t0
    subjects = np.unique(unit)
    elpd = pd.Series(np.nan, index=subjects)
    pred_mean = np.full(y_rows.shape, np.nan)
    draws_used = []
    rhat = []
    for f in range(K_FOLDS):
        test = np.flatnonzero(row_fold == f)
        fit = fits[f"{name}_fold{f}"]
        coef = "B" if "B" in fit.posterior else "W"              # GSMTR family: W
        rhat.append(split_rhat(fit.posterior[coef].values))
        pred = bi.predict(fit, data.subset_subjects(test))
        ll = pred["log_likelihood"]["y"].values
        ll = ll.reshape(-1, ll.shape[-1])                       # (S, test rows), original
        draws_used.append(ll.shape[0])
        test_units = unit[test]
        for u in np.unique(test_units):
            per_draw = ll[:, test_units == u].sum(axis=1)       # Π_t p(y_it | θ_s)
            elpd[u] = logsumexp(per_draw) - np.log(per_draw.size)
        pred_mean[y_of_pred(test)] = pred["predictions_summary"]["y_mean"].values[
            ~np.isnan(pred["predictions_summary"]["y_mean"].values)].reshape(-1, len(PHEN)) \
            if pred["predictions_summary"]["y_mean"].values.ndim == 3 \
            else pred["predictions_summary"]["y_mean"].values
    pointwise = elpd.to_numpy()
    res = ICResult(kind="kfold", method="kfold", elpd=float(pointwise.sum()),
                   se=float(np.sqrt(pointwise.size * pointwise.var())), p=float("nan"),
                   pointwise=pointwise, n_obs=pointwise.size, n_draws=min(draws_used),
                   obs_labels=elpd.index.to_numpy(dtype=object),
                   details={"k": K_FOLDS, "folds_hash": folds_hash(fold),
                            "grouped_by": "subject (all visits held out together)",
                            "seconds": seconds, "max_rhat_B": max(rhat)})
    return res, pred_mean


def folds_hash(fold: dict) -> str:
    """Identifies the fold assignment (subject → fold), the same in every process."""
    text = ",".join(f"{k}:{fold[k]}" for k in sorted(fold))
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def split_rhat(draws: np.ndarray) -> float:
    """Largest split-chain R-hat (Gelman et al. 2013) over the entries of (chain, draw, …)."""
    half = draws.shape[1] // 2
    x = np.concatenate([draws[:, :half], draws[:, half:2 * half]], axis=0)
    x = x.reshape(x.shape[0], half, -1)
    within = x.var(axis=1, ddof=1).mean(axis=0)
    between = half * x.mean(axis=1).var(axis=0, ddof=1)
    var = (half - 1) / half * within + between / half
    ok = within > 0
    return float(np.max(np.sqrt(var[ok] / within[ok])))


def r2(y, pred):
    """Held-out R² per ROI (1 − SSE/SST around the held-out mean), and their mean."""
    per = 1.0 - ((y - pred) ** 2).sum(0) / ((y - y.mean(0)) ** 2).sum(0)
    return float(per.mean()), per


def main():
    start = time.time()
    load_start = os.getloadavg()
    geno = bi.data.load_demo(genes=["MCM6", "AGT", "TTN"], ld_prune_r2=0.5, min_maf=0.05,
                             covariates=False)
    if SMOKE:
        geno = geno.subset_subjects(np.arange(100))
    visits, truth = simulate(geno)
    # site is text ("A"/"B"): make_longitudinal one-hot encodes it (site[B], A the reference)
    table = bi.data.read_visits(visits, subject="subject", visit="visit", time="age")
    long = bi.data.make_longitudinal(geno, table, phenotype_columns=PHEN,
                                     covariate_columns=["site"])
    assert list(long.covariate_names) == ["site[B]"]
    rows, unit_rows = visit_rows(geno, visits)
    # the long data's visit order is subject-major by age: align the visit rows with it
    lr, lp = long.visit_index()
    key = pd.Index(visits["subject"] + ":" + visits["visit"])
    long_ids = np.asarray(long.subjects)[lr] + ":" + np.asarray(long.visit_labels)[lr, lp]
    order = key.get_indexer(long_ids)
    assert (order >= 0).all()
    rows = rows.subset_subjects(order)
    unit_rows = unit_rows[order]
    y_orig = visits[PHEN].to_numpy(float)[order]               # (N visits, c), original
    Zrow = site_design(visits)[order]
    rng = np.random.default_rng(0)
    fold = dict(zip(long.subjects, rng.permutation(long.n_subjects) % K_FOLDS, strict=True))
    row_fold = np.array([fold[u] for u in unit_rows])
    first_row = np.r_[0, np.cumsum(long.visit_counts)[:-1]]

    def long_rows(test_subjects):                               # visit rows of subjects
        return np.concatenate([first_row[i] + np.arange(long.visit_counts[i])
                               for i in test_subjects])

    models = {
        "L2R2": (bi.models.L2R2(rank=3), long, np.asarray(long.subjects, str), long_rows),
        "GLRR": (bi.models.GLRR(rank=3), rows, unit_rows, lambda t: t),
        "BilateralGSMTR": (bi.models.BilateralGSMTR(20.0, 20.0), rows, unit_rows,
                           lambda t: t),
        "GSMTR": (bi.models.GroupSparseMTR(20.0, 20.0), rows, unit_rows, lambda t: t),
        **({"SpikeSlabMTR": (bi.models.SpikeSlabMTR(), rows, unit_rows, lambda t: t)}
           if os.environ.get("WITH_SPIKE_SLAB") else {}),
    }
    # resumable: each model's K-fold result is kept (not committed) as it completes
    partial = OUT / ("partial_smoke.pkl" if SMOKE else "partial.pkl")
    done = pickle.loads(partial.read_bytes()) if partial.is_file() else {}
    results, r2s, timing = {}, {}, {}
    for name, (model, data, unit, to_rows) in models.items():
        if name not in done:
            t0 = time.perf_counter()
            res, pred = grouped_kfold(name, model, data, unit, fold, y_rows=y_orig,
                                      y_of_pred=to_rows)
            done[name] = (res, r2(y_orig, pred), time.perf_counter() - t0)
            OUT.mkdir(exist_ok=True)
            partial.write_bytes(pickle.dumps(done))
        results[name], r2s[name], timing[name] = done[name]
        results[name].details["folds_hash"] = folds_hash(fold)   # (older partial files)
        res = results[name]
        print(f"{name}: K-fold elpd {res.elpd:.1f} (se {res.se:.1f}), held-out R² "
              f"{r2s[name][0]:.3f}, {timing[name]:.0f} s, max R-hat(B) "
              f"{res.details['max_rhat_B']:.3f}", flush=True)
    # baselines on the same folds: RidgeCV on (genotypes, age, site), OLS on (age, site)
    Xrow = np.hstack([rows.genotypes, Zrow])
    base = {"RidgeCV (SNPs + age + site)": np.empty_like(y_orig),
            "OLS (age + site only)": np.empty_like(y_orig)}
    for f in range(K_FOLDS):
        tr, te = row_fold != f, row_fold == f
        ridge = RidgeCV(alphas=np.logspace(-2, 4, 25)).fit(Xrow[tr], y_orig[tr])
        base["RidgeCV (SNPs + age + site)"][te] = ridge.predict(Xrow[te])
        ols = LinearRegression().fit(Zrow[tr], y_orig[tr])
        base["OLS (age + site only)"][te] = ols.predict(Zrow[te])
    for name, pred in base.items():
        r2s[name] = r2(y_orig, pred)
    table_cmp = bi.compare(results)
    print(table_cmp)
    # L2R2's own leave-one-subject-out on all subjects: integrated vs PSIS vs its K-fold
    if "full L2R2" not in done:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            full = bi.fit(bi.models.L2R2(rank=3), long, method="gibbs", **MCMC)
            done["full L2R2"] = (full.loo(), full.loo(method="psis"),
                                 split_rhat(full.posterior["B"].values))
        partial.write_bytes(pickle.dumps(done))
    integ, psis, full_rhat = done["full L2R2"]
    # elpd to original units (− Σ_visits Σ_j log scale_j); the LOO "se" stays that of the
    # model-unit pointwise values (the per-subject unit term −T_i Σ_j log scale_j varies
    # with the visit count and is what makes the K-fold se, in original units, ≈ 1000)
    loo_units = float(np.sum(np.log(long.preprocessing["phenotype_scale"])) *
                      long.n_visits)
    l2r2_loo = {
        "integrated": {"elpd_original_units": integ.elpd - loo_units, "se": integ.se,
                       "khat_above_0.7": int(np.sum(integ.pareto_k > 0.7)),
                       "note": integ.details["integrated"], "max_rhat_B": full_rhat},
        "psis": {"elpd_original_units": psis.elpd - loo_units, "se": psis.se,
                 "khat_above_0.7": int(np.sum(psis.pareto_k > 0.7))},
        "kfold_5": {"elpd_original_units": results["L2R2"].elpd, "se": results["L2R2"].se}}
    print(json.dumps(l2r2_loo, indent=1))
    out = {
        "study": "visits_pairs_sites",
        "data": {"genotypes": "bundled 1000 Genomes demo, MCM6/AGT/TTN, LD-pruned r2 0.5, "
                              "MAF >= 0.05", "n_subjects": long.n_subjects,
                 "n_visits": long.n_visits, "n_snps": geno.n_snps, "phenotypes": PHEN,
                 "folds": f"{K_FOLDS} folds of subjects (seed 0)", "mcmc": MCMC},
        "truth": truth,
        "comparison": {"estimate": "grouped K-fold by subject, held-out density of all "
                                   "visits of a subject in original units",
                       "table": table_cmp.reset_index().to_dict(orient="records"),
                       "picked": str(table_cmp.index[0])},
        "l2r2_loo": l2r2_loo,
        "heldout_r2": {k: {"mean": v[0], "per_roi": dict(zip(PHEN, v[1], strict=True))}
                       for k, v in r2s.items()},
        "max_rhat_B_per_model": {k: r.details["max_rhat_B"] for k, r in results.items()},
        "seconds_per_model": timing,
        "seconds_total": time.time() - start,
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(),
                    "load_average_at_start": load_start,
                    "load_average_at_end": os.getloadavg(), "versions": versions(),
                    "note": "2 cores shared by 6 workers, run with nice -n 10"},
    }
    if SMOKE:
        return
    OUT.mkdir(exist_ok=True)
    partial.unlink()
    write_text_atomic(OUT / "results.json", json.dumps(out, indent=2, default=_json_default))
    print("wrote", OUT / "results.json", f"in {time.time() - start:.0f} s")


if __name__ == "__main__":
    main()
