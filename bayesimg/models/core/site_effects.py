r"""Site (scanner, batch) random intercepts for the Gaussian regression families.

Multi-site imaging studies see each phenotype shifted by a scanner/site offset
(the "location" batch effect that ComBat removes: Johnson, Li & Rabinovic 2007,
Biostatistics 8:118; Fortin et al. 2018, NeuroImage 167:104 for cortical
thickness).  Here the offset is part of the model, with partial pooling across
sites (Gelman & Hill 2007, *Data Analysis Using Regression and Multilevel/Hierarchical
Models*, ch. 12, "varying intercepts").  With subject i measured at site s(i)::

    y_i = μ_i + u_{s(i)} + ε_i,     u_{s,j} ~ N(0, τ_j²)  (sites s = 1..S, phenotypes j),
    τ_j ~ HalfCauchy(0, A)           (A = ``site_scale``; phenotypes are standardised).

μ_i is the family's mean (genetic effects, covariates), ε_i its noise.  Outputs:
``site_effect`` u (site, phenotype) and ``site_sd`` τ (phenotype).

**Why a half-Cauchy on τ, and what it does with few sites.**  With S = 2–5 sites the
data carry about S − 1 degrees of freedom on τ_j, so its prior matters.  The
"non-informative" InvGamma(ε, ε) on τ² is not: its posterior depends on ε when τ is
small relative to the noise, because the prior has no mass near τ = 0 on the log
scale (Gelman 2006, Bayesian Analysis 1:515, §4–5).  A half-Cauchy has a finite,
positive density at τ = 0, so no site effect (τ → 0, the pooled model) stays
possible.  Its heavy tail lets the data move τ far above A when they must, so A is
weakly informative.  A = 1 (one phenotype standard deviation) allows site offsets
much larger than any plausible scanner effect.  What this means with few sites:
the posterior of each *known* site's effect is set by that site's subjects (n_s of
them give precision ≈ n_s/σ²), so it hardly depends on the prior.  The posterior of τ
itself stays wide and close to the prior's shape when S ≤ 3.  A prediction for an
*unseen* site integrates u ~ N(0, τ²) and so inherits that width.  Lower A
(``site_scale``) if the sites are known to be harmonised.

**Exact Gibbs blocks.**

* τ by the auxiliary-variable form of Makalic & Schmidt (2016, IEEE Signal Processing
  Letters 23:179): τ² | ν ~ InvGamma(1/2, 1/ν), ν ~ InvGamma(1/2, 1/A²) gives
  τ ~ HalfCauchy(0, A), and both conditionals are conjugate
  (:func:`draw_site_scales`)::

      τ_j² | u, ν_j ~ InvGamma((S + 1)/2, 1/ν_j + Σ_s u_sj²/2),
      ν_j | τ_j² ~ InvGamma(1, 1/A² + 1/τ_j²).

* u together with the covariate coefficients Γ, for families whose noise is iid
  N(0, σ²) (GSMTR) (:func:`gaussian_columns_per_column_prior`).  The site indicator
  columns H (n×S, one-hot) are appended to the covariates, Z̃ = [Z, H], and the stacked
  coefficients [Γ; U] are drawn jointly.  Column j, given the current target
  t_j = y_j − Xw_j, is N(P_j⁻¹ Z̃ᵀt_j/σ², P_j⁻¹) with
  P_j = Z̃ᵀZ̃/σ² + diag(1/s², …, 1/s², 1/τ_j², …, 1/τ_j²).  This is the existing Γ block
  with a prior precision that differs by column; one small Cholesky per phenotype.
  Drawing U jointly with Γ keeps a site-correlated covariate (age differing by site)
  from slowing the chain.
* u given the residuals, for families with correlated noise N(0, Σ)
  (:func:`site_effects_given_precisions`).  The site rows are independent given the
  rest, u_s | · ~ N(P_s⁻¹ b_s, P_s⁻¹) with P_s = Σ_{i∈s} K_i + diag(1/τ²) and
  b_s = Σ_{i∈s} K_i r_i.  Here r_i is the residual of unit i and K_i its precision:
  Σ⁻¹ for one row, or (Σ/T_i + D)⁻¹ on a subject's visit mean when a subject random
  intercept N(0, D) is integrated out (L2R2).  One c×c Cholesky per site.

Who uses which block: GSMTR's kernel the joint [Γ; U] draw; GLRR, L2R2, SpikeSlabMTR and
BilateralGSMTR (in its rotated coordinates, with a non-diagonal prior precision) the
per-site draw given the residuals; all of them the τ update.

:func:`sample_site_effects` is the NumPyro counterpart: it is centred for the Gibbs
model (the state holds u) and non-centred, u = τ·z, for NUTS, because a few sites
give the funnel that centring causes.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist

from bayesimg.models.core.gamma import gamma
from bayesimg.models.core.linalg import cho_solve, factor_and_apply, solve_lower_t

__all__ = ["SITE_DIMS", "SITE_HIDDEN", "SITE_PREDICTION_NOTE", "draw_site_scales",
           "gaussian_columns_per_column_prior", "initial_site_state", "new_site_design",
           "sample_site_effects", "site_design", "site_effects_given_precisions",
           "site_augmented", "site_levels", "site_onehot", "stacked_coefficients",
           "training_site_design"]

#: output dims of the site sites (merged into a family's ``Model.dims``)
SITE_DIMS = {"site_effect": ("site", "phenotype"), "site_sd": ("phenotype",),
             "site_effect_raw": ("site", "phenotype"), "site_aux": ("phenotype",)}
#: sites that are not stored: NUTS's non-centred variates and Gibbs's auxiliary ν
SITE_HIDDEN = frozenset({"site_effect_raw", "site_aux"})


def site_onehot(labels, levels) -> np.ndarray:
    """The n×S indicator matrix H (float) of ``labels`` over ``levels``; a label outside
    ``levels`` gives a zero row (an unseen site)."""
    labels = np.asarray(labels, dtype=str)
    return (labels[:, None] == np.asarray(levels, dtype=str)[None, :]).astype(np.float64)


# ------------------------------------------------------------------ Gibbs blocks
def gaussian_columns_per_column_prior(key, gram, rhs, prior_precision, noise_var, *,
                                      return_jitter=False):
    """Columns j of B (p×c) independent, B_j ~ N(P_j⁻¹ rhs_j/v, P_j⁻¹),
    P_j = gram/v + diag(prior_precision[:, j]) (``gram`` p×p, ``rhs`` p×c,
    ``prior_precision`` p×c, noise variance v scalar).  One p×p Cholesky per column."""
    noise = jax.random.normal(key, rhs.shape, rhs.dtype)

    def one(rhs_j, prec_j, noise_j):
        P = gram / noise_var + jnp.diag(prec_j)
        return factor_and_apply(
            P, lambda L: cho_solve(L, rhs_j / noise_var) + solve_lower_t(L, noise_j))

    draws, jitter = jax.vmap(one, in_axes=(1, 1, 1), out_axes=(1, 0))(
        rhs, prior_precision, noise)
    total = jnp.sum(jitter).astype(jnp.int32)
    return (draws, total) if return_jitter else draws


def site_effects_given_precisions(key, site_precision, site_linear, site_sd, *,
                                  prior_precision=None, return_jitter=False):
    """u_s ~ N(P_s⁻¹ b_s, P_s⁻¹), P_s = ``site_precision[s]`` + diag(1/τ²), independently
    over sites (``site_precision`` S×c×c, ``site_linear`` b S×c, ``site_sd`` τ (c,)).
    ``prior_precision`` (c×c) replaces diag(1/τ²) when u is drawn in rotated coordinates
    (u R: precision Rᵀ diag(1/τ²) R)."""
    c = site_linear.shape[1]
    noise = jax.random.normal(key, site_linear.shape, site_linear.dtype)
    prior = (jnp.eye(c, dtype=site_linear.dtype) / (site_sd * site_sd)[None, :]
             if prior_precision is None else prior_precision)

    def one(P, b, e):
        return factor_and_apply(P + prior, lambda L: cho_solve(L, b) + solve_lower_t(L, e))

    draws, jitter = jax.vmap(one, out_axes=(0, 0))(site_precision, site_linear, noise)
    total = jnp.sum(jitter).astype(jnp.int32)
    return (draws, total) if return_jitter else draws


def draw_site_scales(key, site_effect, site_aux, site_scale):
    """(τ, ν) | u, ν: τ_j² ~ InvGamma((S+1)/2, 1/ν_j + Σ_s u_sj²/2), then
    ν_j ~ InvGamma(1, 1/A² + 1/τ_j²) (Makalic & Schmidt 2016).  Returns (τ, ν)."""
    S, c = site_effect.shape
    dt = site_effect.dtype
    shapes = jnp.concatenate([jnp.full((c,), (S + 1.0) / 2.0, dt), jnp.ones((c,), dt)])
    k_tau, k_nu = jax.random.split(key)
    g_tau = gamma(k_tau, shapes[:c])
    tau2 = (1.0 / site_aux + 0.5 * jnp.sum(site_effect * site_effect, axis=0)) / g_tau
    g_nu = gamma(k_nu, shapes[c:])
    nu = (1.0 / site_scale**2 + 1.0 / tau2) / g_nu
    return jnp.sqrt(tau2), nu


def initial_site_state(n_sites, c, site_scale, dtype):
    """Start of the Gibbs chain: u = 0, τ = A/2, ν = A²."""
    return {"site_effect": jnp.zeros((n_sites, c), dtype),
            "site_sd": jnp.full((c,), 0.5, dtype) * site_scale,
            "site_aux": jnp.full((c,), 1.0, dtype) * site_scale**2}


def site_augmented(kw):
    """Z̃ = [Z, H] (covariates then site indicators) from a kernel's model arguments, or
    ``None`` without either: the kernels keep their sufficient statistics over Z̃."""
    Z, H = kw["Z"], kw.get("H")
    if H is None:
        return Z
    return H if Z is None else jnp.concatenate([Z, H], axis=1)


def stacked_coefficients(z):
    """[Γ; U] matching :func:`site_augmented` (``None`` without either)."""
    parts = [z[k] for k in ("gamma", "site_effect") if k in z]
    return None if not parts else jnp.concatenate(parts, axis=0)


# ------------------------------------------------------------------ NumPyro model
def sample_site_effects(n_sites: int, c: int, site_scale, *, centred: bool):
    """τ ~ HalfCauchy(A) (``site_sd``, (c,)) and u (``site_effect``, (S, c)).

    ``centred``: u ~ N(0, τ²) as a sample site (the Gibbs model, whose state holds u);
    else u = τ·z with z ~ N(0, 1) (``site_effect_raw``, hidden), the geometry NUTS needs
    with few sites.  Returns u.
    """
    sd = numpyro.sample("site_sd", dist.HalfCauchy(site_scale * jnp.ones(c)).to_event(1))
    if centred:
        return numpyro.sample("site_effect",
                              dist.Normal(jnp.zeros((n_sites, c)), sd).to_event(2))
    raw = numpyro.sample("site_effect_raw", dist.Normal(0.0, 1.0).expand([n_sites, c])
                         .to_event(2))
    return numpyro.deterministic("site_effect", raw * sd)


# ------------------------------------------------------------------ data plumbing
def site_levels(data) -> np.ndarray | None:
    """The sorted site levels of ``data`` (``None`` without a random-effect column)."""
    sites = getattr(data, "sites", None)
    if sites is None:
        return None
    return np.unique(np.asarray(sites, dtype=str))


def site_design(data) -> np.ndarray | None:
    """H (n×S) of ``data``'s own sites, or ``None``."""
    levels = site_levels(data)
    return None if levels is None else site_onehot(data.sites, levels)


def training_site_design(tree) -> np.ndarray | None:
    """H (n×S) of a fit's training subjects, from its constant data and ``site`` coords."""
    cd = tree["constant_data"].dataset if "constant_data" in tree.children else {}
    if "site_of_subject" not in cd or "posterior" not in tree.children \
            or "site" not in tree["posterior"].dataset.coords:
        return None
    levels = tree["posterior"].dataset.coords["site"].values
    return site_onehot(cd["site_of_subject"].values, levels)


#: what a prediction does with the site of a new subject (stored in its attrs)
SITE_PREDICTION_NOTE = (
    "site random effects: a new subject at a site of the fit gets that site's posterior "
    "effect (draw by draw); a subject at a site the fit never saw, or without a site, gets "
    "the effect integrated out: u ~ N(0, site_sd²) adds site_sd² to each phenotype's "
    "predictive variance")


def new_site_design(tree, new_data) -> tuple[np.ndarray, np.ndarray] | None:
    """(H, unseen) for new subjects: H (n×S) over the fit's site levels (zero rows for
    unseen sites) and the mask of subjects whose site the fit never saw.  ``None`` when
    the fit has no site effects; a fit with site effects predicting data without sites
    treats every subject as at an unseen site."""
    if "posterior" not in tree.children or "site" not in tree["posterior"].dataset.coords:
        return None
    levels = np.asarray(tree["posterior"].dataset.coords["site"].values, dtype=str)
    sites = getattr(new_data, "sites", None)
    if sites is None:
        n = new_data.n_subjects
        return np.zeros((n, len(levels))), np.ones(n, bool)
    H = site_onehot(sites, levels)
    return H, H.sum(axis=1) == 0

