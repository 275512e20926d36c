"""Same target as bgsmtr: our Gibbs kernel's posterior means of W match the R package's.

Runs only where a bgsmtr run and its data are at hand (never in CI, which has neither):

* ``BAYESIMG_BGSMTR_DATA``: the folder of bgsmtr's example CSVs (snp_data.csv,
  snp_groups.csv, brain_measures.csv);
* ``BAYESIMG_BGSMTR_RUN``: one or more folders (separated by ``os.pathsep``) written by
  ``benchmarks/peers/run_bgsmtr.R`` (e.g. by ``benchmarks/gsmtr_vs_bgsmtr.py``).

For each run our Gibbs sampler targets the same density (same λ, same preprocessing) and
the differences of posterior means, in units of their combined Monte Carlo standard
error, must look like N(0, 1) noise: mean z² below 1.5 and under 1% of |z| above 3
(0.27% expected).
"""

import os
from pathlib import Path

import numpy as np
import pytest

import bayesimg as bi
from bayesimg.data.bgsmtr_layout import load_bgsmtr_layout, read_bgsmtr_run
from bayesimg.report.agreement import mean_agreement

DATA = os.environ.get("BAYESIMG_BGSMTR_DATA")
RUNS = [Path(p) for p in os.environ.get("BAYESIMG_BGSMTR_RUN", "").split(os.pathsep) if p]

pytestmark = pytest.mark.skipif(
    not DATA or not RUNS, reason="set BAYESIMG_BGSMTR_DATA and BAYESIMG_BGSMTR_RUN to compare "
                                 "with an installed bgsmtr (see benchmarks/README.md)")


@pytest.mark.parametrize("run_dir", RUNS, ids=[p.name for p in RUNS])
def test_gibbs_matches_bgsmtr_posterior_means(run_dir):
    data = load_bgsmtr_layout(DATA)
    run = read_bgsmtr_run(run_dir)
    lam1, lam2 = run["meta"]["lam_1"], run["meta"]["lam_2"]
    fit = bi.fit(bi.models.GroupSparseMTR(lambda1=lam1, lambda2=lam2), data, method="gibbs",
                 chains=4, warmup=500, draws=1500, seed=11, progress=False)
    ours = fit.posterior["W"].sel(snp=run["snp_names"], phenotype=run["phenotype_names"])
    ours = np.moveaxis(ours.transpose("chain", "draw", "snp", "phenotype").values.reshape(
        4, 1500, -1), -1, 0)
    theirs = np.moveaxis(run["W"].reshape(run["W"].shape[0], -1), -1, 0)[:, None, :]
    res = mean_agreement(ours, theirs)
    assert res["mean_z2"] < 1.5, res["mean_z2"]
    assert res["frac_abs_z_gt_3"] < 0.01, res["frac_abs_z_gt_3"]
    assert abs(fit.posterior["sigma2"].values.mean() - run["sigma2"].mean()) < 0.01
