"""Calibration of GLRR's NUTS posterior against draws from its own prior.

Replicates r = 1..20: genotypes X_r (n = 40, d = 5, c = 3), (U, V, δ, θ, Λ, ψ) drawn from
the model's prior (NumPyro ``Predictive`` of the model function), y from the likelihood;
then the posterior is sampled by NUTS through ``bayesimg.fit``.  If the sampler targets
the posterior, the central 50% and 90% intervals of every identified scalar (the 15
entries of B and the 6 free entries of Σ) cover the truth with probability 0.50 / 0.90
averaged over the prior (Cook, Gelman & Rubin 2006; Talts et al. 2018).

Phenotypes are centred by an orthogonal rotation of the subjects (exactly
posterior-preserving: rows stay iid N(·, Σ)).  Judged on the per-replicate average
coverage (replicates iid, entries within one are not): |mean − p| ≤ 4 SE with the
empirical SE of the R averages.  Hyperpriors are tightened (τ_δ ~ Gamma(3, 3),
1/ψ ~ Gamma(3, 2)) so prior draws stay in a range where 250 + 250 draws per chain mix.
Observed (seed set as here): 50% coverage B 0.46, Σ 0.58; 90% coverage B 0.87, Σ 0.86.
"""

from __future__ import annotations

import numpy as np
import pytest
from _glrr_helpers import draws, prior_draw
from _gsmtr_helpers import genotype_design

import bayesimg
from bayesimg.models import GLRR

N, D, C = 40, 5, 3
R_REP = 20
MODEL = GLRR(rank=2, noise_factors=1, global_precision=(3.0, 3.0), psi_prior=(3.0, 2.0))
NUTS = dict(chains=2, warmup=250, draws=250, target_accept=0.9)


@pytest.fixture(scope="module")
def runs():
    truths, samples = [], []
    iu = np.triu_indices(C)
    for r in range(R_REP):
        design = genotype_design(N, D, 5, seed=30_000 + r)
        data, truth = prior_draw(MODEL, design, C, seed=r)
        fit = bayesimg.fit(MODEL, data, method="nuts", seed=r, progress=False, **NUTS)
        theta = np.concatenate([draws(fit, "B").reshape(-1, D * C),
                                draws(fit, "noise_cov")[:, iu[0], iu[1]]], axis=1)
        truths.append(np.concatenate([truth["B"].ravel(), truth["noise_cov"][iu]]))
        samples.append(theta)
    return np.array(truths), np.array(samples)


@pytest.mark.parametrize("prob", [0.5, 0.9])
def test_interval_coverage_is_nominal(runs, prob):
    truths, samples = runs
    lo = np.quantile(samples, (1 - prob) / 2, axis=1)
    hi = np.quantile(samples, (1 + prob) / 2, axis=1)
    hit = (lo <= truths) & (truths <= hi)
    per_rep = hit.mean(axis=1)
    se = max(per_rep.std(ddof=1), 1e-12) / np.sqrt(len(per_rep))
    z = (per_rep.mean() - prob) / se
    # B and Σ separately too (a miscalibrated noise model would hide in the average)
    z_b = (hit[:, : D * C].mean() - prob) / (hit[:, : D * C].mean(axis=1).std(ddof=1)
                                              / np.sqrt(len(per_rep)) + 1e-12)
    assert abs(z) <= 4, (prob, per_rep.mean(), se, z)
    assert abs(z_b) <= 4, (prob, hit[:, : D * C].mean(), z_b)
    assert hit[:, D * C:].mean() > prob - 0.15, (prob, hit[:, D * C:].mean())

