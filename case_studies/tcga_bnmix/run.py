"""TCGA breast cancer: subtypes and per-subtype networks with a Bayesian-network mixture.

Data: ``case_studies/data/breast_tcga`` (mixOmics ``breast.TCGA`` training set: 150
tumours, mRNA + RPPA protein, PAM50 subtype; see SOURCE.md there).

1. Unsupervised: BNMix (K = 3, Gibbs with order moves) on a fixed panel of 10
   proteins and 8 genes chosen *before* looking at the results (hormone-receptor,
   HER2 and proliferation markers); ARI/NMI against PAM50, beside k-means (on the
   whole mRNA view and on the panel) and a Gaussian mixture on the panel.
2. K chosen by PSIS-LOO (one-SE rule) and BIC over K = 2, 3, 4.
3. Per-subtype networks: BNMix with the PAM50 labels known (``known_labels``),
   edges with posterior inclusion probability P(|b| > 0.1) ≥ 0.8 per subtype.

Run from the repository root: ``python case_studies/tcga_bnmix/run.py``; writes
``case_studies/tcga_bnmix/results/results.json`` (atomically) and prints a summary.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

import bayesimg
from bayesimg.data import make_views
from bayesimg.metrics import adjusted_rand_index, normalized_mutual_info
from bayesimg.models import BNMix
from bayesimg.models.bnmix import cluster_labels, edge_probabilities
from bayesimg.workflows import select_n_clusters

HERE = Path(__file__).resolve().parent
DATA = HERE.parent / "data" / "breast_tcga"
PROTEINS = ["ER-alpha", "PR", "GATA3", "AR", "HER2", "HER2_pY1248", "EGFR", "Cyclin_B1",
            "INPP4B", "E-Cadherin"]
GENES = ["CCNA2", "E2F1", "ASPM", "KRT8", "STC2", "ZNF552", "MAP3K1", "LMO4"]
GIBBS = dict(method="gibbs", chains=2, warmup=500, draws=500, seed=1, progress=False)


def load():
    read = lambda name: pd.read_csv(DATA / name, index_col=0)  # noqa: E731
    mrna, protein = read("train_mrna.csv"), read("train_protein.csv")
    subtype = read("train_subtype.csv")["subtype"]
    return mrna, protein, subtype


def main() -> dict:
    from sklearn.cluster import KMeans
    from sklearn.mixture import GaussianMixture

    t0 = time.perf_counter()
    mrna, protein, subtype = load()
    labels = pd.DataFrame({"subtype": subtype})
    panel = make_views({"protein": protein[PROTEINS], "mrna": mrna[GENES]}, labels=labels,
                       name="tcga_breast_panel")
    truth = subtype.loc[panel.subjects].values
    out: dict = {"n_subjects": panel.n_subjects, "panel": {"protein": PROTEINS, "mrna": GENES},
                 "subtype_counts": subtype.value_counts().to_dict()}

    # 1. unsupervised clustering
    fit = bayesimg.fit(BNMix(3), panel, **GIBBS)
    pred = cluster_labels(fit)
    scores = {"bnmix_gibbs_K3": (adjusted_rand_index(truth, pred),
                                 normalized_mutual_info(truth, pred))}
    Xp = np.concatenate([v.values for v in panel.views], axis=1)
    Xm = (mrna - mrna.mean()) / mrna.std(ddof=0)
    for name, X in (("kmeans_mrna_view", Xm.loc[panel.subjects].values),
                    ("kmeans_panel", Xp)):
        km = KMeans(3, n_init=20, random_state=0).fit_predict(X)
        scores[name] = (adjusted_rand_index(truth, km), normalized_mutual_info(truth, km))
    gm = GaussianMixture(3, covariance_type="full", n_init=10, random_state=0).fit(Xp).predict(Xp)
    scores["gmm_panel"] = (adjusted_rand_index(truth, gm), normalized_mutual_info(truth, gm))
    out["clustering"] = {k: {"ARI": a, "NMI": b} for k, (a, b) in scores.items()}
    crosstab = pd.crosstab(pd.Series(truth, name="PAM50"),
                           pd.Series(fit.posterior["cluster"].values[pred], name="cluster"))
    out["bnmix_crosstab"] = {str(k): {str(c): int(v) for c, v in row.items()}
                             for k, row in crosstab.iterrows()}

    # 2. choosing K
    fits = {2: bayesimg.fit(BNMix(2), panel, **GIBBS), 3: fit,
            4: bayesimg.fit(BNMix(4), panel, **GIBBS)}
    chosen, table = select_n_clusters(fits, ic="loo")
    out["k_selection"] = {"chosen_K": chosen, "table": {
        str(i): {c: float(r[c]) for c in ("elpd", "se", "elpd_diff", "dse", "bic", "occupied")}
        for i, r in table.iterrows()}}

    # 3. per-subtype networks with known labels
    sup = bayesimg.fit(BNMix(3, known_labels="subtype"), panel, **GIBBS)
    probs = edge_probabilities(sup)
    weights = sup.posterior["B"].mean(("chain", "draw"))
    nets = {}
    for c in probs["cluster"].values:
        p = probs.sel(cluster=c).to_pandas()
        w = weights.sel(cluster=c).to_pandas()
        edges = [(str(i), str(j), float(p.loc[i, j]), float(w.loc[i, j]))
                 for i in p.index for j in p.columns if p.loc[i, j] >= 0.8]
        nets[str(c)] = sorted(edges, key=lambda e: -abs(e[3]))
    out["subtype_networks"] = {c: [{"parent": a, "node": b, "prob": round(pr, 3),
                                    "weight": round(wt, 3)} for a, b, pr, wt in e]
                               for c, e in nets.items()}
    sets = {c: {(e[0], e[1]) for e in es} for c, es in nets.items()}
    out["edges_specific_to_one_subtype"] = {
        c: sorted(f"{a} -> {b}" for a, b in s - set().union(*(sets[o] for o in sets if o != c)))
        for c, s in sets.items()}
    out["order_used"] = [str(panel_node) for panel_node in
                         np.asarray(BNMix.node_names(panel))[np.argsort(
                             sup.posterior["position"].values[0, -1])]]
    out["runtime_seconds"] = time.perf_counter() - t0
    out["settings"] = {"gibbs": GIBBS, "edge_threshold": 0.1, "edge_probability_cut": 0.8}

    results = HERE / "results"
    results.mkdir(exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=results, suffix=".json")
    with os.fdopen(fd, "w") as fh:
        json.dump(out, fh, indent=1)
    os.replace(tmp, results / "results.json")
    return out


if __name__ == "__main__":
    res = main()
    print(json.dumps({k: res[k] for k in ("clustering", "bnmix_crosstab", "k_selection",
                                          "edges_specific_to_one_subtype")}, indent=1))
    print("runtime", round(res["runtime_seconds"]), "s")
