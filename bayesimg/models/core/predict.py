r"""What the families share to predict new subjects and to compute integrated LOO.

Prediction (``Model.predict_draws``) works from a fit's DataTree alone, so a
saved-and-loaded fit predicts: the training standardisation constants are in
its ``constant_data`` (:func:`standardisation_constants`), the labels in its
coords.  New data are brought into the fit's *model units* here
(:func:`regression_inputs`): every value is first taken back to original units
with the new dataset's own recorded centres and scales
(``original = standardized * scale + center``, as :func:`~bayesimg.data.make_dataset`
records them; a dataset without records is taken as original units), then
standardised with the TRAINING constants; columns are matched by name.

Integrated LOO (``Model.loo_given_hyperparameters``): for a Gaussian linear
model y_j = B β_j + ε_j, β_j ~ N(0, diag(v)), ε_j ~ N(0, σ² I) (columns j
independent given θ = (σ², v)), :func:`gaussian_loo_given_prior` gives
log p(y_i | y_{-i}, θ) for every subject i and draw θ_s exactly, the
coefficients integrated out (Vehtari, Mononen, Tolvanen, Sivula & Winther 2016,
JMLR 17(103), §3).  With M = BᵀB + σ² diag(1/v), hᵢ = bᵢᵀM⁻¹bᵢ and ŷ = BM⁻¹Bᵀy::

    y_ij − E[y_ij | y_{-i}] = (y_ij − ŷ_ij) / (1 − hᵢ),   Var = σ² / (1 − hᵢ)

(the p×p form, used when p < n); equivalently with C = B diag(v) Bᵀ + σ² I and
g = C⁻¹y_j: residual gᵢ/[C⁻¹]ᵢᵢ, variance 1/[C⁻¹]ᵢᵢ (the n×n form, p ≥ n).
The log density of subject i sums over the c columns (leave one *subject* out).
Regressions with correlated noise across phenotypes use the block form
(:func:`gaussian_loo_given_loadings`: each coefficient loads on the phenotypes through a
fixed vector): GLRR with one factor integrated out (:func:`gaussian_loo_given_layers`),
SpikeSlabMTR given the inclusion/pattern configuration.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import xarray as xr

from bayesimg.errors import DataValidationError, ModelSpecError

LOG_2PI = math.log(2.0 * math.pi)

#: (constant_data name, Dataset.preprocessing key, dim) of the standardisation constants
REGRESSION_CONSTANTS = (
    ("genotype_center", "genotype_center", "snp"),
    ("genotype_scale", "genotype_scale", "snp"),
    ("phenotype_center", "phenotype_center", "phenotype"),
    ("phenotype_scale", "phenotype_scale", "phenotype"),
    ("covariate_center", "covariate_center", "covariate"),
    ("covariate_scale", "covariate_scale", "covariate"),
)


@dataclass
class PredictiveDraws:
    """What ``Model.predict_draws`` returns (the driver turns it into a DataTree).

    ``draws`` and ``means``: name → (dims after the sample axis, array (S, …)) in
    ORIGINAL units (means: the conditional expectation given each draw);
    ``probabilities``: name → (dims, array (S, …)) (cluster membership);
    ``log_density``: (S, n) log p(new subject's outcomes | θ_s) in the fit's
    MODEL units (those of its ``log_likelihood``), or None without outcomes;
    ``log_jacobian``: (n,) added to go to original units;
    ``coords``: labels; ``attrs``: units and notes.
    """

    draws: dict[str, tuple[tuple[str, ...], np.ndarray]] = field(default_factory=dict)
    means: dict[str, tuple[tuple[str, ...], np.ndarray]] = field(default_factory=dict)
    probabilities: dict[str, tuple[tuple[str, ...], np.ndarray]] = field(default_factory=dict)
    log_density: np.ndarray | None = None
    log_jacobian: np.ndarray | None = None
    coords: dict[str, np.ndarray] = field(default_factory=dict)
    attrs: dict[str, Any] = field(default_factory=dict)
    inputs: dict[str, tuple[tuple[str, ...], np.ndarray]] = field(default_factory=dict)


# ---------------------------------------------------------------------------- constants
def standardisation_constants(data, keys=REGRESSION_CONSTANTS) -> dict[str, tuple]:
    """constant_data entries (name → (dims, array)) recording ``data``'s standardisation."""
    prep = getattr(data, "preprocessing", None) or {}
    sizes = {"snp": data.n_snps, "phenotype": data.n_phenotypes,
             "covariate": data.n_covariates}
    out = {}
    for name, key, dim in keys:
        n = sizes[dim]
        if n == 0:
            continue
        default = 1.0 if name.endswith("scale") else 0.0
        value = prep.get(key)
        value = np.full(n, default) if value is None else np.asarray(value, dtype=float)
        if value.shape != (n,):
            value = np.full(n, default)
        out[name] = ((dim,), value)
    if data.snps is not None and "a1" in data.snps:
        out["snp_a1"] = (("snp",), np.asarray(data.snps["a1"].astype(str), dtype=str))
    return out


def _recorded(prep: dict, key: str, n: int, default: float) -> np.ndarray:
    value = prep.get(key)
    if value is None:
        return np.full(n, default)
    value = np.asarray(value, dtype=float)
    return value if value.shape == (n,) else np.full(n, default)


def _constants(tree: xr.DataTree, name: str, n: int, default: float) -> np.ndarray | None:
    if "constant_data" not in tree.children or name not in tree["constant_data"].dataset:
        return None
    value = np.asarray(tree["constant_data"].dataset[name].values, dtype=float)
    return value if value.shape == (n,) else None


def _match(fit_names: np.ndarray, new_names: np.ndarray, what: str) -> np.ndarray:
    """Positions in ``new_names`` of every fit name; a named error for the missing ones."""
    index = {str(v): i for i, v in enumerate(map(str, new_names))}
    missing = [str(v) for v in fit_names if str(v) not in index]
    if missing:
        shown = ", ".join(missing[:10]) + (f", ... ({len(missing) - 10} more)"
                                           if len(missing) > 10 else "")
        raise DataValidationError(
            f"the new data lack {len(missing)} of the fit's {len(fit_names)} {what}: {shown}. "
            f"Build them with the same {what} (names must match the fit's).",
            column=missing[0])
    return np.asarray([index[str(v)] for v in fit_names], dtype=np.int64)


def coord(tree: xr.DataTree, dim: str) -> np.ndarray | None:
    """Labels of ``dim`` from the posterior or constant_data (None if absent)."""
    for group in ("posterior", "constant_data", "observed_data"):
        if group in tree.children and dim in tree[group].dataset.coords:
            return np.asarray(tree[group].dataset.coords[dim].values)
    return None


def regression_inputs(tree: xr.DataTree, new_data) -> dict[str, Any]:
    """X, Z (and Y if present) of ``new_data`` in the fit's model units, columns in the
    fit's order.  Returns keys X, Z, Y (None when absent), subjects, units (text)."""
    from bayesimg.data.dataset import Dataset

    if not isinstance(new_data, Dataset):
        raise DataValidationError(
            f"this fit predicts from a bayesimg Dataset (make_dataset), got "
            f"{type(new_data).__name__}")
    if new_data.genotypes is None:
        raise DataValidationError("the new data have no genotypes to predict from")
    prep = new_data.preprocessing or {}
    snps = coord(tree, "snp")
    phen = coord(tree, "phenotype")
    covs = coord(tree, "covariate")
    d = len(snps)
    idx = _match(snps, new_data.snp_names, "SNPs")
    raw = (new_data.genotypes * _recorded(prep, "genotype_scale", new_data.n_snps, 1.0)
           + _recorded(prep, "genotype_center", new_data.n_snps, 0.0))[:, idx]
    center = _constants(tree, "genotype_center", d, 0.0)
    scale = _constants(tree, "genotype_scale", d, 1.0)
    carried = center is not None
    if carried:
        X = (raw - center) / scale
        if "snp_a1" in tree["constant_data"].dataset and new_data.snps is not None \
                and "a1" in new_data.snps:
            a1_fit = np.asarray(tree["constant_data"].dataset["snp_a1"].values, dtype=str)
            a1_new = np.asarray(new_data.snps["a1"].astype(str), dtype=str)[idx]
            bad = np.flatnonzero(a1_fit != a1_new)
            if bad.size:
                raise DataValidationError(
                    f"{bad.size} SNP(s) count a different allele in the new data than in the "
                    f"fit (first: {snps[bad[0]]}: fit counts {a1_fit[bad[0]]}, new data "
                    f"{a1_new[bad[0]]}); recode the new genotypes to the fit's allele",
                    column=str(snps[bad[0]]))
    else:
        X = new_data.genotypes[:, idx]
    Z = None
    if covs is not None:
        if new_data.covariates is None:
            raise DataValidationError(
                f"the fit uses covariates {list(map(str, covs))}; the new data have none")
        cidx = _match(covs, new_data.covariate_names, "covariates")
        r = new_data.n_covariates
        zraw = (new_data.covariates * _recorded(prep, "covariate_scale", r, 1.0)
                + _recorded(prep, "covariate_center", r, 0.0))[:, cidx]
        zc = _constants(tree, "covariate_center", len(covs), 0.0)
        zs = _constants(tree, "covariate_scale", len(covs), 1.0)
        Z = (zraw - zc) / zs if zc is not None else new_data.covariates[:, cidx]
    Y = None
    pc = _constants(tree, "phenotype_center", len(phen), 0.0)
    ps = _constants(tree, "phenotype_scale", len(phen), 1.0)
    if pc is None:
        pc, ps = np.zeros(len(phen)), np.ones(len(phen))
    if new_data.phenotypes is not None:
        pidx = _match(phen, new_data.phenotype_names, "phenotypes")
        c = new_data.n_phenotypes
        yraw = (new_data.phenotypes * _recorded(prep, "phenotype_scale", c, 1.0)
                + _recorded(prep, "phenotype_center", c, 0.0))[:, pidx]
        Y = (yraw - pc) / ps
    units = ("original units of the phenotypes (the fit's standardisation undone: "
             "original = model * phenotype_scale + phenotype_center)" if carried else
             "the fit's model units (the fit carries no standardisation constants)")
    return {"X": X, "Z": Z, "Y": Y, "subjects": np.asarray(new_data.subjects, dtype=str),
            "phenotype_center": pc, "phenotype_scale": ps, "units": units,
            "phenotypes": np.asarray(phen, dtype=str), "snps": np.asarray(snps, dtype=str),
            "covariates": None if covs is None else np.asarray(covs, dtype=str)}


def flat_draws(tree: xr.DataTree, names, draws: np.ndarray) -> dict[str, np.ndarray]:
    """Posterior arrays (S_sel, …) at flat (chain·draw) indices ``draws``."""
    post = tree["posterior"].dataset
    out = {}
    for name in names:
        if name in post:
            v = np.asarray(post[name].values)
            out[name] = v.reshape((-1,) + v.shape[2:])[draws]
    return out


def linear_predictive(inputs: dict, coef: np.ndarray, gamma: np.ndarray | None,
                      noise_cov: np.ndarray, rng: np.random.Generator, *,
                      sites: tuple | None = None) -> PredictiveDraws:
    """Predictive of y = X coef + Z γ + ε, ε ~ N(0, Σ_s), for S draws.

    ``coef`` (S, d, c), ``gamma`` (S, r, c) or None, ``noise_cov`` (S,) variances
    (iid noise) or (S, c, c) covariances.  Draws and means in original units.
    ``sites``: ``(H, unseen, u, τ)`` for site random effects
    (:mod:`bayesimg.models.core.site_effects`): H (n, K) the new subjects' known sites,
    ``unseen`` (n,) those at a site the fit never saw, u (S, K, c) the site effects and
    τ (S, c) their sd.  A known site adds H u to the mean; an unseen one integrates
    u ~ N(0, diag τ²), adding τ² to the noise covariance of that subject.
    """
    X, Z, Y = inputs["X"], inputs["Z"], inputs["Y"]
    mean = np.einsum("nd,sdc->snc", X, coef)
    if Z is not None and gamma is not None:
        mean = mean + np.einsum("nr,src->snc", Z, gamma)
    S, n, c = mean.shape
    extra = None                                   # (S, c) site variance, unseen subjects
    unseen = np.zeros(n, bool)
    if sites is not None:
        H, unseen, u, tau = sites
        mean = mean + np.einsum("nk,skc->snc", H, u)
        extra = np.asarray(tau, dtype=float) ** 2
    eps = rng.standard_normal((S, n, c))
    if noise_cov.ndim == 1:
        sd = np.sqrt(noise_cov)[:, None, None]
        y = mean + sd * eps
    else:
        L = np.linalg.cholesky(noise_cov)
        y = mean + np.einsum("scj,snj->snc", L, eps)
    if extra is not None and unseen.any():
        y[:, unseen] += np.sqrt(extra)[:, None, :] * rng.standard_normal(
            (S, int(unseen.sum()), c))
    pc, ps = inputs["phenotype_center"], inputs["phenotype_scale"]
    out = PredictiveDraws(
        draws={"y": (("subject", "phenotype"), y * ps + pc)},
        means={"y": (("subject", "phenotype"), mean * ps + pc)},
        coords={"subject": inputs["subjects"], "phenotype": inputs["phenotypes"],
                "snp": inputs["snps"]},
        attrs={"units": inputs["units"]},
        inputs={"X": (("subject", "snp"), X)})
    if Y is not None:
        resid = Y[None] - mean
        out.log_density = _gaussian_log_density(resid, noise_cov)
        if extra is not None and unseen.any():
            cov = (noise_cov[:, None, None] * np.eye(c)[None] if noise_cov.ndim == 1
                   else noise_cov) + extra[:, :, None] * np.eye(c)[None]
            out.log_density[:, unseen] = _gaussian_log_density(resid[:, unseen], cov)
        out.log_jacobian = np.full(n, -float(np.sum(np.log(ps))))
    return out


def site_aware_predictive(tree, new_data, inputs: dict, post: dict, coef: np.ndarray,
                          noise_cov: np.ndarray, rng: np.random.Generator) -> PredictiveDraws:
    """:func:`linear_predictive` with the fit's site random effects, if it has any: the new
    subjects' sites come from ``new_data`` (``site_effects.new_site_design``), ``post``
    holds the draws of ``gamma``, ``site_effect`` and ``site_sd``; the rule for
    known and unseen sites is stated in the output's ``attrs["site_effects"]``."""
    from bayesimg.models.core.site_effects import SITE_PREDICTION_NOTE, new_site_design
    sites = new_site_design(tree, new_data)
    if sites is not None:
        sites = sites + (post["site_effect"], post["site_sd"])
    out = linear_predictive(inputs, coef, post.get("gamma"), noise_cov, rng, sites=sites)
    if sites is not None:
        out.attrs["site_effects"] = SITE_PREDICTION_NOTE
    return out


def _gaussian_log_density(resid: np.ndarray, noise_cov: np.ndarray) -> np.ndarray:
    """log N(resid_si | 0, Σ_s) (S, n): ``noise_cov`` (S,) iid variances or (S, c, c)."""
    c = resid.shape[2]
    if noise_cov.ndim == 1:
        v = noise_cov[:, None, None]
        return np.sum(-0.5 * (LOG_2PI + np.log(v)) - 0.5 * resid**2 / v, axis=2)
    L = np.linalg.cholesky(noise_cov)
    white = np.linalg.solve(L[:, None], resid[..., None])[..., 0]           # (S, n, c)
    logdet = np.sum(np.log(np.diagonal(L, axis1=1, axis2=2)), axis=1)
    return -0.5 * c * LOG_2PI - logdet[:, None] - 0.5 * np.sum(white**2, axis=2)


# ---------------------------------------------------------------------------- integrated LOO
def gaussian_loo_given_prior(B: np.ndarray, Y: np.ndarray, sigma2: np.ndarray,
                             prior_var: np.ndarray, *, batch: int = 8,
                             form: str = "auto") -> np.ndarray:
    """log p(y_i | y_{-i}, θ_s) (S, n), coefficients integrated out, summed over columns.

    ``B`` (n, p) design, ``Y`` (n, c), ``sigma2`` (S,) noise variances, ``prior_var``
    (S, p) prior variances of the coefficients (shared by the c columns).  ``form``:
    "pxp" (p < n, hat matrix), "nxn" (C⁻¹), or "auto" (the cheaper).  Float64 numpy,
    batched over draws (``batch`` at a time).
    """
    B = np.asarray(B, dtype=float)
    Y = np.asarray(Y, dtype=float)
    n, p = B.shape
    sigma2 = np.asarray(sigma2, dtype=float).reshape(-1)
    prior_var = np.asarray(prior_var, dtype=float)
    S = sigma2.shape[0]
    if form == "auto":
        form = "pxp" if p < n else "nxn"
    out = np.empty((S, n))
    if form == "pxp":
        BtB, BtY = B.T @ B, B.T @ Y
        for lo in range(0, S, batch):
            sl = slice(lo, lo + batch)
            s2, v = sigma2[sl], prior_var[sl]
            M = BtB[None] + (s2[:, None] / v)[:, :, None] * np.eye(p)[None]
            L = np.linalg.cholesky(M)
            Linv = np.linalg.inv(L)                                     # (b, p, p)
            A = Linv @ B.T[None]                                        # L⁻¹Bᵀ (b, p, n)
            h = np.sum(A * A, axis=1)                                   # (b, n)
            F = Linv @ BtY[None]                                        # (b, p, c)
            Yhat = np.swapaxes(A, 1, 2) @ F                             # (b, n, c)
            one_h = np.clip(1.0 - h, 1e-300, None)
            e = (Y[None] - Yhat) / one_h[:, :, None]
            var = s2[:, None] / one_h
            out[sl] = np.sum(-0.5 * (LOG_2PI + np.log(var))[:, :, None]
                             - 0.5 * e**2 / var[:, :, None], axis=2)
    elif form == "nxn":
        for lo in range(0, S, batch):
            sl = slice(lo, lo + batch)
            s2, v = sigma2[sl], prior_var[sl]
            C = np.einsum("np,bp,mp->bnm", B, v, B) + s2[:, None, None] * np.eye(n)[None]
            Cinv = np.linalg.inv(C)
            Cinv = 0.5 * (Cinv + np.swapaxes(Cinv, 1, 2))
            dg = np.diagonal(Cinv, axis1=1, axis2=2)                    # (b, n)
            g = Cinv @ Y[None]                                          # (b, n, c)
            e = g / dg[:, :, None]
            var = 1.0 / dg
            out[sl] = np.sum(-0.5 * (LOG_2PI + np.log(var))[:, :, None]
                             - 0.5 * e**2 / var[:, :, None], axis=2)
    else:
        raise ModelSpecError(f"form must be 'auto', 'pxp' or 'nxn', got {form!r}")
    return out


def gaussian_heldout_given_prior(B: np.ndarray, Y: np.ndarray, B_new: np.ndarray,
                                 Y_new: np.ndarray, sigma2: np.ndarray,
                                 prior_var: np.ndarray) -> np.ndarray:
    """log p(ỹ_i | y, θ_s) (S, m) of new subjects, coefficients integrated out.

    The same model as :func:`gaussian_loo_given_prior` trained on ``B`` (n, p), ``Y``
    (n, c): with M = BᵀB + σ² diag(1/v) the coefficients are N(M⁻¹Bᵀy_j, σ²M⁻¹), so a new
    row b̃ has ỹ_j ~ N(b̃ᵀM⁻¹Bᵀy_j, σ²(1 + b̃ᵀM⁻¹b̃)), summed over the c columns.  Used by
    :func:`bayesimg.kfold` for the held-out density without Monte Carlo error in the
    coefficients (a log-mean over sampled coefficients is biased low where they are
    uncertain: p ≈ n).
    """
    B, Y = np.asarray(B, dtype=float), np.asarray(Y, dtype=float)
    B_new, Y_new = np.asarray(B_new, dtype=float), np.asarray(Y_new, dtype=float)
    sigma2 = np.asarray(sigma2, dtype=float).reshape(-1)
    prior_var = np.asarray(prior_var, dtype=float)
    BtB, BtY = B.T @ B, B.T @ Y
    out = np.empty((sigma2.size, B_new.shape[0]))
    for s in range(sigma2.size):
        L = np.linalg.cholesky(BtB + np.diag(sigma2[s] / prior_var[s]))
        A = np.linalg.solve(L, B_new.T)                                # L⁻¹b̃ (p, m)
        F = np.linalg.solve(L, BtY)                                    # L⁻¹Bᵀy (p, c)
        var = sigma2[s] * (1.0 + np.sum(A * A, axis=0))                # (m,)
        e = Y_new - A.T @ F
        out[s] = np.sum(-0.5 * (LOG_2PI + np.log(var))[:, None] - 0.5 * e**2 / var[:, None],
                        axis=1)
    return out


def gaussian_loo_given_loadings(B: np.ndarray, Y: np.ndarray, columns: np.ndarray,
                                loadings: np.ndarray, prior_var: np.ndarray,
                                noise_cov: np.ndarray, *, BtB: np.ndarray | None = None,
                                BtY: np.ndarray | None = None,
                                noise_class: np.ndarray | None = None,
                                subject: np.ndarray | None = None) -> np.ndarray:
    r"""log p(y_i | y_{-i}, θ) (one value per subject) for one draw θ of a multivariate
    regression whose coefficients β (p,) are Gaussian given θ and each load on the c
    phenotypes through a fixed vector.

    Model: y_l = Σ_k β_k B_{l, col_k} g_k + e_l, e_l ~ N_c(0, Σ), β_k ~ N(0, v_k)
    independently (``columns`` col (p,) into the n×q design ``B``, ``loadings`` g (p, c),
    ``prior_var`` v (p,), ``noise_cov`` Σ (c, c)).  Subject l's design is the c×p matrix
    D_l = Gᵀ diag(t_l), t_l = B_{l, col}, so the posterior of β has precision and mean::

        P = (BᵀB)_{col,col} ∘ (G Σ⁻¹ Gᵀ) + diag(1/v),   β̂ = P⁻¹ b,  b_k = g_kᵀΣ⁻¹(BᵀY)_{col_k}

    and H_l = D_l P⁻¹ D_lᵀ (c×c).  Leaving subject l out (all its phenotypes; the block
    form of the hat-matrix identity, Vehtari et al. 2016 §3)::

        y_l | y_{-l}, θ ~ N(ŷ_l + Σ(Σ − H_l)⁻¹ r_l,  Σ(Σ − H_l)⁻¹Σ),
        log p = −(c/2) log 2π + ½ log|Σ − H_l| − log|Σ| − ½ r_lᵀ(Σ − H_l)⁻¹ r_l,

    r_l = y_l − ŷ_l.  H_l = Ḡᵀ Q_l Ḡ with Ḡ the m distinct loading vectors and
    Q_l[a, b] = Σ_{k∈a, k'∈b} t_lk P⁻¹_kk' t_lk' (loading groups a, b), so the cost is
    one p×p Cholesky and O(n p² + n p m) (GLRR: the layers a_h and the unit vectors of Γ;
    SpikeSlabMTR: the pattern vectors u and unit vectors).  ``BtB``/``BtY`` may be passed
    precomputed (they do not depend on θ).

    Several rows per subject (``subject`` (n,): the subject of each row; the result is
    ordered as ``np.unique(subject)``) and a noise covariance per row class
    (``noise_class`` (n,) into ``noise_cov`` (K, c, c); ``BtB``/``BtY`` then (K, q, q) and
    (K, q, c), the Gram matrices of each class's rows): rows stay independent given β, so
    P and b sum over the classes, and subject i's rows R_i form one block: with
    C_i = blockdiag(Σ_{class(l)}, l ∈ R_i) and H_i[l, l'] = D_l P⁻¹ D_l'ᵀ the identity
    above holds with Σ → C_i, H_l → H_i and log|Σ| → log|C_i| (L2R2 after rotating each
    subject's visits, :mod:`bayesimg.models.glrr.longitudinal_loo`).  Cost: one
    (T_i c)² solve per subject of T_i rows.
    """
    n, c = Y.shape
    columns = np.asarray(columns, dtype=np.int64)
    p = columns.size
    Sig = np.asarray(noise_cov, dtype=float).reshape(-1, c, c)
    K = Sig.shape[0]
    classes = (np.zeros(n, dtype=np.int64) if noise_class is None
               else np.asarray(noise_class, dtype=np.int64))
    _, logdet_s = np.linalg.slogdet(Sig)                                # (K,)
    fitted = np.zeros((n, c))
    Pinv = T = None
    if p:
        if BtB is None or BtY is None:
            BtB = np.stack([B[classes == k].T @ B[classes == k] for k in range(K)])
            BtY = np.stack([B[classes == k].T @ Y[classes == k] for k in range(K)])
        BtB = np.asarray(BtB, dtype=float).reshape((K,) + B.shape[1:] * 2)
        BtY = np.asarray(BtY, dtype=float).reshape(K, B.shape[1], c)
        G = np.asarray(loadings, dtype=float).reshape(p, c)
        distinct, group = np.unique(G, axis=0, return_inverse=True)
        group = group.reshape(-1)
        E = np.zeros((p, distinct.shape[0]))
        E[np.arange(p), group] = 1.0
        P = np.zeros((p, p))
        b = np.zeros(p)
        for k in range(K):
            GS = G @ np.linalg.inv(Sig[k])                              # (p, c)
            P += BtB[k][np.ix_(columns, columns)] * (GS @ G.T)
            b += np.sum(GS * BtY[k][columns], axis=1)
        P[np.diag_indices(p)] += 1.0 / np.asarray(prior_var, dtype=float)
        chol = np.linalg.cholesky(P)
        Linv = np.linalg.inv(chol)
        Pinv = Linv.T @ Linv
        beta = Pinv @ b
        T = B[:, columns]                                               # (n, p)
        fitted = (T * beta) @ G
        # t_l P⁻¹ restricted to each loading group's rows: H_i[l, l'] = Ḡᵀ Q_ll' Ḡ,
        # Q_ll'[a, :] = ((T_l,a P⁻¹_a,:) ∘ t_l') E
        TP = [T[:, np.flatnonzero(group == a)] @ Pinv[np.flatnonzero(group == a), :]
              for a in range(distinct.shape[0])]
    resid = np.asarray(Y, dtype=float) - fitted
    if subject is None:
        order, sizes = np.arange(n)[:, None], np.ones(n, dtype=np.int64)
        n_subjects = n
    else:
        _, inverse = np.unique(np.asarray(subject), return_inverse=True)
        n_subjects = int(inverse.max()) + 1
        rows_of = [np.flatnonzero(inverse == i) for i in range(n_subjects)]
        sizes = np.array([r.size for r in rows_of])
    out = np.empty(n_subjects)
    for size in np.unique(sizes):
        members = np.flatnonzero(sizes == size)
        R = order[members] if subject is None else np.stack([rows_of[i] for i in members])
        m = members.size
        M = np.zeros((m, size, c, size, c))
        for u in range(size):
            M[:, u, :, u, :] = Sig[classes[R[:, u]]]
            if not p:
                continue
            for v in range(size):
                Q = np.stack([(TPa[R[:, u]] * T[R[:, v]]) @ E for TPa in TP], axis=1)
                M[:, u, :, v, :] -= np.einsum("aj,nab,bk->njk", distinct, Q, distinct)
        M = M.reshape(m, size * c, size * c)
        M = 0.5 * (M + np.swapaxes(M, 1, 2))
        r = resid[R].reshape(m, size * c)
        _, logdet_m = np.linalg.slogdet(M)
        quad = np.einsum("nj,nj->n", r, np.linalg.solve(M, r[..., None])[..., 0])
        out[members] = (-0.5 * size * c * LOG_2PI + 0.5 * logdet_m
                        - logdet_s[classes[R]].sum(axis=1) - 0.5 * quad)
    return out


def gaussian_loo_given_layers(X: np.ndarray, Z: np.ndarray | None, Y: np.ndarray,
                              layers: np.ndarray, noise_cov: np.ndarray,
                              snp_prior_var: np.ndarray, covariate_var: float, *,
                              noise_class: np.ndarray | None = None,
                              subject: np.ndarray | None = None) -> np.ndarray:
    r"""log p(y_i | y_{-i}, θ_s) (S, n) of a low-rank regression, one factor integrated out.

    Model: y_l = Aᵀ Uᵀ x_l + Γᵀ z_l + e_l, e_l ~ N_c(0, Σ), with the SNP-side factor
    U (d×R) ~ N(0, diag s) entrywise and Γ (r×c) ~ N(0, ``covariate_var``) entrywise, given
    θ = (A, Σ, s): ``layers`` (S, R, c) the phenotype-side rows a_h = δ_h v_h,
    ``noise_cov`` (S, c, c), ``snp_prior_var`` (S, d, R).  β = (vec U, vec Γ) is
    Gaussian given θ: U_jh enters subject l's mean as x_lj a_h and Γ_qj as z_lq e_j, the
    form of :func:`gaussian_loo_given_loadings` (p = dR + rc coefficients, R + c distinct
    loadings), whose precision is the Kronecker one
    [[AΣ⁻¹Aᵀ ⊗ XᵀX, AΣ⁻¹ ⊗ XᵀZ], [Σ⁻¹Aᵀ ⊗ ZᵀX, Σ⁻¹ ⊗ ZᵀZ]] + diag(1/prior var).
    Cost per draw: one p×p Cholesky and O(n p²) (float64 numpy).  ``noise_class`` and
    ``subject`` (rows grouped into subjects, a noise covariance per row class:
    ``noise_cov`` (S, K, c, c)) as in :func:`gaussian_loo_given_loadings`; the result is
    then (S, number of subjects).
    """
    X = np.asarray(X, dtype=float)
    Y = np.asarray(Y, dtype=float)
    n, d = X.shape
    c = Y.shape[1]
    layers = np.asarray(layers, dtype=float)
    noise_cov = np.asarray(noise_cov, dtype=float)
    S, R = layers.shape[0], layers.shape[1]
    noise_cov = noise_cov.reshape(S, -1, c, c)
    K = noise_cov.shape[1]
    classes = (np.zeros(n, dtype=np.int64) if noise_class is None
               else np.asarray(noise_class, dtype=np.int64))
    snp_prior_var = np.asarray(snp_prior_var, dtype=float)
    r = 0 if Z is None else Z.shape[1]
    B = X if Z is None else np.hstack([X, np.asarray(Z, dtype=float)])
    BtB = np.stack([B[classes == k].T @ B[classes == k] for k in range(K)])
    BtY = np.stack([B[classes == k].T @ Y[classes == k] for k in range(K)])
    # U_jh (h-major), then Γ_qj (j-major)
    columns = np.concatenate([np.tile(np.arange(d), R),
                              np.tile(d + np.arange(r), c)]).astype(np.int64)
    unit = np.repeat(np.eye(c), r, axis=0)                             # (rc, c)
    n_out = n if subject is None else np.unique(np.asarray(subject)).size
    out = np.empty((S, n_out))
    for s in range(S):
        loadings = np.vstack([np.repeat(layers[s], d, axis=0), unit])
        prior_var = np.concatenate([snp_prior_var[s].T.ravel(), np.full(r * c, covariate_var)])
        out[s] = gaussian_loo_given_loadings(B, Y, columns, loadings, prior_var, noise_cov[s],
                                             BtB=BtB, BtY=BtY, noise_class=classes,
                                             subject=subject)
    return out


def thin_indices(n_chains: int, n_draws: int, max_draws: int | None) -> np.ndarray:
    """Draw indices (per chain, evenly spaced) keeping at most ``max_draws`` in total."""
    if max_draws is None or n_chains * n_draws <= max_draws:
        return np.arange(n_draws)
    per_chain = max(1, max_draws // n_chains)
    return np.unique(np.linspace(0, n_draws - 1, per_chain).round().astype(int))


def training_dataset(tree: xr.DataTree):
    """The fit's own training data as a Dataset whose recorded standardisation is the
    fit's (so :func:`regression_inputs` maps it back to the model units exactly)."""
    import pandas as pd

    from bayesimg.data.dataset import Dataset

    cd = tree["constant_data"].dataset
    X = np.asarray(cd["X"].values, dtype=float)
    subjects = np.asarray(cd["X"].coords["subject"].values, dtype=str)
    snps = np.asarray(coord(tree, "snp"), dtype=str)
    table = pd.DataFrame({"snp": snps, "chrom": "0", "pos": np.arange(len(snps)),
                          "a1": (np.asarray(cd["snp_a1"].values, dtype=str) if "snp_a1" in cd
                                 else "?"), "a2": "?", "gene": "?"})
    prep = {key: np.asarray(cd[name].values, dtype=float)
            for name, key, _ in REGRESSION_CONSTANTS if name in cd}
    Y = names = None
    if "observed_data" in tree.children and "y" in tree["observed_data"].dataset:
        Y = np.asarray(tree["observed_data"].dataset["y"].values, dtype=float)
        names = np.asarray(coord(tree, "phenotype"), dtype=str)
    Z = np.asarray(cd["Z"].values, dtype=float) if "Z" in cd else None
    covs = None if Z is None else np.asarray(coord(tree, "covariate"), dtype=str)
    return Dataset(subjects=subjects, genotypes=X, snps=table, phenotypes=Y,
                   phenotype_names=names, covariates=Z, covariate_names=covs,
                   preprocessing=prep, name="training data of the fit")
