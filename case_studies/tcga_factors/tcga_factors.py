# %% [markdown]
# # TCGA breast cancer: Bayesian multi-view factor analysis of mRNA, miRNA and protein
#
# `MultiViewFactor` (exact Gibbs, ARD over factors and views) on the 150 training tumours of
# mixOmics' `breast.TCGA` — mRNA (200 genes), miRNA (184) and RPPA protein (142), each view
# standardised. The 70 test tumours have **no protein view at all**: `transform` projects them
# onto the fitted factors from mRNA + miRNA alone (standardised with the *training* centres and
# scales). PAM50 subtypes are never used in fitting; they are read against the factors
# afterwards.
#
# Data: `case_studies/data/breast_tcga/` (TCGA open access via mixOmics 6.3.2, GPL ≥ 2; see
# `SOURCE.md` there). Nothing is downloaded.
#
# **Size.** `BAYESIMG_NOTEBOOK_SIZE=ci` (how CI and the committed notebook run it) keeps 30
# features per view, K = 4 and 2 chains × (100 + 100) draws — a check that the analysis runs,
# not a result. The numbers quoted in `README.md` come from the full size (the default when the
# variable is unset: K = 10, every feature, 2 × (1000 + 500) draws, ≈ 3 min on a loaded 2-core
# CPU), which also writes `results/` (results.json and figures):
#
#     python scripts/build_notebooks.py --size full case_studies/tcga_factors/tcga_factors.py

# %%
import json
import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.cluster.vq import kmeans2

import bayesimg as bi
from bayesimg.atomic import write_text_atomic
from bayesimg.metrics import adjusted_rand_index
from bayesimg.models.factor import outputs as fo
from bayesimg.report import factor_plots as fp
from bayesimg.report.summary import top_loadings
from bayesimg.workflows import select_k

CI = os.environ.get("BAYESIMG_NOTEBOOK_SIZE", "full") == "ci"
DATA = Path("..") / "data" / "breast_tcga"
OUT = Path("results")
K = 4 if CI else 10
N_FEATURES = 30 if CI else None           # per view (None: all)
GIBBS = dict(method="gibbs", chains=2, seed=1, progress=False,
             **(dict(warmup=100, draws=100) if CI else dict(warmup=1000, draws=500)))
K_GRID = [2, 4] if CI else [2, 4, 6, 10]
K_GIBBS = GIBBS if CI else {**GIBBS, "warmup": 500, "draws": 300}
N_PROJ = 50 if CI else 300            # posterior draws used by transform


def saved(name):
    """Figures are written to results/ at full size only."""
    return None if CI else OUT / name


def read(name):
    table = pd.read_csv(DATA / name, index_col=0)
    return table if N_FEATURES is None or "subtype" in name else table.iloc[:, :N_FEATURES]


print("size:", "ci" if CI else "full", "| K =", K, "|", GIBBS)

# %% [markdown]
# ## Data: training views, and test views standardised with the training centres

# %%
sub_train = read("train_subtype.csv")["subtype"]
sub_test = read("test_subtype.csv")["subtype"]
train = bi.data.make_views({"mrna": read("train_mrna.csv"), "mirna": read("train_mirna.csv"),
                            "protein": read("train_protein.csv")},
                           labels=pd.DataFrame({"subtype": sub_train}), name="tcga_train")
prep = train.preprocessing
test_tables = {}
for v in ("mrna", "mirna"):
    t = read(f"test_{v}.csv")[list(train.view(v).feature_names)]
    test_tables[v] = (t - prep["centers"][v]) / prep["scales"][v]
test = bi.data.make_views(test_tables, labels=pd.DataFrame({"subtype": sub_test}),
                          standardize=False, name="tcga_test")
y_train = sub_train.loc[train.subjects].to_numpy()
y_test = sub_test.loc[test.subjects].to_numpy()
train

# %% [markdown]
# ## 1. The fit: how many factors, in which views
# ARD decides which factors are active and in which views; rotation-aware diagnostics check
# that the chains agree on the subspace and on each factor (up to sign and order).

# %%
fit = bi.fit(bi.models.MultiViewFactor(K), train, **GIBBS)
align = json.loads(fit.tree.attrs["alignment"])
active = align["active_factors"]
names = [f"F{k + 1}" for k in active]
print(f"active factors: {len(active)} of {K}; subspace agreement "
      f"{align.get('subspace_agreement')}; rotated: {align.get('rotated_factors')}")
fit

# %% [markdown]
# Variance explained per view × factor (posterior mean, 95% interval in each cell): shared
# factors load on several views, view-specific ones on one.

# %%
ve = fo.variance_explained(fit, train, n_draws=200)
fp.plot_variance_explained(ve, factors=names, path=saved("variance_explained.png"))

# %% [markdown]
# ## 2. Factors against PAM50 (never used in fitting)
# η² is the share of a factor's variance explained by subtype. k-means (k = 3) on the
# posterior-mean factors is scored by ARI against the k-means-on-the-mRNA-view floor, and a
# nearest-centroid classifier is trained on the training factors.


# %%
def eta2(values, groups):
    """Share of the variance of ``values`` explained by the group means."""
    grand = values.mean()
    between = sum(np.sum(groups == g) * (values[groups == g].mean() - grand) ** 2
                  for g in np.unique(groups))
    return float(between / np.sum((values - grand) ** 2))


def nearest_centroid(train_x, train_y, test_x):
    classes = np.unique(train_y)
    cents = np.stack([train_x[train_y == c].mean(0) for c in classes])
    return classes[np.argmin(((test_x[:, None, :] - cents[None]) ** 2).sum(-1), axis=1)]


def best_kmeans_ari(x, truth, seeds=20):
    """k-means (k = 3), best within-cluster sum of squares over ``seeds`` starts."""
    best = None
    for s in range(seeds):
        cent, lab = kmeans2(x, 3, seed=s, minit="++")
        wss = sum(np.sum((x[lab == k] - cent[k]) ** 2) for k in range(3))
        if best is None or wss < best[0]:
            best = (wss, lab)
    return adjusted_rand_index(truth, best[1])


Z = fit.posterior["Z"].mean(("chain", "draw")).values[:, active]
out = {"n_train": train.n_subjects, "n_test": test.n_subjects,
       "views": {v.name: v.n_features for v in train.views}, "timings": fit.timings,
       "alignment": {k: align.get(k) for k in ("n_active", "active_factors",
                                               "subspace_agreement", "factor_agreement",
                                               "rotated_factors")}}
out["r2_percent"] = {v: {f: [round(100 * float(ve[n].sel(view=v, factor=f)), 1)
                             for n in ("r2_mean", "r2_lower", "r2_upper")] for f in names}
                     for v in train.view_names}
out["r2_total_percent"] = {v: round(100 * float(ve["r2_total_mean"].sel(view=v)), 1)
                           for v in train.view_names}
out["eta2_subtype_train"] = {f: round(eta2(Z[:, i], y_train), 3) for i, f in enumerate(names)}
out["kmeans3_ari_factors_train"] = round(best_kmeans_ari(Z, y_train), 3)
out["kmeans3_ari_mrna_view_train"] = round(best_kmeans_ari(
    np.nan_to_num(train.view("mrna").values), y_train), 3)
out["nearest_centroid_accuracy_train"] = round(
    float(np.mean(nearest_centroid(Z, y_train, Z) == y_train)), 3)
pd.DataFrame({"R² total %": out["r2_total_percent"]}).T

# %%
pd.Series(out["eta2_subtype_train"], name="η² on PAM50 (train)").to_frame().T

# %% [markdown]
# ## 3. Test tumours without their protein view
# `transform` gives the factors of the 70 test tumours from mRNA + miRNA, with intervals; the
# classifier trained on the training factors is scored on them. Missing protein should show up
# as wider intervals, not as false precision.

# %%
proj = fo.transform(fit, test, n_draws=N_PROJ)
Zt = proj["Z_mean"].values[:, active]
pred_test = nearest_centroid(Z, y_train, Zt)
out["eta2_subtype_test_projected"] = {f: round(eta2(Zt[:, i], y_test), 3)
                                      for i, f in enumerate(names)}
out["nearest_centroid_accuracy_test_projected"] = round(float(np.mean(pred_test == y_test)), 3)
out["test_confusion"] = pd.crosstab(pd.Series(y_test, name="PAM50"),
                                    pd.Series(pred_test, name="predicted")).to_dict()
full_views = fo.transform(fit, train, n_draws=N_PROJ)
out["mean_interval_width_Z"] = {
    "train_all_views": round(float((full_views["Z_upper"] - full_views["Z_lower"])
                                   .values[:, active].mean()), 3),
    "test_no_protein": round(float((proj["Z_upper"] - proj["Z_lower"])
                                   .values[:, active].mean()), 3)}
print("nearest-centroid accuracy, test tumours projected without protein:",
      out["nearest_centroid_accuracy_test_projected"], "| mean 95% interval width of Z:",
      out["mean_interval_width_Z"])
pd.crosstab(pd.Series(y_test, name="PAM50"), pd.Series(pred_test, name="predicted"))

# %%
best = sorted(out["eta2_subtype_train"], key=out["eta2_subtype_train"].get)[-2:][::-1]
fp.plot_factor_scatter(None, pd.Series(y_test, index=test.subjects, name="PAM50"),
                       x=best[0], y=best[1], Z=proj["Z"],
                       path=saved("factors_test_projected.png"))

# %% [markdown]
# The training tumours on the same two factors, and the proteins that load on the factor most
# associated with subtype:

# %%
fp.plot_factor_scatter(fit, pd.Series(y_train, index=train.subjects, name="PAM50"),
                       x=best[0], y=best[1], path=saved("factors_train.png"))

# %%
out["top_features"] = {f: {v: list(top_loadings(fit, v, f, n=5).index)
                           for v in train.view_names} for f in names[:4]}
fp.plot_top_loadings(fit, "protein", best[0], path=saved("top_protein_loadings.png"))

# %% [markdown]
# ## 4. K by z-integrated PSIS-LOO (leave one tumour out)

# %%
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    k_table, _ = select_k(train, K_GRID, **K_GIBBS)
out["k_selection"] = k_table[["elpd", "elpd_diff", "dse", "n_active"]].round(1).to_dict()
k_table[["elpd", "se", "elpd_diff", "dse", "n_active"]]

# %%
if not CI:
    write_text_atomic(OUT / "results.json", json.dumps(out, indent=1, default=str))
{k: out[k] for k in ("kmeans3_ari_factors_train", "kmeans3_ari_mrna_view_train",
                     "nearest_centroid_accuracy_train",
                     "nearest_centroid_accuracy_test_projected")}
