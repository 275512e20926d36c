"""Model comparison you can trust at p ≈ n: integrated LOO, K-fold, exact LOO (issue 14).

Data: the bundled demo, ``load_demo(ld_prune_r2=0.8, min_maf=0.05)`` (503 subjects, 339
SNPs in 15 genes, 8 phenotypes, 2 covariates); models: the README grid λ₁ = λ₂ ∈ {2, 20,
200} of GSMTR (exact Gibbs), GLRR (rank 2, Gibbs) and SpikeSlabMTR (default patterns,
Gibbs), all with the same options, seed, folds and exact-LOO subjects.

Per model (``models[name]``; each model is run on its own and merged into ``--out`` with
``--merge``, so a loaded machine can record the models one at a time):

* ``khat_gt_0.7``: fraction of subjects with Pareto k̂ > 0.7 under plain PSIS-LOO and under
  integrated LOO (target ≤ 1%);
* exact LOO on a random subset of ``--subset`` subjects (n refits each would take hours on
  this machine): each subject i is left out, the model refitted on the other n − 1
  (``fit_many``, one compiled program) and log p(y_i | y_{-i}) = log mean_s p(y_i | θ_s)
  computed by ``bayesimg.predict``; compared with the integrated / PSIS / 10-fold pointwise
  values of the same subjects: the difference of the subset sums in units of the subset
  sum's standard error (sqrt(m · var(elpd_i))) — target within 1 SE (integrated) and 2 SE
  (10-fold);
* 10-fold CV (``bayesimg.kfold``, the same folds for every model), plain and with Burman's
  bias correction (``bias_correction=True``: + lpd_i(full) − mean_k lpd_i(fold fit k)),
  each against integrated LOO over all subjects in units of its SE (target within 2 SE);
  held-out R² per phenotype (predictive means of the held-out subjects, original units)
  against scikit-learn's RidgeCV on the same folds (genotypes + covariates);
* ``pointwise``: the per-subject values of every estimate (so pairs can be compared later).

``pairs``: compare's pick (``bayesimg.compare`` on the stored pointwise values: most
reliable shared estimate) against exact LOO's pick (subset sums) for every pair of models
in the file, GSMTR vs GLRR included.

``small_cases`` (``--small-only``): exact LOO for ALL subjects (n refits each) on small
simulated cases, GSMTR and SpikeSlabMTR (the same data: n = 40, 12 SNPs in 4 genes,
3 phenotypes, 1 covariate) and GLRR (n = 40, 8 SNPs, 4 phenotypes, 1 covariate, rank 2,
one noise factor): integrated LOO,
plain PSIS and 10-fold (plain and bias-corrected) against it, |Δelpd| in units of each
estimate's SE.

    python benchmarks/loo.py --out benchmarks/results/loo.json           # every model
    python benchmarks/loo.py --models spike_slab gsmtr_lambda2 --merge   # some, merged in
    python benchmarks/loo.py --pairs-only --merge                        # pairs from the file
    python benchmarks/loo.py --small-only --out benchmarks/results/loo_small.json
    python benchmarks/loo.py --small-only --small-cases spike_slab --merge \
        --out benchmarks/results/loo_small.json
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
from bayesimg.models import GLRR, GroupSparseMTR, SpikeSlabMTR
from bayesimg.report.compare import ICResult


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
    out = {"elpd": res.elpd, "se": res.se, "p": res.p, "seconds": res.details["seconds"],
           "fold_max_rhat": max(res.details["fold_max_rhat"]),
           "fold_min_ess": min(res.details["fold_min_ess"])}
    if "elpd_uncorrected" in res.details:
        out.update(estimate=res.details["estimate"], correction=res.details["correction"],
                   elpd_uncorrected=res.details["elpd_uncorrected"],
                   se_uncorrected=res.details["se_uncorrected"])
    return out


def small_cases(args, opts):
    """Exact LOO for all subjects on small cases (GSMTR, GLRR, SpikeSlabMTR)."""
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
             "glrr_rank2": (GLRR(rank=2, noise_factors=1), gl_data),
             "spike_slab": (SpikeSlabMTR(), gs_data)}
    out = {}
    for name in args.small_cases or list(cases):
        model, data = cases[name]
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


DEMO = "load_demo(ld_prune_r2=0.8, min_maf=0.05)"


def demo_models(args) -> dict:
    models = {f"gsmtr_lambda{lam:g}": GroupSparseMTR(lambda1=lam, lambda2=lam)
              for lam in args.lambdas}
    models[f"glrr_rank{args.glrr_rank}"] = GLRR(rank=args.glrr_rank)
    models["spike_slab"] = SpikeSlabMTR()
    return models


def _estimate_entry(res, subset, exact, integ=None):
    entry = {"elpd": res.elpd, "se": res.se, "p": res.p}
    if res.pareto_k is not None:
        entry.update({"khat_gt_0.7": float(np.mean(res.pareto_k > 0.7)),
                      "khat_gt_1": float(np.mean(res.pareto_k > 1.0)),
                      "khat_max": float(np.max(res.pareto_k))})
    s, se = _elpd_subset(res.pointwise, subset)
    entry.update(subset_elpd=s, subset_se=se,
                 subset_diff_vs_exact_in_se=(s - float(exact.sum())) / se,
                 subset_max_abs_pointwise_diff=float(
                     np.max(np.abs(np.asarray(res.pointwise)[subset] - exact))))
    if integ is not None:
        entry["diff_vs_integrated_all_subjects_in_se"] = (res.elpd - integ.elpd) / integ.se
    return entry


def evaluate_model(name, model, data, opts, folds, subset, ridge_r2):
    """Every estimate of one model on the demo, with exact LOO on ``subset``."""
    n = data.n_subjects
    load_start = list(os.getloadavg())
    timings = {}
    t = time.perf_counter()
    fit = bi.fit(model, data, method="gibbs", progress=False, **opts)
    timings["fit_s"] = time.perf_counter() - t
    t = time.perf_counter()
    psis = fit.loo(method="psis")
    timings["psis_s"] = time.perf_counter() - t
    t = time.perf_counter()
    integ = fit.loo()
    timings["integrated_s"] = time.perf_counter() - t
    print(f"{name}: fit, PSIS and {integ.method} LOO done {timings}", flush=True)
    t = time.perf_counter()
    kf = bi.kfold(model, data, folds=folds, fit=fit, method="gibbs", keep_predictions=True,
                  bias_correction=True, **opts)
    timings["kfold_s"] = time.perf_counter() - t
    print(f"{name}: 10-fold done ({timings['kfold_s']:.0f} s)", flush=True)
    t = time.perf_counter()
    refits = bi.fit_many({f"loo{i:03d}": bi.FitJob(
        model, data.subset_subjects(np.delete(np.arange(n), i)), "gibbs", opts)
        for i in subset}, progress=False)
    exact = np.array([float(bi.predict(refits[f"loo{i:03d}"], data.subset_subjects([i]))[
        "predictions_summary"].dataset["log_pred_density_model"].values[0]) for i in subset])
    timings["exact_subset_refits_s"] = time.perf_counter() - t
    kf_raw = dataclasses.replace(kf, elpd=kf.details["elpd_uncorrected"],
                                 se=kf.details["se_uncorrected"],
                                 pointwise=np.asarray(kf.details["pointwise_uncorrected"]))
    best = integ if integ.method == "integrated" else None
    entry = {"psis": _estimate_entry(psis, subset, exact)}
    if best is not None:
        entry["integrated"] = _estimate_entry(integ, subset, exact)
        entry["integrated"].update(note=integ.details["integrated"],
                                   draws_used=integ.details["draws_used"])
        entry["psis"]["diff_vs_integrated_all_subjects_in_se"] = \
            (psis.elpd - integ.elpd) / integ.se
    entry["kfold"] = _estimate_entry(kf_raw, subset, exact, best)
    entry["kfold_bias_corrected"] = _estimate_entry(kf, subset, exact, best)
    entry["kfold_bias_corrected"]["correction"] = kf.details["correction"]
    diag = fit.diagnose()
    entry["convergence"] = {"full_fit_max_rhat": float(diag.max_rhat),
                            "full_fit_min_ess": float(min(diag.min_ess_bulk,
                                                          diag.min_ess_tail)),
                            "fold_max_rhat": kf.details["fold_max_rhat"],
                            "fold_min_ess": kf.details["fold_min_ess"]}
    entry["exact_subset"] = {"elpd": float(exact.sum()), "subjects": subset.tolist(),
                             "se": float(np.sqrt(exact.size * exact.var(ddof=1)))}
    # held-out R² (original units) from the K-fold predictive means
    Y_orig, r2 = ridge_r2["Y_orig"], ridge_r2["r2"]
    pred = np.empty_like(Y_orig)
    for ds, te in zip(kf.details["predictions"], kf.details["test_index"], strict=True):
        pred[te] = ds["y_mean"].values
    entry["heldout_r2"] = {"r2_per_phenotype": r2(pred).tolist(),
                           "r2_mean": float(np.mean(r2(pred)))}
    entry["pointwise"] = {
        "psis": psis.pointwise.tolist(), "psis_pareto_k": psis.pareto_k.tolist(),
        "kfold": kf_raw.pointwise.tolist(), "kfold_bias_corrected": kf.pointwise.tolist(),
        "exact_subset": exact.tolist()}
    if best is not None:
        entry["pointwise"].update(integrated=integ.pointwise.tolist(),
                                  integrated_pareto_k=integ.pareto_k.tolist())
    entry["timings"] = timings
    entry["recorded"] = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                         "load_average_at_start": load_start,
                         "load_average_at_end": list(os.getloadavg())}
    return entry


def _stored_results(entry, labels):
    """ICResults rebuilt from a model's stored pointwise values: its best LOO and K-fold."""
    pw = entry["pointwise"]
    out = []
    loo_key = "integrated" if "integrated" in pw else "psis"
    for key, kind, k in ((loo_key, "loo", pw[f"{loo_key}_pareto_k"]),
                         ("kfold", "kfold", None)):
        x = np.asarray(pw[key], dtype=float)
        out.append(ICResult(kind=kind, method=key, elpd=float(x.sum()),
                            se=float(np.sqrt(x.size * x.var(ddof=1))), p=float("nan"),
                            pointwise=x, n_obs=x.size, n_draws=1000,
                            pareto_k=None if k is None else np.asarray(k),
                            obs_labels=labels))
    return out


def compare_pairs(models: dict, labels) -> list[dict]:
    """compare's pick against exact LOO's pick (subset sums) for every pair of models."""
    picks = []
    names = [m for m in models if "exact_subset" in models[m]]
    for a, b in itertools.combinations(names, 2):
        sub_a, sub_b = (models[m]["exact_subset"]["subjects"] for m in (a, b))
        if sub_a != sub_b:
            continue
        if not all("pointwise" in models[m] for m in (a, b)):
            # a row of an earlier recording (sums only): compare's rule on the sums — the
            # integrated LOO of both when both are reliable — without its dse
            pair = _pair_from_sums(models, a, b)
            if pair is not None:
                picks.append(pair)
            continue
        subset = np.asarray(sub_a)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            table = bi.compare({m: _stored_results(models[m], labels) for m in (a, b)})
        exact = {m: float(np.sum(models[m]["pointwise"]["exact_subset"])) for m in (a, b)}
        exact_pick = max(exact, key=exact.get)
        est = table.attrs["estimates"]
        sub = {m: _elpd_subset(table.attrs["elpd_data"][m].elpd_i.values, subset)[0]
               for m in (a, b)}
        picks.append({"pair": [a, b], "compare_pick": str(table.index[0]),
                      "compare_estimates": est,
                      "compare_elpd_diff": float(table["elpd_diff"].iloc[1]),
                      "compare_dse": float(table["dse"].iloc[1]),
                      "exact_subset_pick": exact_pick,
                      "compare_subset_pick": max(sub, key=sub.get),
                      "agree": str(table.index[0]) == exact_pick,
                      "agree_on_subset": max(sub, key=sub.get) == exact_pick,
                      "exact_subset_diff": exact[a] - exact[b]})
    return picks


def _pair_from_sums(models: dict, a: str, b: str) -> dict | None:
    ests = [models[m].get("integrated") for m in (a, b)]
    kind = "integrated"
    if any(e is None or e.get("khat_gt_0.7", 1.0) > 0 for e in ests):
        # compare's next choice when a LOO is unreliable: K-fold for both
        kind = "kfold"
        ests = [models[m].get("kfold") for m in (a, b)]
        if any(e is None for e in ests):
            return None
    elpd = {m: e["elpd"] for m, e in zip((a, b), ests, strict=True)}
    exact = {m: models[m]["exact_subset"]["elpd"] for m in (a, b)}
    pick, exact_pick = max(elpd, key=elpd.get), max(exact, key=exact.get)
    return {"pair": [a, b], "compare_pick": pick,
            "compare_estimates": {a: kind, b: kind},
            "compare_elpd_diff": abs(elpd[a] - elpd[b]), "compare_dse": None,
            "exact_subset_pick": exact_pick, "agree": pick == exact_pick,
            "exact_subset_diff": exact[a] - exact[b],
            "from_recorded_sums": "one model is a row of an earlier recording (no pointwise "
                                  "values): picks from the recorded elpd (compare_estimates) "
                                  "and exact subset sums (same data, options, seed and "
                                  "subjects)"}


def main():
    import json
    from pathlib import Path

    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="benchmarks/results/loo.json")
    ap.add_argument("--models", nargs="+", default=None,
                    help="demo models to run (default: all): gsmtr_lambda<λ>, "
                         "glrr_rank<R>, spike_slab")
    ap.add_argument("--merge", action="store_true",
                    help="keep the other models already in --out (same options required)")
    ap.add_argument("--merge-from", nargs="+", default=[],
                    help="result files of other runs (same options) whose models are merged "
                         "into --out (models run in parallel processes)")
    ap.add_argument("--pairs-only", action="store_true",
                    help="recompute the pairs from the models stored in --out")
    ap.add_argument("--lambdas", type=float, nargs="+", default=[2.0, 20.0, 200.0])
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--draws", type=int, default=500)
    ap.add_argument("--subset", type=int, default=10)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--glrr-rank", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--small-n", type=int, default=40)
    ap.add_argument("--small-only", action="store_true")
    ap.add_argument("--small-cases", nargs="+", default=None,
                    help="small cases to run (default all): gsmtr_lambda1 glrr_rank2 spike_slab")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    t_all = time.perf_counter()
    load_start = list(os.getloadavg())
    opts = dict(chains=2, warmup=args.warmup, draws=args.draws, seed=args.seed)
    if args.small_only:
        old = json.loads(Path(args.out).read_text()) if args.merge and Path(args.out).exists() \
            else {}
        cases = {**old.get("small_cases", {}), **small_cases(args, opts)}
        result = {"benchmark": "loo", "what": "exact LOO on small cases (--small-only)",
                  "config": vars(args), "options": opts, "load_average_at_start": load_start,
                  "small_cases": cases,
                  "timings": {**old.get("timings", {}),
                              "total_s_this_run": time.perf_counter() - t_all},
                  "notes": "2-core CPU shared by 6 workers: wall times are inflated. With "
                           "--merge each case keeps the date of its own run (updates)."}
        if old:
            result["updates"] = old.get("updates", []) + [{
                "what": f"small cases {args.small_cases or 'all'} (re)recorded",
                "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                "load_average": list(os.getloadavg())}]
        write_json(args.out, result)
        return
    data = bi.data.load_demo(ld_prune_r2=0.8, min_maf=0.05)
    n = data.n_subjects
    old = json.loads(Path(args.out).read_text()) if args.merge and Path(args.out).exists() \
        else {}
    if old and old.get("options") != opts:
        raise SystemExit(f"--merge: {args.out} was recorded with {old.get('options')}, "
                         f"not {opts}")
    out_models = dict(old.get("models", {})) if old else {}
    updates = list(old.get("updates", []))
    for other in args.merge_from:
        extra = json.loads(Path(other).read_text())
        if extra.get("options") != opts:
            raise SystemExit(f"--merge-from: {other} was recorded with "
                             f"{extra.get('options')}, not {opts}")
        out_models.update(extra["models"])
        updates.extend(extra.get("updates", []))
    all_models = demo_models(args)
    wanted = [] if args.pairs_only else (args.models or list(all_models))
    unknown = set(wanted) - set(all_models)
    if unknown:
        raise SystemExit(f"unknown models {sorted(unknown)}; choose from {list(all_models)}")

    folds = bi.inference.make_folds(data, args.k, seed=args.seed)
    rng = np.random.default_rng(args.seed)
    subset = np.sort(rng.choice(n, size=args.subset, replace=False))

    from sklearn.linear_model import RidgeCV

    prep = data.preprocessing
    Y_orig = data.phenotypes * prep["phenotype_scale"] + prep["phenotype_center"]

    def r2(pred):
        ss = np.sum((Y_orig - pred) ** 2, axis=0)
        tot = np.sum((Y_orig - Y_orig.mean(axis=0)) ** 2, axis=0)
        return 1.0 - ss / tot

    design = np.hstack([data.genotypes, data.covariates])
    ridge_pred = np.empty_like(Y_orig)
    for f in range(args.k):
        tr, te = folds != f, folds == f
        ridge = RidgeCV(alphas=np.logspace(-2, 5, 30)).fit(design[tr], Y_orig[tr])
        ridge_pred[te] = ridge.predict(design[te])
    heldout = {"ridgecv": {"r2_per_phenotype": r2(ridge_pred).tolist(),
                           "r2_mean": float(np.mean(r2(ridge_pred)))}}

    for name in wanted:
        t = time.perf_counter()
        out_models[name] = evaluate_model(name, all_models[name], data, opts, folds, subset,
                                          {"Y_orig": Y_orig, "r2": r2})
        updates.append({"what": f"{name} (re)recorded", "seconds": time.perf_counter() - t,
                        "load_average": list(os.getloadavg()),
                        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())})
        shown = {k: v for k, v in out_models[name].items() if k != "pointwise"}
        print(f"{name}: {json.dumps(shown, default=float)}", flush=True)
        # write after every model: a slow machine keeps what it finished
        _write(args, data, out_models, heldout, updates, old, load_start, t_all)
    _write(args, data, out_models, heldout, updates, old, load_start, t_all)
    print(f"wrote {args.out} in {time.perf_counter() - t_all:.0f} s")


def _write(args, data, out_models, heldout, updates, old, load_start, t_all):
    labels = np.asarray(data.subjects, dtype=object)
    for name, entry in out_models.items():
        if "heldout_r2" in entry:
            heldout[name] = entry["heldout_r2"]
    result = {
        "benchmark": "loo",
        "what": __doc__.strip().splitlines()[0],
        "design": {"n": data.n_subjects, "d": data.n_snps, "c": data.n_phenotypes,
                   "r": data.n_covariates, "data": DEMO,
                   "subset": args.subset, "k": args.k},
        "config": {k: v for k, v in vars(args).items() if k not in ("models", "merge",
                                                                    "pairs_only", "merge_from")},
        "options": dict(chains=2, warmup=args.warmup, draws=args.draws, seed=args.seed),
        "models": out_models,
        "heldout_r2": {**old.get("heldout_r2", {}), **heldout},
        "pairs": compare_pairs(out_models, labels),
        "updates": updates,
        "load_average_at_start": load_start,
        "timings": {"total_s_this_run": time.perf_counter() - t_all},
        "notes": ("2-core CPU shared by 6 workers: wall times are inflated. Each model is "
                  "recorded on its own (see updates, models[*].recorded) with the same "
                  "options, seed, folds and exact-LOO subjects. On the demo exact LOO is "
                  "computed on a random subset of subjects (refits on n-1 subjects each); "
                  "the subset comparisons use the same subjects' pointwise values of every "
                  "estimate. kfold is plain 10-fold; kfold_bias_corrected adds Burman's "
                  "correction. Models without a 'pointwise' entry are from an earlier "
                  "recording and take no part in 'pairs'. GSMTR rows recorded before "
                  "2026-12-07 23:30 UTC scored held-out subjects by a log-mean over "
                  "sampled W; later runs integrate W out (kfold's integrate_coefficients, "
                  "see kfold_bias.json)."),
    }
    write_json(args.out, result)


if __name__ == "__main__":
    main()
