# %% [markdown]
# # ABIDE I FreeSurfer: multi-view factors of volume, thickness and area, site as a confounder
#
# `MultiViewFactor` (exact Gibbs) on 1035 ABIDE I subjects (505 autism, 530 controls, 20
# sites) with three standardised views: `volume` (33 aseg structures; summary totals, vessel,
# hypointensity and choroid rows removed), `thickness` and `area` (68 Desikan–Killiany regions
# each, global means removed). Two fits: **without covariates**, and with **site** (19 one-hot
# columns) as covariates inside the model, so site effects are estimated jointly with the
# factors and their uncertainty propagates. Diagnosis, age and site are never used to find the
# factors; they are read against the posterior afterwards (per-draw statistics → 95%
# intervals). Finally, **out-of-sample prediction of diagnosis**: factors of held-out
# subjects from `fit.predict`, a logistic regression on them, cross-validated AUC against
# logistic regressions on the raw features and on PCA scores.
#
# Data: `case_studies/data/abide_freesurfer/` (ABIDE I, FreeSurfer 6; **CC BY-NC-SA —
# non-commercial**; see `SOURCE.md` there; kept out of the installed package).
#
# **Size.** `BAYESIMG_NOTEBOOK_SIZE=ci` (CI and the committed notebook) keeps 450 subjects
# (the two fits use the first 300, so their compiled sampler serves the 3 folds' training
# sets of 300 too), 12 features per view, K = 3 and 2 chains × (100 + 100) draws — a check
# that the analysis runs, not a result. The README's numbers come from the full size (the default:
# K = 10, everything, 2 × (600 + 400) draws for the two fits, 5 folds of 2 × (300 + 200)
# draws), which also writes `results/`.

# %%
import json
import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegressionCV
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import bayesimg as bi
from bayesimg.atomic import write_text_atomic
from bayesimg.models.factor import outputs as fo
from bayesimg.report import factor_plots as fp
from bayesimg.report.summary import top_loadings

CI = os.environ.get("BAYESIMG_NOTEBOOK_SIZE", "full") == "ci"
DATA = Path("..") / "data" / "abide_freesurfer"
OUT = Path("results")
K = 3 if CI else 10
GIBBS = dict(method="gibbs", chains=2, seed=1, progress=False,
             **(dict(warmup=100, draws=100) if CI else dict(warmup=600, draws=400)))
CV_GIBBS = {**GIBBS, **(dict(warmup=100, draws=100) if CI else dict(warmup=300, draws=200))}
N_FOLDS = 3 if CI else 5
GLOBAL = ("Vol", "eTIV", "MeanThickness", "WhiteSurfArea", "hypointensities", "vessel",
          "Optic-Chiasm", "5th-Ventricle", "choroid")


def saved(name):
    """Figures are written to results/ at full size only."""
    return None if CI else OUT / name


print("size:", "ci" if CI else "full", "| K =", K, "|", GIBBS)

# %% [markdown]
# ## Data


# %%
def read_fs(name):
    t = pd.read_csv(DATA / name, sep="\t", index_col=0)
    t = t[[c for c in t.columns if not any(g in c for g in GLOBAL)]]
    return t.iloc[:, :6] if CI else t          # CI: 6 per table (12 per view, 6 volumes)


tables = {"volume": read_fs("aseg_table.tsv"),
          "thickness": read_fs("lh.aparc_table_thickness.tsv").join(
              read_fs("rh.aparc_table_thickness.tsv")),
          "area": read_fs("lh.aparc_table_area.tsv").join(read_fs("rh.aparc_table_area.tsv"))}
pheno = pd.read_csv(DATA / "Phenotypic_V1_0b_preprocessed1.csv").set_index("FILE_ID")
pheno = pheno.loc[pheno.index.intersection(tables["volume"].index)]
if CI:
    pheno = pheno.sample(450, random_state=0)
labels = pd.DataFrame({"diagnosis": np.where(pheno["DX_GROUP"] == 1, "autism", "control"),
                       "age": pheno["AGE_AT_SCAN"].astype(float),
                       "sex": np.where(pheno["SEX"] == 1, "M", "F"),
                       "site": pheno["SITE_ID"].astype(str)}, index=pheno.index)
tables = {v: t.loc[labels.index] for v, t in tables.items()}
fitted = labels.index[:300] if CI else labels.index          # subjects of the two fits
sites = pd.get_dummies(labels.loc[fitted, "site"], drop_first=True, dtype=float)
fit_tables = {v: t.loc[fitted] for v, t in tables.items()}
plain = bi.data.make_views(fit_tables, labels=labels.loc[fitted], name="abide_fs")
adjusted = bi.data.make_views(fit_tables, labels=labels.loc[fitted], covariates=sites,
                              name="abide_fs_site")
out = {"n_subjects": plain.n_subjects, "views": {v.name: v.n_features for v in plain.views},
       "n_sites": int(labels.loc[fitted, "site"].nunique()),
       "diagnosis_counts": labels.loc[fitted, "diagnosis"].value_counts().to_dict()}
plain

# %% [markdown]
# ## 1–2. Two fits: without covariates, and with site inside the model
# Per factor: η² on site, correlation with age, and the autism − control difference in SD
# units, each with a 95% interval over posterior draws (the sign of a factor is arbitrary).


# %%
def eta2(values, groups):
    grand = values.mean()
    between = sum(np.sum(groups == g) * (values[groups == g].mean() - grand) ** 2
                  for g in np.unique(groups))
    return float(between / np.sum((values - grand) ** 2))


def associations(fit, labels, active):
    Z = fit.posterior["Z"].values
    Z = Z.reshape((-1,) + Z.shape[2:])                                 # (S, n, K)
    lab = labels.loc[fit.posterior["sample"].values]
    dx = lab["diagnosis"].to_numpy() == "autism"
    site, age = lab["site"].to_numpy(), lab["age"].to_numpy()
    zbar = Z.mean(0)
    table = {}
    for k in active:
        d = (Z[:, dx, k].mean(1) - Z[:, ~dx, k].mean(1)) / Z[:, :, k].std(1)
        r_age = np.array([np.corrcoef(Z[s, :, k], age)[0, 1] for s in range(Z.shape[0])])
        table[f"F{k + 1}"] = {
            "eta2_site": round(eta2(zbar[:, k], site), 3),
            "corr_age": [round(float(x), 3) for x in (r_age.mean(),
                                                      *np.quantile(r_age, [0.025, 0.975]))],
            "autism_minus_control_sd": [round(float(x), 3) for x in (
                d.mean(), *np.quantile(d, [0.025, 0.975]))]}
    return table


fits, ves = {}, {}
for name, data in (("no_covariates", plain), ("site_adjusted", adjusted)):
    fit = fits[name] = bi.fit(bi.models.MultiViewFactor(K), data, **GIBBS)
    align = json.loads(fit.tree.attrs["alignment"])
    active = align["active_factors"]
    ve = ves[name] = fo.variance_explained(fit, data, n_draws=100)
    res = out[name] = {
        "timings": fit.timings,
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
pd.DataFrame({name: out[name]["r2_total_percent"] for name in fits}).rename_axis("R² total %")

# %%
rows = {(name, f): {"η² site": a["eta2_site"], "r age": a["corr_age"][0],
                    "r age 95%": f"[{a['corr_age'][1]:.2f}, {a['corr_age'][2]:.2f}]",
                    "autism − control (SD)": a["autism_minus_control_sd"][0],
                    "95%": f"[{a['autism_minus_control_sd'][1]:.2f}, "
                           f"{a['autism_minus_control_sd'][2]:.2f}]"}
        for name in fits for f, a in out[name]["factors"].items()}
pd.DataFrame(rows).T.rename_axis(["fit", "factor"])

# %% [markdown]
# Variance explained (site-adjusted fit), and the most site-related factor against the most
# diagnosis-related one, coloured by site and by diagnosis:

# %%
figures = {}
for name in fits:
    res = out[name]
    site_f = max(res["factors"], key=lambda f: res["factors"][f]["eta2_site"])
    dx_f = max(res["factors"], key=lambda f: abs(res["factors"][f]["autism_minus_control_sd"][0]))
    active_names = list(res["factors"])
    figures[name] = (
        fp.plot_variance_explained(ves[name], factors=active_names,
                                   path=saved(f"variance_explained_{name}.png")),
        fp.plot_factor_scatter(fits[name], labels["site"].rename("site"), x=site_f, y=dx_f,
                               path=saved(f"factors_by_site_{name}.png")),
        fp.plot_factor_scatter(fits[name], labels["diagnosis"].rename("diagnosis"), x=site_f,
                               y=dx_f, path=saved(f"factors_by_diagnosis_{name}.png")))
figures["site_adjusted"][0]

# %%
figures["no_covariates"][1]

# %%
figures["site_adjusted"][2]

# %% [markdown]
# ## 3. Predicting diagnosis for subjects the fit never saw
# Stratified K-fold cross-validation over subjects. In each fold the factor model (no
# covariates) is fitted to the training subjects only, standardised on them; `fit.predict`
# gives the factors of the training **and** held-out subjects by the same map (the posterior
# mean over draws of E[z | the subject's views]; held-out subjects' views are put on the
# training scale by `predict`). A logistic regression (L2, penalty chosen by inner CV) is
# trained on the training subjects' factors and scored on the held-out ones. Baselines, trained
# and scored on the same folds: logistic regression on all raw features (standardised), and on
# the first K principal components of the training subjects' features. AUC is pooled over the
# out-of-fold predictions (and given per fold). Diagnosis is never seen by the factor model.

# %%
y = (labels["diagnosis"] == "autism").to_numpy().astype(int)
raw = pd.concat([t.add_prefix(f"{v}:") for v, t in tables.items()], axis=1).to_numpy(float)
folds = StratifiedKFold(N_FOLDS, shuffle=True, random_state=0)


def logistic():
    return make_pipeline(StandardScaler(), LogisticRegressionCV(Cs=10, cv=5, max_iter=2000,
                                                                scoring="roc_auc",
                                                                l1_ratios=(0.0,)))


def factor_scores(fit, subset):
    return fit.predict(subset).predictions_summary["Z_mean"].values


scores = {m: np.zeros(len(y)) for m in ("factors", "raw_features", "pca")}
per_fold = {m: [] for m in scores}
fold_rhat = []
warnings.filterwarnings("ignore", category=FutureWarning, module="sklearn")
for train_idx, test_idx in folds.split(raw, y):
    train_v = bi.data.make_views({v: t.iloc[train_idx] for v, t in tables.items()},
                                 name="abide_cv_train")
    test_v = bi.data.make_views({v: t.iloc[test_idx] for v, t in tables.items()},
                                name="abide_cv_test")
    with warnings.catch_warnings():   # each fold's convergence is reported below instead
        warnings.simplefilter("ignore", bi.errors.ConvergenceWarning)
        cv_fit = bi.fit(bi.models.MultiViewFactor(K), train_v, **CV_GIBBS)
    fold_rhat.append(round(float(cv_fit.diagnose().max_rhat), 3))
    features = {
        "factors": (factor_scores(cv_fit, train_v), factor_scores(cv_fit, test_v)),
        "raw_features": (raw[train_idx], raw[test_idx])}
    pca = make_pipeline(StandardScaler(), PCA(K)).fit(raw[train_idx])
    features["pca"] = (pca.transform(raw[train_idx]), pca.transform(raw[test_idx]))
    for m, (x_train, x_test) in features.items():
        p = logistic().fit(x_train, y[train_idx]).predict_proba(x_test)[:, 1]
        scores[m][test_idx] = p
        per_fold[m].append(roc_auc_score(y[test_idx], p))
auc = pd.DataFrame({"AUC (pooled out-of-fold)": {m: roc_auc_score(y, s) for m, s in scores.items()},
                    "AUC per fold, mean": {m: np.mean(v) for m, v in per_fold.items()},
                    "per fold, sd": {m: np.std(v, ddof=1) for m, v in per_fold.items()},
                    "features": {"factors": K, "raw_features": raw.shape[1], "pca": K}})
out["diagnosis_prediction"] = {"folds": N_FOLDS, "cv_gibbs": {k: v for k, v in CV_GIBBS.items()
                                                              if k != "progress"},
                               "auc": auc.round(3).to_dict(orient="index"),
                               "max_rhat_per_fold": fold_rhat}
print("max R-hat of each fold's factor fit:", fold_rhat)
auc.round(3)

# %%
if not CI:
    write_text_atomic(OUT / "results.json", json.dumps(out, indent=1, default=str))
