"""L2R2 with site random effects (issue 18): a subject's site is fixed over its visits;
the Gibbs kernel draws u with the subject intercepts integrated out.  Recovery against
the planted effects and the per-site least-squares means, LOO conditioned on u,
prediction at a known and an unseen site."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np

import bayesimg as bi
from bayesimg.data.simulate_l2r2 import simulate_l2r2

LEVELS = np.array(["A", "B", "C"])


def test_l2r2_recovers_site_effects_with_subject_intercepts():
    data, _ = simulate_l2r2(n_subjects=90, n_snps=6, n_phenotypes=3, rank=1,
                            singular_values=[15.0], max_visits=3, min_visits=2, seed=4)
    rng = np.random.default_rng(0)
    sites = LEVELS[rng.permutation(np.arange(90) % 3)]
    H = (sites[:, None] == LEVELS[None]).astype(float)
    u = np.array([[0.9, -0.5, 0.3], [-0.7, 0.6, -0.3], [-0.2, -0.1, 0.0]])
    Y = data.phenotypes + (H @ u)[:, None, :]
    centre = np.nanmean(Y[data.visit_mask], axis=0)
    data = dataclasses.replace(data, phenotypes=Y - centre, sites=sites)
    model = bi.models.L2R2(rank=1, noise_factors=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = bi.fit(model, data, method="gibbs", chains=1, warmup=150, draws=200, seed=1,
                     progress=False)
    eff = fit.posterior["site_effect"]
    assert eff.dims[2:] == ("site", "phenotype")
    mean = eff.mean(("chain", "draw")).values
    truth = u - centre
    # 30 subjects a site, each with its own intercept (sd ~0.8): site means are known to
    # about ±0.15, so the planted effects are recovered to that order
    assert np.max(np.abs(mean - truth)) < 0.45, (mean, truth)
    assert np.corrcoef(mean.ravel(), truth.ravel())[0, 1] > 0.9
    ll, _, note = model.loo_given_hyperparameters(fit.tree, draws=np.arange(3),
                                                  rng=np.random.default_rng(0))
    assert ll.shape == (3, 90) and np.all(np.isfinite(ll)) and "conditioned" in note
    new = dataclasses.replace(data.subset_subjects([0, 0]),
                              sites=np.array([sites[0], "unseen"]))
    pred = bi.predict(fit, new)
    sd = pred["predictions_summary"].dataset["y_sd"].values       # (subject, visit, c)
    assert np.all(sd[1, 0] > sd[0, 0])
    assert np.all(np.isfinite(pred["predictions_summary"].dataset["log_pred_density"]))
