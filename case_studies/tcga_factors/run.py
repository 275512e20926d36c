"""TCGA breast cancer: multi-view Bayesian factor analysis of mRNA, miRNA and protein.

Data: ``case_studies/data/breast_tcga`` (mixOmics ``breast.TCGA``: 150 training
tumours with mRNA (200 genes), miRNA (184) and RPPA protein (142); 70 test tumours
with mRNA and miRNA only; PAM50 subtypes; see SOURCE.md there).

1. ``MultiViewFactor(K=10)`` on the training set by exact Gibbs (2 chains): ARD decides
   how many factors are active and in which views; variance explained per view ×
   factor with 95% intervals; rotation-aware diagnostics.
2. Factors against PAM50 (never used in fitting): η² of each factor on subtype, k-means
   (k = 3) on the posterior-mean factors (ARI; the k-means-on-one-view floor is ≈ 0.45),
   and a nearest-centroid classifier trained on the training factors.
3. The test set's protein view is missing as a whole: ``transform`` projects the 70
   test tumours onto the fitted factors from mRNA + miRNA, with intervals, and the
   classifier is scored on them.
4. K checked by z-integrated PSIS-LOO over K = 2, 4, 6, 10.

Run from the repository root: ``python case_studies/tcga_factors/run.py``; writes
``case_studies/tcga_factors/results/`` (results.json and figures) atomically.
"""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.cluster.vq import kmeans2

import bayesimg
from bayesimg.atomic import write_text_atomic
from bayesimg.data import make_views
from bayesimg.metrics import adjusted_rand_index
from bayesimg.models import MultiViewFactor
from bayesimg.models.factor import outputs as fo
from bayesimg.report import factor_plots as fp
from bayesimg.report.summary import top_loadings
from bayesimg.workflows import select_k

HERE = Path(__file__).resolve().parent
DATA = HERE.parent / "data" / "breast_tcga"
OUT = HERE / "results"
GIBBS = dict(method="gibbs", chains=2, warmup=1000, draws=500, seed=1, progress=False)


def read(name):
    return pd.read_csv(DATA / name, index_col=0)


def eta2(values: np.ndarray, groups: np.ndarray) -> float:
    """Share of the variance of ``values`` explained by the group means."""
    grand = values.mean()
    between = sum(np.sum(groups == g) * (values[groups == g].mean() - grand) ** 2
                  for g in np.unique(groups))
    return float(between / np.sum((values - grand) ** 2))


def nearest_centroid(train_x, train_y, test_x):
    classes = np.unique(train_y)
    cents = np.stack([train_x[train_y == c].mean(0) for c in classes])
    d = ((test_x[:, None, :] - cents[None]) ** 2).sum(-1)
    return classes[np.argmin(d, axis=1)]


def best_kmeans_ari(x, truth, seeds=20):
    """k-means (k = 3), best within-cluster sum of squares over ``seeds`` starts."""
    best = None
    for s in range(seeds):
        cent, lab = kmeans2(x, 3, seed=s, minit="++")
        wss = sum(np.sum((x[lab == k] - cent[k]) ** 2) for k in range(3))
        if best is None or wss < best[0]:
            best = (wss, lab)
    return adjusted_rand_index(truth, best[1])


def main() -> dict:
    t0 = time.perf_counter()
    OUT.mkdir(parents=True, exist_ok=True)
    sub_train = read("train_subtype.csv")["subtype"]
    sub_test = read("test_subtype.csv")["subtype"]
    train = make_views({"mrna": read("train_mrna.csv"), "mirna": read("train_mirna.csv"),
                        "protein": read("train_protein.csv")},
                       labels=pd.DataFrame({"subtype": sub_train}), name="tcga_train")
    prep = train.preprocessing
    # the test set is standardised with the *training* centres and scales
    test_tables = {}
    for v in ("mrna", "mirna"):
        t = read(f"test_{v}.csv")[list(train.view(v).feature_names)]
        test_tables[v] = (t - prep["centers"][v]) / prep["scales"][v]
    test = make_views(test_tables, labels=pd.DataFrame({"subtype": sub_test}),
                      standardize=False, name="tcga_test")
    y_train = sub_train.loc[train.subjects].to_numpy()
    y_test = sub_test.loc[test.subjects].to_numpy()

    fit = bayesimg.fit(MultiViewFactor(10), train, **GIBBS)
    align = json.loads(fit.tree.attrs["alignment"])
    active = align["active_factors"]
    names = [f"F{k + 1}" for k in active]
    Z = fit.posterior["Z"].mean(("chain", "draw")).values[:, active]
    ve = fo.variance_explained(fit, train, n_draws=200)
    proj = fo.transform(fit, test, n_draws=300)
    Zt = proj["Z_mean"].values[:, active]

    out: dict = {"n_train": train.n_subjects, "n_test": test.n_subjects,
                 "views": {v.name: v.n_features for v in train.views},
                 "timings": fit.timings, "alignment": {
                     k: align.get(k) for k in ("n_active", "active_factors",
                                               "subspace_agreement", "factor_agreement",
                                               "rotated_factors")}}
    out["r2_percent"] = {
        v: {f: [round(100 * float(ve[n].sel(view=v, factor=f)), 1)
                for n in ("r2_mean", "r2_lower", "r2_upper")] for f in names}
        for v in train.view_names}
    out["r2_total_percent"] = {v: round(100 * float(ve["r2_total_mean"].sel(view=v)), 1)
                               for v in train.view_names}
    out["eta2_subtype_train"] = {f: round(eta2(Z[:, i], y_train), 3)
                                 for i, f in enumerate(names)}
    out["eta2_subtype_test_projected"] = {f: round(eta2(Zt[:, i], y_test), 3)
                                          for i, f in enumerate(names)}
    out["kmeans3_ari_factors_train"] = round(best_kmeans_ari(Z, y_train), 3)
    out["kmeans3_ari_mrna_view_train"] = round(best_kmeans_ari(
        np.nan_to_num(train.view("mrna").values), y_train), 3)
    pred_train = nearest_centroid(Z, y_train, Z)
    pred_test = nearest_centroid(Z, y_train, Zt)
    out["nearest_centroid_accuracy_train"] = round(float(np.mean(pred_train == y_train)), 3)
    out["nearest_centroid_accuracy_test_projected"] = round(float(np.mean(pred_test == y_test)),
                                                            3)
    out["test_confusion"] = pd.crosstab(pd.Series(y_test, name="PAM50"),
                                        pd.Series(pred_test, name="predicted")).to_dict()
    width_test = float((proj["Z_upper"] - proj["Z_lower"]).values[:, active].mean())
    full = fo.transform(fit, train, n_draws=300)
    width_train = float((full["Z_upper"] - full["Z_lower"]).values[:, active].mean())
    out["mean_interval_width_Z"] = {"train_all_views": round(width_train, 3),
                                    "test_no_protein": round(width_test, 3)}
    top = {}
    for f in names[:4]:
        top[f] = {v: list(top_loadings(fit, v, f, n=5).index) for v in train.view_names}
    out["top_features"] = top

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table, _ = select_k(train, [2, 4, 6, 10], **{**GIBBS, "warmup": 500, "draws": 300})
    out["k_selection"] = table[["elpd", "elpd_diff", "dse", "n_active"]].round(1).to_dict()

    fp.plot_variance_explained(ve, factors=names, path=OUT / "variance_explained.png")
    best = sorted(out["eta2_subtype_train"], key=out["eta2_subtype_train"].get)[-2:][::-1]
    fp.plot_factor_scatter(fit, pd.Series(y_train, index=train.subjects, name="PAM50"),
                           x=best[0], y=best[1], path=OUT / "factors_train.png")
    fp.plot_factor_scatter(None, pd.Series(y_test, index=test.subjects, name="PAM50"),
                           x=best[0], y=best[1], Z=proj["Z"],
                           path=OUT / "factors_test_projected.png")
    fp.plot_top_loadings(fit, "protein", best[0], path=OUT / "top_protein_loadings.png")
    out["wall_seconds"] = round(time.perf_counter() - t0, 1)
    write_text_atomic(OUT / "results.json", json.dumps(out, indent=1, default=str))
    return out


if __name__ == "__main__":
    print(json.dumps(main(), indent=1, default=str))
