"""Brute-force exact leave-one-subject-out, the reference for the integrated-LOO tests."""

from __future__ import annotations

import warnings

import numpy as np

import bayesimg as bi


def exact_loo_by_refits(model, data, opts: dict):
    """Fit on all subjects and refit on each n − 1 (one batched, compiled program).

    Returns ``(fit, exact, loo)``: the full fit, the exact log predictive density of each
    left-out subject from its refit, and ``fit.loo()`` (the model's default estimate).
    """
    n = data.n_subjects
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = bi.fit(model, data, method="gibbs", progress=False, **opts)
        refits = bi.fit_many({f"loo{i:02d}": bi.FitJob(
            model, data.subset_subjects(np.delete(np.arange(n), i)), "gibbs", opts)
            for i in range(n)}, progress=False)
        exact = np.array([
            bi.predict(refits[f"loo{i:02d}"], data.subset_subjects([i]))[
                "predictions_summary"].dataset["log_pred_density_model"].values[0]
            for i in range(n)])
        return fit, exact, fit.loo()
