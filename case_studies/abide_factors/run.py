"""ABIDE I FreeSurfer: multi-view factors of subcortical volumes, cortical thickness and area.

Data: ``case_studies/data/abide_freesurfer`` (ABIDE I, FreeSurfer 6; 1035 subjects,
20 sites; CC BY-NC-SA, see SOURCE.md there).  Views: ``volume`` (aseg structures,
without ventricle-free summary/total rows), ``thickness`` and ``area`` (Desikan–Killiany,
both hemispheres, without the global means).

Site is a strong confounder of FreeSurfer measures (scanner, protocol, and each site's
own age range).  Two fits of ``MultiViewFactor(K=10)`` by exact Gibbs:

1. no covariates — how much of each factor is site (η² of the factor on site);
2. site (one-hot, 19 columns) as covariates inside the model — the factors are then
   site-adjusted, with the uncertainty of the adjustment in the posterior.

Each factor is then tested against diagnosis (autism vs control: standardised mean
difference with a 95% interval over posterior draws), age (correlation) and site (η²).

Run from the repository root: ``python case_studies/abide_factors/run.py``; writes
``case_studies/abide_factors/results/`` atomically.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

import bayesimg
from bayesimg.atomic import write_text_atomic
from bayesimg.data import make_views
from bayesimg.models import MultiViewFactor
from bayesimg.models.factor import outputs as fo
from bayesimg.report import factor_plots as fp
from bayesimg.report.summary import top_loadings

HERE = Path(__file__).resolve().parent
DATA = HERE.parent / "data" / "abide_freesurfer"
OUT = HERE / "results"
GIBBS = dict(method="gibbs", chains=2, warmup=600, draws=400, seed=1, progress=False)
GLOBAL = ("Vol", "eTIV", "MeanThickness", "WhiteSurfArea", "hypointensities", "vessel",
          "Optic-Chiasm", "5th-Ventricle", "choroid")


def read_fs(name):
    t = pd.read_csv(DATA / name, sep="\t", index_col=0)
    return t[[c for c in t.columns if not any(g in c for g in GLOBAL)]]


def load():
    volume = read_fs("aseg_table.tsv")
    thickness = read_fs("lh.aparc_table_thickness.tsv").join(
        read_fs("rh.aparc_table_thickness.tsv"))
    area = read_fs("lh.aparc_table_area.tsv").join(read_fs("rh.aparc_table_area.tsv"))
    pheno = pd.read_csv(DATA / "Phenotypic_V1_0b_preprocessed1.csv").set_index("FILE_ID")
    pheno = pheno.loc[pheno.index.intersection(volume.index)]
    labels = pd.DataFrame({"diagnosis": np.where(pheno["DX_GROUP"] == 1, "autism", "control"),
                           "age": pheno["AGE_AT_SCAN"].astype(float),
                           "sex": np.where(pheno["SEX"] == 1, "M", "F"),
                           "site": pheno["SITE_ID"].astype(str)}, index=pheno.index)
    return {"volume": volume, "thickness": thickness, "area": area}, labels


def eta2(values, groups):
    grand = values.mean()
    between = sum(np.sum(groups == g) * (values[groups == g].mean() - grand) ** 2
                  for g in np.unique(groups))
    return float(between / np.sum((values - grand) ** 2))


def associations(fit, labels: pd.DataFrame, active) -> dict:
    """Per factor: η² on site, correlation with age, autism − control standardised
    difference (posterior mean and 95% interval over draws)."""
    Z = fit.posterior["Z"].values
    Z = Z.reshape((-1,) + Z.shape[2:])                                 # (S, n, K)
    lab = labels.loc[fit.posterior["sample"].values]
    dx = lab["diagnosis"].to_numpy() == "autism"
    site = lab["site"].to_numpy()
    age = lab["age"].to_numpy()
    zbar = Z.mean(0)
    out = {}
    for k in active:
        d = (Z[:, dx, k].mean(1) - Z[:, ~dx, k].mean(1)) / Z[:, :, k].std(1)
        r_age = np.array([np.corrcoef(Z[s, :, k], age)[0, 1] for s in range(Z.shape[0])])
        out[f"F{k + 1}"] = {
            "eta2_site": round(eta2(zbar[:, k], site), 3),
            "corr_age": [round(float(x), 3) for x in (r_age.mean(),
                                                      *np.quantile(r_age, [0.025, 0.975]))],
            "autism_minus_control_sd": [round(float(x), 3) for x in (
                d.mean(), *np.quantile(d, [0.025, 0.975]))]}
    return out


def main() -> dict:
    t0 = time.perf_counter()
    OUT.mkdir(parents=True, exist_ok=True)
    tables, labels = load()
    sites = pd.get_dummies(labels["site"], drop_first=True, dtype=float)
    plain = make_views(tables, labels=labels, name="abide_fs")
    adjusted = make_views(tables, labels=labels, covariates=sites, name="abide_fs_site")
    out: dict = {"n_subjects": plain.n_subjects,
                 "views": {v.name: v.n_features for v in plain.views},
                 "n_sites": int(labels["site"].nunique()),
                 "diagnosis_counts": labels["diagnosis"].value_counts().to_dict()}
    for name, data in (("no_covariates", plain), ("site_adjusted", adjusted)):
        fit = bayesimg.fit(MultiViewFactor(10), data, **GIBBS)
        align = json.loads(fit.tree.attrs["alignment"])
        active = align["active_factors"]
        ve = fo.variance_explained(fit, data, n_draws=100)
        res = {"timings": fit.timings,
               "alignment": {k: align.get(k) for k in ("n_active", "subspace_agreement",
                                                       "rotated_factors", "factor_agreement")},
               "r2_total_percent": {v: round(100 * float(ve["r2_total_mean"].sel(view=v)), 1)
                                    for v in data.view_names},
               "r2_percent": {v: {f"F{k + 1}": round(100 * float(
                   ve["r2_mean"].sel(view=v, factor=f"F{k + 1}")), 1) for k in active}
                   for v in data.view_names},
               "factors": associations(fit, labels, active)}
        res["top_features"] = {f"F{k + 1}": {v: list(top_loadings(fit, v, k, n=4).index)
                                             for v in data.view_names} for k in active[:5]}
        out[name] = res
        fp.plot_variance_explained(ve, factors=[f"F{k + 1}" for k in active],
                                   path=OUT / f"variance_explained_{name}.png")
        site_f = max(res["factors"], key=lambda f: res["factors"][f]["eta2_site"])
        dx_f = max(res["factors"],
                   key=lambda f: abs(res["factors"][f]["autism_minus_control_sd"][0]))
        fp.plot_factor_scatter(fit, labels["site"].rename("site"), x=site_f, y=dx_f,
                               path=OUT / f"factors_by_site_{name}.png")
        fp.plot_factor_scatter(fit, labels["diagnosis"].rename("diagnosis"), x=site_f,
                               y=dx_f, path=OUT / f"factors_by_diagnosis_{name}.png")
    out["wall_seconds"] = round(time.perf_counter() - t0, 1)
    write_text_atomic(OUT / "results.json", json.dumps(out, indent=1, default=str))
    return out


if __name__ == "__main__":
    print(json.dumps(main(), indent=1, default=str))
