r"""What users read off a multi-view factor fit, with intervals.

* :func:`variance_explained` — R² per view × factor (and total per view) for
  every posterior draw, so it has credible intervals: the Bayesian R² of
  Gelman et al. (2019) on the data scale for every likelihood (Gaussian views
  in data units, count views on the probability scale with the binomial
  variance as the residual), a ratio of variances in [0, 1] on every draw.
* :func:`inclusion` — posterior feature-inclusion probabilities (the horseshoe's
  mean 1 − κ_jk, κ the shrinkage factor, Carvalho et al. 2010) per view.
* :func:`transform` — project new subjects (any subset of views, missing
  entries and whole missing views allowed) onto the fitted factors: for every
  posterior draw of the loadings, one draw of z_new from its exact conditional
  (Gaussian views) or from a short Pólya-Gamma Gibbs chain (count views), plus
  the predicted outcome.  Uses the aligned draws, so factor k means the same as
  in the fit.
* :func:`impute` — posterior-predictive mean and 95% interval of every entry
  (missing ones included) of the fitted subjects.
* ``select_k`` — fits over a grid of K, compared by PSIS-LOO, with the number of
  factors ARD left active in each: now :func:`bayesimg.workflows.select_k` (it fits and
  compares, so it lives above the models); still reachable here.
* ``top_loadings`` — now :func:`bayesimg.report.summary.top_loadings` (it only reads
  the fit); still reachable here.
* :func:`svi_interval_check` — are an approximate fit's intervals narrower than
  a reference (NUTS/Gibbs) fit's on the same data?
"""

from __future__ import annotations

import functools
import json
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import xarray as xr
from scipy.optimize import linear_sum_assignment

from bayesimg.data.views import MultiViewData
from bayesimg.errors import DataValidationError, ModelSpecError
from bayesimg.models.factor.gibbs import _batched_gaussian, polya_gamma, take_rows
from bayesimg.models.factor.layout import OUTCOME_VIEW, TRIALS
from bayesimg.models.factor.model import MultiViewFactor

CI = (0.025, 0.975)


# ---------------------------------------------------------------------------- helpers
def _model_of(fit) -> MultiViewFactor:
    attrs = fit.tree.attrs
    if attrs.get("model_class") != "MultiViewFactor":
        raise ModelSpecError(f"not a MultiViewFactor fit (model_class={attrs.get('model_class')})")
    settings = json.loads(attrs["model_settings"]) if isinstance(attrs["model_settings"], str) \
        else dict(attrs["model_settings"])
    for key in ("ard_prior", "noise_prior"):
        settings[key] = tuple(settings[key])
    return MultiViewFactor(**settings)


def _flat_draws(fit, name: str, n_draws: int | None) -> np.ndarray:
    da = fit.posterior[name]
    arr = np.asarray(da.values)
    arr = arr.reshape((-1,) + arr.shape[2:])
    if n_draws is not None and arr.shape[0] > n_draws:
        idx = np.linspace(0, arr.shape[0] - 1, n_draws).round().astype(int)
        arr = arr[idx]
    return arr


def _views_in_fit(fit) -> list[str]:
    return [str(v) for v in fit.posterior["view"].values]


def _params(fit, n_draws: int | None) -> dict[str, Any]:
    """Per-draw concatenated parameters: W (S, P, K), mu (S, P), tau (S, P), B."""
    post = fit.posterior
    views = _views_in_fit(fit)
    out: dict[str, Any] = {"views": views, "W": [], "mu": [], "tau": [], "B": [],
                           "trials": [], "features": []}
    trials_all = np.asarray(fit.tree["constant_data"]["column_trials"].values)
    start = 0
    for v in views:
        W = _flat_draws(fit, f"W_{v}", n_draws)
        d = W.shape[1]
        out["W"].append(W)
        out["mu"].append(_flat_draws(fit, f"mu_{v}", n_draws))
        tr = trials_all[start:start + d]
        start += d
        out["trials"].append(tr)
        if f"tau_{v}" in post:
            out["tau"].append(_flat_draws(fit, f"tau_{v}", n_draws))
        else:
            out["tau"].append(np.ones_like(out["mu"][-1]))
        if f"B_{v}" in post:
            out["B"].append(_flat_draws(fit, f"B_{v}", n_draws))
        out["features"].append(np.asarray(post[f"feature_{v}"].values, dtype=str))
    return out


# ---------------------------------------------------------------------------- R²
def _masked_var(x, obs, n_obs):
    """Variance over subjects (axis −2) of the observed entries of each column."""
    mean = jnp.sum(x * obs, axis=-2, keepdims=True) / n_obs
    return jnp.sum(((x - mean) * obs) ** 2, axis=-2) / n_obs


@functools.partial(jax.jit, static_argnames=("trials",))
def _r2_one_draw(z, W, off, tau, obs, trials):
    """Bayesian R² of one view for one draw: (per factor (K,), total ())."""
    n_obs = jnp.maximum(jnp.sum(obs, axis=0, keepdims=True), 1.0)
    K = z.shape[1]
    if trials == 0:
        fit_var = _masked_var(z @ W.T, obs, n_obs)                        # (D,)
        resid = jnp.sum(obs / tau[None, :], axis=0) / n_obs[0]
        per = jnp.stack([_masked_var(z[:, k:k + 1] * W[None, :, k], obs, n_obs).sum()
                         for k in range(K)])
    else:
        p = jax.nn.sigmoid(off + z @ W.T)
        p0 = jax.nn.sigmoid(off)
        fit_var = _masked_var(trials * (p - p0), obs, n_obs)
        resid = jnp.sum(obs * trials * p * (1.0 - p), axis=0) / n_obs[0]
        per = jnp.stack([_masked_var(trials * (jax.nn.sigmoid(off + z[:, k:k + 1]
                                                               * W[None, :, k]) - p0),
                                     obs, n_obs).sum() for k in range(K)])
    denom = jnp.sum(fit_var) + jnp.sum(resid)
    return per / denom, jnp.sum(fit_var) / denom


def variance_explained(fit, data: MultiViewData, n_draws: int = 100) -> xr.Dataset:
    r"""Variance explained per view on the **data scale**, with credible intervals.

    For every draw s and view m, the Bayesian R² of Gelman, Goodrich, Gabry &
    Vehtari (2019), over the observed entries of the view: with ŷ_ij the
    factors' contribution to the conditional mean of y_ij and v_ij the
    conditional (residual) variance,

        R²_m = Σ_j Var_i(ŷ_ij) / Σ_j [Var_i(ŷ_ij) + mean_i v_ij],

    * Gaussian view: ŷ_ij = z_iᵀw_j, v_ij = 1/τ_j (the data's own units);
    * Bernoulli / Binomial(b) view: ŷ_ij = b·(σ(o_ij + z_iᵀw_j) − σ(o_ij)) and
      v_ij = b·p_ij(1 − p_ij), p_ij = σ(ψ_ij): the **probability (mean) scale**
      of the data, not the latent logit scale (o_ij = μ_j + x_iᵀb_j, the part
      of ψ that is not the factors);

    and per factor k the same ratio with ŷ from factor k alone
    (z_ik w_jk, or b·(σ(o_ij + z_ik w_jk) − σ(o_ij))) over the same denominator.
    Both are ratios of variances, so every draw, and every interval, lies in
    [0, 1]; the total is not the sum of the per-factor figures for count views
    (σ is not additive) nor for Gaussian views when factors correlate in the
    sample.  This differs from MOFA's R² (1 − residual/total sum of squares,
    which can go below 0 on a draw) by using the model's noise variance instead
    of the observed residuals; the two agree when the model fits.

    Returns a Dataset with ``r2`` (draw, view, factor), ``r2_total`` (draw, view),
    their ``*_mean``, ``*_lower``, ``*_upper`` (95%), and ``scale`` (view): the
    scale each view's R² is on (``"data"`` for Gaussian, ``"probability"`` for
    count views).
    """
    model = _model_of(fit)
    model.validate(data)
    p = _params(fit, n_draws)
    Z = _flat_draws(fit, "Z", n_draws)                                   # (S, n, K)
    S, n, K = Z.shape
    X = data.covariates
    r2 = np.zeros((S, len(p["views"]), K))
    r2_total = np.zeros((S, len(p["views"])))
    scales = []
    for m, v in enumerate(p["views"]):
        view = data.view(v)
        obs = jnp.asarray(view.observed, float)
        trials = int(TRIALS[view.likelihood])
        scales.append("data" if trials == 0 else "probability")
        for s in range(S):
            off = p["mu"][m][s][None, :] + (X @ p["B"][m][s].T if p["B"] else 0.0)
            per, tot = _r2_one_draw(jnp.asarray(Z[s]), jnp.asarray(p["W"][m][s]),
                                    jnp.asarray(off * np.ones((n, 1))),
                                    jnp.asarray(p["tau"][m][s]), obs, trials)
            r2[s, m], r2_total[s, m] = np.asarray(per), float(tot)
    factor = np.asarray(fit.posterior["factor"].values)
    ds = xr.Dataset({"r2": (("draw", "view", "factor"), r2),
                     "r2_total": (("draw", "view"), r2_total),
                     "scale": (("view",), np.asarray(scales))},
                    coords={"view": p["views"], "factor": factor, "draw": np.arange(S)})
    for name in ("r2", "r2_total"):
        ds[f"{name}_mean"] = ds[name].mean("draw")
        ds[f"{name}_lower"] = ds[name].quantile(CI[0], "draw").drop_vars("quantile")
        ds[f"{name}_upper"] = ds[name].quantile(CI[1], "draw").drop_vars("quantile")
    ds.attrs["definition"] = ("Bayesian R^2 (Gelman et al. 2019) on the data scale: Gaussian "
                              "views in data units, count views on the probability scale")
    return ds


def inclusion(fit, view: str) -> pd.DataFrame:
    """Posterior mean inclusion probability (feature × factor) of one view."""
    views = _views_in_fit(fit)
    if view not in views:
        raise DataValidationError(f"no view {view!r} in the fit; views: {views}")
    da = fit.posterior[f"incl_{view}"].mean(("chain", "draw"))
    return da.to_pandas()


# ---------------------------------------------------------------------------- transform
def _align_new(fit, new: MultiViewData, p) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """New data as (n_new, P) values (NaN missing) in the fit's column order."""
    known = set(p["views"])
    for v in new.view_names:
        if v not in known:
            raise DataValidationError(f"view {v!r} was not in the fitted model; "
                                      f"fitted views: {p['views']}", source=v)
    blocks = []
    for m, v in enumerate(p["views"]):
        feats = p["features"][m]
        block = np.full((new.n_subjects, len(feats)), np.nan)
        if v in new.view_names:
            view = new.view(v)
            pos = {f: j for j, f in enumerate(feats)}
            for j, f in enumerate(view.feature_names):
                if f not in pos:
                    raise DataValidationError("feature was not in the fitted view", source=v,
                                              column=str(f))
                block[:, pos[f]] = view.values[:, j]
            fitted = {0: "gaussian", 1: "bernoulli", 2: "binomial2"}[int(p["trials"][m][0])]
            if view.likelihood != fitted:
                raise DataValidationError(
                    f"likelihood {view.likelihood!r} differs from the fitted {fitted!r}",
                    source=v)
        blocks.append(block)
    Y = np.hstack(blocks)
    return Y, ~np.isnan(Y), []


def transform(fit, new_data: MultiViewData, n_draws: int = 200, seed: int = 0,
              pg_iterations: int = 30) -> xr.Dataset:
    """Project new subjects onto the fitted factors, with uncertainty.

    Parameters
    ----------
    new_data : MultiViewData
        Subjects to project; any subset of the fitted views (matched by name,
        features by name; absent views/features count as missing).  Needs the
        same covariates if the model had covariates.
    n_draws : int
        Posterior draws used (evenly spaced over chains × draws).

    Returns
    -------
    xarray.Dataset
        ``Z`` (draw, sample, factor), ``Z_mean``/``Z_lower``/``Z_upper``; with an
        outcome also ``outcome_mean`` (draw, sample: expected outcome on the
        original scale, or the probability) and its summaries.
    """
    _model_of(fit)   # raises unless this is a MultiViewFactor fit
    if not isinstance(new_data, MultiViewData):
        raise DataValidationError(f"expected MultiViewData, got {type(new_data).__name__}")
    p = _params(fit, n_draws)
    Y, obs, _ = _align_new(fit, new_data, p)
    W = np.concatenate(p["W"], axis=1)                                   # (S, P, K)
    mu = np.concatenate(p["mu"], axis=1)
    tau = np.concatenate(p["tau"], axis=1)
    trials = np.concatenate(p["trials"])
    has_cov = bool(p["B"])
    if has_cov:
        if new_data.covariates is None or new_data.covariates.shape[1] != p["B"][0].shape[-1]:
            raise DataValidationError("the model has covariates: new_data needs the same "
                                      f"{p['B'][0].shape[-1]} covariates")
        B = np.concatenate(p["B"], axis=1)                               # (S, P, r)
        off = mu[:, None, :] + np.einsum("nr,spr->snp", new_data.covariates, B)
    else:
        off = np.broadcast_to(mu[:, None, :], (mu.shape[0], new_data.n_subjects, mu.shape[1]))
    none = ~obs.any(axis=1)
    if none.any():
        raise DataValidationError("subject has no observed entry in any fitted view",
                                  subject=str(new_data.subjects[int(np.flatnonzero(none)[0])]))
    S, P, K = W.shape
    key = jax.random.PRNGKey(seed)
    z = np.asarray(_project(key, jnp.asarray(np.where(obs, Y, 0.0)), jnp.asarray(obs, float),
                            jnp.asarray(W), jnp.asarray(np.asarray(off)), jnp.asarray(tau),
                            jnp.asarray(trials), pg_iterations))
    factor = np.asarray(fit.posterior["factor"].values)
    ds = xr.Dataset({"Z": (("draw", "sample", "factor"), z)},
                    coords={"sample": np.asarray(new_data.subjects, dtype=str),
                            "factor": factor, "draw": np.arange(S)})
    if "beta" in fit.posterior:
        beta = _flat_draws(fit, "beta", n_draws)
        lin = np.einsum("snk,sk->sn", z, beta) + _flat_draws(fit, "beta0", n_draws)[:, None]
        if "gamma_outcome" in fit.posterior and has_cov:
            lin = lin + np.einsum("nr,sr->sn", new_data.covariates,
                                  _flat_draws(fit, "gamma_outcome", n_draws))
        cd = fit.tree["constant_data"]
        if "tau_outcome" in fit.posterior:
            centre = float(cd["outcome_centre"].values)
            scale = float(cd["outcome_scale"].values)
            pred = centre + scale * lin
        else:
            pred = 1.0 / (1.0 + np.exp(-lin))
        ds["outcome_mean"] = (("draw", "sample"), pred)
    for name in [v for v in ds.data_vars]:
        ds[f"{name}_mean"] = ds[name].mean("draw")
        ds[f"{name}_lower"] = ds[name].quantile(CI[0], "draw").drop_vars("quantile")
        ds[f"{name}_upper"] = ds[name].quantile(CI[1], "draw").drop_vars("quantile")
    return ds


def _project(key, Y, obs, W, off, tau, trials, pg_iterations):
    """One z draw per posterior draw: exact for Gaussian columns, PG-Gibbs otherwise.

    Per draw, Λ_i = I + Σ_j info_ij w_j w_jᵀ is one (n, P) × (P, K²) product (the
    Gaussian columns' part computed once), z is drawn with the Gibbs kernel's
    unrolled batched Cholesky, and the Pólya-Gamma variables are drawn for the
    count columns only; the PG iterations run in one ``scan``.
    """
    t_np = np.asarray(trials)
    return _project_draws(jax.random.split(key, W.shape[0]), Y, obs, W, off, tau, trials,
                          gi=tuple(np.flatnonzero(t_np == 0).tolist()),
                          ci=tuple(np.flatnonzero(t_np > 0).tolist()),
                          pg_iterations=int(pg_iterations))


@functools.partial(jax.jit, static_argnames=("gi", "ci", "pg_iterations"))
def _project_draws(keys, Y, obs, W, off, tau, trials, *, gi, ci, pg_iterations):
    """:func:`_project` compiled once per shapes and column groups (data are arguments)."""
    S, P, K = W.shape
    n = Y.shape[0]
    gi, ci = np.asarray(gi, int), np.asarray(ci, int)
    eye = jnp.eye(K, dtype=W.dtype)

    def cols(x, idx):
        return take_rows(x.T, idx).T

    Yg, Yc, obs_g, obs_c, tc = (cols(Y, gi), cols(Y, ci), cols(obs, gi), cols(obs, ci),
                                take_rows(trials, ci))

    def one(key, Ws, offs, taus):
        WW = (Ws[:, :, None] * Ws[:, None, :]).reshape(P, K * K)
        info_g = take_rows(taus, gi)[None, :] * obs_g                  # (n, Pg)
        Lam_g = info_g @ take_rows(WW, gi)                             # (n, K²)
        h = (info_g * (Yg - cols(offs, gi))) @ take_rows(Ws, gi)       # (n, K)
        Wc, WWc, oc = take_rows(Ws, ci), take_rows(WW, ci), cols(offs, ci)
        h = h + ((Yc - tc[None, :] / 2.0) * obs_c) @ Wc

        def draw(key, omega):
            Lam = Lam_g + omega @ WWc
            rhs = h - (omega * oc) @ Wc
            eps = jax.random.normal(key, (n, K), W.dtype)
            return _batched_gaussian(eps, Lam.reshape(n, K, K) + eye, rhs)

        if ci.size == 0:
            return draw(key, jnp.zeros((n, 0), W.dtype))

        def step(omega, key):
            k_z, k_pg = jax.random.split(key)
            z = draw(k_z, omega)
            psi = z @ Wc.T + oc
            return polya_gamma(k_pg, jnp.broadcast_to(tc, psi.shape), psi) * obs_c, z

        # start from ω = E[ω | ψ = 0] = b/4, then pg_iterations Gibbs rounds
        _, zs = jax.lax.scan(step, 0.25 * tc[None, :] * obs_c,
                             jax.random.split(key, pg_iterations + 1))
        return zs[-1]

    return jax.vmap(one)(keys, W, off, tau)


# ---------------------------------------------------------------------------- imputation
def impute(fit, data: MultiViewData, n_draws: int = 200, seed: int = 0) -> dict[str, xr.Dataset]:
    """Posterior-predictive mean and 95% interval of every entry of every view.

    Returns view → Dataset with ``mean``, ``lower``, ``upper`` (sample, feature_<view>)
    and ``observed`` (bool).  Count views: mean and interval of the count.
    """
    model = _model_of(fit)
    model.validate(data)
    p = _params(fit, n_draws)
    Z = _flat_draws(fit, "Z", n_draws)
    if Z.shape[1] != data.n_subjects:
        raise DataValidationError(f"data has {data.n_subjects} subjects, the fit "
                                  f"{Z.shape[1]}: impute() works on the fitted subjects; "
                                  "use transform() for new ones")
    rng = np.random.default_rng(seed)
    out = {}
    n = data.n_subjects
    for m, v in enumerate(p["views"]):
        W, mu, tau, tr = p["W"][m], p["mu"][m], p["tau"][m], p["trials"][m]
        d = W.shape[1]
        mean, lower, upper = (np.empty((n, d)) for _ in range(3))
        # subject blocks keep memory at ~ draws × 50 MB whatever n and D are
        block = max(1, int(5e6 // max(1, Z.shape[0] * d)))
        for start in range(0, n, block):
            rows = slice(start, min(n, start + block))
            psi = np.einsum("snk,sdk->snd", Z[:, rows], W) + mu[:, None, :]
            if p["B"]:
                psi = psi + np.einsum("nr,sdr->snd", data.covariates[rows], p["B"][m])
            if tr[0] == 0:
                draws = psi + rng.standard_normal(psi.shape) / np.sqrt(tau[:, None, :])
                mean[rows] = psi.mean(0)
            else:
                prob = 1.0 / (1.0 + np.exp(-psi))
                draws = rng.binomial(int(tr[0]), prob).astype(float)
                mean[rows] = (tr[0] * prob).mean(0)
            lower[rows], upper[rows] = np.quantile(draws, CI, axis=0)
        dim = f"feature_{v}"
        out[v] = xr.Dataset(
            {"mean": (("sample", dim), mean), "lower": (("sample", dim), lower),
             "upper": (("sample", dim), upper),
             "observed": (("sample", dim), data.view(v).observed)},
            coords={"sample": np.asarray(data.subjects, dtype=str), dim: p["features"][m]})
    return out


# ---------------------------------------------------------------------------- K
def n_active(fit, threshold: float = 0.01) -> int:
    """Factors whose share of some view's variance exceeds ``threshold`` (alignment info)."""
    info = json.loads(fit.tree.attrs["alignment"])
    share = np.asarray(info["variance_share"])
    return int(np.sum(share.max(axis=0) > threshold))


def marginal_loglik(fit, data: MultiViewData) -> xr.DataArray:
    """Per-subject log-likelihood with the subject's factors integrated out.

    The stored ``log_likelihood`` conditions on z_i, each subject's own latent
    variables, so PSIS-LOO on it is unreliable (Pareto k > 0.7 for most
    subjects: leaving a subject out changes its own z_i's posterior).  Here
    z_i ~ N(0, I) is integrated out exactly for the Gaussian views (and a
    Gaussian outcome, on its standardised scale):
    y_i,O ~ N(o_i,O, W_O W_Oᵀ + diag(1/τ_O)) over the subject's observed
    entries O, evaluated with the Woodbury identity (cost O(P·K²) per subject
    and draw).  Count views are left out (a ``note`` attribute says so).
    Returns (chain, draw, sample).
    """
    model = _model_of(fit)
    model.validate(data)
    arr = model.data_arrays(data)
    trials = arr["trials"]
    gauss = trials == 0
    if not gauss.any():
        raise ModelSpecError("marginal_loglik needs at least one Gaussian view")
    views = _views_in_fit(fit)
    post = fit.posterior
    C, S = post.sizes["chain"], post.sizes["draw"]
    W = np.concatenate([post[f"W_{v}"].values for v in views]
                       + ([post["beta"].values[:, :, None, :]] if "beta" in post else []),
                       axis=2)
    mu = np.concatenate([post[f"mu_{v}"].values for v in views]
                        + ([post["beta0"].values[:, :, None]] if "beta0" in post else []),
                        axis=2)
    taus = [post[f"tau_{v}"].values if f"tau_{v}" in post
            else np.ones((C, S, post.sizes[f"feature_{v}"])) for v in views]
    if "beta" in post:
        taus.append(post["tau_outcome"].values[:, :, None] if "tau_outcome" in post
                    else np.ones((C, S, 1)))
    tau = np.concatenate(taus, axis=2)
    off = np.broadcast_to(mu[:, :, None, :], (C, S, data.n_subjects, mu.shape[-1]))
    if "B_" + views[0] in post:
        B = np.concatenate([post[f"B_{v}"].values for v in views]
                           + ([post["gamma_outcome"].values[:, :, None, :]]
                              if "gamma_outcome" in post else []), axis=2)
        off = off + np.einsum("nr,cspr->csnp", arr["X"], B)
    keep = np.flatnonzero(gauss)
    obs = jnp.asarray(arr["mask"][:, keep])
    Y = jnp.asarray(arr["Y"][:, keep])

    def one(W, off, tau):
        r = (Y - off) * obs
        K = W.shape[1]
        info = obs * tau[None, :]
        M = jnp.einsum("np,pk,pl->nkl", info, W, W) + jnp.eye(K)
        b = (r * tau[None, :]) @ W
        L = jnp.linalg.cholesky(M)
        sol = jax.scipy.linalg.cho_solve((L, True), b[..., None])[..., 0]
        logdet = 2 * jnp.sum(jnp.log(jnp.diagonal(L, axis1=-2, axis2=-1)), -1) \
            - obs @ jnp.log(tau)
        quad = (r**2) @ tau - jnp.sum(b * sol, -1)
        return -0.5 * (jnp.sum(obs, 1) * jnp.log(2 * jnp.pi) + logdet + quad)

    f = jax.jit(lambda w, o, t: jax.lax.map(lambda a: one(*a), (w, o, t)))
    flat = f(jnp.asarray(W[:, :, keep].reshape((C * S,) + W.shape[2:])[:, :, :]),
             jnp.asarray(np.asarray(off)[..., keep].reshape(C * S, data.n_subjects, -1)),
             jnp.asarray(tau[:, :, keep].reshape(C * S, -1)))
    da = xr.DataArray(np.asarray(flat).reshape(C, S, data.n_subjects),
                      dims=("chain", "draw", "sample"),
                      coords={"chain": post["chain"].values, "draw": post["draw"].values,
                              "sample": post["sample"].values})
    da.attrs["note"] = ("z integrated out; Gaussian views only" if not gauss.all()
                        else "z integrated out")
    return da


def marginal_tree(fit, data: MultiViewData) -> xr.DataTree:
    """A DataTree with the fit's ``alpha`` draws and :func:`marginal_loglik` as
    ``log_likelihood/Y`` — what :func:`bayesimg.report.loo`/``compare`` need."""
    ll = marginal_loglik(fit, data)
    tree = xr.DataTree.from_dict({
        "posterior": fit.posterior[["alpha"]],
        "log_likelihood": xr.Dataset({"Y": ll})})
    tree.attrs.update(fit.tree.attrs)
    return tree


# ---------------------------------------------------------------------------- SVI vs MCMC
def match_to(reference: np.ndarray, other: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Permutation and signs mapping the columns of ``other`` onto ``reference`` (|corr|)."""
    a = (reference - reference.mean(0)) / (reference.std(0) + 1e-12)
    b = (other - other.mean(0)) / (other.std(0) + 1e-12)
    r = a.T @ b / len(a)
    rows, cols = linear_sum_assignment(-np.abs(r))
    perm = np.empty(reference.shape[1], int)
    perm[rows] = cols
    return perm, np.sign(r[rows, cols])[np.argsort(rows)]


def svi_interval_check(approx_fit, reference_fit, var: str = "Z") -> dict[str, float]:
    """Compare the 95% intervals of ``var`` in an approximate fit with a reference fit.

    Factors are matched (order and sign) on the posterior means.  Returns the
    median ratio of interval widths (approx / reference), the fraction of
    reference posterior means inside the approximate intervals, and the
    fraction of reference draws inside them (≈ 0.95 if the approximation is
    calibrated against the reference); ``overconfident`` is True when the
    width ratio is below 0.8 or that coverage below 0.85.
    """
    ref = np.asarray(reference_fit.posterior[var].transpose("chain", "draw", ...).values)
    app = np.asarray(approx_fit.posterior[var].transpose("chain", "draw", ...).values)
    ref = ref.reshape((-1,) + ref.shape[2:])
    app = app.reshape((-1,) + app.shape[2:])
    if var in ("Z",) or var.startswith("W_"):
        perm, sign = match_to(ref.mean(0), app.mean(0))
        app = app[..., perm] * sign
    lo_r, hi_r = np.quantile(ref, CI, axis=0)
    lo_a, hi_a = np.quantile(app, CI, axis=0)
    ratio = float(np.median((hi_a - lo_a) / np.maximum(hi_r - lo_r, 1e-12)))
    ref_mean = ref.mean(0)
    cover_mean = float(np.mean((lo_a <= ref_mean) & (ref_mean <= hi_a)))
    cover_draws = float(np.mean((lo_a[None] <= ref) & (ref <= hi_a[None])))
    return {"width_ratio": ratio, "covers_reference_mean": cover_mean,
            "covers_reference_draws": cover_draws,
            "overconfident": bool(ratio < 0.8 or cover_draws < 0.85)}


def __getattr__(name: str):
    """Names that moved out of this module, still reachable here.

    ``select_k`` fits and compares, so it lives in :mod:`bayesimg.workflows`;
    ``top_loadings`` only reads a fit, so it lives in :mod:`bayesimg.report.summary`.
    Imported on first use: models never import the layers above them at import time.
    """
    if name == "select_k":
        from bayesimg.workflows import select_k
        return select_k
    if name == "top_loadings":
        from bayesimg.report.summary import top_loadings
        return top_loadings
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# select_k and top_loadings resolve through __getattr__ above
__all__ = ["OUTCOME_VIEW", "TRIALS", "impute", "inclusion", "marginal_loglik",  # noqa: F822
           "marginal_tree", "n_active", "select_k", "svi_interval_check", "top_loadings",
           "transform", "variance_explained"]
