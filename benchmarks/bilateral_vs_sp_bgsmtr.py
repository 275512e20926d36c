"""BilateralGSMTR beside bgsmtr's ``sp_bgsmtr`` (Song et al. 2022) on its own example data.

``sp_bgsmtr_example_data`` (632 subjects, 486 SNPs, 12 left/right pairs of brain
measures; ADNI-derived, so never copied into this repository) is exported at run time by
``benchmarks/peers/run_sp_bgsmtr.R`` from the R package installed on this machine into a
temporary folder.  The same data, preprocessed as ``sp_bgsmtr`` does (SNPs centred,
measures standardised with R's ``sd``: :func:`bayesimg.data.bgsmtr_layout.load_bgsmtr_layout`,
each SNP its own group as ``sp_bgsmtr`` groups them), is fitted by

* ``sp_bgsmtr``'s mean-field variational Bayes (MFVB) and its Gibbs sampler (MCMC, a short
  chain: a sweep costs seconds in R), both at the package's documented example settings
  ρ = 0.8, λ² = 1000, with the example's 12 × 12 neighbourhood matrix;
* our :class:`~bayesimg.models.BilateralGSMTR` (left/right noise correlation ρ learned, no
  CAR graph) and plain :class:`~bayesimg.models.GroupSparseMTR`, exact Gibbs, with
  λ₁ = λ₂ = 250: with one SNP per group GSMTR's penalty on row i is (√λ₁ + √λ₂)‖w_i‖/σ,
  and √250 + √250 = √1000, ``sp_bgsmtr``'s √λ² ‖w_i‖ in units of the noise;
* the per-SNP OLS scan with Benjamini–Hochberg at 0.05 (:mod:`bayesimg.baselines`).

The measures are named ``1``–``12`` and ``29``–``40`` in the example; measure i pairs with
measure i + 28 (their correlations 0.65–0.90 say so).  ``sp_bgsmtr`` pairs measures by
*sorting their names as text* and splitting the sorted list in halves, which with these
names pairs ``1`` with ``35``, ``10`` with ``36``, … (recorded as ``pairs_sp_bgsmtr_forms_
from_the_example_names``); the fits here rename them ``L_01``–``L_12`` / ``R_01``–``R_12`` so
that both programs use the right pairs.

Recorded: agreement of the posterior means of W (Pearson correlation over the d × c entries,
max |Δ|), the left/right correlation (our ρ; Σ₁₂/√(Σ₁₁Σ₂₂) of ``sp_bgsmtr``'s 2 × 2 Σ, which
under its covariance (D − ρA)⁻¹ ⊗ Σ is the correlation within a pair; the raw pair
correlations), the overlap of the top SNP × measure associations (|posterior mean| for the
Bayesian fits, p-value for OLS), wall and CPU time (R's include the R process start-up and
the example's preprocessing; ours the whole ``bayesimg.fit`` call, first fit in the
process), with ``cpu_ratio_sp_bgsmtr_over_bilateral_gsmtr``; and the package's own defects
verified on this data:

* the MFVB's spatial parameter: the value it uses for each requested ρ, read inside its
  first iteration (``rho_probe``);
* whether its MCMC runs on the example (the error text if not);
* its Σ conditionals use Y, not the residuals Y − WᵀX: checked from the installed
  function's source text (the statement that builds the 2 × 2 scatter), and in the fitted Σ.

When ``Rscript`` or the bgsmtr package is missing, the JSON records "not installed" and the
script exits 0 (the example data comes only from the R package).

    python benchmarks/bilateral_vs_sp_bgsmtr.py --r-libs /work/peers/Rlib
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from _common import write_json

HERE = Path(__file__).resolve().parent
R_SCRIPT = HERE / "peers" / "run_sp_bgsmtr.R"
RHO_EXAMPLE, LAMBDASQ_EXAMPLE = 0.8, 1000.0
PROBE_RHOS = (0.1, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.99)
TOP = 50          # top SNP × measure associations compared


def _r_env(r_libs: str | None) -> dict:
    return {**os.environ, **({"R_LIBS": r_libs} if r_libs else {})}


def sp_bgsmtr_available(r_libs: str | None) -> tuple[bool, str]:
    """Whether ``Rscript`` and the R package bgsmtr are installed here, and why not."""
    if shutil.which("Rscript") is None:
        return False, "Rscript not installed on this machine"
    probe = subprocess.run(["Rscript", "-e", "quit(status = !requireNamespace('bgsmtr', "
                            "quietly = TRUE))"], env=_r_env(r_libs), capture_output=True)
    if probe.returncode != 0:
        return False, "R package bgsmtr not installed (set --r-libs or R_LIBS)"
    return True, ""


def start_r(args: list[str], r_libs: str | None) -> tuple[subprocess.Popen, float, Path]:
    """Start the driver (stdout and stderr to a file beside its output folder)."""
    log = Path(args[1]).with_suffix(".log")
    Path(args[1]).parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as sink:
        proc = subprocess.Popen(["Rscript", str(R_SCRIPT), *args], env=_r_env(r_libs),
                                stdout=sink, stderr=subprocess.STDOUT)
    return proc, time.perf_counter(), log


def finish_r(started: tuple[subprocess.Popen, float, Path]) -> dict:
    """Wait for one driver process; its own wall and CPU seconds (R start-up included)."""
    proc, wall0, log = started
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - wall0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"run_sp_bgsmtr.R {proc.args[2]} failed:\n"
                           f"{log.read_text()[-2000:]}")
    return {"wall_seconds": wall, "cpu_seconds": usage.ru_utime + usage.ru_stime}


def run_r(args: list[str], r_libs: str | None) -> dict:
    return finish_r(start_r(args, r_libs))


def read_meta(folder: Path) -> dict:
    meta = {}
    for line in (folder / "meta.txt").read_text().splitlines():
        key, _, value = line.partition("=")
        try:
            meta[key] = float(value)
        except ValueError:
            meta[key] = value
    return meta


def load_example(folder: Path):
    """The exported example as a Dataset (measures renamed L_i / R_i) and its pairs."""
    from bayesimg.data.bgsmtr_layout import load_bgsmtr_layout
    Y = pd.read_csv(folder / "brain_measures.csv", index_col=0)
    names = [str(c) for c in Y.columns]
    expected = [str(i) for i in range(1, 13)] + [str(i) for i in range(29, 41)]
    if names != expected:
        raise SystemExit(f"unexpected measure names in the example: {names}")
    rename = {str(i): f"L_{i:02d}" for i in range(1, 13)} | {
        str(i + 28): f"R_{i:02d}" for i in range(1, 13)}
    layout = folder / "layout"
    layout.mkdir(exist_ok=True)
    Y.rename(columns=rename).to_csv(layout / "brain_measures.csv", index_label="subject")
    shutil.copy(folder / "snp_data.csv", layout / "snp_data.csv")
    snps = pd.read_csv(folder / "snp_data.csv", index_col=0, nrows=0).columns
    pd.DataFrame({"snp": snps, "gene": snps}).to_csv(layout / "snp_groups.csv", index=False)
    data = load_bgsmtr_layout(layout, name="sp_bgsmtr_example_data")
    pairs = [(f"L_{i:02d}", f"R_{i:02d}") for i in range(1, 13)]
    return data, pairs, rename


def fit_ours(model, data, *, chains: int, warmup: int, draws: int, seed: int):
    import bayesimg as bi
    cpu0, wall0 = time.process_time(), time.perf_counter()
    fit = bi.fit(model, data, method="gibbs", chains=chains, warmup=warmup, draws=draws,
                 seed=seed, progress=False)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    W = fit.posterior["W"].transpose("chain", "draw", "snp", "phenotype").values
    W = np.asarray(W, dtype=float)
    from bayesimg import mcmc_stats
    flat = np.moveaxis(W.reshape(W.shape[0], W.shape[1], -1), -1, 0)
    table = mcmc_stats.convergence_table(flat, stats=("rhat", "ess_bulk"))
    out = {"cpu_seconds": cpu, "wall_seconds": wall, "chains": chains, "warmup": warmup,
           "draws": draws, "max_rhat_W": float(np.nanmax(table["rhat"])),
           "min_ess_bulk_W": float(np.nanmin(table["ess_bulk"])),
           "posterior_mean_sigma2": float(fit.posterior["sigma2"].mean())}
    if "rho" in fit.posterior:
        rho = np.asarray(fit.posterior["rho"].values, dtype=float)
        out["rho_posterior_mean"] = float(rho.mean())
        out["rho_interval_95"] = [float(q) for q in np.quantile(rho, [0.025, 0.975])]
    return W.mean(axis=(0, 1)), out


def agreement(a: np.ndarray, b: np.ndarray) -> dict:
    a, b = np.ravel(a), np.ravel(b)
    return {"corr": float(np.corrcoef(a, b)[0, 1]), "max_abs_diff": float(np.abs(a - b).max()),
            "max_abs_a": float(np.abs(a).max()), "max_abs_b": float(np.abs(b).max())}


def top_set(score: np.ndarray, k: int = TOP) -> set:
    flat = np.argsort(-np.ravel(score), kind="stable")[:k]
    return set(flat.tolist())


def overlaps(scores: dict) -> dict:
    """|top-k ∩ top-k| / k for every pair of methods (k = TOP)."""
    names, tops = list(scores), {m: top_set(s) for m, s in scores.items()}
    return {f"{a}__{b}": len(tops[a] & tops[b]) / TOP
            for i, a in enumerate(names) for b in names[i + 1:]}


def sigma_source_check(r_libs: str | None) -> dict:
    """The statements of sp_bgsmtr_mcmc / _mfvb that build Σ's 2 × 2 scatter, as installed.

    ``S_term1`` (the data term) is summed over subjects from the *measures* Y; the
    residual scatter ``S_Y_W`` is computed in the same loop but enters only the lower
    bound (MFVB) or nothing (MCMC): listed are the statements that mention it.
    """
    code = ("ns <- asNamespace('bgsmtr'); for (f in c('sp_bgsmtr_mcmc', 'sp_bgsmtr_mfvb')) {"
            " src <- trimws(deparse(body(get(f, envir = ns)), width.cutoff = 500L));"
            " for (h in grep('S_term1 = rs_B|S_term1 \\\\+ S_term2|S_Y_W', src, value = TRUE))"
            " cat(f, '\\t', h, '\\n', sep = '') }")
    proc = subprocess.run(["Rscript", "-e", code], env=_r_env(r_libs), capture_output=True,
                          text=True, check=True)
    out: dict = {}
    for line in proc.stdout.strip().splitlines():
        f, _, statement = line.partition("\t")
        out.setdefault(f, {"statements": []})["statements"].append(statement.strip())
    for entry in out.values():
        data_term = [x for x in entry["statements"] if x.startswith("S_term1 = rs_B")]
        entry["data_term_uses_Y_not_residuals"] = bool(data_term) and all(
            "Y[(2 * i - 1):(2 * i), l]" in x and "X[" not in x and "W" not in x
            for x in data_term)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--r-libs", default=os.environ.get("R_LIBS"))
    parser.add_argument("--mcmc-iter", type=int, default=60,
                        help="sp_bgsmtr MCMC iterations (package default 10,000)")
    parser.add_argument("--mcmc-burn-in", type=int, default=20)
    parser.add_argument("--chains", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--draws", type=int, default=700)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="benchmarks/results/bilateral_vs_sp_bgsmtr.json")
    args = parser.parse_args(argv)
    load_start = os.getloadavg()
    result = {"benchmark": "bilateral_vs_sp_bgsmtr", "config": vars(args),
              "load_average_at_start": load_start}
    ok, why = sp_bgsmtr_available(args.r_libs)
    if not ok:
        result["sp_bgsmtr"] = {"available": False, "why": why}
        result["note"] = ("not installed: sp_bgsmtr's example data comes from the R package, "
                          "so nothing was fitted")
        write_json(args.out, result)
        print(f"sp_bgsmtr not run: {why}")
        return 0

    import bayesimg as bi
    from bayesimg.baselines import bh_adjust, ols_scan

    with tempfile.TemporaryDirectory(prefix="sp_bgsmtr_") as tmp:
        tmp = Path(tmp)
        print("export", flush=True)
        run_r(["export", str(tmp / "data")], args.r_libs)
        data, pairs, rename = load_example(tmp / "data")
        export_meta = read_meta(tmp / "data")
        sorted_pairs = pd.read_csv(tmp / "data" / "pairs_from_names.csv", dtype=str)
        result["data"] = {"subjects": data.n_subjects, "snps": data.n_snps,
                          "measures": data.n_phenotypes, "pairs": [list(p) for p in pairs],
                          "renamed_from": rename,
                          "documented_example_A_is_null": export_meta.get(
                              "documented_A_component_is_null"),
                          "example_components": export_meta.get("components")}
        result["pairs_sp_bgsmtr_forms_from_the_example_names"] = [
            [a, b] for a, b in zip(sorted_pairs["left"], sorted_pairs["right"], strict=True)]
        result["versions_R"] = {k: export_meta[k] for k in ("bgsmtr_version", "r_version",
                                                            "blas")}

        Y = np.asarray(data.phenotypes, dtype=float)
        names = list(map(str, data.phenotype_names))
        li = [names.index(a) for a, _ in pairs]
        ri = [names.index(b) for _, b in pairs]
        raw_corr = [float(np.corrcoef(Y[:, i], Y[:, j])[0, 1]) for i, j in zip(li, ri,
                                                                              strict=True)]

        fits, W_means = {}, {}
        # the two fits run side by side (2 cores); each one's CPU time is its own process's
        print("sp_bgsmtr MFVB and MCMC", flush=True)
        mfvb = start_r(["mfvb", str(tmp / "mfvb"), repr(RHO_EXAMPLE), repr(LAMBDASQ_EXAMPLE),
                        str(args.seed + 1)], args.r_libs)
        mcmc = start_r(["mcmc", str(tmp / "mcmc"), repr(RHO_EXAMPLE), repr(LAMBDASQ_EXAMPLE),
                        str(args.mcmc_iter), str(args.mcmc_burn_in), str(args.seed + 1)],
                       args.r_libs)

        print("rho probe", flush=True)
        t = run_r(["rho_probe", str(tmp / "probe"), ",".join(map(str, PROBE_RHOS))],
                  args.r_libs)
        probe = pd.read_csv(tmp / "probe" / "rho_probe.csv")
        result["mfvb_rho_used"] = {
            ("default (NULL -> 0.95)" if np.isnan(r) else f"{r:g}"): float(u)
            for r, u in zip(probe["rho_requested"], probe["rho_used"], strict=True)}
        result["mfvb_rho_probe_seconds"] = t
        result["sigma_conditional_source"] = sigma_source_check(args.r_libs)

        # ours run while the two R fits do (process CPU time counts only this process)
        lam = LAMBDASQ_EXAMPLE / 4.0          # √λ₁ + √λ₂ = √1000
        models = {"bilateral_gsmtr": bi.models.BilateralGSMTR(lambda1=lam, lambda2=lam,
                                                              pairs=pairs),
                  "gsmtr": bi.models.GroupSparseMTR(lambda1=lam, lambda2=lam)}
        for label, model in models.items():
            print(label, flush=True)
            W_means[label], fits[label] = fit_ours(model, data, chains=args.chains,
                                                   warmup=args.warmup, draws=args.draws,
                                                   seed=args.seed)
            resid = Y - np.asarray(data.genotypes, dtype=float) @ W_means[label]
            fits[label]["residual_pair_corr_mean"] = float(np.mean(
                [np.corrcoef(resid[:, i], resid[:, j])[0, 1] for i, j in zip(li, ri, strict=True)]))
            write_json(args.out, result | {"fits": fits})
        fits["bilateral_gsmtr"]["left_right_corr"] = fits["bilateral_gsmtr"]["rho_posterior_mean"]

        t = finish_r(mfvb)
        meta = read_meta(tmp / "mfvb")
        entry = {**t, "meta": meta, "status": meta["status"]}
        if meta["status"] == "ok":
            W = pd.read_csv(tmp / "mfvb" / "W_post_mean.csv", index_col=0)
            W_means["sp_bgsmtr_mfvb"] = W.loc[data.snp_names, names].to_numpy()
            S = pd.read_csv(tmp / "mfvb" / "Sigma_post_mean.csv").to_numpy()
            entry["Sigma_post_mean"] = S.tolist()
            entry["left_right_corr"] = float(S[0, 1] / np.sqrt(S[0, 0] * S[1, 1]))
        else:
            entry["error"] = (tmp / "mfvb" / "error.txt").read_text()
        fits["sp_bgsmtr_mfvb"] = entry
        write_json(args.out, result | {"fits": fits})

        t = finish_r(mcmc)
        meta = read_meta(tmp / "mcmc")
        entry = {**t, "meta": meta, "status": meta["status"],
                 "note": f"{args.mcmc_iter} iterations (burn-in {args.mcmc_burn_in}) instead "
                         "of the package's 10,000 (5,001): shortened to fit the time budget"}
        if meta["status"] == "ok":
            W = pd.read_csv(tmp / "mcmc" / "W_post_mean.csv", index_col=0)
            W_means["sp_bgsmtr_mcmc"] = W.loc[data.snp_names, names].to_numpy()
            S = pd.read_csv(tmp / "mcmc" / "Sigma_draws.csv")
            corr = S["s12"] / np.sqrt(S["s11"] * S["s22"])
            entry["Sigma_post_mean"] = [[float(S["s11"].mean()), float(S["s12"].mean())],
                                        [float(S["s12"].mean()), float(S["s22"].mean())]]
            entry["left_right_corr"] = float(corr.mean())
        else:
            entry["error"] = (tmp / "mcmc" / "error.txt").read_text()
            tail = tmp / "mcmc" / "log_tail.txt"
            entry["log_tail"] = tail.read_text() if tail.is_file() else ""
        fits["sp_bgsmtr_mcmc"] = entry
        write_json(args.out, result | {"fits": fits})

    scan = ols_scan(data, original_units=False)
    q = bh_adjust(scan["p"].to_numpy())
    d, c = data.n_snps, data.n_phenotypes
    p_matrix = scan["p"].to_numpy().reshape(d, c)
    W_means["ols"] = scan["effect"].to_numpy().reshape(d, c)
    fits["ols_bh"] = {"discoveries_bh_0.05": int((q <= 0.05).sum()),
                      "min_p": float(p_matrix.min()), "min_q": float(q.min())}

    methods = list(W_means)
    result["fits"] = fits
    result["raw_pair_corr"] = {"mean": float(np.mean(raw_corr)), "per_pair": raw_corr}
    result["agreement_of_W_means"] = {
        f"{a}__{b}": agreement(W_means[a], W_means[b])
        for i, a in enumerate(methods) for b in methods[i + 1:]}
    scores = {m: np.abs(W_means[m]) for m in methods if m != "ols"} | {"ols": -p_matrix}
    result["top_associations_overlap"] = {"k": TOP, "overlap": overlaps(scores)}
    bil = fits["bilateral_gsmtr"]
    for peer in ("sp_bgsmtr_mfvb", "sp_bgsmtr_mcmc"):
        if fits[peer]["status"] == "ok":
            result[f"cpu_ratio_{peer}_over_bilateral_gsmtr"] = (fits[peer]["cpu_seconds"]
                                                                / bil["cpu_seconds"])
            result[f"wall_ratio_{peer}_over_bilateral_gsmtr"] = (fits[peer]["wall_seconds"]
                                                                 / bil["wall_seconds"])
    result["cpu_ratio_sp_bgsmtr_over_bilateral_gsmtr"] = result.get(
        "cpu_ratio_sp_bgsmtr_mfvb_over_bilateral_gsmtr")
    result["load_average_at_end"] = os.getloadavg()
    write_json(args.out, result)
    print({k: v for k, v in result.items() if k.startswith("cpu_ratio")})
    return 0


if __name__ == "__main__":
    sys.exit(main())
