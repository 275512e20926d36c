"""GSMTR versus GLRR on the bundled 1000 Genomes demo genotypes, two planted truths.

Panel A (low-rank truth): B of rank 2 on 6 SNPs, signal singular values 40 and 25, noise
with 2 correlated factors (Σ = ΛΛᵀ + diag ψ) — GLRR's generative model.
Panel B (group-sparse truth): 2 active genes × 2 SNPs with effects on random subsets of
the phenotypes, iid noise — GSMTR's generative model (``simulate_gsmtr``).

Genotypes: the demo's MCM6, AGT and TTN SNPs (LD-pruned at r² 0.5, MAF ≥ 0.05; real LD),
503 subjects, 8 simulated phenotypes.  Models: GSMTR (λ₁ = λ₂ chosen by WAIC over
2, 20, 200, 2000 as bgsmtr does; exact Gibbs), GLRR
(rank bound 3, 2 noise factors) and GLRR with diagonal noise (rank bound 3,
noise_factors=0) to separate what the low-rank mean and the noise model each buy; both
GLRR fits by GLRR's exact Gibbs kernel (the recommended sampler, see
benchmarks/README.md).  Every fit: 2 chains × (500 warm-up + 2000 draws).
Compared by PSIS-LOO and WAIC (leave-one-subject-out) with ``bayesimg.compare``, and by
the error of B against the planted truth.

    python case_studies/gsmtr_vs_glrr/run.py            # writes results/ here
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import arviz_stats as azs
import numpy as np

import bayesimg as bi
from bayesimg.data.simulate_glrr import simulate_glrr
from bayesimg.inference.common import versions

HERE = Path(__file__).resolve().parent
MCMC = dict(chains=2, warmup=500, draws=2000, seed=0, progress=False)


def centre_by_rotation(data):
    """Orthogonal rotation of the subjects making every phenotype column mean exactly 0
    (both models have no intercept; the rotation leaves every likelihood unchanged)."""
    X, Y = data.genotypes, data.phenotypes
    n = Y.shape[0]
    u = np.full(n, 1.0 / np.sqrt(n))
    basis, _ = np.linalg.qr(Y)
    v = u - basis @ (basis.T @ u)
    v /= np.linalg.norm(v)
    h = v - u
    Q = np.eye(n) - 2.0 * np.outer(h, h) / (h @ h)
    return dataclasses.replace(data, genotypes=Q @ X, phenotypes=Q @ Y)


def panels():
    demo = bi.data.load_demo(genes=["MCM6", "AGT", "TTN"], ld_prune_r2=0.5, min_maf=0.05,
                             covariates=False)
    low, low_truth = simulate_glrr(genotypes=demo, n_phenotypes=8, rank=2,
                                   singular_values=[40.0, 25.0], n_active_snps=6,
                                   noise_factors=2, noise_factor_sd=0.8, seed=1)
    sparse, sparse_truth = bi.data.simulate_gsmtr(genotypes=demo, n_phenotypes=8,
                                                  n_active_genes=2, snps_per_active_gene=2,
                                                  effect_size=1.0, seed=1)
    return {"low_rank_truth": (centre_by_rotation(low), low_truth.B.to_numpy()),
            "group_sparse_truth": (centre_by_rotation(sparse), sparse_truth.W.to_numpy())}


def gsmtr_lambda(data):
    """λ₁ = λ₂ for GSMTR chosen by WAIC over a grid with its exact Gibbs sampler (bgsmtr's
    ``tuning='WAIC'``); the first run with λ = 2 overfitted (p_loo ≈ 320 of 344 weights)."""
    grid = [{"lambda1": v, "lambda2": v} for v in (2.0, 20.0, 200.0, 2000.0)]
    _, table, _ = bi.select_hyperparameter(bi.models.GroupSparseMTR(), data, grid, ic="waic",
                                           method="gibbs", **MCMC)
    return float(str(table.index[0]).split(",")[0].split("=")[1])


def models(lam):
    return {
        "gsmtr": (bi.models.GroupSparseMTR(lambda1=lam, lambda2=lam), "gibbs", "W"),
        "glrr": (bi.models.GLRR(rank=3, noise_factors=2), "gibbs", "B"),
        "glrr_diag_noise": (bi.models.GLRR(rank=3, noise_factors=0), "gibbs", "B"),
    }


def main():
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    report = {}
    for panel, (data, B_true) in panels().items():
        fits, rows = {}, {}
        lam = gsmtr_lambda(data)
        for name, (model, method, site) in models(lam).items():
            t0 = time.perf_counter()
            fit = bi.fit(model, data, method=method, **MCMC)
            wall = time.perf_counter() - t0
            post = fit.posterior[site]
            draws = post.values.reshape((-1,) + post.shape[2:])
            mean = draws.mean(0)
            lo, hi = np.quantile(draws, [0.025, 0.975], axis=0)
            diag = fit.diagnose()
            rows[name] = {
                "method": method, "wall_seconds": round(wall, 1),
                "rel_error_B": float(np.linalg.norm(mean - B_true) / np.linalg.norm(B_true)),
                "coverage_95_B": float(np.mean((lo <= B_true) & (B_true <= hi))),
                "max_rhat": float(diag.max_rhat), "divergences": diag.n_divergent,
                "min_ess_bulk_B": float(np.min(azs.ess(fit.tree, var_names=[site],
                                                       method="bulk")[site].values)),
            }
            if name.startswith("glrr"):
                eff = fit.posterior["effective_rank"].values.astype(int).ravel()
                rows[name]["effective_rank_mode"] = int(np.bincount(eff).argmax())
            fits[name] = fit
            print(panel, name, rows[name], flush=True)
        tables = {}
        for ic in ("loo", "waic"):
            table = bi.compare(fits, ic=ic)
            tables[ic] = {k: {c: (float(v) if isinstance(v, int | float | np.floating) else v)
                              for c, v in r.items() if c in ("elpd", "p", "elpd_diff", "dse",
                                                             "weight")}
                          for k, r in table.to_dict(orient="index").items()}
            tables[ic + "_order"] = list(table.index)
        report[panel] = {"fits": rows, **tables, "gsmtr_lambda_by_waic": lam,
                         "n": data.n_subjects, "d": data.n_snps, "c": data.n_phenotypes}
    report["versions"] = versions()
    tmp = out / "results.json.tmp"
    tmp.write_text(json.dumps(report, indent=2, default=str))
    tmp.replace(out / "results.json")
    print(json.dumps({p: {"loo_order": r["loo_order"], "waic_order": r["waic_order"]}
                      for p, r in report.items() if p != "versions"}, indent=1))


if __name__ == "__main__":
    main()
