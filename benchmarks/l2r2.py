"""L2R2 benchmark: longitudinal GLRR with random intercepts against the naive baselines.

Data (:func:`bayesimg.data.simulate_l2r2`): simulated genotypes, a rank-2 B with sparse
SNP rows (signal singular values of XB ``--signal``), factor noise, subject random
intercepts (sd ``--subject-sd``), 2–``--max-visits`` visits per subject at yearly times
with a population time trend; scenarios ``iid`` (the model's noise) and ``ar1``
(within-subject AR(1) noise, ρ = 0.7: misspecified).

Methods, all on the same data:

* ``l2r2``: :class:`bayesimg.models.L2R2` by its exact Gibbs kernel;
* ``glrr_visit_average``: GLRR (Gibbs) on each subject's visit-averaged phenotypes;
* ``glrr_all_visits``: GLRR (Gibbs) on every visit as if from a different subject
  (repeated measures ignored; time as a covariate);
* ``ols_visit_average``: per-SNP × phenotype OLS on the visit averages (the naive scan).

Per method: relative error ‖B̂ − B‖_F/‖B‖_F of the posterior mean (OLS: its estimates),
coverage of the 95% intervals of B's entries, AUC of SNP-row norms for the active SNPs,
min bulk ESS of B and of ω per second (Gibbs fits), wall time.  L2R2 also reports the
recovery of ω (correlation, relative error).

    nice -n 10 python benchmarks/l2r2.py --out benchmarks/results/l2r2.json
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import arviz_stats
import numpy as np
from _common import write_json

import bayesimg
from bayesimg.baselines import ols_scan
from bayesimg.data import Dataset
from bayesimg.data.simulate_l2r2 import simulate_l2r2
from bayesimg.models import GLRR, L2R2

METHODS = ("l2r2", "glrr_visit_average", "glrr_all_visits", "ols_visit_average")


def auc(score, positive) -> float:
    """Area under the ROC curve (Mann-Whitney: P(score of a positive > a negative))."""
    score, positive = np.asarray(score, dtype=float), np.asarray(positive, dtype=bool)
    diff = score[positive][:, None] - score[~positive][None, :]
    return float(np.mean((diff > 0) + 0.5 * (diff == 0)))


def _draws(fit, name):
    v = np.asarray(fit.posterior[name].values)
    return v.reshape((-1,) + v.shape[2:])


def _scores(B_draws, B):
    rel = float(np.linalg.norm(B_draws.mean(0) - B) / np.linalg.norm(B))
    lo, hi = np.quantile(B_draws, [0.025, 0.975], axis=0)
    cover = float(np.mean((lo <= B) & (B <= hi)))
    active = np.linalg.norm(B, axis=1) > 0
    return {"rel_error_B": rel, "coverage_95_B": cover,
            "auc_active_snps": float(auc(np.linalg.norm(B_draws.mean(0), axis=1), active))}


def _ess(fit, name, seconds):
    ess = arviz_stats.ess(fit.posterior[[name]], method="bulk")[name].values
    return {f"min_ess_bulk_{name}": float(np.min(ess)),
            f"median_ess_bulk_{name}": float(np.median(ess)),
            f"min_ess_bulk_{name}_per_s": float(np.min(ess) / seconds)}


def _all_visits(data) -> Dataset:
    rows, _ = data.visit_index()
    Z = data.flat_time()[:, None]
    return Dataset(subjects=np.array([f"{data.subjects[r]}@{k}" for k, r in enumerate(rows)]),
                   genotypes=data.genotypes[rows], snps=data.snps,
                   phenotypes=data.flat_phenotypes(), phenotype_names=data.phenotype_names,
                   covariates=(Z - Z.mean()) / Z.std(), covariate_names=np.array(["time"]),
                   name="all visits")


def run_scenario(noise, args):
    data, truth = simulate_l2r2(n_subjects=args.n, n_snps=args.d, n_phenotypes=args.c,
                                rank=2, singular_values=args.signal, max_visits=args.max_visits,
                                min_visits=2, subject_sd=args.subject_sd, noise=noise,
                                seed=args.seed)
    B = truth.B.to_numpy()
    opts = {"chains": args.chains, "warmup": args.warmup, "draws": args.draws,
            "seed": args.seed, "progress": False}
    out = {"n_subjects": data.n_subjects, "n_visits": data.n_visits, "d": data.n_snps,
           "c": data.n_phenotypes, "noise": noise, "methods": {}}
    fits = {"l2r2": (L2R2(rank=3, noise_factors=1), data),
            "glrr_visit_average": (GLRR(rank=3, noise_factors=1), data.visit_average()),
            "glrr_all_visits": (GLRR(rank=3, noise_factors=1), _all_visits(data))}
    for label, (model, d) in fits.items():
        if label not in args.methods:
            continue
        t0 = time.perf_counter()
        fit = bayesimg.fit(model, d, method="gibbs", **opts)
        seconds = time.perf_counter() - t0
        row = {**_scores(_draws(fit, "B"), B), "wall_s": seconds, **_ess(fit, "B", seconds)}
        if label == "l2r2":
            row.update(_ess(fit, "subject_var", seconds))
            omega = _draws(fit, "subject_var").mean(0)
            row["subject_var_corr"] = float(np.corrcoef(omega, truth.subject_var)[0, 1])
            row["subject_var_rel_error"] = float(
                np.linalg.norm(omega - truth.subject_var) / np.linalg.norm(truth.subject_var))
            row["max_rhat_B"] = float(np.max(arviz_stats.rhat(fit.posterior[["B"]])["B"].values))
            row["elpd_loo_per_subject"] = float(fit.loo().elpd) / data.n_subjects
        out["methods"][label] = row
        print(noise, label, {k: round(v, 3) if isinstance(v, float) else v
                             for k, v in row.items()}, flush=True)
    if "ols_visit_average" not in args.methods:
        return out
    t0 = time.perf_counter()
    scan = ols_scan(data.visit_average(), original_units=False)
    est = scan["effect"].to_numpy().reshape(data.n_snps, data.n_phenotypes)
    se = scan["se"].to_numpy().reshape(data.n_snps, data.n_phenotypes)
    cover = float(np.mean(np.abs(est - B) <= 1.96 * se))
    out["methods"]["ols_visit_average"] = {
        "rel_error_B": float(np.linalg.norm(est - B) / np.linalg.norm(B)),
        "coverage_95_B": cover,
        "auc_active_snps": float(auc(np.linalg.norm(est, axis=1),
                                     np.linalg.norm(B, axis=1) > 0)),
        "wall_s": time.perf_counter() - t0}
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=200)
    p.add_argument("--d", type=int, default=20)
    p.add_argument("--c", type=int, default=6)
    p.add_argument("--signal", type=float, nargs=2, default=[16.0, 10.0])
    p.add_argument("--max-visits", type=int, default=4)
    p.add_argument("--subject-sd", type=float, default=0.8)
    p.add_argument("--chains", type=int, default=2)
    p.add_argument("--warmup", type=int, default=500)
    p.add_argument("--draws", type=int, default=500)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--scenarios", nargs="+", default=["iid", "ar1"])
    p.add_argument("--methods", nargs="+", default=METHODS, choices=METHODS)
    p.add_argument("--merge", action="store_true",
                   help="update these methods in an existing --out file (same settings)")
    p.add_argument("--out", default="benchmarks/results/l2r2.json")
    args = p.parse_args()
    load_at_start = list(os.getloadavg())
    scenarios = {s: run_scenario(s, args) for s in args.scenarios}
    merged = None
    if args.merge and Path(args.out).exists():
        old = json.loads(Path(args.out).read_text())
        for name, scenario in scenarios.items():
            old["scenarios"][name]["methods"].update(scenario["methods"])
        merged = old.get("merged_runs", []) + [
            {"methods": args.methods, "load_average": list(os.getloadavg())}]
        scenarios = old["scenarios"]
    settings = {k: v for k, v in vars(args).items() if k not in ("methods", "merge")}
    result = {"benchmark": "l2r2", "settings": settings,
              "note": ("one 2-core machine shared by 6 workers (load average at start/end "
                       "recorded): wall "
                       "times and ESS/s are indicative only; wall_s and ESS/s include "
                       "compilation, which dominates the first scenario (later ones reuse the "
                       "compiled programs); ols_visit_average is the per-SNP marginal scan, "
                       "so LD inflates its estimates of B"),
              "scenarios": scenarios}
    result["load_average_at_start"] = load_at_start
    if merged:
        result["merged_runs"] = merged
    print("wrote", write_json(Path(args.out), result))


if __name__ == "__main__":
    main()
