"""Where do the chains of ``BNMix(3, structure="order")`` disagree: labels or orders?

Issue 16's diagnosis, on the benchmark design of ``benchmarks/bnmix.py`` (K = 3, 25
Gaussian nodes, N = 450, seeds 0-5), 2 chains x (300 + 300) per fit, two fits per seed:

* ``free``: the option as users run it (labels sampled).  Recorded per chain: ARI of the
  chain's consensus labels against the truth, ARI *between* the two chains' labels (do
  they find the same partition?);
* ``fixed``: every label known and equal to the truth (``known_labels``), so only the
  orders, DAGs and parameters move: whatever disagreement is left comes from the order
  chain within a fixed partition.

For each fit: max over clusters and pairs of the spread between chains of the skeleton
edge probability (``max_abs_dP_skeleton``), its Monte Carlo floor for independent draws
of the same length, and the largest R-hat of the skeleton indicators.

Run: ``python benchmarks/bnmix_order_diagnosis.py
--out benchmarks/results/bnmix_order_diagnosis.json
[--seeds 0,1,2] [--relocation-moves N]``.
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

import numpy as np
from _common import write_json

import bayesimg
from bayesimg import mcmc_stats
from bayesimg.data.simulate_bnmix import simulate_bnmix
from bayesimg.metrics import adjusted_rand_index
from bayesimg.models import BNMix
from bayesimg.models.bnmix import cluster_labels
from bayesimg.models.bnmix.identified import chain_agreement
from bayesimg.report import _tree

LOAD_AT_START = os.getloadavg()


def diagnose(seed: int, mode: str, relocation_moves: int | None) -> dict:
    data, truth = simulate_bnmix(n=450, n_nodes=25, n_clusters=3, seed=seed)
    model = BNMix(3, structure="order", relocation_moves=relocation_moves,
                  known_labels="cluster" if mode == "fixed" else None)
    t0 = time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = bayesimg.fit(model, data, method="gibbs", chains=2, warmup=300, draws=300,
                           seed=1, progress=False)
    cpu = time.process_time() - t0
    post = fit.posterior
    per_chain = post["membership"].mean("draw").transpose("chain", ..., "cluster").values
    labels = per_chain.argmax(-1)
    agree = chain_agreement(post, 0.0)
    rhat = mcmc_stats.convergence_table(_tree.flatten_var(post, "skeleton").values,
                                        stats=("rhat",))["rhat"]
    return {"seed": seed, "mode": mode, "cpu_seconds": cpu,
            "ARI_per_chain": [adjusted_rand_index(truth.labels, lab) for lab in labels],
            "ARI_between_chains": adjusted_rand_index(labels[0], labels[1]),
            "ARI": adjusted_rand_index(truth.labels, cluster_labels(fit)),
            "max_abs_dP_skeleton": agree["max_abs_dP_skeleton"],
            "iid_floor_max_abs_dP_skeleton": agree["iid_floor_max_abs_dP_skeleton"],
            "max_rhat_skeleton": float(np.nanmax(rhat))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/results/bnmix_order_diagnosis.json")
    parser.add_argument("--seeds", default="0,1,2,3,4,5")
    parser.add_argument("--modes", default="free,fixed")
    parser.add_argument("--relocation-moves", type=int, default=None,
                        help="exact node relocations per sweep (default: the model's, p)")
    args = parser.parse_args()
    rows = []
    for seed in (int(s) for s in args.seeds.split(",")):
        for mode in args.modes.split(","):
            rows.append(diagnose(seed, mode, args.relocation_moves))
            print({k: (round(v, 3) if isinstance(v, float) else v) for k, v in rows[-1].items()},
                  flush=True)
            write_json(args.out, {"rows": rows, "relocation_moves": args.relocation_moves,
                                  "load_average_at_start": LOAD_AT_START,
                                  "note": "2-core machine shared by 6 workers"})


if __name__ == "__main__":
    main()
