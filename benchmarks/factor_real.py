"""Multi-view factors on real data: bayesimg beside mofapy2 and MOFA-FLEX.

Data sets (bundled under ``case_studies/data``, read only):

* ``tcga``: the TCGA breast training set, 150 tumours × mRNA (200), miRNA (184),
  protein (142); labels: PAM50 subtype (4 classes);
* ``abide``: ABIDE I FreeSurfer, 1035 subjects × volume (33 aseg structures),
  thickness (68 regions), area (68 regions) with the global summaries removed as in
  ``case_studies/abide_factors``; labels: diagnosis (autism / control).

Every feature is standardised over its observed entries; then 10% of the observed
entries of every view are withheld at random (mask seed 0, the same for every method
and seed).  Each method is fitted to the rest, in a fresh subprocess running its
driver in ``benchmarks/peers/`` (the peers in their own virtual environments, never
dependencies of bayesimg), with K factors (15 for TCGA as in its case study, 10 for
ABIDE), at settings where it has converged *by its own criterion*:

* bayesimg ``MultiViewFactor`` (exact Gibbs, 2 chains): the model's own verdict on
  the identified quantities (``convergence_summary``: R-hat ≤ 1.01 and ESS ≥ 400 for
  the factor subspace, then for every active factor's variance shares);
* mofapy2 (MOFA+, variational Bayes): relative ELBO change below its "fast"
  threshold on consecutive checks, within ``iter`` iterations;
* MOFA-FLEX (Pyro SVI): its own early stopping on the ELBO.

Per method and seed (3 seeds): CPU and wall seconds of the fit inside the driver
(imports excluded; for bayesimg compilation is included, with the persistent
compilation cache as a user has it), peak resident memory of the driver process,
5-fold stratified cross-validated accuracy of a logistic regression of the labels on
the posterior-mean factors, RMSE of the predictive mean on the withheld entries and
coverage of its 95% interval.  Across seeds: stability, the mean over seed pairs of
the cosines of the principal angles between the spans of the *active* factors'
scores (a factor is active when it explains > 1% of some view, computed the same way
for every method from its posterior-mean Z and W), over min(active) angles.

Baselines: PCA with K components on the mean-imputed data (accuracy), the feature
mean (imputation RMSE).  Ratios are named for what they compare:
``cpu_ratio_mofapy2_over_bayesimg`` (> 1: bayesimg uses less CPU).  Target (issue
17): ≥ 3× less CPU than mofapy2 on every set, with equal or better accuracy and
imputation.

    python benchmarks/factor_real.py --sets tcga --out benchmarks/results/factor_real.json
    python benchmarks/factor_real.py --sets abide --methods mofaflex
"""

from __future__ import annotations

import argparse
import datetime as _dt
import itertools
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
DATA = HERE.parent / "case_studies" / "data"
PEERS = HERE / "peers"
PYTHONS = {"bayesimg": sys.executable,
           "mofapy2": "/work/peers/mofapy2/bin/python",
           "mofaflex": "/work/peers/mofaflex/bin/python"}
ACTIVE_R2 = 0.01
ABIDE_GLOBAL = ("Vol", "eTIV", "MeanThickness", "WhiteSurfArea", "hypointensities", "vessel",
                "Optic-Chiasm", "5th-Ventricle", "choroid")


def load_set(name: str) -> tuple[dict[str, pd.DataFrame], pd.Series, int]:
    """(view tables, labels, K) of a bundled data set, subjects aligned."""
    if name == "tcga":
        d = DATA / "breast_tcga"
        tables = {v: pd.read_csv(d / f"train_{v}.csv", index_col=0)
                  for v in ("mrna", "mirna", "protein")}
        labels = pd.read_csv(d / "train_subtype.csv", index_col=0)["subtype"]
        return tables, labels.loc[tables["mrna"].index], 15
    if name == "abide":
        d = DATA / "abide_freesurfer"

        def fs(f):
            t = pd.read_csv(d / f, sep="\t", index_col=0)
            return t[[c for c in t.columns if not any(g in c for g in ABIDE_GLOBAL)]]

        tables = {"volume": fs("aseg_table.tsv"),
                  "thickness": fs("lh.aparc_table_thickness.tsv").join(
                      fs("rh.aparc_table_thickness.tsv")),
                  "area": fs("lh.aparc_table_area.tsv").join(fs("rh.aparc_table_area.tsv"))}
        pheno = pd.read_csv(d / "Phenotypic_V1_0b_preprocessed1.csv").set_index("FILE_ID")
        keep = pheno.index.intersection(tables["volume"].index)
        labels = pd.Series(np.where(pheno.loc[keep, "DX_GROUP"] == 1, "autism", "control"),
                           index=keep, name="diagnosis")
        return {v: t.loc[keep] for v, t in tables.items()}, labels, 10
    raise ValueError(f"unknown data set {name!r}: use tcga or abide")


def prepare(tables: dict[str, pd.DataFrame], frac: float = 0.1, seed: int = 0):
    """Standardised views with ``frac`` of each view's observed entries withheld.

    Returns (views with NaN at withheld entries, withheld {view: (rows, cols, values)}).
    """
    rng = np.random.default_rng(seed)
    views, held = {}, {}
    for v, t in tables.items():
        x = t.to_numpy(dtype=float)
        sd = np.nanstd(x, axis=0)
        x = x[:, sd > 0]
        x = (x - np.nanmean(x, axis=0)) / np.nanstd(x, axis=0)
        r, c = np.nonzero(~np.isnan(x))
        pick = rng.random(r.size) < frac
        held[v] = (r[pick], c[pick], x[r[pick], c[pick]])
        x = x.copy()
        x[r[pick], c[pick]] = np.nan
        views[v] = x
    return views, held


def run_driver(method: str, npz: str, seed: int, K: int, settings: dict, env=None) -> dict:
    """Run ``benchmarks/peers/factor_<method>.py`` in its own Python; its RESULT line."""
    script = PEERS / f"factor_{method}.py"
    args = [str(settings[k]) for k in DRIVER_ARGS[method]]
    out = npz + f".{method}.{seed}.npz"
    cmd = [PYTHONS[method], str(script), npz, out, str(seed), str(K), *args]
    if method == "bayesimg" and env is None:   # this tree first, whatever the cwd
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            [str(HERE.parent)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep)
                                  if p]))
    # cwd: the temporary folder, where MOFA-FLEX writes its model file
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env,
                          cwd=os.path.dirname(npz))
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT"):
            res = json.loads(line[len("RESULT"):])
            res["arrays"] = dict(np.load(out))
            return res
    raise RuntimeError(f"{method} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")


DRIVER_ARGS = {"bayesimg": ("warmup", "draws", "chains", "thin"),
               "mofapy2": ("iter", "convergence_mode"),
               "mofaflex": ("max_epochs",)}
DEFAULT_SETTINGS = {"bayesimg": {"warmup": 1000, "draws": 500, "chains": 2, "thin": 1},
                    "mofapy2": {"iter": 10000, "convergence_mode": "fast"},
                    "mofaflex": {"max_epochs": 10000}}


def r2_per_factor(views: dict[str, np.ndarray], Z: np.ndarray, W: dict[str, np.ndarray]
                  ) -> np.ndarray:
    """(view, factor) R² of z_k w_kᵀ on the observed (training) entries of each view."""
    out = np.zeros((len(views), Z.shape[1]))
    for m, (v, x) in enumerate(views.items()):
        obs = ~np.isnan(x)
        y = np.where(obs, x, 0.0)
        ss = np.sum(y ** 2)
        for k in range(Z.shape[1]):
            fit = np.outer(Z[:, k], W[v][:, k])
            out[m, k] = 1.0 - np.sum(np.where(obs, y - fit, 0.0) ** 2) / ss
    return out


def label_accuracy(X: np.ndarray, labels: np.ndarray, folds: int = 5) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000))
    cv = StratifiedKFold(folds, shuffle=True, random_state=0)
    return float(np.mean(cross_val_score(model, X, labels, cv=cv)))


def subspace_agreement(Za: np.ndarray, Zb: np.ndarray) -> float:
    """Mean cosine of the principal angles between the column spans (centred)."""
    r = min(Za.shape[1], Zb.shape[1])
    if r == 0:
        return float("nan")
    qa, _ = np.linalg.qr(Za - Za.mean(0))
    qb, _ = np.linalg.qr(Zb - Zb.mean(0))
    sv = np.linalg.svd(qa.T @ qb, compute_uv=False)
    return float(np.mean(np.clip(sv[:r], 0.0, 1.0)))


def score(res: dict, views, held, labels) -> dict:
    a = res.pop("arrays")
    Z = a["Z"]
    W = {v: a[f"W_{v}"] for v in views}
    r2 = r2_per_factor(views, Z, W)
    active = np.flatnonzero((r2 > ACTIVE_R2).any(axis=0))
    err, hit, tot = 0.0, 0, 0
    for v, (_, _, y) in held.items():
        mean, lo, hi = a[f"mean_{v}"], a[f"lower_{v}"], a[f"upper_{v}"]
        err += float(np.sum((mean - y) ** 2))
        hit += int(np.sum((lo <= y) & (y <= hi)))
        tot += y.size
    res.update({"accuracy_5fold": label_accuracy(Z, labels),
                "impute_rmse": (err / tot) ** 0.5, "impute_coverage95": hit / tot,
                "n_active_r2": int(active.size), "active": active.tolist(),
                "r2_total": [float(x) for x in r2.sum(axis=1)]})
    res["_Z_active"] = Z[:, active]
    return res


def baselines(views, held, labels, K: int) -> dict:
    from sklearn.decomposition import PCA
    X = np.hstack([np.where(np.isnan(x), 0.0, x) for x in views.values()])  # mean = 0
    pcs = PCA(K, random_state=0).fit_transform(X)
    sq = sum(float(np.sum(y ** 2)) for _, _, y in held.values())
    n = sum(y.size for _, _, y in held.values())
    return {"pca_accuracy_5fold": label_accuracy(pcs, labels),
            "mean_impute_rmse": (sq / n) ** 0.5}


def run_set(name: str, methods: list[str], seeds: list[int], settings: dict) -> dict:
    tables, labels, K = load_set(name)
    views, held = prepare(tables)
    y = labels.to_numpy()
    entry = {"set": name, "n_subjects": len(y), "K": K,
             "views": {v: int(x.shape[1]) for v, x in views.items()},
             "missing_fraction": {v: float(np.isnan(x).mean()) for v, x in views.items()},
             "label_counts": labels.value_counts().to_dict(),
             "withheld_entries": int(sum(h[2].size for h in held.values())),
             "baselines": baselines(views, held, y, K), "methods": {}}
    with tempfile.TemporaryDirectory(prefix="factor-real-") as tmp:
        npz = os.path.join(tmp, f"{name}.npz")
        arrays = {f"view_{v}": x for v, x in views.items()}
        for v, (r, c, _) in held.items():
            arrays[f"held_rows_{v}"], arrays[f"held_cols_{v}"] = r, c
        np.savez(npz, **arrays)
        for method in methods:
            runs, Zs = [], []
            for seed in seeds:
                res = score(run_driver(method, npz, seed, K, settings[method]), views, held, y)
                Zs.append(res.pop("_Z_active"))
                res["seed"] = seed
                runs.append(res)
                print(name, method, json.dumps({k: res[k] for k in (
                    "cpu_s", "wall_s", "peak_rss_mb", "accuracy_5fold", "impute_rmse",
                    "impute_coverage95", "converged")}), flush=True)
            pairs = [subspace_agreement(a, b) for a, b in itertools.combinations(Zs, 2)]
            entry["methods"][method] = {
                "settings": settings[method], "runs": runs,
                "seed_stability": float(np.mean(pairs)) if pairs else None,
                **{f"median_{k}": float(np.median([r[k] for r in runs])) for k in (
                    "cpu_s", "wall_s", "peak_rss_mb", "accuracy_5fold", "impute_rmse",
                    "impute_coverage95")},
                "all_converged": all(bool(r["converged"]) for r in runs)}
    return entry


def ratios(entry: dict) -> dict:
    m = entry["methods"]
    out = {}
    if "bayesimg" not in m:
        return out
    ours = m["bayesimg"]
    for peer in ("mofapy2", "mofaflex"):
        if peer not in m:
            continue
        p = m[peer]
        out[f"cpu_ratio_{peer}_over_bayesimg"] = p["median_cpu_s"] / ours["median_cpu_s"]
        out[f"wall_ratio_{peer}_over_bayesimg"] = p["median_wall_s"] / ours["median_wall_s"]
        out[f"peak_memory_ratio_bayesimg_over_{peer}"] = (ours["median_peak_rss_mb"]
                                                          / p["median_peak_rss_mb"])
        out[f"accuracy_difference_bayesimg_minus_{peer}"] = (ours["median_accuracy_5fold"]
                                                             - p["median_accuracy_5fold"])
        out[f"impute_rmse_ratio_bayesimg_over_{peer}"] = (ours["median_impute_rmse"]
                                                         / p["median_impute_rmse"])
    if "mofapy2" in m:
        p = m["mofapy2"]
        out["target_met"] = {
            "cpu_3x_less_than_mofapy2": out["cpu_ratio_mofapy2_over_bayesimg"] >= 3.0,
            "accuracy_at_least_mofapy2": (ours["median_accuracy_5fold"]
                                          >= p["median_accuracy_5fold"]),
            "impute_rmse_at_most_mofapy2": (ours["median_impute_rmse"]
                                            <= p["median_impute_rmse"]),
            "bayesimg_converged_every_seed": ours["all_converged"],
            "mofapy2_converged_every_seed": p["all_converged"]}
    return out


def plot(results: dict, path: Path) -> None:
    from matplotlib.figure import Figure
    sets = [e for e in results["sets"].values()]
    methods = ["bayesimg", "mofapy2", "mofaflex"]
    panels = (("median_cpu_s", "CPU seconds (fit)", True),
              ("median_peak_rss_mb", "peak memory (MB)", True),
              ("median_accuracy_5fold", "5-fold label accuracy", False),
              ("median_impute_rmse", "imputation RMSE (SD units)", False),
              ("median_impute_coverage95", "95% interval coverage", False),
              ("seed_stability", "subspace agreement across seeds", False))
    fig = Figure(figsize=(13, 6.5))
    width = 0.8 / len(methods)
    for i, (key, title, log) in enumerate(panels):
        ax = fig.add_subplot(2, 3, i + 1)
        for j, meth in enumerate(methods):
            xs = [s for s, e in enumerate(sets) if meth in e["methods"]]
            ys = [sets[s]["methods"][meth][key] or np.nan for s in xs]
            ax.bar(np.array(xs) + (j - 1) * width, ys, width, label=meth, color=f"C{j}")
        if key == "median_accuracy_5fold":
            ax.plot(np.arange(len(sets)), [e["baselines"]["pca_accuracy_5fold"] for e in sets],
                    "k_", ms=25, label="PCA")
        if key == "median_impute_rmse":
            ax.plot(np.arange(len(sets)), [e["baselines"]["mean_impute_rmse"] for e in sets],
                    "k_", ms=25, label="feature mean")
        if key == "median_impute_coverage95":
            ax.axhline(0.95, color="grey", lw=0.6)
        ax.set_xticks(np.arange(len(sets)), [e["set"] for e in sets])
        ax.set(title=title, yscale="log" if log else "linear")
        ax.legend(fontsize=6)
    seeds = {m: max(len(e["methods"][m]["runs"]) for e in sets if m in e["methods"])
             for m in methods if any(m in e["methods"] for e in sets)}
    fig.suptitle("Multi-view factors on real data: medians over seeds ("
                 + ", ".join(f"{m} {k}" for m, k in seeds.items())
                 + "); 2-core CPU machine shared by 6 workers", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def _versions(python: str, pkgs: list[str]) -> dict:
    code = ("import json, importlib.metadata as m\nout = {}\nfor p in "
            f"{pkgs!r}:\n    try: out[p] = m.version(p)\n    except Exception: pass\n"
            "print(json.dumps(out))")
    try:
        return json.loads(subprocess.run([python, "-c", code], capture_output=True,
                                         text=True, check=True).stdout)
    except (subprocess.CalledProcessError, json.JSONDecodeError, FileNotFoundError):
        return {}


def merge(out: Path, others: list[Path]) -> None:
    """Add the methods of other result files to ``out`` (same data sets), recompute ratios."""
    sys.path.insert(0, str(HERE))
    from _common import write_json
    results = json.loads(out.read_text())
    for other in others:
        extra = json.loads(other.read_text())
        for name, entry in extra["sets"].items():
            results["sets"][name]["methods"].update(entry["methods"])
            results["sets"][name].setdefault("merged_from", []).append(
                {"methods": list(entry["methods"]), "recorded": entry["recorded"],
                 "load_average_at_start": extra.get("load_average_at_start"),
                 "load_average_at_end": extra.get("machine", {}).get("load_average_at_end")})
    for entry in results["sets"].values():
        entry.update(ratios(entry))
    write_json(out, {k: v for k, v in results.items() if k not in ("peak_rss_mb",)})
    plot(json.loads(out.read_text()), out.with_suffix(".png"))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sets", nargs="+", default=["tcga", "abide"])
    ap.add_argument("--methods", nargs="+", default=["bayesimg", "mofapy2", "mofaflex"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--settings", default="{}",
                    help='JSON overrides, e.g. {"bayesimg": {"warmup": 2000}}')
    ap.add_argument("--out", default=str(HERE / "results" / "factor_real.json"))
    ap.add_argument("--merge", nargs="*", default=[],
                    help="result files of separate runs (e.g. one method) to merge into --out")
    args = ap.parse_args(argv)
    settings = {m: dict(DEFAULT_SETTINGS[m]) for m in DEFAULT_SETTINGS}
    for m, s in json.loads(args.settings).items():
        settings[m].update(s)
    out = Path(args.out)
    results = json.loads(out.read_text()) if out.exists() else {"sets": {}}
    load_start = os.getloadavg()
    if args.merge:
        merge(out, [Path(p) for p in args.merge])
        return
    for name in args.sets:
        entry = run_set(name, args.methods, args.seeds, settings)
        old = results["sets"].get(name, {}).get("methods", {})
        entry["methods"] = {**{k: v for k, v in old.items() if k not in entry["methods"]},
                            **entry["methods"]}
        entry.update(ratios(entry))
        entry["recorded"] = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
        results["sets"][name] = entry
        results["versions"] = {m: _versions(PYTHONS[m], pkgs) for m, pkgs in (
            ("bayesimg", ["bayesimg", "jax", "numpyro", "numpy"]),
            ("mofapy2", ["mofapy2", "numpy"]), ("mofaflex", ["mofaflex", "torch", "pyro-ppl"]))}
        sys.path.insert(0, str(HERE))
        from _common import write_json
        results["load_average_at_start"] = load_start
        results["note"] = ("2-core CPU machine shared by 6 workers while measuring: wall times "
                           "are inflated; CPU seconds are the comparison")
        write_json(out, {k: v for k, v in results.items() if k not in ("machine",
                                                                        "peak_rss_mb")})
        results = json.loads(out.read_text())
    plot(results, out.with_suffix(".png"))


if __name__ == "__main__":
    main()
