"""MOFA-FLEX driver for benchmarks/factor_real.py; runs in MOFA-FLEX's own venv (CPU torch).

    python factor_mofaflex.py IN.npz OUT.npz SEED K MAX_EPOCHS

Same input/output contract as ``factor_bayesimg.py``.  Written from MOFA-FLEX's
documented options: its ``presets.MOFA`` model (horseshoe weights, Normal factors,
Normal likelihood, learning rate 0.05), on the CPU, one group.  Convergence: its own
early stopping on the training loss (``early_stopper_patience``) fired before
MAX_EPOCHS.  MOFA-FLEX centres every feature and divides each view by one scale
(the SD of the centred view); predictions are mapped back with the same centre and
scale.  Predictive variance of an entry under its mean-field posterior:
Σ_k (E[z²]E[w²] − E[z]²E[w]²) + noise variance, with the Normal likelihood's scale
1/dispersion; the 95% interval is mean ± 1.96 sd.
"""

import json
import logging
import resource
import sys
import time
import warnings

import numpy as np

warnings.simplefilter("ignore")
import anndata as ad  # noqa: E402
import mofaflex as mfl  # noqa: E402
import torch  # noqa: E402

logging.getLogger("mofaflex").setLevel(logging.WARNING)
src, dst = sys.argv[1], sys.argv[2]
seed, K, max_epochs = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
torch.set_num_threads(1)   # tiny matrices: one thread wastes least CPU
d = np.load(src)
names = [k[len("view_"):] for k in d.files if k.startswith("view_")]
views = {v: d[f"view_{v}"].astype(np.float32) for v in names}
n = next(iter(views.values())).shape[0]
obs = [f"s{i}" for i in range(n)]
data = {"group_1": {}}
for v, x in views.items():
    a = ad.AnnData(x)
    a.obs_names = obs
    a.var_names = [f"{v}_{j}" for j in range(x.shape[1])]
    data["group_1"][v] = a
model_opts, train_opts = mfl.presets.MOFA
model_opts = mfl.ModelOptions(**{**model_opts.__dict__, "n_factors": K})
train_opts = mfl.TrainingOptions(**{**train_opts.__dict__, "device": "cpu", "seed": seed,
                                    "max_epochs": max_epochs})
c0, t0 = time.process_time(), time.perf_counter()
model = mfl.MOFAFLEX(data, mfl.DataOptions(plot_data_overview=False), model_opts, train_opts)
cpu, wall = time.process_time() - c0, time.perf_counter() - t0
Z = model.get_factors(return_type="numpy")["group_1"]
Zsd = model.get_factors(return_type="numpy", moment="std")["group_1"]
W = model.get_weights(return_type="numpy")
Wsd = model.get_weights(return_type="numpy", moment="std")
disp = model.get_dispersion(return_type="numpy")
out = {"Z": Z}
for v in names:
    x = views[v].astype(float)
    centre = np.nanmean(x, axis=0)
    scale = np.sqrt(np.nanvar(x - centre))
    w, wsd = W[v].T, Wsd[v].T                                  # (D, K)
    out[f"W_{v}"] = w * scale
    r, c = d[f"held_rows_{v}"], d[f"held_cols_{v}"]
    mean = np.einsum("ek,ek->e", Z[r], w[c])
    var = (np.einsum("ek,ek->e", Z[r] ** 2 + Zsd[r] ** 2, w[c] ** 2 + wsd[c] ** 2)
           - np.einsum("ek,ek->e", Z[r] ** 2, w[c] ** 2) + 1.0 / np.asarray(disp[v])[c] ** 2)
    mean, sd = centre[c] + scale * mean, scale * np.sqrt(var)
    out[f"mean_{v}"] = mean
    out[f"lower_{v}"], out[f"upper_{v}"] = mean - 1.96 * sd, mean + 1.96 * sd
np.savez(dst, **out)
epochs = int(np.asarray(model.training_loss).shape[0])
print("RESULT" + json.dumps({
    "cpu_s": cpu, "wall_s": wall,
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "settings": {"max_epochs": max_epochs, "K": K, "preset": "MOFA", "lr": train_opts.lr,
                 "early_stopper_patience": train_opts.early_stopper_patience},
    "iterations": epochs, "converged": epochs < max_epochs, "n_active": int(Z.shape[1])}))
