"""Does ARD's number of active factors match the data?  Held-out likelihood on TCGA breast.

Data: the bundled TCGA breast training set (``case_studies/data/breast_tcga``:
mRNA, miRNA, protein; read only).  10% of the observed entries of every view
are withheld at random (seed 0) and every fit sees the rest.

Runs merge into ``--out`` by K, so K values can be added one invocation at a time.

* ARD: ``MultiViewFactor(K_max)`` (default priors), its number of active factors
  (variance share > 1% in some view, :mod:`bayesimg.models.factor.align`);
* held-out check: fits with K in ``--ks`` (the ARD count included), each scored
  by the log pointwise predictive density of the withheld entries,
  Σ_entries log (1/S) Σ_s N(y | ψ_s, 1/τ_s), per entry.

ARD "matches the data" when the held-out density stops improving at about
the number of factors ARD keeps: beyond it, extra factors add nothing held out.

    python benchmarks/factor_ard_heldout.py --out benchmarks/results/factor_ard_heldout.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.special import logsumexp

HERE = Path(__file__).resolve().parent
DATA = HERE.parent / "case_studies" / "data" / "breast_tcga"


def _load():
    from bayesimg.data import make_views

    def rd(name):
        return pd.read_csv(DATA / name, index_col=0)

    return make_views({"mrna": rd("train_mrna.csv"), "mirna": rd("train_mirna.csv"),
                       "protein": rd("train_protein.csv")}, name="tcga_train")


def _withhold(data, frac: float, seed: int):
    """Copy of ``data`` with ``frac`` of each view's observed entries set to NaN, and the
    withheld (view, rows, cols, values)."""
    import dataclasses
    rng = np.random.default_rng(seed)
    views, held = [], []
    for v in data.views:
        vals = v.values.copy()
        r, c = np.nonzero(~np.isnan(vals))
        pick = rng.random(r.size) < frac
        held.append((v.name, r[pick], c[pick], vals[r[pick], c[pick]]))
        vals[r[pick], c[pick]] = np.nan
        views.append(dataclasses.replace(v, values=vals))
    return dataclasses.replace(data, views=tuple(views)), held


def _heldout_lpd(fit, held, n_draws: int = 200) -> float:
    post = fit.posterior
    Z = post["Z"].values.reshape((-1,) + post["Z"].shape[2:])
    idx = np.linspace(0, Z.shape[0] - 1, min(n_draws, Z.shape[0])).round().astype(int)
    Z = Z[idx]
    total, count = 0.0, 0
    for v, r, c, y in held:
        W = post[f"W_{v}"].values.reshape((-1,) + post[f"W_{v}"].shape[2:])[idx]
        mu = post[f"mu_{v}"].values.reshape(-1, post[f"mu_{v}"].shape[-1])[idx]
        tau = post[f"tau_{v}"].values.reshape(-1, post[f"tau_{v}"].shape[-1])[idx]
        psi = np.einsum("sek,sek->se", Z[:, r], W[:, c]) + mu[:, c]
        lp = 0.5 * np.log(tau[:, c] / (2 * np.pi)) - 0.5 * tau[:, c] * (y[None] - psi) ** 2
        total += float(np.sum(logsumexp(lp, axis=0) - np.log(lp.shape[0])))
        count += y.size
    return total / count


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--k-max", type=int, default=10)
    ap.add_argument("--ks", type=int, nargs="+", default=[2, 4, 6, 8])
    ap.add_argument("--warmup", type=int, default=300)
    ap.add_argument("--draws", type=int, default=200)
    ap.add_argument("--out", default=str(HERE / "results" / "factor_ard_heldout.json"))
    args = ap.parse_args(argv)
    warnings.simplefilter("ignore")
    sys.path.insert(0, str(HERE))
    from _common import write_json

    import bayesimg
    from bayesimg.models import MultiViewFactor

    data, held = _withhold(_load(), 0.1, 0)
    out = Path(args.out)
    earlier = json.loads(out.read_text()).get("runs", []) if out.exists() else []
    runs = []
    for K in [args.k_max] + [k for k in args.ks if k != args.k_max]:
        t0 = time.process_time()
        fit = bayesimg.fit(MultiViewFactor(K), data, method="gibbs", chains=2,
                           warmup=args.warmup, draws=args.draws, seed=1, progress=False)
        align = json.loads(fit.tree.attrs["alignment"])
        runs.append({"K": K, "n_active": align["n_active"],
                     "heldout_lpd_per_entry": _heldout_lpd(fit, held),
                     "cpu_s": time.process_time() - t0,
                     "convergence_summary": align.get("convergence_summary")})
        print(json.dumps(runs[-1]), flush=True)
        # written after every fit, so a run cut short keeps what it measured
        ks = {r["K"] for r in runs}
        done = sorted(runs + [r for r in earlier if r["K"] not in ks], key=lambda r: r["K"])
        best = max(done, key=lambda r: r["heldout_lpd_per_entry"])
        write_json(args.out, {
            "benchmark": "factor_ard_heldout", "data": "TCGA breast training set (bundled)",
            "withheld": "10% of observed entries per view, seed 0",
            "settings": {"chains": 2, "warmup": args.warmup, "draws": args.draws},
            "runs": done, "k_max": done[-1]["K"],
            "ard_n_active_at_k_max": done[-1]["n_active"],
            "best_heldout_K": best["K"],
            "note": "2-core machine shared with other jobs; CPU seconds include compilation"})


if __name__ == "__main__":
    main()
