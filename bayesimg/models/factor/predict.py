r"""Prediction for new subjects of a multi-view factor fit (``MultiViewFactor.predict_draws``).

Per posterior draw θ_s (loadings W, intercepts μ, noise precisions τ, covariate
effects B, outcome weights β) and new subject i with observed entries O_i:

* the factors z_i | y_{i,O}, θ_s: prior N(0, I); Gaussian entries contribute
  precision Σ_j τ_j w_j w_jᵀ and shift Σ_j τ_j w_j (y_ij − μ_j − b_jᵀx_i) — exact;
  Bernoulli/Binomial(2) entries by a Laplace approximation (Newton steps on the
  logistic log-likelihood), so z_i ~ N(ẑ, H⁻¹) is exact for Gaussian views and
  approximate otherwise;
* every feature (missing views included: imputation) and the outcome are drawn
  from their likelihood at a draw of z_i; means are E[y | θ_s, ẑ];
* log p(y_{i,O} | θ_s) (all observed entries, outcome included — the unit of the
  fit's log-likelihood): exact for Gaussian entries (the Laplace identity
  log p(y) = log p(y|z) + log p(z) − log N(z; ẑ, H⁻¹) at z = ẑ), importance
  sampling with the Laplace proposal (``n_importance`` draws) when count entries
  are observed.

Units: Gaussian view features are returned in original units (the training
centres/scales in ``constant_data``: ``feature_center``, ``feature_scale``), the
outcome in its original units (``outcome_centre``, ``outcome_scale``).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import expit, log_expit, logsumexp

from bayesimg.errors import DataValidationError

LOG_2PI = math.log(2.0 * math.pi)
OUTCOME = "outcome"


def _tree_layout(tree):
    post = tree["posterior"].dataset
    cd = tree["constant_data"].dataset
    views = [str(v) for v in post.coords["view"].values]
    features = {v: np.asarray(post.coords[f"feature_{v}"].values, dtype=str) for v in views}
    trials = np.asarray(cd["column_trials"].values, dtype=float)
    has_outcome = "beta" in post
    P = sum(len(f) for f in features.values())
    center = cd["feature_center"].values if "feature_center" in cd else np.zeros(P)
    scale = cd["feature_scale"].values if "feature_scale" in cd else np.ones(P)
    return views, features, trials, has_outcome, np.asarray(center, float)[:P], \
        np.asarray(scale, float)[:P]


def new_view_arrays(tree, new_data):
    """(Y (n, P[+1]) in model units with NaN = missing, X or None) aligned with the fit."""
    from bayesimg.data.views import MultiViewData

    if not isinstance(new_data, MultiViewData):
        raise DataValidationError(
            f"a factor fit predicts from MultiViewData (make_views), got {type(new_data).__name__}")
    views, features, trials, has_outcome, center, scale = _tree_layout(tree)
    n = new_data.n_subjects
    prep = new_data.preprocessing or {}
    blocks = []
    off = 0
    for v in views:
        names = features[v]
        if v not in new_data.view_names:
            blocks.append(np.full((n, len(names)), np.nan))        # a missing view: imputed
            off += len(names)
            continue
        view = new_data.view(v)
        index = {str(f): j for j, f in enumerate(view.feature_names)}
        missing = [f for f in names if f not in index]
        if missing:
            raise DataValidationError(
                f"view {v!r} of the new data lacks {len(missing)} of the fit's features "
                f"(first: {missing[0]}); build it with the same features", source=v,
                column=missing[0])
        cols = np.asarray([index[f] for f in names])
        vals = view.values[:, cols]
        c_new = np.asarray(prep.get("centers", {}).get(v, np.zeros(view.n_features)))[cols] \
            if v in prep.get("centers", {}) else 0.0
        s_new = np.asarray(prep.get("scales", {}).get(v, np.ones(view.n_features)))[cols] \
            if v in prep.get("scales", {}) else 1.0
        raw = vals * s_new + c_new
        sl = slice(off, off + len(names))
        blocks.append((raw - center[sl]) / scale[sl])
        off += len(names)
    if has_outcome:
        cd = tree["constant_data"].dataset
        if new_data.outcome is not None:
            c0 = float(cd["outcome_centre"].values) if "outcome_centre" in cd else 0.0
            s0 = float(cd["outcome_scale"].values) if "outcome_scale" in cd else 1.0
            blocks.append(((np.asarray(new_data.outcome, float) - c0) / s0)[:, None])
        else:
            blocks.append(np.full((n, 1), np.nan))
    Y = np.hstack(blocks)
    X = None
    if "covariate" in tree["posterior"].dataset.coords:
        covs = np.asarray(tree["posterior"].dataset.coords["covariate"].values, dtype=str)
        if new_data.covariates is None:
            raise DataValidationError(f"the fit uses covariates {list(covs)}; the new data "
                                      "have none")
        index = {str(c): j for j, c in enumerate(new_data.covariate_names)}
        missing = [c for c in covs if c not in index]
        if missing:
            raise DataValidationError(f"the new data lack covariate(s) {missing}",
                                      column=missing[0])
        X = np.asarray(new_data.covariates, float)[:, [index[c] for c in covs]]
    return Y, X


def factor_predict(tree, new_data, draws, rng, *, n_importance: int = 32, newton_steps: int = 8):
    from bayesimg.models.core.predict import PredictiveDraws, flat_draws

    views, features, trials, has_outcome, center, scale = _tree_layout(tree)
    Y, X = new_view_arrays(tree, new_data)
    names = [f"W_{v}" for v in views] + [f"mu_{v}" for v in views] + \
        [f"tau_{v}" for v in views] + [f"B_{v}" for v in views] + \
        ["beta", "beta0", "tau_outcome", "gamma_outcome"]
    post = flat_draws(tree, names, draws)
    S = len(draws)
    K = post[f"W_{views[0]}"].shape[-1]
    Ws, mus, taus, Bs = [], [], [], []
    for v in views:
        W = post[f"W_{v}"]
        Ws.append(W)
        mus.append(post[f"mu_{v}"])
        taus.append(post.get(f"tau_{v}", np.ones(W.shape[:2])))
        if X is not None:
            Bs.append(post[f"B_{v}"])
    if has_outcome:
        Ws.append(post["beta"][:, None, :])
        mus.append(np.asarray(post["beta0"]).reshape(S, 1))
        taus.append(np.asarray(post.get("tau_outcome", np.ones(S))).reshape(S, 1))
        if X is not None:
            Bs.append(post["gamma_outcome"][:, None, :])
    W = np.concatenate(Ws, axis=1)                      # (S, P, K)
    mu = np.concatenate(mus, axis=1)                    # (S, P)
    tau = np.concatenate(taus, axis=1)                  # (S, P)
    offset = mu[:, None, :]                             # (S, 1, P)
    if X is not None:
        offset = offset + np.einsum("nr,spr->snp", X, np.concatenate(Bs, axis=1))
    n, P = Y.shape
    mask = ~np.isnan(Y)
    Y0 = np.where(mask, Y, 0.0)
    gauss = trials == 0
    count = ~gauss
    mg = (mask & gauss[None, :]).astype(float)          # (n, P)
    mc = (mask & count[None, :]).astype(float)
    # Gaussian part: precision and shift per (draw, subject)
    tw = tau[:, :, None] * W                            # (S, P, K)
    Pg = np.eye(K)[None, None] + np.einsum("np,spk,spl->snkl", mg, tw, W)
    hg = np.einsum("np,spk->snk", mg * Y0, tw) - np.einsum("np,snp,spk->snk", mg, offset, tw)
    zhat = np.linalg.solve(Pg, hg[..., None])[..., 0]   # (S, n, K)
    H = Pg
    any_count = bool(mc.any())
    if any_count:
        t = trials[None, None, :]
        for _ in range(newton_steps):
            psi = np.einsum("snk,spk->snp", zhat, W) + offset
            p = expit(psi)
            grad = hg - np.einsum("snkl,snl->snk", Pg, zhat) + np.einsum(
                "np,snp,spk->snk", mc, Y0[None] - t * p, W)
            H = Pg + np.einsum("np,snp,spk,spl->snkl", mc, t * p * (1 - p), W, W)
            zhat = zhat + np.linalg.solve(H, grad[..., None])[..., 0]
    L = np.linalg.cholesky(np.linalg.inv(H))            # covariance factor
    z = zhat + np.einsum("snkl,snl->snk", L, rng.standard_normal(zhat.shape))
    psi_hat = np.einsum("snk,spk->snp", zhat, W) + offset
    psi_draw = np.einsum("snk,spk->snp", z, W) + offset
    # draws of every column (imputation of the missing ones), model units
    tcol = np.broadcast_to(trials, psi_draw.shape)
    ydraw = np.where(gauss, psi_draw + rng.standard_normal(psi_draw.shape) / np.sqrt(
        tau[:, None, :]), rng.binomial(np.maximum(tcol, 1).astype(int),
                                       expit(psi_draw)).astype(float))
    ymean = np.where(gauss, psi_hat, np.maximum(trials, 1) * expit(psi_hat))
    # to original units
    P_views = len(center)
    out_scale = np.ones(P)
    out_center = np.zeros(P)
    out_scale[:P_views] = np.where(gauss[:P_views], scale, 1.0)
    out_center[:P_views] = np.where(gauss[:P_views], center, 0.0)
    cd = tree["constant_data"].dataset
    if has_outcome and gauss[-1]:
        out_center[-1] = float(cd["outcome_centre"].values) if "outcome_centre" in cd else 0.0
        out_scale[-1] = float(cd["outcome_scale"].values) if "outcome_scale" in cd else 1.0
    labels = np.asarray([f"{v}:{f}" for v in views for f in features[v]], dtype=str)
    sample = np.asarray(new_data.subjects, dtype=str)
    fac = np.asarray(tree["posterior"].dataset.coords["factor"].values)
    res = PredictiveDraws(
        draws={"Y": (("sample", "feature"), (ydraw * out_scale + out_center)[..., :P_views]),
               "Z": (("sample", "factor"), z)},
        means={"Y": (("sample", "feature"), (ymean * out_scale + out_center)[..., :P_views]),
               "Z": (("sample", "factor"), zhat)},
        coords={"sample": sample, "feature": labels, "factor": fac},
        attrs={"units": "Gaussian view features and a Gaussian outcome in original units "
                        "(the training standardisation undone); count features as counts",
               "factors": "z | observed entries per draw: exact for Gaussian views, Laplace "
                          "approximation for Bernoulli/Binomial(2) views"})
    if has_outcome:
        res.draws["outcome"] = (("sample",), ydraw[..., -1] * out_scale[-1] + out_center[-1])
        res.means["outcome"] = (("sample",), ymean[..., -1] * out_scale[-1] + out_center[-1])
    if mask.any():
        res.log_density = _log_density(Y0, mask, gauss, trials, tau, W, offset, zhat, H, L, K,
                                       rng, n_importance if any_count else 0)
        res.log_jacobian = -np.sum(np.where(mask & gauss[None, :], np.log(out_scale), 0.0),
                                   axis=1)
        res.attrs["log_density"] = ("all observed entries of each new subject (views and "
                                    "outcome), factors integrated"
                                    + (" by importance sampling" if any_count else " exactly"))
    return res


def _loglik_given_z(Y0, mask, gauss, trials, tau, W, offset, z):
    psi = np.einsum("snk,spk->snp", z, W) + offset
    g = -0.5 * (LOG_2PI - np.log(tau[:, None, :])) - 0.5 * tau[:, None, :] * (Y0[None] - psi)**2
    c = Y0[None] * log_expit(psi) + (trials - Y0[None]) * log_expit(-psi)
    c = c + np.where((trials == 2) & (Y0[None] == 1), math.log(2.0), 0.0)
    lp = np.where(gauss, g, c)
    return np.sum(np.where(mask[None], lp, 0.0), axis=2)


def _log_normal_std(z, zhat, L):
    """log N(z; ẑ, LLᵀ) per (draw, subject)."""
    K = z.shape[-1]
    diff = z - zhat
    white = np.linalg.solve(L, diff[..., None])[..., 0]
    logdet = np.sum(np.log(np.diagonal(L, axis1=-2, axis2=-1)), axis=-1)
    return -0.5 * K * LOG_2PI - logdet - 0.5 * np.sum(white**2, axis=-1)


def _log_density(Y0, mask, gauss, trials, tau, W, offset, zhat, H, L, K, rng, n_importance):
    prior = lambda z: -0.5 * K * LOG_2PI - 0.5 * np.sum(z**2, axis=-1)  # noqa: E731
    if n_importance == 0:
        return (_loglik_given_z(Y0, mask, gauss, trials, tau, W, offset, zhat) + prior(zhat)
                - _log_normal_std(zhat, zhat, L))
    parts = []
    for _ in range(n_importance):
        z = zhat + np.einsum("snkl,snl->snk", L, rng.standard_normal(zhat.shape))
        parts.append(_loglik_given_z(Y0, mask, gauss, trials, tau, W, offset, z) + prior(z)
                     - _log_normal_std(z, zhat, L))
    return logsumexp(np.stack(parts), axis=0) - math.log(n_importance)
