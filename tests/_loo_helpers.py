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


def dense_loo_log_density(C: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """log p(y_i | y_{-i}) of each subject i (all c phenotypes together) from the dense
    nc×nc covariance ``C`` of vec(Y) (subject-major, zero mean): the Gaussian conditional,
    computed directly — the reference for the closed-form integrated-LOO formulas."""
    n, c = Y.shape
    y = Y.ravel()
    out = np.empty(n)
    for i in range(n):
        idx = np.arange(i * c, (i + 1) * c)
        o = np.setdiff1d(np.arange(n * c), idx)
        sol = np.linalg.solve(C[np.ix_(o, o)], np.column_stack([C[o][:, idx], y[o]]))
        mean = sol[:, -1] @ C[o][:, idx]
        V = C[np.ix_(idx, idx)] - C[idx][:, o] @ sol[:, :c]
        r = y[idx] - mean
        out[i] = (-0.5 * c * np.log(2 * np.pi) - 0.5 * np.linalg.slogdet(V)[1]
                  - 0.5 * r @ np.linalg.solve(V, r))
    return out
