"""Model comparison you can trust at p ≈ n: integrated LOO, K-fold, exact LOO (issue 14).

Data: the bundled demo, ``load_demo(ld_prune_r2=0.8, min_maf=0.05)`` (503 subjects, 339
SNPs in 15 genes, 8 phenotypes, 2 covariates), and the README grid λ₁ = λ₂ ∈ {2, 20, 200}
of GSMTR (exact Gibbs), plus GLRR (rank 2, Gibbs).

Per model:

* ``khat_gt_0.7``: fraction of subjects with Pareto k̂ > 0.7 under plain PSIS-LOO and under
  integrated LOO (GSMTR; target ≤ 1%);
* exact LOO on a random subset of ``--subset`` subjects (n refits each would take hours on
  this machine): each subject i is left out, the model refitted on the other n − 1
  (``fit_many``, one compiled program) and log p(y_i | y_{-i}) = log mean_s p(y_i | θ_s)
  computed by ``bayesimg.predict``; compared with the integrated / PSIS / 10-fold pointwise
  values of the same subjects: the difference of the subset sums in units of the subset
  sum's standard error (sqrt(m · var(elpd_i))) — target within 1 SE (integrated) and 2 SE
  (10-fold);
* 10-fold CV (``bayesimg.kfold``, the same folds for every model), plain and with Burman's
  bias correction (``bias_correction=True``: + lpd_i(full) − mean_k lpd_i(fold fit k)),
  each against integrated LOO over all subjects in units of its SE; elpd, and held-out
  R² per phenotype (predictive means of the held-out subjects, original units) against
  scikit-learn's RidgeCV on the same folds (genotypes + covariates);
* compare's pick (``bayesimg.compare``: most reliable shared estimate) against exact LOO's
  pick (subset sums) on every pair of models, GSMTR vs GLRR included;
* ``small_cases``: exact LOO for ALL subjects (n refits each) on small simulated cases,
  GSMTR (n = 40, 12 SNPs in 4 genes, 3 phenotypes, 1 covariate) and GLRR (n = 40,
  8 SNPs, 4 phenotypes, 1 covariate, rank 2, one noise factor): integrated LOO, plain
  PSIS and 10-fold (plain and bias-corrected) against it, |Δelpd| in units of each
  estimate's SE.

    python benchmarks/loo.py --out benchmarks/results/loo.json
    python benchmarks/loo.py --small-only --out benchmarks/results/loo_small.json
    python benchmarks/loo.py --glrr-demo-update    # GLRR's integrated LOO into loo.json
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import os
import time
import warnings

import numpy as np
from _common import write_json

import bayesimg as bi
from bayesimg.models import GLRR, GroupSparseMTR


def _elpd_subset(pointwise, idx):
    x = np.asarray(pointwise)[idx]
    return float(x.sum()), float(np.sqrt(x.size * x.var(ddof=1)))


def _pointwise_exact(model, data, opts):
    """log p(y_i | y_{-i}) for every subject: n refits on n − 1 subjects (fit_many)."""
    n = data.n_subjects
    refits = bi.fit_many({f"loo{i:03d}": bi.FitJob(
        model, data.subset_subjects(np.delete(np.arange(n), i)), "gibbs", opts)
        for i in range(n)}, progress=False)
    return np.array([bi.predict(refits[f"loo{i:03d}"], data.subset_subjects([i]))[
        "predictions_summary"].dataset["log_pred_density_model"].values[0] for i in range(n)])


def _kfold_entry(res):
    out = {"elpd": res.elpd, "se": res.se, "p": res.p, "seconds": res.details["seconds"]}
    if "elpd_uncorrected" in res.details:
        out.update(estimate=res.details["estimate"], correction=res.details["correction"],
                   elpd_uncorrected=res.details["elpd_uncorrected"],
                   se_uncorrected=res.details["se_uncorrected"])
    return out


def small_cases(args, opts):
    """Exact LOO for all subjects on small cases (GSMTR and GLRR)."""
    from bayesimg.data import simulate_gsmtr
    from bayesimg.data.simulate_glrr import simulate_glrr

    n = args.small_n
    gs_data, _ = simulate_gsmtr(n_subjects=n, n_snps=12, n_genes=4, n_phenotypes=3,
                                n_covariates=1, effect_size=0.6, seed=1)
    gl_data, _ = simulate_glrr(n_subjects=n, n_snps=8, n_phenotypes=4, rank=2,
                               singular_values=[12.0, 6.0], n_active_snps=3, noise_factors=1,
                               noise_factor_sd=0.6, n_covariates=1, seed=4, gene_size=8)
    # GLRR has no intercept: centre the phenotypes exactly
    gl_data = dataclasses.replace(gl_data, phenotypes=gl_data.phenotypes
                                  - gl_data.phenotypes.mean(axis=0))
    cases = {"gsmtr_lambda1": (GroupSparseMTR(lambda1=1.0, lambda2=1.0), gs_data),
             "glrr_rank2": (GLRR(rank=2, noise_factors=1), gl_data)}
    out = {}
    for name, (model, data) in cases.items():
        t = time.perf_counter()
        fit = bi.fit(model, data, method="gibbs", progress=False, **opts)
        integ, psis = fit.loo(), fit.loo(method="psis")
        kf = bi.kfold(model, data, k=args.k, fit=fit, method="gibbs",
                      bias_correction=True, **opts)
        t_exact = time.perf_counter()
        exact = _pointwise_exact(model, data, opts)
        ex = float(exact.sum())
        entry = {"n": data.n_subjects, "d": data.n_snps, "c": data.n_phenotypes,
                 "exact": {"elpd": ex, "se": float(np.sqrt(n * exact.var(ddof=1))),
                           "seconds": time.perf_counter() - t_exact}}
        estimates = {"integrated": (integ.elpd, integ.se, integ.pointwise),
                     "psis": (psis.elpd, psis.se, psis.pointwise),
                     "kfold": (kf.details["elpd_uncorrected"], kf.details["se_uncorrected"],
                               kf.details["pointwise_uncorrected"]),
                     "kfold_bias_corrected": (kf.elpd, kf.se, kf.pointwise)}
        for key, (elpd, se, pw) in estimates.items():
            entry[key] = {"elpd": elpd, "se": se, "diff_vs_exact": elpd - ex,
                          "abs_diff_vs_exact_in_se": abs(elpd - ex) / se,
                          "max_abs_pointwise_diff": float(np.max(np.abs(pw - exact)))}
        entry["integrated"]["method"] = integ.method
        entry["integrated"]["khat_gt_0.7"] = float(np.mean(integ.pareto_k > 0.7))
        entry["psis"]["khat_gt_0.7"] = float(np.mean(psis.pareto_k > 0.7))
        entry["seconds"] = time.perf_counter() - t
        out[name] = entry
        print(f"small case {name}: {entry}", flush=True)
    return out


def glrr_demo_update(args):
    """Add GLRR's integrated LOO to a recorded ``--out`` (same options, same seed)."""
    import json
    from pathlib import Path

    t0 = time.perf_counter()
    old = json.loads(Path(args.out).read_text())
    opts = old["options"]
    name = f"glrr_rank{old['config']['glrr_rank']}"
    entry = old["models"][name]
    data = bi.data.load_demo(ld_prune_r2=0.8, min_maf=0.05)
    fit = bi.fit(GLRR(rank=old["config"]["glrr_rank"]), data, method="gibbs", progress=False,
                 **opts)
    psis = fit.loo(method="psis")
    t = time.perf_counter()
    integ = fit.loo()
    subset = np.asarray(entry["exact_subset"]["subjects"])
    ex = entry["exact_subset"]["elpd"]
    new = {"elpd": integ.elpd, "se": integ.se, "p": integ.p, "method": integ.method,
           "note": integ.details["integrated"],
           "khat_gt_0.7": float(np.mean(integ.pareto_k > 0.7)),
           "khat_max": float(np.max(integ.pareto_k)),
           "draws_used": integ.details["draws_used"], "seconds": time.perf_counter() - t,
           "psis_of_this_refit": {"elpd": psis.elpd, "se": psis.se,
                                  "khat_gt_0.7": float(np.mean(psis.pareto_k > 0.7))}}
    s_int, se_int = _elpd_subset(integ.pointwise, subset)
    new.update(subset_elpd=s_int, subset_se=se_int,
               subset_diff_vs_exact_in_se=(s_int - ex) / se_int)
    kf = entry.get("kfold", {})
    if "elpd" in kf:
        new["kfold_minus_integrated_all_subjects_in_se"] = (kf["elpd"] - integ.elpd) / integ.se
    entry["integrated"] = new
    old.setdefault("updates", []).append({
        "what": f"{name}: integrated LOO added (fit refitted with the recorded options and "
                "seed; compared with the exact-LOO subset recorded earlier)",
        "seconds": time.perf_counter() - t0, "load_average": list(os.getloadavg()),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())})
    write_json(args.out, old)
    print(f"{name}: {new}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="benchmarks/results/loo.json")
    ap.add_argument("--lambdas", type=float, nargs="+", default=[2.0, 20.0, 200.0])
    ap.add_argument("--warmup", type=int, default=300)
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--subset", type=int, default=20)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--glrr-rank", type=int, default=2)
    ap.add_argument("--no-glrr", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--small-n", type=int, default=40)
    ap.add_argument("--small-only", action="store_true")
    ap.add_argument("--glrr-demo-update", action="store_true",
                    help="refit GLRR on the demo with the options recorded in --out and add "
                         "its integrated LOO (against the recorded exact-LOO subset) there")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    t_all = time.perf_counter()
    if args.glrr_demo_update:
        glrr_demo_update(args)
        return
    if args.small_only:
        opts = dict(chains=2, warmup=args.warmup, draws=args.draws, seed=args.seed)
        result = {"benchmark": "loo", "what": "exact LOO on small cases (--small-only)",
                  "config": vars(args), "options": opts,
                  "small_cases": small_cases(args, opts),
                  "timings": {"total_s": time.perf_counter() - t_all}}
        write_json(args.out, result)
        return
    data = bi.data.load_demo(ld_prune_r2=0.8, min_maf=0.05)
    n = data.n_subjects
    opts = dict(chains=2, warmup=args.warmup, draws=args.draws, seed=args.seed)
    models = {f"gsmtr_lambda{lam:g}": GroupSparseMTR(lambda1=lam, lambda2=lam)
              for lam in args.lambdas}
    if not args.no_glrr:
        models[f"glrr_rank{args.glrr_rank}"] = GLRR(rank=args.glrr_rank)
    timings = {}

    t = time.perf_counter()
    fits = dict(bi.fit_many({name: bi.FitJob(m, data, "gibbs", opts)
                             for name, m in models.items()}, progress=False))
    timings["full_fits_s"] = time.perf_counter() - t
    print(f"full fits: {timings['full_fits_s']:.0f} s", flush=True)

    out_models = {}
    loo_res = {}
    for name, fit in fits.items():
        t = time.perf_counter()
        psis = fit.loo(method="psis")
        t_psis = time.perf_counter() - t
        t = time.perf_counter()
        integ = fit.loo()
        t_int = time.perf_counter() - t
        loo_res[name] = {"psis": psis, "best_loo": integ}
        entry = {"psis": {"elpd": psis.elpd, "se": psis.se, "p": psis.p,
                          "khat_gt_0.7": float(np.mean(psis.pareto_k > 0.7)),
                          "khat_gt_1": float(np.mean(psis.pareto_k > 1.0)), "seconds": t_psis}}
        if integ.method == "integrated":
            entry["integrated"] = {"elpd": integ.elpd, "se": integ.se, "p": integ.p,
                                   "khat_gt_0.7": float(np.mean(integ.pareto_k > 0.7)),
                                   "khat_max": float(np.max(integ.pareto_k)),
                                   "draws_used": integ.details["draws_used"],
                                   "seconds": t_int}
        out_models[name] = entry
        print(f"{name}: {entry}", flush=True)

    # ---- 10-fold, the same folds for every model
    folds = bi.inference.make_folds(data, args.k, seed=args.seed)
    kf = {}
    for name, m in models.items():
        t = time.perf_counter()
        res = bi.kfold(m, data, folds=folds, fit=fits[name], method="gibbs",
                       keep_predictions=True, bias_correction=True, **opts)
        kf[name] = res
        best = loo_res[name]["best_loo"]
        entry = {"elpd": res.details["elpd_uncorrected"], "se": res.details["se_uncorrected"],
                 "seconds": time.perf_counter() - t,
                 "diff_vs_best_loo_all_subjects_in_se":
                     (res.details["elpd_uncorrected"] - best.elpd) / best.se,
                 "bias_corrected": {"elpd": res.elpd, "se": res.se, "p": res.p,
                                    "correction": res.details["correction"],
                                    "diff_vs_best_loo_all_subjects_in_se":
                                        (res.elpd - best.elpd) / best.se},
                 "best_loo_method": best.method}
        out_models[name]["kfold"] = entry
        print(f"{name} kfold: {entry}", flush=True)

    # ---- held-out R² (original units) vs RidgeCV on the same folds
    from sklearn.linear_model import RidgeCV

    prep = data.preprocessing
    Y_orig = data.phenotypes * prep["phenotype_scale"] + prep["phenotype_center"]
    design = np.hstack([data.genotypes, data.covariates])
    ridge_pred = np.empty_like(Y_orig)
    for f in range(args.k):
        tr, te = folds != f, folds == f
        ridge = RidgeCV(alphas=np.logspace(-2, 5, 30)).fit(design[tr], Y_orig[tr])
        ridge_pred[te] = ridge.predict(design[te])

    def r2(pred):
        ss = np.sum((Y_orig - pred) ** 2, axis=0)
        tot = np.sum((Y_orig - Y_orig.mean(axis=0)) ** 2, axis=0)
        return 1.0 - ss / tot

    heldout = {"ridgecv": {"r2_per_phenotype": r2(ridge_pred).tolist(),
                           "r2_mean": float(np.mean(r2(ridge_pred)))}}
    for name, res in kf.items():
        pred = np.empty_like(Y_orig)
        for ds, te in zip(res.details["predictions"], res.details["test_index"], strict=True):
            pred[te] = ds["y_mean"].values
        heldout[name] = {"r2_per_phenotype": r2(pred).tolist(),
                         "r2_mean": float(np.mean(r2(pred)))}

    # ---- exact LOO on a subset of subjects (refits on n − 1)
    rng = np.random.default_rng(args.seed)
    subset = np.sort(rng.choice(n, size=args.subset, replace=False))
    t = time.perf_counter()
    jobs = {f"{name}_loo{i:03d}": bi.FitJob(m, data.subset_subjects(np.delete(np.arange(n), i)),
                                            "gibbs", opts)
            for name, m in models.items() for i in subset}
    refits = bi.fit_many(jobs, progress=False)
    timings["exact_loo_refits_s"] = time.perf_counter() - t
    print(f"exact refits: {timings['exact_loo_refits_s']:.0f} s", flush=True)
    exact = {}
    for name in models:
        vals = []
        for i in subset:
            pred = bi.predict(refits[f"{name}_loo{i:03d}"], data.subset_subjects([i]))
            vals.append(float(pred["predictions_summary"].dataset[
                "log_pred_density_model"].values[0]))
        exact[name] = np.asarray(vals)
        ex_sum = float(exact[name].sum())
        entry = out_models[name]
        entry["exact_subset"] = {"elpd": ex_sum, "subjects": subset.tolist()}
        for key, pw in (("psis", loo_res[name]["psis"].pointwise),
                        ("integrated", loo_res[name]["best_loo"].pointwise
                         if "integrated" in entry else None),
                        ("kfold", kf[name].details["pointwise_uncorrected"])):
            if pw is None:
                continue
            s, se = _elpd_subset(pw, subset)
            entry[key]["subset_elpd"] = s
            entry[key]["subset_se"] = se
            entry[key]["subset_diff_vs_exact_in_se"] = (s - ex_sum) / se
            entry[key]["subset_max_abs_pointwise_diff"] = float(
                np.max(np.abs(np.asarray(pw)[subset] - exact[name])))

    # ---- compare's pick vs exact LOO's pick, every pair
    picks = []
    for a, b in itertools.combinations(models, 2):
        table = bi.compare({a: [fits[a], kf[a]], b: [fits[b], kf[b]]})
        exact_pick = a if exact[a].sum() > exact[b].sum() else b
        # exact LOO's pick on all subjects is not affordable; compare's estimates on the
        # same subset say whether the choice agrees where exact values exist
        est = table.attrs["estimates"]
        sub = {m: _elpd_subset(table.attrs["elpd_data"][m].elpd_i.values, subset)[0]
               for m in (a, b)}
        picks.append({"pair": [a, b], "compare_pick": str(table.index[0]),
                      "compare_estimates": est,
                      "compare_elpd_diff": float(table["elpd_diff"].iloc[1]),
                      "compare_dse": float(table["dse"].iloc[1]),
                      "exact_subset_pick": exact_pick,
                      "compare_subset_pick": max(sub, key=sub.get),
                      "agree_on_subset": max(sub, key=sub.get) == exact_pick,
                      "exact_subset_diff": float(exact[a].sum() - exact[b].sum())})

    small = small_cases(args, opts)
    grid_table = bi.compare({name: fits[name] for name in models if name.startswith("gsmtr")})
    result = {
        "benchmark": "loo",
        "what": __doc__.strip().splitlines()[0],
        "design": {"n": n, "d": data.n_snps, "c": data.n_phenotypes,
                   "r": data.n_covariates, "data": "load_demo(ld_prune_r2=0.8, min_maf=0.05)",
                   "subset": args.subset, "k": args.k},
        "config": vars(args), "options": opts,
        "models": out_models,
        "heldout_r2": heldout,
        "pairs": picks,
        "small_cases": small,
        "grid_compare": {"order": list(grid_table.index),
                         "estimates": grid_table.attrs["estimates"],
                         "elpd": grid_table["elpd"].to_dict()},
        "timings": {**timings, "total_s": time.perf_counter() - t_all},
        "notes": ("2-core CPU shared with other engineers' jobs: wall times are inflated. "
                  "On the demo exact LOO is computed on a random subset of subjects (refits on "
                  "n-1 subjects each); the subset comparisons use the same subjects' pointwise "
                  "values of every estimate. small_cases hold exact LOO for all subjects. "
                  "kfold.elpd is plain 10-fold; kfold.bias_corrected adds Burman's "
                  "correction."),
    }
    write_json(args.out, result)
    print(f"wrote {args.out} in {time.perf_counter() - t_all:.0f} s")


if __name__ == "__main__":
    main()
