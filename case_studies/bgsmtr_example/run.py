"""Case study: the whole GSMTR chain on bgsmtr's example data, side by side with bgsmtr.

    python case_studies/bgsmtr_example/run.py --data PATH/bgsmtr_example \\
        [--bgsmtr-runs benchmarks/results/bgsmtr_runs]

The data (632 subjects × 486 SNPs in 33 genes, 15 FreeSurfer measures; the example data
of the R package bgsmtr 0.7, GPL-2, ADNI-derived genotypes, simulated phenotypes) is read
from the folder you give and never copied.  Steps:

1. preprocess exactly as ``bgsmtr()`` (SNPs centred, phenotypes scaled with R's sd);
2. choose λ₁ = λ₂ over a grid by PSIS-LOO and WAIC with the exact Gibbs sampler
   (the grid compiles once);
3. at the chosen λ and at bgsmtr's two reference settings, fit by Gibbs and by NUTS and
   check that both give the same posterior (z-scores of the means in MCSE units);
4. gene-level results (‖W_k‖_F per gene, also per √(m_k c) so genes of different size
   compare) and SNP-level results (top SNP × phenotype entries, sign probabilities);
5. compare with bgsmtr's posterior means and WAIC where its runs are given.

Outputs go to ``case_studies/bgsmtr_example/output/`` (git-ignored: they are derived
from restricted data); ``results.md`` there is the text quoted in this folder's README.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

import bayesimg as bi
from bayesimg.data.bgsmtr_layout import load_bgsmtr_layout, read_bgsmtr_run
from bayesimg.report.agreement import mean_agreement
from bayesimg.report.markdown import markdown_table

HERE = Path(__file__).resolve().parent
GRID = (2.0, 20.0, 200.0, 1000.0, 3013.627547, 10000.0, 30000.0, 100000.0)


def _flat(fit, snps, phenos):
    W = fit.posterior["W"].sel(snp=snps, phenotype=phenos)
    W = W.transpose("chain", "draw", "snp", "phenotype").values
    return np.moveaxis(W.reshape(W.shape[0], W.shape[1], -1), -1, 0)


def _verdict(fit) -> str:
    diag = fit.diagnose()
    return (f"{'OK' if diag.ok else 'PROBLEM'} (max R-hat {diag.max_rhat:.3f}, "
            f"min bulk ESS {diag.min_ess_bulk:.0f})")


def gene_table(fit, data) -> pd.DataFrame:
    gn = fit.posterior["gene_norm"]
    sizes = pd.Series(data.gene_index).value_counts().sort_index().to_numpy()
    scale = np.sqrt(sizes * data.n_phenotypes)
    draws = gn.transpose("chain", "draw", "gene").values.reshape(-1, gn.sizes["gene"])
    per = draws / scale
    df = pd.DataFrame({
        "gene": gn["gene"].values, "snps": sizes,
        "norm_mean": draws.mean(0), "norm_lb": np.quantile(draws, 0.025, 0),
        "norm_ub": np.quantile(draws, 0.975, 0),
        "per_entry_rms_mean": per.mean(0), "per_entry_rms_lb": np.quantile(per, 0.025, 0),
        "per_entry_rms_ub": np.quantile(per, 0.975, 0)})
    return df.sort_values("per_entry_rms_mean", ascending=False).reset_index(drop=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True)
    parser.add_argument("--bgsmtr-runs", default=None,
                        help="folder with bgsmtr runs (lambda_2/, gamma_100/) from "
                             "benchmarks/gsmtr_vs_bgsmtr.py")
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--out", default=str(HERE / "output"))
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = load_bgsmtr_layout(args.data)
    lines = [f"# GSMTR on bgsmtr's example data\n\nData: {data!r} (bgsmtr preprocessing).\n"]
    mcmc = dict(chains=args.chains, warmup=500, draws=args.draws, progress=False)

    # 2. λ by LOO and WAIC over the grid (Gibbs; one compiled program)
    model = bi.models.GroupSparseMTR()
    grid = [{"lambda1": lam, "lambda2": lam} for lam in GRID]
    _, table_loo, fits = bi.select_hyperparameter(model, data, grid, ic="loo",
                                                  method="gibbs", **mcmc)
    table_waic = bi.compare(fits, ic="waic")
    table_loo.to_csv(out / "lambda_loo.csv")
    table_waic.to_csv(out / "lambda_waic.csv")
    best = table_loo.index[0]
    lam_best = float(fits[best].model_settings["lambda1"])
    lines += ["## Choosing λ (λ₁ = λ₂) by PSIS-LOO and WAIC, exact Gibbs, "
              f"{args.chains} chains × {args.draws} draws\n",
              markdown_table(table_loo[["rank", "elpd", "p", "elpd_diff", "dse", "weight"]],
                             floatfmt=".4g"), "",
              f"LOO picks **{best}**; WAIC ranks "
              f"{', '.join(map(str, table_waic.index[:3]))} first.\n"]

    # 3. Gibbs vs NUTS at the chosen λ and at bgsmtr's settings
    snps, phenos = data.snp_names.tolist(), data.phenotype_names.tolist()
    check = {}
    for label, lam in (("chosen", lam_best), ("lambda=2", 2.0), ("gamma=100", 3013.627547)):
        m = bi.models.GroupSparseMTR(lambda1=lam, lambda2=lam)
        gibbs = fits.get(f"lambda1={lam:g}, lambda2={lam:g}") or bi.fit(m, data, "gibbs", **mcmc)
        check[label] = {"lambda": lam, "gibbs": gibbs,
                        "gibbs_verdict": _verdict(gibbs)}
        if label == "chosen":
            # NUTS (marginal form, whitened) on the same posterior at the chosen λ
            nuts = bi.fit(m, data, "nuts", chains=args.chains, warmup=500, draws=500,
                          progress=False)
            ag = mean_agreement(_flat(gibbs, snps, phenos), _flat(nuts, snps, phenos))
            check[label]["gibbs_vs_nuts"] = {k: ag[k] for k in ("max_abs_z", "frac_abs_z_gt_3",
                                                                "mean_z2")}
            check[label]["nuts_verdict"] = _verdict(nuts)
        if args.bgsmtr_runs:
            run_dir = Path(args.bgsmtr_runs) / label.replace("=", "_")
            if (run_dir / "meta.txt").is_file():
                run = read_bgsmtr_run(run_dir)
                theirs = np.moveaxis(run["W"].reshape(run["W"].shape[0], -1), -1, 0)[:, None]
                ours = _flat(gibbs, run["snp_names"], run["phenotype_names"])
                agb = mean_agreement(ours, theirs)
                check[label]["gibbs_vs_bgsmtr"] = {
                    k: agb[k] for k in ("max_abs_z", "frac_abs_z_gt_3", "mean_z2")}
                check[label]["bgsmtr_waic"] = run["meta"]["WAIC"]
                check[label]["our_waic_deviance"] = -2 * gibbs.waic().elpd
    rows = []
    for label, c in check.items():
        row = {"setting": label, "lambda": c["lambda"], "Gibbs verdict": c["gibbs_verdict"]}
        if "gibbs_vs_nuts" in c:
            row["NUTS verdict"] = c["nuts_verdict"]
            row["Gibbs–NUTS mean z²"] = c["gibbs_vs_nuts"]["mean_z2"]
            row["Gibbs–NUTS max |z|"] = c["gibbs_vs_nuts"]["max_abs_z"]
        if "gibbs_vs_bgsmtr" in c:
            row["Gibbs–bgsmtr mean z²"] = c["gibbs_vs_bgsmtr"]["mean_z2"]
            row["Gibbs–bgsmtr max |z|"] = c["gibbs_vs_bgsmtr"]["max_abs_z"]
            row["WAIC (deviance) ours"] = c["our_waic_deviance"]
            row["WAIC bgsmtr"] = c["bgsmtr_waic"]
        rows.append(row)
    agree = pd.DataFrame(rows)
    agree.to_csv(out / "sampler_agreement.csv", index=False)
    lines += ["## Same posterior from Gibbs, NUTS and bgsmtr\n",
              "z = Δ posterior mean / combined Monte Carlo SE over the 7,290 entries of W; "
              "if two samplers target the same density, mean z² ≈ 1.\n",
              markdown_table(agree, index=False, floatfmt=".4g"), ""]

    # 4. gene- and SNP-level results at the chosen λ
    best_fit = check["chosen"]["gibbs"]
    genes = gene_table(best_fit, data)
    genes.to_csv(out / "genes.csv", index=False)
    top = best_fit.top_associations(n=15, by="prob_sign")
    top.to_csv(out / "top_associations.csv")
    lines += [f"## Gene-level results at {best}\n",
              "Posterior of ‖W_k‖_F and of the per-entry RMS ‖W_k‖_F/√(m_k c) (comparable "
              "across gene sizes), 95% equal-tailed intervals; top 10 genes:\n",
              markdown_table(genes.head(10), index=False, floatfmt=".3g"), "",
              "## SNP-level results: strongest sign probabilities\n",
              markdown_table(top, floatfmt=".3g"), ""]
    (out / "results.md").write_text("\n".join(lines))
    (out / "summary.json").write_text(json.dumps(
        {"lambda_loo_best": best, "lambda_waic_best": str(table_waic.index[0]),
         "agreement": rows}, indent=2, default=float))
    best_fit.save(out / "gibbs_chosen_lambda.nc")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
