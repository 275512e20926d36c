"""Which factor quantities fail to converge on real data, and what identification fixes.

On the TCGA breast set of ``factor_real.py`` (same standardisation and withheld mask),
one exact-Gibbs fit of ``MultiViewFactor(15)`` at the case study's length
(2 chains × (1000 + 500)).  From its draws, before identification (sign/permutation
matching only, the previous alignment) and after it (orthogonal Procrustes onto the
varimax reference, :mod:`bayesimg.models.factor.identify`), per active factor: the
smallest ESS (min of bulk and tail) and largest R-hat of its variance shares in the
views where it is on.  Beside them, quantities no rotation changes, which bound what
any post-hoc identification can reach: each feature's communality Σ_k w²_jk and
signal entries z_iᵀw_j (the first 40 subjects × features of each view).

    python benchmarks/factor_identification.py
"""

from __future__ import annotations

import json
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def _worst(x: np.ndarray) -> tuple[float, float]:
    """(max R-hat, min ESS) over the trailing elements of x (C, S, ...)."""
    from bayesimg.mcmc_stats import convergence_table
    C, S = x.shape[:2]
    t = convergence_table(np.moveaxis(x.reshape(C, S, -1), -1, 0),
                          stats=("rhat", "ess_bulk", "ess_tail"))
    return float(np.nanmax(t["rhat"])), float(np.nanmin(np.fmin(t["ess_bulk"], t["ess_tail"])))


def _share_stats(samples, layout, identify: bool) -> list[dict]:
    from bayesimg.models.factor import align
    out, info = align._align(dict(samples), layout, 3, identify=identify)
    on = np.asarray(info["variance_share"]) > align.ACTIVE_SHARE
    rows = []
    for k in info["active_factors"]:
        views = np.flatnonzero(on[:, k])
        r, e = _worst(out["variance_share"][:, :, views, k])
        rows.append({"factor": f"F{k + 1}", "rhat": round(r, 3), "ess": round(e, 1)})
    return rows


def main() -> None:
    import factor_real as fr
    from _common import write_json

    import bayesimg
    from bayesimg.data import make_views
    from bayesimg.models import MultiViewFactor
    from bayesimg.models.factor import align

    warnings.simplefilter("ignore")
    load_start = os.getloadavg()
    tables, _, K = fr.load_set("tcga")
    views, _ = fr.prepare(tables)
    data = make_views({v: pd.DataFrame(x) for v, x in views.items()}, standardize=False,
                      drop_constant=False, name="tcga")
    model = MultiViewFactor(K)
    layout = model.layout(data)
    real = align.identify_draws
    align.identify_draws = lambda s, lay: dict(s)     # keep the sampler's own axes
    try:
        c0 = time.process_time()
        fit = bayesimg.fit(model, data, method="gibbs", chains=2, warmup=1000, draws=500,
                           seed=1, progress=False)
        cpu = time.process_time() - c0
    finally:
        align.identify_draws = real
    post = fit.posterior
    names = ["Z"] + [f"W_{v}" for v in layout.views] + [f"tau_{v}" for v in layout.views]
    samples = {n: np.asarray(post[n].values) for n in names}
    invariant = {}
    for v in layout.views:
        W = samples[f"W_{v}"]
        comm = (W**2).sum(-1)
        invariant[f"communality_{v}"] = dict(zip(("rhat", "ess"), _worst(comm), strict=True))
        sig = np.einsum("csnk,csdk->csnd", samples["Z"][:, :, :40], W[:, :, :40])
        invariant[f"signal_{v}"] = dict(zip(("rhat", "ess"), _worst(sig), strict=True))
    result = {"set": "tcga", "K": K, "chains": 2, "warmup": 1000, "draws": 500,
              "fit_cpu_s": cpu, "rotation_invariant": invariant,
              "sign_permutation_only": _share_stats(samples, layout, identify=False),
              "procrustes_identified": _share_stats(samples, layout, identify=True)}
    for key in ("sign_permutation_only", "procrustes_identified"):
        ess = [r["ess"] for r in result[key]]
        result[f"{key}_share_ess_min_median"] = [min(ess), float(np.median(ess))]
    result["load_average_at_start"] = load_start
    result["note"] = ("2-core CPU machine shared by 6 workers while measuring; "
                      "ESS and R-hat do not depend on the load")
    write_json(HERE / "results" / "factor_identification.json", result)
    print(json.dumps({k: v for k, v in result.items()
                      if k not in ("sign_permutation_only", "procrustes_identified")}, indent=1))


if __name__ == "__main__":
    main()
