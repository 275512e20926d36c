"""The jobs behind the command line: the bundled demo and config-file runs."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bayesimg import data as bdata
from bayesimg.config import RunConfig
from bayesimg.inference import add_posterior_predictive, fit, select_hyperparameter
from bayesimg.inference.api import check_fit_options
from bayesimg.models import GroupSparseMTR, SpikeSlabMTR
from bayesimg.report.destination import check_destination
from bayesimg.report.discovery_plots import plot_manhattan, plot_pip_heatmap
from bayesimg.report.folder import portable_names, write_report
from bayesimg.report.markdown import markdown_table


@dataclass
class JobResult:
    folder: Path
    best: str
    fits: dict[str, Any]
    comparison: pd.DataFrame | None
    seconds: float
    recovery: pd.DataFrame | None = None
    #: what each model found at FDR 0.05 (the demo)
    discoveries: pd.DataFrame | None = None


DEMO_SETTINGS = {
    # name: (lambda1, lambda2); phenotypes are standardised, so λ₂ = 2000 puts a Laplace
    # scale of about σ/√λ₂ ≈ 0.02 on each SNP's effects
    "gsmtr_lambda20": (20.0, 20.0),         # weak shrinkage (bgsmtr's example uses 2)
    "gsmtr_lambda200": (200.0, 200.0),
    "gsmtr_lambda2000": (2000.0, 2000.0),   # strong gene + SNP shrinkage
    "snp_only_lambda2000": (1e-3, 2000.0),  # baseline: no gene-level shrinkage (λ₁ → 0)
}


def run_demo(out: str | Path = "bayesimg_demo_report", *, chains: int = 4, warmup: int = 500,
             draws: int = 1000, seed: int = 1, quick: bool = False, full: bool = False,
             progress: bool = True, overwrite: bool = False,
             include_data: bool = False) -> JobResult:
    """Fit GSMTR and the spike-and-slab model on the bundled 1000 Genomes demo and write a
    report folder.

    Four GSMTR settings (:data:`DEMO_SETTINGS`: λ₁ = λ₂ = 20, 200, 2000 and a baseline
    without gene-level shrinkage) and :class:`~bayesimg.models.SpikeSlabMTR` are fitted by
    their exact Gibbs samplers and compared by leave-one-subject-out LOO (integrated LOO for
    the Gaussian regressions, PSIS where a family has no integrated form);
    the report's table "what each model found" gives each model's discoveries at FDR 0.05
    against the planted effects, beside the OLS + Bonferroni scan
    (:func:`discovery_comparison`).

    By default SNPs with minor-allele frequency < 5% are dropped and the panel is
    LD-pruned within genes at r² > 0.8 (339 SNPs in 15 genes; the planted SNPs are
    kept so the recovery table can compare them SNP by SNP); ``full`` fits all
    common SNPs without pruning (d > n: slower).  ``quick`` uses 3 genes (for
    tests).  ``out`` must be new, or an earlier bayesimg report with ``overwrite``;
    that is checked before anything is fitted.
    """
    t0 = time.perf_counter()
    check_destination(out, overwrite=overwrite)
    if quick:
        dataset = bdata.load_demo(genes=["MCM6", "AGT", "TTN"], ld_prune_r2=0.8, min_maf=0.05)
    elif full:
        dataset = bdata.load_demo(min_maf=0.05)
    else:
        dataset = bdata.load_demo(ld_prune_r2=0.8, min_maf=0.05)
    _say(progress, f"Data: {dataset!r}")
    fits = {}
    models = {name: GroupSparseMTR(lambda1=lam1, lambda2=lam2)
              for name, (lam1, lam2) in DEMO_SETTINGS.items()}
    models[DEMO_DISCOVERY_MODEL] = SpikeSlabMTR()
    for name, model in models.items():
        f = fit(model, dataset, method="gibbs", chains=chains, warmup=warmup, draws=draws,
                seed=seed, progress=progress)
        fits[name] = add_posterior_predictive(f, model, dataset, num_draws=100, seed=seed)
    truth = bdata.load_demo_truth()
    found, per_model = discovery_comparison(fits, dataset, truth)
    _say(progress, "What each model found at FDR 0.05 (planted effects: "
         f"{len(truth)}):\n{found.to_string()}")
    notes = [
        "Data: real 1000 Genomes genotypes (503 Europeans; LCT, AGT and TTN regions) with a "
        "simulated imaging-phenotype panel; planted effects in `truth.csv` of the package "
        "(bayesimg.data.load_demo_truth()).",
        f"Dataset: {dataset!r}. Intervals are 95% equal-tailed.",
        "",
        "## What each model found (SNP × ROI discoveries at FDR 0.05)",
        "",
        markdown_table(found),
        "",
        f"Bayesian models: {FOUND_RULE} OLS: per-SNP × ROI regressions with the covariates, "
        "Bonferroni over all tests. Every discovery of each model is in "
        "`discoveries_<model>.csv`; `what_each_model_found.csv` holds this table.",
    ]
    folder = write_report(fits, out, title="bayesimg demo: GSMTR and spike-and-slab on "
                          "1000 Genomes", notes=notes, overwrite=overwrite,
                          include_data=include_data, dataset=dataset)
    found.to_csv(folder / "what_each_model_found.csv")
    for name, table_ in per_model.items():
        table_.to_csv(folder / f"discoveries_{portable_names({name: 0})[name]}.csv", index=False)
    plot_manhattan(fits[DEMO_DISCOVERY_MODEL],
                   path=folder / "plots" / f"manhattan_{DEMO_DISCOVERY_MODEL}.png")
    plot_pip_heatmap(fits[DEMO_DISCOVERY_MODEL],
                     path=folder / "plots" / f"pip_heatmap_{DEMO_DISCOVERY_MODEL}.png")
    from bayesimg.report import compare
    table = compare({k: v for k, v in fits.items() if k != DEMO_DISCOVERY_MODEL}, ic="loo")
    best = str(table.index[0])
    recovery = _truth_check(fits[best], truth)
    recovery.to_csv(folder / "planted_effects_recovery.csv")
    return JobResult(folder, best, fits, table, time.perf_counter() - t0, recovery, found)


#: the demo's discovery model (fitted beside the GSMTR settings)
DEMO_DISCOVERY_MODEL = "spike_slab"
#: r² at or above which a discovery counts as an LD proxy of a planted SNP
PROXY_R2 = 0.5
FOUND_RULE = ("discoveries by Bayesian FDR on lfsr (`fit.discoveries(fdr=0.05)`: credible "
              "sets count as one discovery). A planted effect is found when a discovery for its "
              f"ROI holds its SNP or an LD proxy (r² ≥ {PROXY_R2}); other discoveries are "
              "split into LD proxies of a planted SNP for that ROI and the rest.")


def discovery_comparison(fits: dict, dataset, truth: pd.DataFrame
                         ) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    """One row per model (and the OLS + Bonferroni scan): planted effects found at FDR 0.05,
    other discoveries, and how many of those are LD proxies of a planted SNP.

    Returns the table and each model's labelled discoveries.
    """
    from bayesimg.baselines import ols_scan, scan_discoveries
    from bayesimg.data.simulate_discovery import ld_r2
    from bayesimg.metrics import label_discoveries
    from bayesimg.report.discovery import discoveries

    r2 = ld_r2(dataset)
    planted = truth[["snp", "phenotype"]].astype(str)
    calls = {name: discoveries(f, fdr=0.05) for name, f in fits.items()}
    # a credible-set discovery is its signal block: the SNPs whose effects it sums
    members = {name: {row.credible_set: row.cs_snps.split(",")
                      for row in table_.dropna(subset=["credible_set"]).itertuples()}
               for name, table_ in calls.items()}
    calls["ols_bonferroni"] = scan_discoveries(ols_scan(dataset), "bonferroni", 0.05)
    rows, labelled = [], {}
    for name, table_ in calls.items():
        lab = label_discoveries(table_, planted, r2, PROXY_R2, set_members=members.get(name))
        detected = {pair for pairs in lab["detects"] for pair in pairs}
        other = lab[~lab["true"]]
        proxy = [any(r2.loc[s, p] >= PROXY_R2 for s in snps for p in planted.snp
                     if s in r2.index and p in r2.index) for snps in other["snps"]]
        rows.append({"model": name, "discoveries": len(lab),
                     "planted_found": len(detected), "planted": len(planted),
                     "other_discoveries": len(other),
                     "other_ld_proxies": int(np.sum(proxy)),
                     "other_not_proxies": len(other) - int(np.sum(proxy))})
        labelled[name] = lab
    return pd.DataFrame(rows).set_index("model"), labelled


def _truth_check(fit_, truth: pd.DataFrame) -> pd.DataFrame:
    """Planted effects next to their posterior (on the standardised phenotype scale)."""
    from bayesimg.report import summary
    table = summary(fit_, var_names=["W"])
    merged = truth.merge(table, on=["snp", "phenotype"], how="left")
    lb, ub = [c for c in table.columns if c.endswith("_lb") or c.endswith("_ub")][:2]
    merged["interval_excludes_0"] = (merged[lb] > 0) | (merged[ub] < 0)
    merged["same_sign"] = np.sign(merged["mean"]) == np.sign(merged["effect"])
    W = fit_.posterior["W"]
    merged["prob_true_sign"] = [
        float((np.sign(W.sel(snp=s, phenotype=p).values) == np.sign(e)).mean())
        for s, p, e in zip(merged["snp"], merged["phenotype"], merged["effect"], strict=True)]
    return merged


def read_config_genotypes(d: dict[str, Any]):
    """(source path, GenotypeTable) from whichever of ``[data] plink``, ``pgen``, ``bgen``
    or ``dosages`` the configuration gives (the config check allows exactly one)."""
    count = d.get("count", "a1")
    if d.get("pgen"):
        return d["pgen"], bdata.read_pgen(d["pgen"], count=count)
    if d.get("bgen"):
        return d["bgen"], bdata.read_bgen(d["bgen"], sample=d.get("bgen_sample"), count=count)
    if d.get("dosages"):
        return d["dosages"], bdata.read_dosage_table(d["dosages"], id_column=d.get("id_column"))
    return d["plink"], bdata.read_plink(d["plink"], count=count)


def _read_genotype_dataset(d: dict[str, Any]):
    """The genotype families' dataset: genotypes (PLINK 1/2, BGEN or a dosage table) +
    phenotypes (+ covariates), grouped, pruned."""
    source, geno = read_config_genotypes(d)
    pheno = bdata.read_table(d["phenotypes"], id_column=d.get("id_column"),
                             columns=d.get("phenotype_columns"))
    cov = None
    if d.get("covariates"):
        columns = d.get("covariate_columns")
        if columns is not None and d.get("random_effects"):
            columns = [*columns, d["random_effects"]]
        cov = bdata.read_table(d["covariates"], id_column=d.get("id_column"), columns=columns)
    dataset = bdata.make_dataset(
        geno, pheno, cov, phenotype_columns=d.get("phenotype_columns"),
        covariate_columns=d.get("covariate_columns"),
        random_effects=d.get("random_effects"),
        max_snp_missing=d.get("max_snp_missing", 0.05), min_maf=d.get("min_maf", 0.0),
        standardize_genotypes=d.get("standardize_genotypes", "center"),
        drop_missing_phenotypes=d.get("drop_missing_phenotypes", False),
        name=Path(d["phenotypes"]).stem)
    genes = d.get("genes", "hg19")
    dataset = bdata.group_snps(dataset, None if genes == "hg19" else genes,
                               window=d.get("window", 10_000),
                               unassigned=d.get("unassigned", "drop"))
    if d.get("ld_prune_r2"):
        dataset = bdata.ld_prune(dataset, r2=d["ld_prune_r2"])
    inputs = {"genotypes": source, "phenotypes": d["phenotypes"],
              "covariates": d.get("covariates"), "genes": None if genes == "hg19" else genes}
    return dataset, inputs


def _read_view_dataset(d: dict[str, Any]):
    """The multi-view families' data: one subject-indexed table per view."""
    tables = {name: bdata.read_table(path, id_column=d.get("id_column"))
              for name, path in d["views"].items()}
    cov = None
    if d.get("covariates"):
        cov = bdata.read_table(d["covariates"], id_column=d.get("id_column"),
                               columns=d.get("covariate_columns"))
    labels = bdata.read_table(d["labels"], id_column=d.get("id_column")) \
        if d.get("labels") else None
    views = bdata.make_views(tables, likelihoods=d.get("likelihoods"), covariates=cov,
                             labels=labels, subjects=d.get("subjects", "union"),
                             name=Path(next(iter(d["views"].values()))).stem)
    inputs = {f"view {name}": path for name, path in d["views"].items()}
    inputs.update(covariates=d.get("covariates"), labels=d.get("labels"))
    return views, inputs


def read_config_data(config: RunConfig):
    """Read and align the data a configuration names: ``(dataset, input files by role)``."""
    if config.family in ("factor", "bnmix"):
        return _read_view_dataset(config.data)
    return _read_genotype_dataset(config.data)


def build_model(config: RunConfig):
    """The model a configuration names (hyperparameters from ``[model]``)."""
    m = config.model
    family = config.family
    if family == "gsmtr":
        return GroupSparseMTR(lambda1=m.get("lambda1", 2.0), lambda2=m.get("lambda2", 2.0),
                              hyperprior=tuple(m["hyperprior"]) if m.get("hyperprior") else None,
                              parameterization=m.get("parameterization", "marginal"),
                              covariate_scale=m.get("covariate_scale", 10.0),
                              site_scale=m.get("site_scale", 1.0))
    if family == "bilateral_gsmtr":
        from bayesimg.models import BilateralGSMTR
        pairs = m.get("pairs", "auto")
        return BilateralGSMTR(
            lambda1=m.get("lambda1", 2.0), lambda2=m.get("lambda2", 2.0),
            pairs=pairs if pairs == "auto" else [tuple(p) for p in pairs],
            rho_prior=tuple(m.get("rho_prior", (1.0, 1.0))),
            roi_graph=[tuple(e) for e in m["roi_graph"]] if m.get("roi_graph") else None,
            rho_spatial_prior=tuple(m.get("rho_spatial_prior", (1.0, 1.0))),
            hyperprior=tuple(m["hyperprior"]) if m.get("hyperprior") else None,
            parameterization=m.get("parameterization", "marginal"),
            covariate_scale=m.get("covariate_scale", 10.0),
            site_scale=m.get("site_scale", 1.0))
    if family == "spike_slab":
        from bayesimg.models import SpikeSlabMTR
        kwargs = {k: m[k] for k in ("residual", "covariate_scale", "site_scale") if k in m}
        if "slab_scales" in m:
            kwargs["slab_scales"] = tuple(m["slab_scales"])
        return SpikeSlabMTR(**kwargs)
    if family == "glrr":
        from bayesimg.models import GLRR
        return GLRR(rank=m.get("rank", 3), noise_factors=m.get("noise_factors"),
                    covariate_scale=m.get("covariate_scale", 10.0),
                    site_scale=m.get("site_scale", 1.0))
    if family == "factor":
        from bayesimg.models import MultiViewFactor
        return MultiViewFactor(m.get("n_factors", 10),
                               covariate_scale=m.get("covariate_scale", 10.0))
    from bayesimg.models import BNMix
    return BNMix(m.get("n_clusters", 2))


def check_model_on_data(config: RunConfig, model, dataset) -> None:
    """The model's checks on the data, before anything compiles; a bilateral model's
    left/right pairs that do not fit the phenotype table are reported as ``[model] pairs``
    errors of the configuration (unknown name, a measure in two pairs, ``"auto"`` finding
    no pairs, sides in different units), and its ROI graph's as ``[model] roi_graph`` errors."""
    from bayesimg.errors import ConfigError, DataValidationError
    from bayesimg.inference.common import check_inputs
    if config.family == "bilateral_gsmtr":
        try:
            model.resolve_pairs(dataset)
        except DataValidationError as err:
            raise ConfigError(f"{str(config.path)!r}: [model] pairs = "
                              f"{config.model.get('pairs', 'auto')!r}: {err}") from err
        try:
            model.resolve_roi_graph(dataset)
        except DataValidationError as err:
            raise ConfigError(f"{str(config.path)!r}: [model] roi_graph: {err}") from err
    check_inputs(model, dataset)


def plan_config(config: RunConfig) -> str:
    """Check everything a run needs without fitting (``bayesimg fit --dry-run``).

    Reads and aligns the data, builds and validates the model on them, checks the
    inference options and the output folder, and returns the plan as text.
    """
    options = dict(config.inference)
    method = options.pop("method", "gibbs")
    check_fit_options(method, options)
    check_destination(config.output["folder"],
                      overwrite=bool(config.output.get("overwrite", False)))
    dataset, inputs = read_config_data(config)
    model = build_model(config)
    check_model_on_data(config, model, dataset)
    grid = config.model.get("lambda_grid")
    fits = (f"{len(grid)} fits over lambda_grid, chosen by {config.model.get('ic', 'loo')}"
            if grid else "1 fit")
    lines = [f"Plan for {config.path}:",
             f"  data:    {dataset!r}",
             *(f"  input:   {role}: {path}" for role, path in inputs.items() if path),
             f"  model:   {model!r} ({config.family})",
             f"  fits:    {fits}, method = {method!r}, "
             + ", ".join(f"{k} = {v}" for k, v in options.items()),
             f"  output:  {config.output['folder']} (checked: can be created)",
             "Nothing was fitted or written (--dry-run)."]
    return "\n".join(lines)


def run_config(config: RunConfig, *, progress: bool = True,
               overwrite: bool | None = None, include_data: bool | None = None) -> JobResult:
    """Run a user's configuration: read data, fit, compare, write the report.

    Every family of :mod:`bayesimg.config` runs from here.  The output folder and the
    inference options are checked before any data are read; ``overwrite`` (default: the
    config's ``[output] overwrite``, else False) allows replacing an earlier bayesimg
    report.
    """
    t0 = time.perf_counter()
    if overwrite is None:
        overwrite = bool(config.output.get("overwrite", False))
    if include_data is None:
        include_data = bool(config.output.get("include_data", False))
    check_destination(config.output["folder"], overwrite=overwrite)
    options = dict(config.inference)
    method = options.pop("method", "gibbs")
    check_fit_options(method, options)
    dataset, inputs = read_config_data(config)
    _say(progress, f"Data: {dataset!r}")
    model = build_model(config)
    check_model_on_data(config, model, dataset)
    options.setdefault("progress", progress)
    m = config.model
    if m.get("lambda_grid"):
        grid = [{"lambda1": float(a), "lambda2": float(b)} for a, b in m["lambda_grid"]]
        _, table, fits = select_hyperparameter(model, dataset, grid, ic=m.get("ic", "loo"),
                                               method=method, **options)
    else:
        fits = {config.family: fit(model, dataset, method=method, **options)}
        table = None
    n_ppc = config.output.get("posterior_predictive_draws", 100)
    if n_ppc and config.family in ("gsmtr", "bilateral_gsmtr", "glrr"):
        fits = {k: add_posterior_predictive(f, num_draws=n_ppc, seed=options.get("seed", 0))
                for k, f in fits.items()}
    folder = write_report(fits, config.output["folder"], top=config.output.get("top", 20),
                          overwrite=overwrite, include_data=include_data, dataset=dataset,
                          config_text=config.text,
                          inputs={"config": config.path, **inputs},
                          title=f"bayesimg: {config.path.name if config.path else 'run'}",
                          notes=[f"Dataset: {dataset!r}. Intervals are 95% equal-tailed."])
    best = str(table.index[0]) if table is not None else config.family
    return JobResult(folder, best, fits, table, time.perf_counter() - t0)


def _say(enabled: bool, message: str) -> None:
    if enabled:
        print(message, flush=True)
