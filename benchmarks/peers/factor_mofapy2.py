"""mofapy2 (MOFA+) driver for benchmarks/factor_real.py; runs in mofapy2's own venv.

    python factor_mofapy2.py IN.npz OUT.npz SEED K ITER CONVERGENCE_MODE

Same input/output contract as ``factor_bayesimg.py``.  Written from mofapy2's
documented entry point (set_data_options / set_data_matrix / set_model_options /
set_train_options / build / run / impute).  The predictive mean of a held entry is
its intercept (the feature mean mofapy2 removes) plus E[z]ᵀE[w]; the 95% interval is
mean ± 1.96 sd with the predictive variance of ``impute(uncertainty=True)``.
Convergence: mofapy2's own ELBO criterion fired before ITER iterations.
"""

import contextlib
import io
import json
import resource
import sys
import time
import warnings

import numpy as np

warnings.simplefilter("ignore")
from mofapy2.run.entry_point import entry_point  # noqa: E402

src, dst = sys.argv[1], sys.argv[2]
seed, K, iters = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
mode = sys.argv[6]
d = np.load(src)
names = [k[len("view_"):] for k in d.files if k.startswith("view_")]
log = io.StringIO()
c0, t0 = time.process_time(), time.perf_counter()
with contextlib.redirect_stdout(log):
    ent = entry_point()
    ent.set_data_options(scale_views=False)
    ent.set_data_matrix([[d[f"view_{v}"]] for v in names],
                        likelihoods=["gaussian"] * len(names), views_names=names)
    ent.set_model_options(factors=K)
    ent.set_train_options(iter=iters, convergence_mode=mode, seed=seed, verbose=False,
                          quiet=True)
    ent.build()
    ent.run()
    ent.impute(uncertainty=True, mask_outliers=False)
cpu, wall = time.process_time() - c0, time.perf_counter() - t0
Z = np.asarray(ent.model.nodes["Z"].getExpectations()["E"])
W = [np.asarray(w["E"]) for w in ent.model.nodes["W"].getExpectations()]
out = {"Z": Z}
for m, v in enumerate(names):
    out[f"W_{v}"] = W[m]
    r, c = d[f"held_rows_{v}"], d[f"held_cols_{v}"]
    mean = ent.imputed_data["mean"][m][r, c] + np.asarray(ent.intercepts[m][0])[c]
    sd = np.sqrt(np.maximum(ent.imputed_data["variance"][m][r, c], 0.0))
    out[f"mean_{v}"] = mean
    out[f"lower_{v}"], out[f"upper_{v}"] = mean - 1.96 * sd, mean + 1.96 * sd
np.savez(dst, **out)
elbo = np.asarray(ent.model.getTrainingStats()["elbo"], dtype=float)
print("RESULT" + json.dumps({
    "cpu_s": cpu, "wall_s": wall,
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "settings": {"iter": iters, "convergence_mode": mode, "K": K},
    "iterations": int(elbo.shape[0]),
    "elbo_evaluations": int(np.sum(~np.isnan(elbo))),
    "converged": "Converged!" in log.getvalue(),
    "n_active": int(Z.shape[1])}))
