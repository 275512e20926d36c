"""Write a complete report folder for one or more fits of the same data.

Layout (all written into a temporary sibling folder, then moved into place,
so an interrupted run never leaves a half-written report)::

    REPORT/
      .bayesimg-report.json     marker: this folder was made by bayesimg
      report.md                 what was fitted, verdicts, comparison, top hits
      comparison_waic.csv       WAIC table (all fits)
      comparison_loo.csv        PSIS-LOO table (all fits), Pareto-k warnings
      <name>/summary.csv        every parameter: mean, sd, 95% ETI, R-hat, ESS
      <name>/top_associations.csv
      <name>/diagnostics.txt
      <name>/fit.nc             the saved fit (netCDF, loads with bayesimg.load)
      plots/forest_<name>.png, trace_<name>.png, ppc_<name>.png, khat_<name>.png,
      plots/compare_loo.png

The destination must not exist, or must be an earlier bayesimg report (it holds the
marker) and ``overwrite=True``: see :mod:`bayesimg.report.destination`.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

from bayesimg.errors import LIBRARY_FILES, OutputFolderError
from bayesimg.report import _tree, plots, provenance
from bayesimg.report._tree import as_tree, has_group
from bayesimg.report.compare import compare
from bayesimg.report.destination import check_destination, is_bayesimg_report, write_marker
from bayesimg.report.diagnostics import diagnose
from bayesimg.report.intervals import interval_label
from bayesimg.report.markdown import markdown_table
from bayesimg.report.summary import summary, top_associations


def write_report(fits: dict[str, Any], folder: str | os.PathLike, *, best: str | None = None,
                 top: int = 20, title: str = "bayesimg report",
                 notes: list[str] | None = None, overwrite: bool = False,
                 include_data: bool = False, dataset: Any = None,
                 config_text: str | None = None,
                 inputs: dict[str, str | os.PathLike | None] | None = None) -> Path:
    """Write tables, plots, diagnostics, comparisons and saved fits for ``fits``.

    Parameters
    ----------
    fits : dict
        Name → fit (a :class:`bayesimg.Fit`).  All fits must be on the same subjects.
    folder : path
        Destination: a new folder (created), or an earlier bayesimg report when
        ``overwrite=True`` (replaced atomically).  Anything else is refused with
        :class:`~bayesimg.errors.OutputFolderError` before anything is written.
    best : str, optional
        The fit whose associations lead the report (default: best by PSIS-LOO).
    overwrite : bool
        Replace an earlier bayesimg report at ``folder`` (default False).
    include_data : bool
        Save the fits with the individual-level data (genotypes, phenotypes, covariates,
        subject IDs).  Default False: a report folder is made to be shared.
    dataset, config_text, inputs
        Provenance: the dataset (its preprocessing record: what was dropped and why),
        the run's configuration text, and the input files by role (checksummed).
    """
    folder = check_destination(folder, overwrite=overwrite)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp_root = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    out = tmp_root / folder.name
    file_names = portable_names(fits)
    try:
        out.mkdir()
        write_marker(out)
        (out / "plots").mkdir()
        lines = [f"# {title}", ""]
        if notes:
            lines += notes + [""]
        tables = {}
        for ic in ("loo", "waic"):          # LOO first: it is the comparison the report uses
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                table = compare(fits, ic=ic) if len(fits) > 1 else None
            if table is not None:
                table.to_csv(out / f"comparison_{ic}.csv")
                tables[ic] = (table, [str(w.message) for w in caught])
        if best is None:
            best = tables["loo"][0].index[0] if "loo" in tables else next(iter(fits))
        if "loo" in tables:
            plots.plot_compare(tables["loo"][0], path=out / "plots" / "compare_loo.png")
        for ic, (table, messages) in tables.items():
            heading = f"## Model comparison by {ic.upper()} (higher elpd is better)"
            if ic == "waic" and "loo" in tables:
                heading += " — for reference; the LOO table above is the comparison"
                if messages:
                    # one line, not one warning per model: at p ≈ n WAIC's per-subject
                    # penalty is unreliable for nearly every fit, and LOO (integrated where
                    # the family allows) is what replaces it
                    flagged = (int(table["warning"].astype(bool).sum())
                               if "warning" in table else len(messages))
                    messages = [f"WAIC is unreliable for {flagged} of {len(table)} models here "
                                "(subjects with p_waic > 0.4, common when parameters are as "
                                "many as subjects); the LOO comparison above replaces it. "
                                f"Per model: `comparison_waic.csv` (column `warning`)."]
            lines += [heading, "", markdown_table(table), ""]
            lines += [f"- {m}" for m in messages] + [""]

        lines += [f"## Best model: `{best}`", ""]
        for name, fit in fits.items():
            lines += _one_fit(name, fit, out, top=top, lead=(name == best),
                              file_name=file_names[name], include_data=include_data)
        lines += _provenance(out, fits, dataset=dataset, config_text=config_text,
                             inputs=inputs or {}, include_data=include_data)
        (out / "report.md").write_text("\n".join(lines) + "\n")
        if folder.exists() or folder.is_symlink():
            # checked again now: the folder may have appeared while the report was built
            if not (overwrite and is_bayesimg_report(folder)):
                check_destination(folder, overwrite=overwrite)
                raise OutputFolderError(f"{str(folder)!r} changed while the report was written")
            os.replace(folder, tmp_root / "previous")
        os.replace(out, folder)
    finally:
        shutil.rmtree(tmp_root, ignore_errors=True)
    return folder


def portable_names(fits: dict[str, Any]) -> dict[str, str]:
    """Fit label → a file name safe on every system (letters, digits, ``._-`` only), unique.

    ``"lambda1=2, lambda2=2"`` becomes ``"lambda1-2_lambda2-2"``; labels stay as they are
    in the tables, only folder and file names change.
    """
    out: dict[str, str] = {}
    used: set[str] = set()
    for label in fits:
        base = re.sub(r"=", "-", str(label))
        base = re.sub(r"[^A-Za-z0-9._-]+", "_", base).strip("._") or "fit"
        name, k = base, 2
        while name.lower() in used or name.lower() == "plots":
            name, k = f"{base}_{k}", k + 1
        used.add(name.lower())
        out[label] = name
    return out


def _provenance(out: Path, fits: dict[str, Any], *, dataset: Any, config_text: str | None,
                inputs: dict, include_data: bool) -> list[str]:
    """report.md's provenance section, plus config.toml, inputs.csv, preprocessing_log.csv."""
    lines = ["## Provenance", ""]
    if config_text is not None:
        (out / "config.toml").write_text(config_text)
        lines += ["Configuration (`config.toml`):", "", "```toml", config_text.strip(), "```",
                  ""]
    files = provenance.input_files(inputs)
    if len(files):
        files.to_csv(out / "inputs.csv", index=False)
        lines += ["Input files (`inputs.csv`, SHA-256):", "", markdown_table(files), ""]
    runs = provenance.fit_provenance(fits)
    lines += ["Fits (seed, sampler settings, versions):", "",
              markdown_table(runs.drop(columns=["versions"])), "",
              f"Versions: {runs['versions'].iloc[0]}", ""]
    prep = getattr(dataset, "preprocessing", None)
    if prep:
        provenance.preprocessing_log(prep).to_csv(out / "preprocessing_log.csv", index=False)
        lines += ["Preprocessing (every dropped subject and SNP with its reason in "
                  "`preprocessing_log.csv`):", ""] + provenance.preprocessing_summary(prep) + [""]
    lines += [("Saved fits include the individual-level data (genotypes, phenotypes, "
               "subject IDs): do not share this folder beyond who may see the data.")
              if include_data else
              ("Saved fits hold no individual-level data (no genotypes, phenotypes or "
               "covariates; subject IDs replaced by positions): posterior, diagnostics and "
               "the pointwise log-likelihood only."), ""]
    return lines


def _one_fit(name: str, fit: Any, out: Path, *, top: int, lead: bool,
             file_name: str, include_data: bool = False) -> list[str]:
    sub = out / file_name
    sub.mkdir()
    tree = as_tree(fit)
    diag = diagnose(fit)
    (sub / "diagnostics.txt").write_text(str(diag) + "\n")
    summary(fit).to_csv(sub / "summary.csv")
    site = tree.attrs.get("association_site") or ""
    hits = None
    if site and site in tree["posterior"].to_dataset().data_vars:
        # families with one association matrix (SNP × phenotype); factor and network
        # families report their own outputs (loadings, clusters) in the summary table
        hits = top_associations(fit, n=top)
        hits.to_csv(sub / "top_associations.csv")
        plots.plot_forest(fit, top=top, path=out / "plots" / f"forest_{file_name}.png")
    if hasattr(fit, "save"):
        fit.save(sub / "fit.nc", include_data=include_data)
    trace_vars = _tree.trace_sites(tree)
    if trace_vars and not tree.attrs.get("approximate"):
        plots.plot_trace(fit, trace_vars, path=out / "plots" / f"trace_{file_name}.png")
    if has_group(tree, "posterior_predictive"):
        plots.plot_ppc(fit, path=out / "plots" / f"ppc_{file_name}.png")
    try:
        plots.plot_khat(fit.loo(), path=out / "plots" / f"khat_{file_name}.png")
    except Exception as err:  # noqa: BLE001 - a report must not die on one plot
        warnings.warn(f"k-hat plot for {name} skipped: {err}", skip_file_prefixes=LIBRARY_FILES)
    settings = dict(getattr(fit, "model_settings", {}) or {})
    lines = [f"### `{name}` — {tree.attrs.get('method', '?')} "
             f"({', '.join(f'{k}={v}' for k, v in settings.items() if v is not None)})", "",
             "```", str(diag), "```", ""]
    post_vars = tree["posterior"].to_dataset().data_vars
    if "rho" in post_vars and post_vars["rho"].ndim == 2:     # (chain, draw): one scalar ρ
        rho = summary(fit, var_names=["rho"])
        lines += [f"Left/right residual correlation ρ (posterior mean, {interval_label()} "
                  "interval):", "", markdown_table(rho), ""]
    if "rho_spatial" in post_vars and post_vars["rho_spatial"].ndim == 2:
        rho_s = summary(fit, var_names=["rho_spatial"])
        lines += [f"CAR spatial parameter ρ_s over the ROI graph (posterior mean, "
                  f"{interval_label()} interval):", "", markdown_table(rho_s), ""]
    if lead and hits is not None:
        lines += [f"Top associations (posterior mean, {interval_label()} interval):", "",
                  markdown_table(hits.head(top)), ""]
    return lines
