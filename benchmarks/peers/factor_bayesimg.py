"""bayesimg driver for benchmarks/factor_real.py (run in a fresh process).

    python factor_bayesimg.py IN.npz OUT.npz SEED K WARMUP DRAWS CHAINS [THIN]

IN.npz holds ``view_<name>`` arrays (subjects × features, NaN = missing, already
standardised) and ``held_rows_<name>``/``held_cols_<name>`` (entries to impute).
OUT.npz receives the posterior-mean factors ``Z``, loadings ``W_<name>``, and for the
held entries the predictive mean and 95% interval; one ``RESULT{json}`` line on
stdout carries the timings, peak memory and the model's own convergence verdict.
"""

import json
import resource
import sys
import time
import warnings

import numpy as np
import pandas as pd

warnings.simplefilter("ignore")
import bayesimg  # noqa: E402
from bayesimg.data import make_views  # noqa: E402
from bayesimg.models import MultiViewFactor  # noqa: E402
from bayesimg.models.factor import outputs as fo  # noqa: E402
from bayesimg.report.diagnostics import diagnose  # noqa: E402

src, dst = sys.argv[1], sys.argv[2]
seed, K, warmup, draws, chains = map(int, sys.argv[3:8])
thin = int(sys.argv[8]) if len(sys.argv) > 8 else 1
d = np.load(src)
names = [k[len("view_"):] for k in d.files if k.startswith("view_")]
c0, t0 = time.process_time(), time.perf_counter()
tables = {v: pd.DataFrame(d[f"view_{v}"]) for v in names}
data = make_views(tables, standardize=False, drop_constant=False, name="real")
fit = bayesimg.fit(MultiViewFactor(K), data, method="gibbs", chains=chains, warmup=warmup,
                   draws=draws, thin=thin, seed=seed, progress=False)
cpu, wall = time.process_time() - c0, time.perf_counter() - t0
align = json.loads(fit.tree.attrs["alignment"])
imp = fo.impute(fit, data, n_draws=200, seed=seed)
out = {"Z": fit.posterior["Z"].values.mean((0, 1))}
for v in names:
    out[f"W_{v}"] = fit.posterior[f"W_{v}"].values.mean((0, 1))
    r, c = d[f"held_rows_{v}"], d[f"held_cols_{v}"]
    for q in ("mean", "lower", "upper"):
        out[f"{q}_{v}"] = imp[v][q].values[r, c]
np.savez(dst, **out)
summary = align.get("convergence_summary", "")
verdict = diagnose(fit)
print("RESULT" + json.dumps({
    "cpu_s": cpu, "wall_s": wall, "timings": fit.timings,
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "settings": {"chains": chains, "warmup": warmup, "draws": draws, "thin": thin, "K": K},
    "convergence_summary": summary,
    "subspace_converged": summary.startswith("factor subspace converged"),
    "identified_converged": summary.startswith("factor subspace converged")
    and "converged (worst R-hat" in summary,
    # the whole verdict: identified quantities and every other checked parameter
    "converged": summary.startswith("factor subspace converged")
    and "converged (worst R-hat" in summary and not verdict.problems,
    "diagnose_problems": verdict.problems, "max_rhat": verdict.max_rhat,
    "min_ess_bulk": verdict.min_ess_bulk, "min_ess_tail": verdict.min_ess_tail,
    "n_active": align.get("n_active"),
    "compilation_cache": bayesimg._jax_setup.compilation_cache_dir()}))
