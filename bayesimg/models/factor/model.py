r"""Bayesian multi-view factor analysis (MOFA-type model with a full posterior).

Notation: n subjects, views m = 1..M with D_m features each, K factors; for
feature j of view m(j) the linear predictor of subject i is

    ψ_ij = z_iᵀ w_j + μ_j + x_iᵀ b_j          (x_i: optional covariates)

and the likelihood of an observed entry is

* ``gaussian``:  y_ij ~ N(ψ_ij, 1/τ_j)        (per-feature noise precision τ_j)
* ``bernoulli``: y_ij ~ Bernoulli(σ(ψ_ij))
* ``binomial2``: y_ij ~ Binomial(2, σ(ψ_ij))  (0/1/2 genotype dosages)

NaN entries are masked out of the likelihood; a subject absent from a view (a
whole NaN row) contributes nothing to it.

Priors (joint density; all hyperparameters are constructor arguments)::

    z_i ~ N(0, I_K)
    α_mk ~ Gamma(a_α, b_α)                         view × factor ARD precision
    λ_jk ~ C⁺(0, 1)                                 feature-level horseshoe
    p(w_jk | λ, α) ∝ N(w_jk | 0, λ_jk²/α_m(j)k) · exp(−w_jk²/(2c²))
    μ_j ~ N(0, s_μ²),  b_j ~ N(0, s_b² I),  τ_j ~ Gamma(a_τ, b_τ)

The Gaussian "slab" factor exp(−w²/2c²) regularises the horseshoe as in
Piironen & Vehtari (2017): a loading can escape shrinkage but never beyond
the slab scale c (``slab_scale``); written as a factor of the joint density
(the "product" form) it keeps every full conditional conjugate, so the exact
Gibbs kernel (:mod:`bayesimg.models.factor.gibbs`), NUTS and SVI all target the
*same* posterior.  α switches a factor off in a view (shared versus
view-specific factors); λ gives feature-level sparsity; the slab bounds both.

Optional outcome (supervised factors, fitted jointly)::

    y_i ~ N(β₀ + z_iᵀβ + x_iᵀγ, 1/τ_y)   or   Bernoulli(σ(β₀ + z_iᵀβ + x_iᵀγ)),
    β ~ N(0, s_β² I)

(a Gaussian outcome is standardised internally; predictions are returned on
the original scale).  With two views this is Bayesian CCA (shared factors)
plus view-specific factors.

Inference: ``method="gibbs"`` (blocked exact Gibbs: conjugate Gaussian updates,
Pólya-Gamma augmentation for Bernoulli/binomial views, data augmentation for
scattered missing entries), ``"nuts"`` (non-centred loadings) and ``"svi"``;
every chain starts from a PCA + varimax solution (:func:`pca_varimax_init`).
Factors are identified only up to rotation, sign and permutation: the sparse
prior pins the rotation only where the data allow it, so
:meth:`MultiViewFactor.align_draws` matches sign and order across draws and chains,
then rotates every draw onto the varimax rotation of the matched mean by orthogonal
Procrustes (exact: ZWᵀ is unchanged; :mod:`bayesimg.models.factor.identify`), and
reports rotation-aware diagnostics (:mod:`bayesimg.models.factor.align`).  The
returned ``Z``, ``W_<view>`` and ``beta`` are these identified draws.

Named outputs: ``Z`` (sample, factor), ``W_<view>`` (feature_<view>, factor),
``incl_<view>`` (feature_<view>, factor: the horseshoe's 1 − κ, a posterior
feature-inclusion probability), ``alpha`` (view, factor), ``mu_<view>``,
``tau_<view>`` (Gaussian views), ``B_<view>`` (feature_<view>, covariate),
``beta`` (factor), ``beta0``, ``gamma_outcome`` (covariate), ``tau_outcome``; added
after alignment, per draw, the identified summaries the convergence verdict is
based on: ``variance_share`` (view, factor) and ``subspace_cosine`` (factor)
(:func:`bayesimg.models.factor.align.identified_summaries`).
The observed site ``Y`` has dims (sample, feature) over all views' features
(labels ``view:feature``, plus ``outcome:<name>``), so the pointwise
log-likelihood is per subject, summed over every observed entry of every view.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.distributions import constraints
from numpyro.infer import init_to_value
from threadpoolctl import threadpool_limits

from bayesimg.data.views import MultiViewData
from bayesimg.errors import DataValidationError, ModelSpecError
from bayesimg.models.core.base import Model
from bayesimg.models.factor.layout import (  # noqa: F401  (re-exported)
    KIND_CODES,
    OUTCOME_VIEW,
    TRIALS,
    FactorLayout,
    make_layout,
    split_columns,
)


# ---------------------------------------------------------------------------- likelihood
class MixedViewLikelihood(dist.Distribution):
    """Independent Gaussian / Bernoulli / Binomial(2) cells with a mask.

    ``psi`` (n, P) linear predictors, ``tau`` (P,) Gaussian precisions (ignored
    for count columns), ``mask`` (n, P) observed entries (masked cells have
    log-density 0) and ``blocks``: static ``(start, stop, trials)`` column
    ranges (trials 0 = Gaussian, 1 = Bernoulli, 2 = Binomial(2)), so each
    block evaluates only its own formula.
    """

    arg_constraints = {}
    support = constraints.real

    def __init__(self, psi, tau, mask, blocks, validate_args=None):
        self.psi, self.tau, self.obs_mask = psi, tau, mask
        self.blocks = _merge_blocks(blocks)
        super().__init__(batch_shape=jnp.shape(psi), event_shape=(),
                         validate_args=validate_args)

    def log_prob(self, value):
        parts = []
        whole = len(self.blocks) == 1
        for start, stop, trials in self.blocks:
            y, psi = ((value, self.psi) if whole else
                      (value[..., start:stop], self.psi[..., start:stop]))
            if trials == 0:
                tau = self.tau[start:stop]
                lp = 0.5 * jnp.log(tau) - 0.5 * math.log(2 * math.pi) - 0.5 * tau * (y - psi) ** 2
            else:
                lp = y * psi - trials * jax.nn.softplus(psi)
                if trials == 2:  # log C(2, 1) = log 2 for a heterozygous dosage
                    lp = lp + jnp.where(y == 1, math.log(2.0), 0.0)
            parts.append(lp)
        lp = parts[0] if len(parts) == 1 else jnp.concatenate(parts, axis=-1)
        return jnp.where(self.obs_mask > 0, lp, 0.0)

    def sample(self, key, sample_shape=()):
        shape = sample_shape + self.batch_shape
        keys = jax.random.split(key, len(self.blocks))
        parts = []
        for k, (start, stop, trials) in zip(keys, self.blocks, strict=True):
            psi = jnp.broadcast_to(self.psi[..., start:stop], shape[:-1] + (stop - start,))
            if trials == 0:
                parts.append(psi + jax.random.normal(k, psi.shape)
                             / jnp.sqrt(self.tau[start:stop]))
            else:
                parts.append(jax.random.binomial(k, trials, jax.nn.sigmoid(psi))
                             .astype(psi.dtype))
        return jnp.concatenate(parts, axis=-1)


def _merge_blocks(blocks) -> tuple[tuple[int, int, int], ...]:
    """Join adjacent blocks of the same kind: with all-Gaussian views the log-density
    is one expression over all columns, without slices and a concatenation
    (recording the pointwise log-likelihood of a draw took ~4.4 ms with them and
    ~2.5 ms without, at N = 500 and 1700 columns, next to a ~13 ms Gibbs sweep)."""
    out: list[tuple[int, int, int]] = []
    for start, stop, trials in blocks:
        if out and out[-1][1] == start and out[-1][2] == trials:
            out[-1] = (out[-1][0], stop, trials)
        else:
            out.append((start, stop, trials))
    return tuple(out)


def column_blocks(layout) -> list[tuple[int, int, int]]:
    """Static (start, stop, trials) blocks of the concatenated columns (views, outcome)."""
    off = layout.offsets
    blocks = [(int(off[m]), int(off[m + 1]), TRIALS[lik])
              for m, lik in enumerate(layout.likelihoods)]
    if layout.outcome_kind:
        blocks.append((int(off[-1]), int(off[-1]) + 1, TRIALS[layout.outcome_kind]))
    return blocks


# ---------------------------------------------------------------------------- init
def varimax(loadings: np.ndarray, max_iter: int = 200, tol: float = 1e-8) -> np.ndarray:
    """Orthogonal rotation R maximising the varimax criterion of ``loadings @ R``."""
    p, k = loadings.shape
    R = np.eye(k)
    d = 0.0
    for _ in range(max_iter):
        L = loadings @ R
        u, s, vt = np.linalg.svd(loadings.T @ (L**3 - L @ np.diag(np.sum(L**2, axis=0)) / p))
        R = u @ vt
        d_new = np.sum(s)
        if d_new < d * (1 + tol):
            break
        d = d_new
    return R


def pca_varimax_init(Y: np.ndarray, mask: np.ndarray, present: np.ndarray,
                     column_view: np.ndarray, n_factors: int, seed: int = 0):
    """PCA of the mean-imputed, per-view-weighted data, then varimax.

    Columns are standardised over observed entries and each view is weighted by
    1/√D_m so a large view does not dominate (MOFA's known imbalance).  Uses a
    randomised SVD (cost O(n·P·K)).  Returns Z (n, K) with unit-variance
    columns and W (P, K) on the data scale.
    """
    # thin products, QRs and 10 × 10 SVDs: extra BLAS threads only spin (measured on
    # a busy 2-core machine: 1.3 CPU-s with two OpenBLAS threads, 0.06 s with one)
    with threadpool_limits(limits=1, user_api="blas"):
        return _pca_varimax(Y, mask, column_view, n_factors, seed)


def _pca_varimax(Y, mask, column_view, n_factors, seed):
    rng = np.random.default_rng(seed)
    Yc = np.where(mask > 0, Y, np.nan)
    mean = np.nanmean(np.where(np.isnan(Yc).all(0), 0.0, Yc), axis=0)
    sd = np.nanstd(np.where(np.isnan(Yc).all(0), 1.0, Yc), axis=0)
    sd = np.where(sd > 1e-8, sd, 1.0)
    S = np.where(mask > 0, (Y - mean) / sd, 0.0)
    sizes = np.bincount(column_view)
    S = S / np.sqrt(sizes[column_view])[None, :]
    n, P = S.shape
    k = min(n_factors, n - 1, P)
    q = min(k + 10, min(n, P))
    Omega = rng.standard_normal((P, q))
    Q, _ = np.linalg.qr(S @ Omega)
    for _ in range(3):
        Q, _ = np.linalg.qr(S.T @ Q)
        Q, _ = np.linalg.qr(S @ Q)
    B = Q.T @ S
    Ub, s, Vt = np.linalg.svd(B, full_matrices=False)
    U = Q @ Ub[:, :k]
    Z = U * np.sqrt(n)
    # loadings on the original data scale by regression of each column on Z
    Wstd = (S.T @ Z) / n * np.sqrt(sizes[column_view])[:, None]
    W = Wstd * sd[:, None]
    R = varimax(Wstd / np.sqrt(sizes[column_view])[:, None])
    Z, W = Z @ R, W @ R
    if k < n_factors:  # pad with small random factors
        Z = np.hstack([Z, 0.1 * rng.standard_normal((n, n_factors - k))])
        W = np.hstack([W, np.zeros((P, n_factors - k))])
    return Z, W


# ---------------------------------------------------------------------------- model
class MultiViewFactor(Model):
    """Bayesian multi-view factor analysis (see the module docstring).

    Parameters
    ----------
    n_factors : int
        K, an upper bound: ARD (α) and the horseshoe switch unneeded factors off.
    slab_scale : float
        c, the regularising slab of the horseshoe (loadings on the data scale).
    ard_prior : (shape, rate)
        Gamma prior of the view × factor precisions α.
    noise_prior : (shape, rate)
        Gamma prior of the Gaussian noise precisions τ.
    intercept_scale, covariate_scale, outcome_scale : float
        Prior sds of μ, of covariate coefficients (B, γ) and of β.
    weighted_missing : float
        Gibbs only: a Gaussian view whose present subjects miss more than this
        fraction of entries uses exact per-entry masking instead of data
        augmentation (slower per sweep, faster mixing at heavy missingness).
    init_jitter : float
        Angle scale (radians) of a random rotation applied to the PCA+varimax
        start of every MCMC chain, so chains start apart and a rotation the
        data do not identify shows up as disagreement between chains.
    pg_terms : int
        Terms of the truncated series used for Pólya-Gamma draws (the rest of
        the series is replaced by its mean, so E[ω] stays exact).  The share of
        Var(ω) left out is largest at ψ = 0: 1.4% with 1 term, 0.23% with 2,
        0.072% with 3 (default), 0.002% with 10; the draws cost one uniform
        per term and observed Bernoulli entry.
    """

    name = "factor"
    observed = {"Y": ("sample", "feature")}
    association_site = None
    trace_sites = ("alpha",)

    def __init__(self, n_factors: int = 10, *, slab_scale: float = 3.0,
                 ard_prior: tuple[float, float] = (1e-3, 1e-3),
                 noise_prior: tuple[float, float] = (1.0, 1.0),
                 intercept_scale: float = 3.0, covariate_scale: float = 10.0,
                 outcome_scale: float = 1.0, weighted_missing: float = 0.5,
                 init_jitter: float = 0.1, pg_terms: int = 3):
        if isinstance(n_factors, bool) or not isinstance(n_factors, int | np.integer) \
                or n_factors < 1:
            raise ModelSpecError(f"n_factors must be an integer >= 1, got {n_factors!r}")
        for label, value in (("slab_scale", slab_scale), ("intercept_scale", intercept_scale),
                             ("covariate_scale", covariate_scale),
                             ("outcome_scale", outcome_scale)):
            if not np.isfinite(value) or value <= 0:
                raise ModelSpecError(f"{label} must be a positive number, got {value!r}")
        for label, pair in (("ard_prior", ard_prior), ("noise_prior", noise_prior)):
            if len(pair) != 2 or not all(np.isfinite(pair)) or min(pair) <= 0:
                raise ModelSpecError(f"{label} must be (shape, rate) with both > 0, got {pair!r}")
        if not 0.0 <= weighted_missing <= 1.0:
            raise ModelSpecError(f"weighted_missing must be in [0, 1], got {weighted_missing!r}")
        if init_jitter < 0:
            raise ModelSpecError(f"init_jitter must be >= 0, got {init_jitter!r}")
        if int(pg_terms) < 1:
            raise ModelSpecError(f"pg_terms must be >= 1, got {pg_terms!r}")
        self.n_factors = int(n_factors)
        self.slab_scale = float(slab_scale)
        self.ard_prior = tuple(map(float, ard_prior))
        self.noise_prior = tuple(map(float, noise_prior))
        self.intercept_scale = float(intercept_scale)
        self.covariate_scale = float(covariate_scale)
        self.outcome_scale = float(outcome_scale)
        self.weighted_missing = float(weighted_missing)
        self.init_jitter = float(init_jitter)
        self.pg_terms = int(pg_terms)
        self._layout: FactorLayout | None = None

    # ------------------------------------------------------------ layout & labels
    def settings(self) -> dict[str, Any]:
        return {"n_factors": self.n_factors, "slab_scale": self.slab_scale,
                "ard_prior": self.ard_prior, "noise_prior": self.noise_prior,
                "intercept_scale": self.intercept_scale,
                "covariate_scale": self.covariate_scale, "outcome_scale": self.outcome_scale,
                "weighted_missing": self.weighted_missing, "init_jitter": self.init_jitter,
                "pg_terms": self.pg_terms}

    def layout(self, data: MultiViewData) -> FactorLayout:
        """The static structure of ``data`` (also remembered for :attr:`dims`)."""
        self.validate(data)
        return self._layout

    def _need_layout(self) -> FactorLayout:
        if self._layout is None:
            raise ModelSpecError("the model has not seen data yet: dims depend on the views")
        return self._layout

    @property
    def dims(self):
        lay = self._need_layout()
        out: dict[str, tuple[str, ...]] = {"Z": ("sample", "factor"),
                                           "alpha": ("view", "factor"),
                                           "variance_share": ("view", "factor"),
                                           "subspace_cosine": ("factor",)}
        for v, lik in zip(lay.views, lay.likelihoods, strict=True):
            f = f"feature_{v}"
            out[f"W_{v}"] = (f, "factor")
            out[f"W_raw_{v}"] = (f, "factor")
            out[f"lam_{v}"] = (f, "factor")
            out[f"incl_{v}"] = (f, "factor")
            out[f"mu_{v}"] = (f,)
            if lik == "gaussian":
                out[f"tau_{v}"] = (f,)
            if lay.n_covariates:
                out[f"B_{v}"] = (f, "covariate")
        if lay.outcome_kind:
            out["beta"] = ("factor",)
            out["beta0"] = ()
            if lay.outcome_kind == "gaussian":
                out["tau_outcome"] = ()
            if lay.n_covariates:
                out["gamma_outcome"] = ("covariate",)
        return out

    @property
    def label_dependent_sites(self) -> frozenset[str]:
        """Factor-indexed sites: their draws carry arbitrary factor labels and signs until
        :meth:`align_draws` matches them, so a streamed mean over draws (chains with
        opposite signs cancel) would be meaningless; large ones are thinned instead."""
        lay = self._need_layout()
        return frozenset({"Z", "alpha", "beta"} | {f"W_{v}" for v in lay.views}
                         | {f"incl_{v}" for v in lay.views})

    @property
    def hidden_sites(self) -> frozenset[str]:
        lay = self._need_layout()
        return frozenset({f"W_raw_{v}" for v in lay.views} | {f"lam_{v}" for v in lay.views})

    def static_key(self, data: MultiViewData) -> tuple:
        lay = self.layout(data)
        return (type(self).__qualname__, lay.key(), tuple(sorted(
            (k, v) for k, v in self.settings().items() if k != "init_jitter")))

    def coords(self, data: MultiViewData) -> dict[str, np.ndarray]:
        lay = self.layout(data)
        coords = {"sample": np.asarray(data.subjects, dtype=str),
                  "factor": np.asarray([f"F{k + 1}" for k in range(self.n_factors)]),
                  "view": np.asarray(lay.views, dtype=str),
                  "feature": lay.feature_labels()}
        for v, names in zip(lay.views, lay.feature_names, strict=True):
            coords[f"feature_{v}"] = names
        if lay.n_covariates:
            coords["covariate"] = lay.covariate_names
        return coords

    # ------------------------------------------------------------ validation
    def validate(self, data: MultiViewData) -> None:
        if not isinstance(data, MultiViewData):
            raise DataValidationError(
                f"MultiViewFactor needs a MultiViewData (bayesimg.data.make_views), "
                f"got {type(data).__name__}")
        if data.n_subjects < 3:
            raise DataValidationError(f"need at least 3 subjects, got {data.n_subjects}")
        for v in data.views:
            if v.name == OUTCOME_VIEW:
                raise DataValidationError(
                    f"the view name {OUTCOME_VIEW!r} is reserved for the outcome", source=v.name)
            if not v.observed.any():
                raise DataValidationError("the view has no observed entry", source=v.name)
            vals = v.values[v.observed]
            if not np.all(np.isfinite(vals)):
                raise DataValidationError("the view contains infinite values", source=v.name)
            if v.likelihood in ("bernoulli", "binomial2"):
                allowed = (0.0, 1.0) if v.likelihood == "bernoulli" else (0.0, 1.0, 2.0)
                bad = v.observed & ~np.isin(np.nan_to_num(v.values, nan=0.0), allowed)
                if bad.any():
                    i, j = np.argwhere(bad)[0]
                    raise DataValidationError(
                        f"value {v.values[i, j]!r} not allowed for a {v.likelihood} view",
                        source=v.name, column=str(v.feature_names[j]),
                        subject=str(data.subjects[i]))
        present = np.column_stack([v.subject_present for v in data.views])
        if data.outcome is None:
            empty = ~present.any(axis=1)
        else:
            empty = ~present.any(axis=1) & np.isnan(data.outcome)
        if empty.any():
            raise DataValidationError("subject has no observed entry in any view",
                                      subject=str(data.subjects[int(np.flatnonzero(empty)[0])]))
        if data.covariates is not None and not np.all(np.isfinite(data.covariates)):
            i, j = np.argwhere(~np.isfinite(data.covariates))[0]
            raise DataValidationError("covariates contain NaN or inf", source="covariates",
                                      column=str(data.covariate_names[j]),
                                      subject=str(data.subjects[i]))
        if data.outcome is not None and data.outcome_kind == "gaussian":
            y = data.outcome[~np.isnan(data.outcome)]
            if y.size < 2 or np.std(y) == 0:
                raise DataValidationError("the Gaussian outcome needs two distinct values",
                                          source="outcome")
        # the layout (views, sizes, likelihoods) sets dims and the compiled program
        self._layout = make_layout(data, self.weighted_missing)

    # ------------------------------------------------------------ arrays
    @staticmethod
    def outcome_standardisation(data: MultiViewData) -> tuple[float, float]:
        """(centre, scale) used internally for a Gaussian outcome ((0, 1) otherwise)."""
        if data.outcome is None or data.outcome_kind != "gaussian":
            return 0.0, 1.0
        y = data.outcome[~np.isnan(data.outcome)]
        return float(np.mean(y)), float(np.std(y))

    def data_arrays(self, data: MultiViewData) -> dict[str, np.ndarray]:
        """Concatenated Y (NaN → 0), mask, presence (n, M [+1]) and static column info."""
        lay = self.layout(data)
        blocks = [v.values for v in data.views]
        presence = [v.subject_present for v in data.views]
        if lay.outcome_kind:
            c, s = self.outcome_standardisation(data)
            blocks.append(((data.outcome - c) / s)[:, None])
            presence.append(~np.isnan(data.outcome))
        Y = np.hstack(blocks)
        mask = ~np.isnan(Y)
        return {"Y": np.where(mask, Y, 0.0), "mask": mask.astype(float),
                "present": np.column_stack(presence).astype(float),
                "X": None if data.covariates is None else np.asarray(data.covariates, float),
                "column_view": lay.column_view(),
                "trials": np.asarray([TRIALS[k] for k in lay.column_likelihood()], float)}

    def model_args(self, data: MultiViewData, method: str = "nuts") -> dict[str, Any]:
        arr = self.data_arrays(data)
        args = {"Y": arr["Y"], "mask": arr["mask"], "present": arr["present"], "X": arr["X"]}
        if method == "gibbs":
            args.update(self._gibbs_args(arr))
        return args

    def subject_axis_args(self, data: MultiViewData, method: str = "nuts", *, args=None):
        # not init_W (P×K), ys2_obs or the flat impute_index and pg_index, whatever their lengths
        return frozenset({"Y", "mask", "present", "X", "init_Z", "Ys", "Yw", "Mw"})

    def _gibbs_args(self, arr) -> dict[str, np.ndarray]:
        """Extra arrays of the Gibbs kernel: the start, and the columns split into
        augmented Gaussian columns (``Ys``) and per-entry weighted ones (``Yw``)."""
        lay = self._need_layout()
        Z0, W0 = pca_varimax_init(arr["Y"], arr["mask"], arr["present"],
                                  arr["column_view"], self.n_factors)
        sidx, widx = split_columns(lay)
        col_view = arr["column_view"]
        pres_col = arr["present"][:, col_view] > 0
        Ys = np.where(pres_col[:, sidx] & (arr["mask"][:, sidx] > 0), arr["Y"][:, sidx], 0.0)
        todo = (arr["mask"][:, sidx] == 0) & pres_col[:, sidx]
        # observed entries of the weighted count columns: the Pólya-Gamma draws
        count_w = arr["trials"][widx] > 0
        Mw = arr["mask"][:, widx]
        pg_index = np.flatnonzero(((Mw > 0) & count_w[None, :]).ravel()).astype(np.int64)
        return {"init_Z": Z0, "init_W": W0, "Ys": Ys, "Yw": arr["Y"][:, widx],
                "Mw": Mw, "ys2_obs": np.sum(Ys**2, axis=0),
                "impute_index": np.flatnonzero(todo.ravel()).astype(np.int64),
                "pg_index": pg_index}

    def observed_data(self, data: MultiViewData) -> dict[str, np.ndarray]:
        arr = self.data_arrays(data)
        return {"Y": np.where(arr["mask"] > 0, arr["Y"], np.nan)}

    def constant_data(self, data: MultiViewData):
        lay = self.layout(data)
        out = {"column_trials": (("feature",), self.data_arrays(data)["trials"])}
        if data.covariates is not None:
            out["X"] = (("sample", "covariate"), np.asarray(data.covariates, float))
        if lay.outcome_kind:
            c, s = self.outcome_standardisation(data)
            out["outcome_centre"] = ((), np.asarray(c))
            out["outcome_scale"] = ((), np.asarray(s))
        # training centres/scales of the Gaussian view features (prediction's units)
        prep = data.preprocessing or {}
        centers, scales = [], []
        for v in data.views:
            centers.append(np.asarray(prep.get("centers", {}).get(v.name, np.zeros(v.n_features)),
                                      float).reshape(-1)[:v.n_features])
            scales.append(np.asarray(prep.get("scales", {}).get(v.name, np.ones(v.n_features)),
                                     float).reshape(-1)[:v.n_features])
        labels = lay.feature_labels()
        n_view_cols = sum(v.n_features for v in data.views)
        if len(labels) == n_view_cols:
            out["feature_center"] = (("feature",), np.concatenate(centers))
            out["feature_scale"] = (("feature",), np.concatenate(scales))
        else:  # the outcome is a column of "feature": pad it (its own constants are above)
            out["feature_center"] = (("feature",), np.append(np.concatenate(centers), 0.0))
            out["feature_scale"] = (("feature",), np.append(np.concatenate(scales), 1.0))
        return out

    def predict_draws(self, tree, new_data, *, draws, rng):
        """Factors of new subjects from the views they have, every feature drawn (missing
        views imputed), the outcome predicted (:mod:`bayesimg.models.factor.predict`)."""
        from bayesimg.models.factor.predict import factor_predict
        return factor_predict(tree, new_data, draws, rng)

    def predictive_args(self, data: MultiViewData, method: str = "nuts") -> dict[str, Any]:
        args = self.model_args(data, "nuts")
        args["Y"] = None
        args["n_columns"] = self._need_layout().n_columns
        return args

    def init_strategy(self, data: MultiViewData, method: str):
        arr = self.data_arrays(data)
        Z0, W0 = pca_varimax_init(arr["Y"], arr["mask"], arr["present"], arr["column_view"],
                                  self.n_factors)
        lay = self._need_layout()
        values: dict[str, np.ndarray] = {"Z": Z0}
        off = lay.offsets
        alpha = np.empty((lay.n_views, self.n_factors))
        for m, v in enumerate(lay.views):
            Wm = W0[off[m]:off[m + 1]]
            alpha[m] = 1.0 / (np.mean(Wm**2, axis=0) + 1e-2)
            values[f"lam_{v}"] = np.ones_like(Wm)
            if method == "gibbs":
                values[f"W_{v}"] = Wm
            else:
                values[f"W_raw_{v}"] = Wm * np.sqrt(alpha[m])[None, :]
        values["alpha"] = alpha
        if lay.outcome_kind:
            values["beta"] = W0[-1]
        return init_to_value(values=values)

    # ------------------------------------------------------------ the model
    def numpyro_model(self, method: str = "nuts"):
        lay = self._need_layout()
        K = self.n_factors
        centred = method == "gibbs"
        a_alpha, b_alpha = self.ard_prior
        a_tau, b_tau = self.noise_prior
        slab, s_mu, s_b, s_beta = (self.slab_scale, self.intercept_scale,
                                   self.covariate_scale, self.outcome_scale)
        blocks = column_blocks(lay)

        def factor_model(Y, mask, present, X, n_columns=None, **gibbs_arrays):
            n = mask.shape[0]
            Z = numpyro.sample("Z", dist.Normal(0.0, 1.0).expand([n, K]).to_event(2))
            alpha = numpyro.sample(
                "alpha", dist.Gamma(a_alpha, b_alpha).expand([lay.n_views, K]).to_event(2))
            Ws, mus, taus, Bs = [], [], [], []
            for m, (v, d, lik) in enumerate(zip(lay.views, lay.sizes, lay.likelihoods,
                                                strict=True)):
                lam = numpyro.sample(f"lam_{v}", dist.HalfCauchy(1.0).expand([d, K]).to_event(2))
                scale = lam / jnp.sqrt(alpha[m])[None, :]
                if centred:
                    W = numpyro.sample(f"W_{v}", dist.Normal(0.0, scale).to_event(2))
                else:
                    raw = numpyro.sample(f"W_raw_{v}",
                                         dist.Normal(0.0, 1.0).expand([d, K]).to_event(2))
                    W = numpyro.deterministic(f"W_{v}", raw * scale)
                numpyro.factor(f"slab_{v}", -0.5 * jnp.sum(W**2) / slab**2)
                mu = numpyro.sample(f"mu_{v}", dist.Normal(0.0, s_mu).expand([d]).to_event(1))
                if lik == "gaussian":
                    tau = numpyro.sample(f"tau_{v}", dist.Gamma(a_tau, b_tau).expand([d])
                                         .to_event(1))
                    info = tau
                else:
                    tau = jnp.ones((d,))
                    info = jnp.full((d,), 0.25 * TRIALS[lik])
                n_eff = jnp.sum(present[:, m])
                numpyro.deterministic(
                    f"incl_{v}", 1.0 - 1.0 / (1.0 + n_eff * info[:, None] * scale**2))
                if lay.n_covariates:
                    Bs.append(numpyro.sample(
                        f"B_{v}", dist.Normal(0.0, s_b).expand([d, lay.n_covariates])
                        .to_event(2)))
                Ws.append(W)
                mus.append(mu)
                taus.append(tau)
            if lay.outcome_kind:
                beta = numpyro.sample("beta", dist.Normal(0.0, s_beta).expand([K]).to_event(1))
                beta0 = numpyro.sample("beta0", dist.Normal(0.0, s_mu))
                Ws.append(beta[None, :])
                mus.append(beta0[None])
                if lay.outcome_kind == "gaussian":
                    taus.append(numpyro.sample("tau_outcome", dist.Gamma(a_tau, b_tau))[None])
                else:
                    taus.append(jnp.ones((1,)))
                if lay.n_covariates:
                    Bs.append(numpyro.sample(
                        "gamma_outcome", dist.Normal(0.0, s_b).expand([lay.n_covariates])
                        .to_event(1))[None, :])
            W_all = jnp.concatenate(Ws, axis=0)
            psi = Z @ W_all.T + jnp.concatenate(mus)[None, :]
            if lay.n_covariates:
                psi = psi + X @ jnp.concatenate(Bs, axis=0).T
            numpyro.sample("Y", MixedViewLikelihood(psi, jnp.concatenate(taus), mask, blocks),
                           obs=Y)

        return factor_model

    def gibbs_kernel(self, data: MultiViewData):
        """Blocked exact Gibbs kernel (:mod:`bayesimg.models.factor.gibbs`)."""
        from bayesimg.models.factor.gibbs import FactorGibbs
        return FactorGibbs(self, self.layout(data))

    def align_draws(self, samples, data):
        """Sign/permutation alignment + rotation-aware diagnostics (:mod:`.align`)."""
        from bayesimg.models.factor.align import align_factor_draws
        return align_factor_draws(samples, self.layout(data))
