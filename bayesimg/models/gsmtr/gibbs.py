r"""Exact blocked Gibbs sampler for GSMTR (the hierarchical form of MODELS.md §1).

One sweep draws every block from its full conditional:

* (σ², W) | τ, ω, Γ jointly, from one factorisation.  With T = Y − ZΓ and
  A = XᵀX + D, D = diag_i(1/τ_k(i) + 1/ω_i), the prior W | σ² ~ N(0, σ²D⁻¹) integrates
  out in closed form, leaving
  σ² | τ, ω, Γ ~ InvGamma(nc/2 + 3, q/2 + 1), q = ‖T‖²_F − Σ_j t_jᵀX A⁻¹Xᵀt_j
  (= Σ_j t_jᵀ(I + XD⁻¹Xᵀ)⁻¹t_j by Woodbury); then W | σ², τ, ω, Γ has independent columns
  w_·j ~ N(A⁻¹Xᵀt_j, σ²A⁻¹).  Both come from one Cholesky of A (d ≤ n:
  q = ‖T‖² − ‖L⁻¹XᵀT‖²) or, for d > n, of the n×n matrix I + XD⁻¹Xᵀ of
  Bhattacharya–Chakraborty–Mallick (2016) (branch chosen from the shapes at compile
  time).  Drawing σ² with W integrated out, rather than σ² | W, removes the W–σ²
  coupling that the σ-scaled prior creates (it made σ² mix slowly as d approaches or
  exceeds n) at no extra cost;
* 1/τ_k | · ~ InvGauss(√(λ₁σ²/‖W_k‖²_F), λ₁) and 1/ω_i | · ~ InvGauss(√(λ₂σ²/‖w_i‖²), λ₂);
* Γ | W, σ² (covariates, our extension): columns γ_j ~ N(P⁻¹Zᵀ(y_j − Xw_j)/σ², P⁻¹) with
  P = ZᵀZ/σ² + I/s²;
* site random effects (when ``H`` is given): the site indicators H join the covariates,
  Z̃ = [Z, H], and [Γ; U] is drawn jointly, column j from
  N(P_j⁻¹Z̃ᵀ(y_j − Xw_j)/σ², P_j⁻¹), P_j = Z̃ᵀZ̃/σ² + diag(1/s², …, 1/τ_j², …); then the
  site sds τ and their auxiliaries ν (half-Cauchy prior) from their conjugate
  conditionals (:mod:`bayesimg.models.core.site_effects`).  Everywhere else U is part of
  the covariate term: the target of (σ², W) is Y − Z̃[Γ; U];
* λ₁ | τ ~ Gamma(a + Σ_k (m_k c + 1)/2, b + Σ_k τ_k/2) and λ₂ | ω ~ Gamma(a + d(c + 1)/2,
  b + Σ_i ω_i/2) when λ has a Gamma(a, b) hyperprior.

For d ≤ n the sweep touches the data only through sufficient statistics computed
once at initialisation and carried in the state — XᵀX, XᵀY, ‖Y‖²_F (and XᵀZ,
ZᵀY, ZᵀZ with covariates) — so its cost, d³/3 + O(d²c), does not grow with n.
Zero rows appended to X, Y (and Z) change none of these statistics; given the real
count (``n_real_subjects``) the sweep draws exactly as on the unpadded data, which is
how batched fits on nearby subject counts share one program
(:mod:`bayesimg.inference.padding`).
The joint density is MODELS.md §1 (bgsmtr's), whose σ² full conditional given W,
InvGamma(nc/2 + dc/2 + 3, ‖T − XW‖²/2 + Σ_i ‖w_i‖²(1/τ_k(i) + 1/ω_i)/2 + 1), is what
the collapsed draw above integrates.  All Gamma variates of a sweep (σ², and λ₁, λ₂
under a hyperprior) come from one call of :func:`bayesimg.models.core.gamma.gamma` (a
small Marsaglia–Tsang program; each ``jax.random.gamma`` call site cost ~3 CPU-s of
compile).  The kernel is a NumPyro ``MCMCKernel``, so the shared MCMC driver runs it like NUTS.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from bayesimg.models.core.base import REAL_SUBJECTS_ARG
from bayesimg.models.core.conditionals import (
    gaussian_columns_given_precision,
    gaussian_columns_wide,
    inverse_gaussian,
)
from bayesimg.models.core.gamma import gamma
from bayesimg.models.core.gibbs_kernel import ExactGibbsKernel
from bayesimg.models.core.linalg import cho_solve, factor_and_apply, solve_lower_t
from bayesimg.models.core.site_effects import (
    draw_site_scales,
    gaussian_columns_per_column_prior,
    initial_site_state,
    site_augmented,
    stacked_coefficients,
)


class GSMTRGibbsState(NamedTuple):
    i: jnp.ndarray
    z: dict
    cache: dict
    rng_key: jnp.ndarray
    #: sample stats read by the MCMC driver: ``cholesky_jitter`` = jitter retries
    #: of the Cholesky factorisations in this sweep (0 when all were exact)
    stats: dict


class GSMTRGibbs(ExactGibbsKernel):
    """Blocked Gibbs kernel for :class:`~bayesimg.models.GroupSparseMTR`."""

    def __init__(self, hyperprior=None, covariate_scale: float = 10.0):
        self.hyperprior = hyperprior
        self.covariate_scale = covariate_scale

    # ------------------------------------------------------------------ init
    def init(self, rng_key, num_warmup, init_params, model_args, model_kwargs):
        state = self._initial_state(rng_key, model_kwargs, model_kwargs["Y"])
        # one sweep from the prior-drawn scales gives a valid starting W
        return self.sample(state, model_args, model_kwargs)

    @property
    def init_before_first_sweep(self):
        """``init`` without its sweep (``init = sample ∘ this``), or ``None``.

        The MCMC driver then runs that first sweep with its own (already compiled)
        transition program, so the sweep is compiled once instead of also inside the
        init program (about half of GSMTR's compile); the draws are the same.  ``None``
        for a subclass with its own ``init``, which may not keep that identity.
        """
        if type(self).init is not GSMTRGibbs.init:
            return None

        def before_sweep(rng_key, num_warmup, init_params, model_args, model_kwargs):
            return self._initial_state(rng_key, model_kwargs, model_kwargs["Y"])

        return before_sweep

    def _initial_state(self, rng_key, kw, Y):
        """State before the first sweep: τ, ω from their prior, W = 0, statistics of Y."""
        X, Z = kw["X"], site_augmented(kw)
        n, d = X.shape
        c = Y.shape[1]
        n_genes = kw["gene_sizes"].shape[0]
        k_scales, _, k_state = jax.random.split(rng_key, 3)
        lam1, lam2 = kw["lambda1"], kw["lambda2"]
        if self.hyperprior is not None:
            lam1 = lam2 = jnp.asarray(self.hyperprior[0] / self.hyperprior[1], X.dtype)
        # τ and ω from their priors, in one Gamma call (each call site compiles its own)
        scales = gamma(k_scales, jnp.concatenate([
            (kw["gene_sizes"] * c + 1.0) / 2.0, jnp.full((d,), (c + 1.0) / 2.0, X.dtype)]))
        z = {
            "sigma2": jnp.var(Y) * jnp.ones((), X.dtype),
            "tau": scales[:n_genes] * 2.0 / lam1,
            "omega": scales[n_genes:] * 2.0 / lam2,
            "W": jnp.zeros((d, c), X.dtype),
        }
        if kw["Z"] is not None:
            z["gamma"] = jnp.zeros((kw["Z"].shape[1], c), X.dtype)
        if kw.get("H") is not None:
            z.update(initial_site_state(kw["H"].shape[1], c, kw["site_scale"], X.dtype))
        if self.hyperprior is not None:
            z["lambda1"] = jnp.asarray(lam1, X.dtype)
            z["lambda2"] = jnp.asarray(lam2, X.dtype)
        cache = {"n_genes": jnp.zeros((n_genes,), X.dtype)}
        if d <= n:
            # sufficient statistics: a sweep never touches the n rows again
            cache["XtX"] = X.T @ X
            cache["XtY"] = X.T @ Y
            cache["YtY"] = jnp.sum(Y * Y)
            if Z is not None:
                cache["XtZ"] = X.T @ Z
        if Z is not None:
            cache["ZtZ"] = Z.T @ Z
            cache["ZtY"] = Z.T @ Y
        return GSMTRGibbsState(jnp.zeros((), jnp.int32), z, cache, k_state,
                               {"cholesky_jitter": jnp.zeros((), jnp.int32)})

    # ---------------------------------------------------------------- sweep
    def sample(self, state, model_args, model_kwargs):
        kw = model_kwargs
        X, Y, Z = kw["X"], kw["Y"], site_augmented(kw)
        gene_index, gene_sizes = kw["gene_index"], kw["gene_sizes"]
        n, d = X.shape
        c = Y.shape[1]
        n_genes = gene_sizes.shape[0]
        z = dict(state.z)
        keys = jax.random.split(state.rng_key, 7)
        lam1 = z.get("lambda1", kw["lambda1"])
        lam2 = z.get("lambda2", kw["lambda2"])
        cache = state.cache
        narrow = "XtX" in cache
        if narrow:
            # target = Y − ZΓ only through Xᵀtarget and ‖target‖² (cost free of n)
            xt_target, target_sq = cache["XtY"], cache["YtY"]
            if Z is not None:
                g = stacked_coefficients(z)
                xt_target = xt_target - cache["XtZ"] @ g
                target_sq = (target_sq - 2.0 * jnp.sum(g * cache["ZtY"])
                             + jnp.sum(g * (cache["ZtZ"] @ g)))
        else:
            target = Y if Z is None else Y - Z @ stacked_coefficients(z)

        # (σ², W) | τ, ω, Γ: σ² with W integrated out, then W | σ² (one factorisation)
        prior_prec = 1.0 / z["tau"][gene_index] + 1.0 / z["omega"]

        # subjects: X's rows, or the real count when the rows are zero-padded (narrow only)
        n_obs = kw.get(REAL_SUBJECTS_ARG, n)

        # every Gamma(shape, 1) variate of the sweep in one call: σ²'s, then λ₁'s and λ₂'s
        # (hyperprior); their shapes are fixed, the state only enters their rates
        shapes = [n_obs * c / 2.0 + 3.0]
        if self.hyperprior is not None:
            a, b = self.hyperprior
            shapes += [a + jnp.sum(gene_sizes * c + 1.0) / 2.0, a + d * (c + 1.0) / 2.0]
        unit_gammas = gamma(keys[3], jnp.stack([jnp.asarray(x, X.dtype) for x in shapes]))

        def draw_sigma2(q):
            return (q / 2.0 + 1.0) / unit_gammas[0]

        if narrow:
            W, sigma2, n_jitter = gaussian_columns_given_precision(
                keys[0], cache["XtX"], xt_target, prior_prec, draw_sigma2, rhs_sq=target_sq,
                return_jitter=True)
        else:
            W, sigma2, n_jitter = gaussian_columns_wide(keys[0], X, target, prior_prec,
                                                        draw_sigma2, return_jitter=True)
        z["W"], z["sigma2"] = W, sigma2

        # 1/τ, 1/ω | W, σ²
        z["tau"], z["omega"] = self._draw_scales(keys[1], keys[2], W, sigma2, lam1, lam2,
                                                 gene_index, n_genes)

        # Γ | W, σ²
        if Z is not None:
            zt_resid = (cache["ZtY"] - cache["XtZ"].T @ W) if narrow else Z.T @ (Y - X @ W)
            if kw.get("H") is None:
                noise = jax.random.normal(keys[4], (Z.shape[1], c), W.dtype)
                z["gamma"], gamma_jitter = self._draw_gamma(cache["ZtZ"], zt_resid, noise,
                                                            sigma2)
            else:
                z, gamma_jitter = self._draw_gamma_and_sites(keys[4], keys[5], z, kw,
                                                             cache["ZtZ"], zt_resid, sigma2)
            n_jitter = n_jitter + gamma_jitter

        # λ | τ, ω (hyperprior)
        if self.hyperprior is not None:
            z["lambda1"] = unit_gammas[1] / (b + jnp.sum(z["tau"]) / 2.0)
            z["lambda2"] = unit_gammas[2] / (b + jnp.sum(z["omega"]) / 2.0)

        return GSMTRGibbsState(state.i + 1, z, state.cache,
                               jax.random.split(state.rng_key, 1)[0],
                               {"cholesky_jitter": n_jitter})

    # ------------------------------------------------------ shared conditionals
    @staticmethod
    def _draw_scales(key_tau, key_omega, W, sigma2, lam1, lam2, gene_index, n_genes):
        """τ, ω | W, σ²: 1/τ_k ~ InvGauss(√(λ₁σ²/‖W_k‖²), λ₁) and
        1/ω_i ~ InvGauss(√(λ₂σ²/‖w_i‖²), λ₂)."""
        row_sq = jnp.sum(W * W, axis=1)
        gene_sq = jax.ops.segment_sum(row_sq, gene_index, num_segments=n_genes)
        tiny = jnp.finfo(W.dtype).tiny
        inv_tau = inverse_gaussian(key_tau, jnp.sqrt(lam1 * sigma2 / jnp.maximum(gene_sq, tiny)),
                                   lam1)
        inv_omega = inverse_gaussian(key_omega,
                                     jnp.sqrt(lam2 * sigma2 / jnp.maximum(row_sq, tiny)), lam2)
        return 1.0 / inv_tau, 1.0 / inv_omega

    def _draw_gamma(self, ZtZ, zt_resid, noise, noise_var):
        """Γ columns | W: N(P⁻¹Zᵀr_j/v, P⁻¹), P = ZᵀZ/v + I/s², noise variance v."""
        r = ZtZ.shape[0]
        P = ZtZ / noise_var + jnp.eye(r, dtype=ZtZ.dtype) / self.covariate_scale**2
        return factor_and_apply(
            P, lambda L: cho_solve(L, zt_resid / noise_var) + solve_lower_t(L, noise))

    def _draw_gamma_and_sites(self, key, key_scales, z, kw, ZtZ, zt_resid, noise_var):
        """[Γ; U] jointly given W (per-phenotype prior precisions), then τ, ν | U.
        Returns the updated state dict and the jitter count."""
        z = dict(z)
        c = zt_resid.shape[1]
        r = 0 if kw["Z"] is None else kw["Z"].shape[1]
        n_sites = kw["H"].shape[1]
        dt = zt_resid.dtype
        prec = jnp.concatenate([
            jnp.full((r, c), 1.0 / self.covariate_scale**2, dt),
            jnp.broadcast_to(1.0 / z["site_sd"] ** 2, (n_sites, c))], axis=0)
        coef, jitter = gaussian_columns_per_column_prior(key, ZtZ, zt_resid, prec, noise_var,
                                                         return_jitter=True)
        if r:
            z["gamma"] = coef[:r]
        z["site_effect"] = coef[r:]
        z["site_sd"], z["site_aux"] = draw_site_scales(key_scales, z["site_effect"],
                                                       z["site_aux"], kw["site_scale"])
        return z, jitter

    def _draw_lambdas(self, key1, key2, z, gene_sizes, d, c):
        """λ₁, λ₂ | τ, ω under the Gamma(a, b) hyperprior (in place in ``z``; the bilateral
        kernel's; this kernel draws them from its sweep's single Gamma call)."""
        if self.hyperprior is None:
            return
        a, b = self.hyperprior
        dtype = z["tau"].dtype
        z["lambda1"] = jax.random.gamma(
            key1, a + jnp.sum(gene_sizes * c + 1.0) / 2.0, dtype=dtype) / (
            b + jnp.sum(z["tau"]) / 2.0)
        z["lambda2"] = jax.random.gamma(
            key2, a + d * (c + 1.0) / 2.0, dtype=dtype) / (b + jnp.sum(z["omega"]) / 2.0)

    # -------------------------------------------------------------- outputs
    def postprocess_fn(self, model_args, model_kwargs):
        gene_index = model_kwargs["gene_index"]
        n_genes = model_kwargs["gene_sizes"].shape[0]

        def add_norms(z):
            row_sq = jnp.sum(z["W"] ** 2, axis=1)
            out = dict(z)
            out["snp_norm"] = jnp.sqrt(row_sq)
            out["gene_norm"] = jnp.sqrt(
                jax.ops.segment_sum(row_sq, gene_index, num_segments=n_genes))
            return out

        return add_norms
