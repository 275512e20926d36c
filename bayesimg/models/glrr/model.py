r"""Bayesian generalized low-rank regression (GLRR).

SNPs → imaging phenotypes through a low-rank coefficient matrix, with a
low-rank-plus-diagonal noise covariance: the model of Zhu, Khondker, Lu &
Ibrahim (2014, JASA 109:977–990), whose only public sampler is the authors'
MATLAB program (BIG-S2/L2R2; GLRR is its case without random effects).
Its posterior mode with a fixed rank and an L1 prior on the SNP loadings is
sparse reduced-rank regression (Vounou et al. 2010, NeuroImage 52:1147).

Notation: n subjects, X (n×d) centred allele counts, Y (n×c) centred
phenotypes, Z (n×r) optional covariates; R the rank bound, K the number of
noise factors.  Rows of Y::

    y_l = Bᵀx_l + Γᵀz_l + ε_l,   B = Σ_{h=1..R} δ_h u_h v_hᵀ = U diag(δ) Vᵀ,
    ε_l ~ N_c(0, Σ),             Σ = ΛΛᵀ + diag(ψ)   (Λ: c×K).

Priors — what is the authors' and what is ours
------------------------------------------------
=====================  ==============================  ==================================
block                  authors' code (fixed rank)      this module
=====================  ==============================  ==================================
SNP loadings u_h       N_d(0, I/d)                     ``snp_prior="laplace"`` (default):
                                                       u_ih iid Laplace with rate
                                                       ``snp_penalty`` (default √(2d): the
                                                       authors' variance 1/d), i.e. an L1
                                                       penalty → sparse SNP rows; or
                                                       ``"gaussian"``: the authors' N(0, I/d)
phenotype loadings     N_c(0, I/c)                     same, ``phenotype_prior`` (default
v_h                                                    ``"gaussian"``; ``"laplace"`` optional)
layer weights δ_h      N(0, 1/τ_δ), τ_δ ~ Gamma(a₀,b₀) ``rank_prior="mgp"`` (default): ours,
                                                       δ_h ~ N(0, 1/θ_h), θ_h = τ_δ Π_{m=2..h} ζ_m,
                                                       τ_δ ~ Gamma(a₀, b₀), ζ_m ~ Gamma(a_r, 1)
                                                       (a multiplicative gamma process over
                                                       ranks: later layers shrink harder, so
                                                       unneeded ranks switch off and R is an
                                                       upper bound); ``"common"``: the
                                                       authors' shared τ_δ
covariates Γ           columns N(0, I/τ_G), τ_G ~ Gam  Γ ~ N(0, ``covariate_scale``²) (fixed)
noise Σ                Λ with MGP (B&D 2011):          the same MGP: λ_jk ~ N(0, 1/(φ_jk τ_k)),
                       λ_jk ~ N(0, 1/(φ_jk τ_k)),      φ_jk ~ Gamma(ν/2, ν/2), ν = 3,
                       φ_jk ~ Gamma(3/2, 3/2),         τ_k = Π_{m≤k} ξ_m, ξ₁ ~ Gamma(a₁, 1),
                       K = 25                          ξ_m ~ Gamma(a₂, 1); 1/ψ_j ~ Gamma(a_ψ,
                                                       b_ψ); default K = min(10, c − 1)
=====================  ==============================  ==================================

Defaults: a₀ = b₀ = 0.1, a_r = 3, a₁ = 2, a₂ = 3, a_ψ = 1, b_ψ = 0.3
(Bhattacharya & Dunson's), ν = 3.

For NUTS/SVI/MAP the model is written with the same posterior but better
geometry: φ_jk is integrated out (λ_jk | τ_k is then Student-t with ν degrees of
freedom and scale τ_k^{-1/2}), λ is non-centred (λ_jk = t_jk τ_k^{-1/2}; most
noise factors are shrunk away) while δ is centred (the layers that matter are well
determined; non-centred δ gave a funnel and many divergences), and the latent
factors η_l are integrated out: y_l is evaluated under N(mean_l, ΛΛᵀ + diag ψ)
by the Woodbury identity (NumPyro's ``LowRankMultivariateNormal``), so the
pointwise log-likelihood per subject is the exact marginal one WAIC/PSIS-LOO need.

Identification
--------------
U, V, δ, Λ are not identified (signs and order of the rank layers, the scale
trade-off u_h → a u_h, δ_h → δ_h/a, rotations of Λ), so they are sampled as
*hidden* sites (used, never stored) and the posterior holds identified
functions of them only, each computed per draw:

* ``B`` (snp, phenotype) — the association site;
* ``singular_values`` (rank) — singular values of B, sorted (order fixes the
  permutation);
* ``snp_loading`` (snp, rank), ``phenotype_loading`` (phenotype, rank) — B's
  singular vectors (computed from the small R×R core: QR of U and V, SVD of
  R_U diag(δ) R_Vᵀ).  The sign of each pair is fixed per draw by a *data*
  reference passed in as an argument (the right singular vectors of a ridge
  estimate of B), the same for every chain, so R-hat of the loadings means
  something; :func:`align_loadings` re-signs them post hoc against the
  posterior mean instead, for components the ridge reference does not pin down;
* ``signal_singular_values`` (rank) — singular values of XB;
  ``whitened_singular_values`` (rank) — those of XBL⁻ᵀ (Σ = LLᵀ: the signal in
  units of the noise), and ``effective_rank`` — how many of these exceed
  ``rank_threshold`` × (√min(d, n) + √c), the largest singular value of the
  whitened noise projected on the SNPs' column space (a min(d, n)×c matrix of iid
  N(0, 1)): layers the data could not tell from noise do not count.  Rank
  selection by the shrinkage prior reads its posterior;
* ``noise_cov`` (phenotype, phenotype_2) = Σ (optional, ``store_noise_cov``),
  ``psi`` (phenotype), ``noise_factor_var`` (noise_factor) — eigenvalues of
  ΛΛᵀ sorted (how much variance each noise factor carries: the number of noise
  factors the MGP keeps);
* ``gamma`` (covariate, phenotype).

Penalised form: with ``snp_prior="laplace"``, diagonal noise (``noise_factors=0``) and
a fixed layer precision (``rank_prior="common"``, ``global_precision=τ``), −log p(U, V, δ |
Y, ψ) restricted to (U, V, δ) is :func:`srrr_objective` — half the Σ⁻¹-weighted
residual sum of squares plus ``snp_penalty``·Σ|u_ih| plus ridge terms on V and δ:
Vounou et al.'s sparse reduced-rank regression with their weighting Γ = Σ⁻¹ and
their orthonormality constraint on the phenotype loadings replaced by a ridge
penalty.  ``method="map"`` therefore returns an sRRR estimate (SVI/MAP start from the
ridge SVD: from a random start the optimiser falls into the trivial mode B = 0, a
local optimum of every product-form L1 problem).

Beyond the authors' code: sparsity on u (and optionally v), rank shrinkage (R an
upper bound), rank selection across R by PSIS-LOO/WAIC
(:func:`bayesimg.select_hyperparameter` with ``grid=[{"rank": r}, ...]``),
identified summaries of B with intervals, integrated LOO (``fit.loo()``: the SNP-side
factor U and Γ integrated out given diag(δ)Vᵀ, Σ and U's prior scales, from the stored
``loo_snp_layer``/``loo_phenotype_layer``, which the convergence checks skip:
:meth:`GeneralizedLowRankRegression.loo_given_hyperparameters`).

Samplers — ``method="gibbs"`` is the recommended one
------------------------------------------------------
``method="gibbs"`` runs an exact blocked Gibbs kernel
(:mod:`bayesimg.models.glrr.gibbs`, :meth:`GeneralizedLowRankRegression.gibbs_kernel`):
the Student-t mixing scales φ_jk and, for Laplace loadings, Park & Casella's
exponential mixing variances are added as exact auxiliary variables, so the mean blocks
are conjugate given Σ (u_h, V, δ, Γ Gaussian; the MGP increments gamma);
Metropolis–Hastings moves along the likelihood-flat scale ridges (u_h, δ_h), (v_h, δ_h)
keep them from crawling, and the noise (Λ, ψ) moves by one HMC transition per sweep on
its marginal posterior given the residuals (the noise factors η integrated out: the
η-conditional updates crawled along the weakly identified ψ ↔ Λ directions of
correlated noise).  It targets exactly the
posterior of the model function above (checked against NUTS and by Geweke's
joint-distribution test in ``tests/glrr/test_glrr_gibbs.py``) and, on the benchmark of
``benchmarks/glrr.py``, gives one to two orders of magnitude more effective draws of B
per second than NUTS (smoke run: 14× for the slowest entry of B, 46× for the median,
63–71× in tail ESS; ``ratios.gibbs_over_nuts_ess_per_second`` in
``benchmarks/results/glrr.json``); compilation included, it is also faster in wall time.
NUTS (``method="nuts"``) stays available as the independent reference; SVI/MAP are
approximations.
"""

from __future__ import annotations

import warnings
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.distributions import constraints

from bayesimg.data.dataset import Dataset
from bayesimg.errors import BayesimgWarning, DataValidationError, ModelSpecError
from bayesimg.models.core.base import Model
from bayesimg.models.core.checks import (
    GenotypePhenotypeIO,
    check_centred_phenotypes,
    check_finite_arrays,
)
from bayesimg.models.core.site_effects import (
    SITE_DIMS,
    SITE_HIDDEN,
    sample_site_effects,
    site_design,
    site_levels,
)

PRIORS = ("laplace", "gaussian")
RANK_PRIORS = ("mgp", "common")
#: prior sites that are reparameterisations of non-identified quantities
HIDDEN = frozenset({"U", "V", "delta", "rank_global", "rank_increment", "noise_raw",
                    "noise_increment"})


class GeneralizedLowRankRegression(GenotypePhenotypeIO, Model):
    """Bayesian generalized low-rank regression (Zhu et al. 2014) with rank shrinkage.

    Parameters
    ----------
    rank : int
        R, the upper bound on the rank of B (≤ min(SNPs, phenotypes)).
    noise_factors : int or None
        K, the number of latent noise factors (0: diagonal noise).  ``None``: the
        largest K within Ledermann's bound, (c − K)² ≥ c + K (:func:`ledermann_bound`;
        K = 4 for c = 8), at most 10.  Beyond it Σ = ΛΛᵀ + diag ψ has more free
        parameters than Σ has entries, so the split into Λ and ψ is not identified:
        the likelihood is flat along a set of (Λ, ψ) and ψ drifts on it under any
        sampler (Σ itself stays identified).  A larger K is allowed, with a one-line
        warning; read ``noise_cov``, not ``psi``, then.
    snp_prior, phenotype_prior : {"laplace", "gaussian"}
        Prior of the SNP loadings u_h (default Laplace: sparse SNP rows) and of
        the phenotype loadings v_h (default Gaussian, the authors').
    snp_penalty, phenotype_penalty : float or None
        Rates of the Laplace priors (the L1 weights of the MAP); ``None``:
        √(2d) and √(2c), which give the authors' variances 1/d and 1/c.
    rank_prior : {"mgp", "common"}
        Multiplicative gamma process over the rank layers (ours; switches off
        unneeded ranks) or one common precision τ_δ (the authors').
    rank_increment_shape : float
        a_r, the shape of the MGP increments ζ_m ~ Gamma(a_r, 1) (m ≥ 2).
    global_precision : (float, float) or float
        (a₀, b₀) of τ_δ ~ Gamma(a₀, b₀); a single number fixes τ_δ (then the MAP with
        ``rank_prior="common"`` is sRRR with fixed penalties; with τ_δ free the joint
        mode drifts along the scale ridge δ → ∞, U → 0, τ_δ → 0).
    noise_shapes : (float, float)
        (a₁, a₂) of the noise-factor MGP.
    psi_prior : (float, float)
        (a_ψ, b_ψ): 1/ψ_j ~ Gamma(a_ψ, b_ψ).
    covariate_scale : float
        Prior sd of covariate coefficients Γ.
    site_scale : float
        Scale A of the half-Cauchy prior on the site random-effect sds.  It is used
        when the dataset has ``sites`` (``make_dataset(..., random_effects="site")``).
        Then y_i gains u_{s(i)}, with u_{s,j} ~ N(0, τ_j²) and τ_j ~ HalfCauchy(0, A).
        Outputs: ``site_effect`` (site, phenotype) and ``site_sd`` (phenotype).  Math
        and prior choice: :mod:`bayesimg.models.core.site_effects`.  The Gibbs kernel
        first runs GLRR's sweep on y − Hu.  It then draws u | θ with the noise factors
        integrated out (one c×c Gaussian per site), and then τ.
    rank_threshold : float
        Multiple of the noise edge σ̄(√d + √c) a signal singular value must exceed
        to count in ``effective_rank``.
    store_noise_cov : bool
        Keep Σ (c×c per draw) in the posterior (needed for posterior predictive
        draws and integrated LOO; large when c is large).
    keep_raw : bool
        Also store the non-identified sampled sites (U, V, δ, the MGP increments,
        the non-centred noise loadings); off by default, since their R-hat is
        meaningless (sign, order and scale are not identified).
    """

    name = "glrr"
    observed = {"y": ("subject", "phenotype")}
    association_site = "B"
    trace_sites = ("singular_values", "effective_rank", "noise_factor_var")

    def __init__(self, rank: int = 3, *, noise_factors: int | None = None,
                 snp_prior: str = "laplace", phenotype_prior: str = "gaussian",
                 snp_penalty: float | None = None, phenotype_penalty: float | None = None,
                 rank_prior: str = "mgp", rank_increment_shape: float = 3.0,
                 global_precision: tuple[float, float] = (0.1, 0.1),
                 noise_shapes: tuple[float, float] = (2.0, 3.0),
                 psi_prior: tuple[float, float] = (1.0, 0.3),
                 covariate_scale: float = 10.0, rank_threshold: float = 1.0,
                 store_noise_cov: bool = True, keep_raw: bool = False,
                 site_scale: float = 1.0):
        if not np.isfinite(site_scale) or site_scale <= 0:
            raise ModelSpecError(f"site_scale must be a positive number, got {site_scale!r}")
        self.site_scale = float(site_scale)
        if isinstance(rank, bool) or not isinstance(rank, int | np.integer) or rank < 1:
            raise ModelSpecError(f"rank must be an integer >= 1, got {rank!r}")
        if noise_factors is not None and (
                isinstance(noise_factors, bool) or not isinstance(noise_factors, int | np.integer)
                or noise_factors < 0):
            raise ModelSpecError(
                f"noise_factors must be an integer >= 0 or None, got {noise_factors!r}")
        for label, value in (("snp_prior", snp_prior), ("phenotype_prior", phenotype_prior)):
            if value not in PRIORS:
                raise ModelSpecError(f"{label} must be one of {PRIORS}, got {value!r}")
        if rank_prior not in RANK_PRIORS:
            raise ModelSpecError(f"rank_prior must be one of {RANK_PRIORS}, got {rank_prior!r}")
        for label, value in (("snp_penalty", snp_penalty),
                             ("phenotype_penalty", phenotype_penalty)):
            if value is not None and not (np.isfinite(value) and value > 0):
                raise ModelSpecError(f"{label} must be a positive number or None, got {value!r}")
        self.fixed_global = np.isscalar(global_precision)
        if self.fixed_global:
            if not (np.isfinite(global_precision) and global_precision > 0):
                raise ModelSpecError(
                    f"a fixed global_precision must be > 0, got {global_precision!r}")
            global_precision = (float(global_precision), 1.0)
        for label, pair in (("global_precision", global_precision),
                            ("noise_shapes", noise_shapes), ("psi_prior", psi_prior)):
            if len(pair) != 2 or not all(np.isfinite(p) and p > 0 for p in pair):
                raise ModelSpecError(f"{label} must be two positive numbers, got {pair!r}")
        for label, value in (("rank_increment_shape", rank_increment_shape),
                             ("covariate_scale", covariate_scale),
                             ("rank_threshold", rank_threshold)):
            if not (np.isfinite(value) and value > 0):
                raise ModelSpecError(f"{label} must be a positive number, got {value!r}")
        self.rank = int(rank)
        self.noise_factors = None if noise_factors is None else int(noise_factors)
        self.snp_prior = snp_prior
        self.phenotype_prior = phenotype_prior
        self.snp_penalty = None if snp_penalty is None else float(snp_penalty)
        self.phenotype_penalty = None if phenotype_penalty is None else float(phenotype_penalty)
        self.rank_prior = rank_prior
        self.rank_increment_shape = float(rank_increment_shape)
        self.global_precision = tuple(map(float, global_precision))
        self.noise_shapes = tuple(map(float, noise_shapes))
        self.psi_prior = tuple(map(float, psi_prior))
        self.covariate_scale = float(covariate_scale)
        self.rank_threshold = float(rank_threshold)
        self.store_noise_cov = bool(store_noise_cov)
        self.keep_raw = bool(keep_raw)

    @property
    def hidden_sites(self) -> frozenset[str]:
        return SITE_HIDDEN | (frozenset() if self.keep_raw else HIDDEN)

    #: stored only for integrated LOO: left out of summaries, plots and diagnostics
    helper_sites = frozenset({"loo_snp_layer", "loo_phenotype_layer"})

    # ------------------------------------------------------------ interface
    @property
    def dims(self):
        return {
            "B": ("snp", "phenotype"),
            "singular_values": ("rank",),
            "signal_singular_values": ("rank",),
            "whitened_singular_values": ("rank",),
            "effective_rank": (),
            "snp_loading": ("snp", "rank"),
            "phenotype_loading": ("phenotype", "rank"),
            "gamma": ("covariate", "phenotype"),
            "psi": ("phenotype",),
            "noise_cov": ("phenotype", "phenotype_2"),
            "noise_factor_var": ("noise_factor",),
            "loo_snp_layer": ("snp", "rank"),
            "loo_phenotype_layer": ("phenotype", "rank"),
            # hidden (never stored) but declared for completeness
            "U": ("snp", "rank"),
            "V": ("phenotype", "rank"),
            "delta": ("rank",),
            "rank_global": (),
            "rank_increment": ("rank_step",),
            "noise_raw": ("phenotype", "noise_factor"),
            "noise_increment": ("noise_factor",),
            **SITE_DIMS,
        }

    def settings(self) -> dict[str, Any]:
        return {"rank": self.rank, "noise_factors": self.noise_factors,
                "site_scale": self.site_scale,
                "snp_prior": self.snp_prior, "phenotype_prior": self.phenotype_prior,
                "snp_penalty": self.snp_penalty, "phenotype_penalty": self.phenotype_penalty,
                "rank_prior": self.rank_prior,
                "rank_increment_shape": self.rank_increment_shape,
                "global_precision": (self.global_precision[0] if self.fixed_global
                                     else self.global_precision),
                "noise_shapes": self.noise_shapes,
                "psi_prior": self.psi_prior, "covariate_scale": self.covariate_scale,
                "rank_threshold": self.rank_threshold, "store_noise_cov": self.store_noise_cov,
                "keep_raw": self.keep_raw}

    def n_noise_factors(self, n_phenotypes: int) -> int:
        """K used for ``n_phenotypes`` phenotypes: by default the largest K that keeps
        Σ = ΛΛᵀ + diag ψ identified (:func:`ledermann_bound`), at most 10."""
        if self.noise_factors is None:
            return int(min(10, ledermann_bound(n_phenotypes)))
        return self.noise_factors

    def check_noise_factors(self, c: int) -> None:
        """Refuse K ≥ c; warn (one line) when an explicit K exceeds Ledermann's bound."""
        K = self.n_noise_factors(c)
        if K >= c and K > 0:
            raise ModelSpecError(
                f"noise_factors = {K} must be smaller than the number of phenotypes ({c})")
        bound = ledermann_bound(c)
        if K > bound:
            warnings.warn(
                f"noise_factors = {K} exceeds Ledermann's bound for {c} phenotypes ({bound}): "
                "Σ = ΛΛᵀ + diag ψ is then not identified, so ψ and Λ do not converge (Σ, "
                "noise_cov, still does)", BayesimgWarning, stacklevel=3)

    def static_key(self, data: Dataset | None = None) -> tuple:
        c = None if data is None else data.n_phenotypes
        return (type(self).__qualname__, self.rank,
                None if c is None else self.n_noise_factors(c), self.snp_prior,
                self.phenotype_prior, self.rank_prior, self.fixed_global, self.covariate_scale,
                self.store_noise_cov, self.keep_raw,
                data is not None and getattr(data, "sites", None) is not None)

    def validate(self, data: Dataset) -> None:
        if data.genotypes is None or data.n_snps == 0:
            raise DataValidationError("GLRR needs genotypes (no SNP columns in the dataset)")
        if data.phenotypes is None or data.n_phenotypes == 0:
            raise DataValidationError("GLRR needs phenotypes (no phenotype columns)")
        d, c = data.n_snps, data.n_phenotypes
        if self.rank > min(d, c):
            raise ModelSpecError(
                f"rank {self.rank} exceeds min(SNPs, phenotypes) = min({d}, {c}); "
                f"use rank <= {min(d, c)}")
        self.check_noise_factors(c)
        if data.n_subjects < 2:
            raise DataValidationError(f"GLRR needs at least 2 subjects, got {data.n_subjects}")
        check_finite_arrays(data)
        sd = data.phenotypes.std(axis=0)
        if np.any(sd == 0):
            j = int(np.argmin(sd))
            raise DataValidationError("phenotype is constant across subjects",
                                      column=str(data.phenotype_names[j]))
        # no intercept (as the authors' code): phenotypes must be centred
        check_centred_phenotypes(data, "GLRR")

    def coords(self, data: Dataset) -> dict[str, np.ndarray]:
        c = data.n_phenotypes
        phen = np.asarray(data.phenotype_names, dtype=str)
        coords = {"snp": data.snp_names, "phenotype": phen, "phenotype_2": phen.copy(),
                  "subject": np.asarray(data.subjects, dtype=str),
                  "rank": np.arange(1, self.rank + 1),
                  "rank_step": np.arange(2, self.rank + 1),
                  "noise_factor": np.arange(1, self.n_noise_factors(c) + 1)}
        if data.covariates is not None:
            coords["covariate"] = np.asarray(data.covariate_names, dtype=str)
        if getattr(data, "sites", None) is not None:
            coords["site"] = site_levels(data)
        return coords

    def penalties(self, d: int, c: int) -> tuple[float, float]:
        """Laplace rates (L1 weights) of the SNP and phenotype loadings at these sizes."""
        return (np.sqrt(2.0 * d) if self.snp_penalty is None else self.snp_penalty,
                np.sqrt(2.0 * c) if self.phenotype_penalty is None else self.phenotype_penalty)

    def model_args(self, data: Dataset, method: str = "nuts") -> dict[str, Any]:
        self.validate(data)
        X = np.asarray(data.genotypes, dtype=float)
        Y = np.asarray(data.phenotypes, dtype=float)
        Z = None if data.covariates is None else np.asarray(data.covariates, dtype=float)
        d, c = X.shape[1], Y.shape[1]
        snp_rate, phen_rate = self.penalties(d, c)
        return {
            "X": X, "Y": Y, "Z": Z,
            "snp_rate": np.asarray(snp_rate), "phenotype_rate": np.asarray(phen_rate),
            "rank_increment_shape": np.asarray(self.rank_increment_shape),
            "global_precision": np.asarray(self.global_precision),
            "noise_shapes": np.asarray(self.noise_shapes),
            "psi_prior": np.asarray(self.psi_prior),
            "rank_threshold": np.asarray(self.rank_threshold),
            "sign_reference": sign_reference(X, Y, Z, self.rank),
            "H": site_design(data),
            "site_scale": np.asarray(self.site_scale),
        }

    def predictive_args(self, data: Dataset, method: str = "nuts") -> dict[str, Any]:
        if not self.store_noise_cov:
            raise ModelSpecError("posterior predictive draws need store_noise_cov=True")
        kwargs = self.model_args(data, method)
        kwargs["Y"] = None
        kwargs["n_phenotypes"] = data.n_phenotypes
        kwargs["from_posterior"] = True
        return kwargs

    def init_strategy(self, data: Dataset, method: str):
        """NUTS: uniform in (−0.5, 0.5) unconstrained (dispersed chains, so R-hat is
        honest).  SVI/MAP: the layers start at the rank-R truncated SVD of a ridge
        estimate of B (U, V its singular vectors, δ its singular values); from a random
        start the optimiser is pulled into the trivial local mode B = 0 that every
        product-form L1 penalty has (each switched-off layer is a local minimum)."""
        if method not in ("svi", "map"):
            return numpyro.infer.init_to_uniform(radius=0.5)
        X = np.asarray(data.genotypes, dtype=float)
        Y = np.asarray(data.phenotypes, dtype=float)
        Z = None if data.covariates is None else np.asarray(data.covariates, dtype=float)
        left, svals, right = ridge_svd(X, Y, Z, self.rank)
        values = {"U": left, "V": right, "delta": svals}
        return numpyro.infer.init_to_value(values=values)

    # ------------------------------------------------------------ the model
    def numpyro_model(self, method: str = "nuts"):
        prior = self.prior_model()
        covariate_scale = self.covariate_scale

        centred_sites = method == "gibbs"

        def glrr_model(X, Y, Z, snp_rate, phenotype_rate, rank_increment_shape,
                       global_precision, noise_shapes, psi_prior, rank_threshold,
                       sign_reference, H=None, site_scale=1.0, n_phenotypes=None,
                       from_posterior=False):
            d = X.shape[1]
            c = Y.shape[1] if Y is not None else n_phenotypes
            if c is None:
                raise ModelSpecError("pass Y or n_phenotypes to draw from the predictive")
            if from_posterior:
                _predictive(X, Z, d, c, covariate_scale, H)
                return
            layers = prior(X, Z, c, snp_rate, phenotype_rate, rank_increment_shape,
                           global_precision, noise_shapes, psi_prior, rank_threshold,
                           sign_reference)
            mean, Lam, psi = layers["mean"], layers["noise_factors"], layers["psi"]
            if H is not None:
                # site random intercepts (core.site_effects): centred for the Gibbs state
                mean = mean + H @ sample_site_effects(H.shape[1], c, site_scale,
                                                      centred=centred_sites)
            if Lam.shape[1] > 0:
                noise = dist.LowRankMultivariateNormal(mean, Lam, psi)
            else:
                noise = dist.Normal(mean, jnp.sqrt(psi)).to_event(1)
            with numpyro.plate("subject", X.shape[0]):
                numpyro.sample("y", noise, obs=Y)

        return glrr_model

    def prior_model(self):
        """GLRR's prior and identified summaries, shared by GLRR and L2R2.

        Returns ``glrr_prior(X, Z, c, snp_rate, …, sign_reference)``, which samples the rank
        layers (U, V, δ with their shrinkage), Γ, the noise Σ = ΛΛᵀ + diag ψ and records the
        identified summaries (``B``, loadings, ranks, ``noise_cov``); it returns a dict with
        ``mean`` = XU diag(δ)Vᵀ + ZΓ, ``B``, ``gamma`` (None without covariates),
        ``noise_factors`` Λ (c × K) and ``psi``.  The models add their likelihood.
        """
        R = self.rank
        snp_prior, phenotype_prior = self.snp_prior, self.phenotype_prior
        rank_prior = self.rank_prior
        fixed_global = self.fixed_global
        covariate_scale = self.covariate_scale
        store_noise_cov = self.store_noise_cov
        noise_factors = self.n_noise_factors

        def glrr_prior(X, Z, c, snp_rate, phenotype_rate, rank_increment_shape,
                       global_precision, noise_shapes, psi_prior, rank_threshold,
                       sign_reference):
            d = X.shape[1]
            K = noise_factors(c)
            gamma = None
            # ---- rank layers
            if snp_prior == "laplace":
                U = numpyro.sample("U", dist.Laplace(0.0, 1.0 / snp_rate).expand([d, R])
                                   .to_event(2))
            else:
                U = numpyro.sample("U", dist.Normal(0.0, 1.0 / jnp.sqrt(d)).expand([d, R])
                                   .to_event(2))
            if phenotype_prior == "laplace":
                V = numpyro.sample("V", dist.Laplace(0.0, 1.0 / phenotype_rate)
                                   .expand([c, R]).to_event(2))
            else:
                V = numpyro.sample("V", dist.Normal(0.0, 1.0 / jnp.sqrt(c)).expand([c, R])
                                   .to_event(2))
            if fixed_global:
                tau_delta = global_precision[0]
            else:
                tau_delta = numpyro.sample(
                    "rank_global", dist.Gamma(global_precision[0], global_precision[1]))
            if rank_prior == "mgp" and R > 1:
                inc = numpyro.sample("rank_increment", dist.Gamma(rank_increment_shape, 1.0)
                                     .expand([R - 1]).to_event(1))
                theta = tau_delta * jnp.concatenate([jnp.ones(1, X.dtype), jnp.cumprod(inc)])
            else:
                theta = tau_delta * jnp.ones(R, X.dtype)
            # centred: the layers that matter are well determined by the data, and the
            # non-centred form δ̃√θ then has a funnel in (δ̃, θ) (dozens of divergences
            # per 1000 draws in our tests; none centred)
            delta = numpyro.sample("delta", dist.Normal(0.0, 1.0 / jnp.sqrt(theta))
                                   .to_event(1))
            XU = X @ U
            mean = (XU * delta) @ V.T
            # ---- covariates
            if Z is not None:
                gamma = numpyro.sample(
                    "gamma", dist.Normal(0.0, covariate_scale).expand([Z.shape[1], c])
                    .to_event(2))
                mean = mean + Z @ gamma
            # ---- noise: Σ = ΛΛᵀ + diag ψ, Λ with the MGP (φ integrated out: Student-t)
            psi = numpyro.sample("psi", dist.InverseGamma(psi_prior[0], psi_prior[1])
                                 .expand([c]).to_event(1))
            if K > 0:
                a1, a2 = noise_shapes[0], noise_shapes[1]
                shapes = jnp.concatenate([a1[None], jnp.full((K - 1,), a2)])
                xi = numpyro.sample("noise_increment", dist.Gamma(shapes, 1.0).to_event(1))
                tau = jnp.cumprod(xi)
                t = numpyro.sample("noise_raw", dist.StudentT(3.0, 0.0, 1.0).expand([c, K])
                                   .to_event(2))
                Lam = t / jnp.sqrt(tau)
            else:
                Lam = jnp.zeros((c, 0), X.dtype)
            # ---- what integrated LOO conditions on (U integrated given A = diag(δ)Vᵀ, Σ and
            # U's prior scales): stored, excluded from convergence checks (align_draws)
            numpyro.deterministic("loo_snp_layer", jax.lax.stop_gradient(U))
            numpyro.deterministic("loo_phenotype_layer", jax.lax.stop_gradient(V * delta))
            # ---- identified summaries (no gradient flows through them)
            _identified(jax.lax.stop_gradient(U), jax.lax.stop_gradient(V),
                        jax.lax.stop_gradient(delta), jax.lax.stop_gradient(XU),
                        jax.lax.stop_gradient(Lam), jax.lax.stop_gradient(psi),
                        sign_reference, rank_threshold, store_noise_cov)
            # B with its gradient (the stored site above has none): same values
            return {"mean": mean, "B": (U * delta) @ V.T, "gamma": gamma,
                    "noise_factors": Lam, "psi": psi}

        return glrr_prior

    def gibbs_kernel(self, data: Dataset):
        """Exact blocked Gibbs kernel (:mod:`bayesimg.models.glrr.gibbs`)."""
        from bayesimg.models.glrr.gibbs import GLRRGibbs
        return GLRRGibbs(self, self.numpyro_model("gibbs"))

    # ------------------------------------------------------------ prediction
    def predict_draws(self, tree, new_data, *, draws, rng):
        """Phenotypes of new subjects: y = Bᵀx + Γᵀz + ε, ε ~ N(0, Σ) (original units).

        Needs Σ per draw (``noise_cov``, stored unless ``store_noise_cov=False``).
        """
        from bayesimg.models.core.predict import (
            flat_draws,
            regression_inputs,
            site_aware_predictive,
        )
        inputs = regression_inputs(tree, new_data)
        post = flat_draws(tree, ("B", "gamma", "noise_cov", "psi", "site_effect", "site_sd"),
                          draws)
        if "noise_cov" not in post:
            raise ModelSpecError("predicting new subjects needs Σ per draw: refit with "
                                 "store_noise_cov=True")
        return site_aware_predictive(tree, new_data, inputs, post, post["B"],
                                     post["noise_cov"], rng)

    # ------------------------------------------------------------ integrated LOO
    def align_draws(self, samples, data):
        """Declare the stored LOO layers (``loo_snp_layer``, ``loo_phenotype_layer``: raw
        U and V diag(δ), whose sign, order and scale are not identified) out of the
        convergence checks; every other stored site is identified already."""
        names = [k for k in ("loo_snp_layer", "loo_phenotype_layer") if k in samples]
        if not names:
            return samples, {}
        ranks = list(range(1, self.rank + 1))
        return samples, {"convergence_exclude": {
            "elements": [{"var": k, "sel": {"rank": ranks}} for k in names],
            "reason": "the rank layers integrated LOO conditions on (sign, order and scale "
                      "of U, V, δ are not identified; B, Σ are checked instead)"}}

    def loo_given_hyperparameters(self, tree, *, draws, rng):
        r"""log p(y_i | y_{-i}, θ) with the SNP-side factor U and Γ integrated out.

        Given θ = (A, Σ, s) — the phenotype-side layers A = diag(δ)Vᵀ, the noise
        covariance and the prior variances s of U's entries — y is Gaussian: U's entries
        are N(0, s) (the Gaussian SNP prior: s = 1/d; the Laplace one is the scale
        mixture u | s ~ N(0, s), s ~ Exp(ρ²/2), and s is drawn from its exact full
        conditional 1/s | u ~ InvGauss(ρ/|u|, ρ²) given each stored draw of U, so
        (A, Σ, s) are draws of the joint posterior), Γ ~ N(0, ``covariate_scale``²), and
        log p(y_i | y_{-i}, θ) follows from the block hat-matrix identity
        (:func:`~bayesimg.models.core.predict.gaussian_loo_given_layers`).  U, not V, is
        integrated: it is the d×R factor (p ≈ n) that one subject moves, so PSIS then
        reweights the low-dimensional (A, Σ) and the scales only.  Needs the stored
        ``loo_snp_layer``/``loo_phenotype_layer``, ``noise_cov`` and the data (None
        otherwise: ``fit.loo()`` falls back to PSIS).  With site random effects the
        site effects u are conditioned on per draw (y − Hu is then GLRR's data): each is
        shared by a whole site, so leaving one subject out barely moves it.
        """
        from bayesimg.models.core.predict import gaussian_loo_given_layers
        cd = tree["constant_data"].dataset if "constant_data" in tree.children else {}
        if "X" not in cd or "observed_data" not in tree.children:
            return None
        X = np.asarray(cd["X"].values, dtype=float)
        Y = np.asarray(tree["observed_data"].dataset["y"].values, dtype=float)
        Z = np.asarray(cd["Z"].values, dtype=float) if "Z" in cd else None
        got = self.loo_conditioning(tree, draws=draws, rng=rng, d=X.shape[1], c=Y.shape[1])
        if got is None:
            return None
        layers, Sig, s_u, note = got
        from bayesimg.models.core.site_effects import training_site_design
        H = training_site_design(tree)
        if H is None:
            log_lik = gaussian_loo_given_layers(X, Z, Y, layers, Sig, s_u,
                                                self.covariate_scale**2)
        else:
            # the site effects are conditioned on, draw by draw (each is shared by many
            # subjects, so one subject moves it little; PSIS reweights it with (A, Σ))
            from bayesimg.models.core.predict import flat_draws
            u = np.asarray(flat_draws(tree, ("site_effect",), draws)["site_effect"], float)
            log_lik = np.concatenate([gaussian_loo_given_layers(
                X, Z, Y - H @ u[s], layers[s:s + 1], Sig[s:s + 1], s_u[s:s + 1],
                self.covariate_scale**2) for s in range(u.shape[0])])
            note += "; the site effects conditioned on per draw"
        theta = {"layers": (("rank", "phenotype"), layers),
                 "noise_cov": (("phenotype", "phenotype_2"), Sig)}
        return log_lik, theta, note

    def loo_conditioning(self, tree, *, draws, rng, d: int, c: int):
        """What integrated LOO conditions on, at the flat draw indices ``draws``:
        ``(layers (S, R, c), noise_cov (S, c, c), s_u (S, d, R), note)`` — the stored
        A = diag(δ)Vᵀ, Σ and U's prior variances (Laplace: drawn from their full
        conditional given the stored U; Gaussian: 1/d) — or None when the fit did not
        store ``loo_snp_layer``/``loo_phenotype_layer``/``noise_cov``.  Shared by GLRR
        and L2R2 (:mod:`bayesimg.models.glrr.longitudinal_loo`)."""
        from bayesimg.models.core.predict import flat_draws
        post = flat_draws(tree, ("loo_snp_layer", "loo_phenotype_layer", "noise_cov"), draws)
        if len(post) < 3:
            return None
        U = np.asarray(post["loo_snp_layer"], dtype=float)               # (S, d, R)
        layers = np.swapaxes(np.asarray(post["loo_phenotype_layer"], dtype=float), 1, 2)
        if self.snp_prior == "laplace":
            rate = self.penalties(d, c)[0]
            absu = np.maximum(np.abs(U), 1e-300)
            s_u = 1.0 / rng.wald(rate / absu, rate * rate * np.ones_like(absu))
            note = ("U and Γ integrated out given A = diag(δ)Vᵀ, Σ and U's Laplace mixing "
                    "variances (drawn from their full conditional given U)")
        else:
            s_u = np.full_like(U, 1.0 / d)
            note = "U and Γ integrated out given A = diag(δ)Vᵀ and Σ"
        return layers, np.asarray(post["noise_cov"], dtype=float), s_u, note

    # ------------------------------------------------------------ penalised form
    def penalty_weights(self, d: int, c: int) -> dict[str, float]:
        """The sRRR penalty weights the MAP solves for (see :func:`srrr_objective`)."""
        snp_rate, phen_rate = self.penalties(d, c)
        return {"snp_l1": float(snp_rate), "phenotype_l1": float(phen_rate),
                "phenotype_ridge": float(c) / 2.0}


#: short alias
GLRR = GeneralizedLowRankRegression


def ledermann_bound(c: int) -> int:
    """Largest K with (c − K)² ≥ c + K (Ledermann 1937): the most factors for which
    ΛΛᵀ + diag ψ (c(K + 1) − K(K − 1)/2 free parameters) can be identified from the
    c(c + 1)/2 entries of Σ.  K = 0 for c ≤ 2; 1, 1, 2, 3, 3, 4 for c = 3 … 8."""
    K = 0
    while K + 1 < c and (c - K - 1) ** 2 >= c + K + 1:
        K += 1
    return K


def _identified(U, V, delta, XU, Lam, psi, sign_reference, rank_threshold, store_noise_cov):
    """Deterministic sites that are functions of the identified B and Σ."""
    d, R = U.shape
    c = V.shape[0]
    numpyro.deterministic("B", (U * delta) @ V.T)
    Qu, Ru = jnp.linalg.qr(U)
    Qv, Rv = jnp.linalg.qr(V)
    core = (Ru * delta) @ Rv.T                       # B = Qu core Qvᵀ
    P, s, Qt = jnp.linalg.svd(core)
    left, right = Qu @ P, Qv @ Qt.T
    sign = jnp.where(jnp.sum(right * sign_reference, axis=0) < 0, -1.0, 1.0)
    numpyro.deterministic("singular_values", s)
    numpyro.deterministic("snp_loading", left * sign)
    numpyro.deterministic("phenotype_loading", right * sign)
    # XB = (XU) diag(δ) Vᵀ = (XU) diag(δ) Rvᵀ Qvᵀ: its singular values are those of the
    # n×R matrix (XU) diag(δ) Rvᵀ (no inverse of Ru, so a switched-off layer is harmless)
    sig = jnp.linalg.svd((XU * delta) @ Rv.T, compute_uv=False)
    numpyro.deterministic("signal_singular_values", sig)
    # whitened signal XBL⁻ᵀ (Σ = LLᵀ): the noise becomes iid N(0, 1), whose projection on
    # col(X) is a min(d, n)×c Gaussian matrix with largest singular value ≈ √min(d,n) + √c
    n = XU.shape[0]
    L = jnp.linalg.cholesky(Lam @ Lam.T + jnp.diag(psi))
    _, Rw = jnp.linalg.qr(jax.scipy.linalg.solve_triangular(L, V, lower=True))
    snr = jnp.linalg.svd((XU * delta) @ Rw.T, compute_uv=False)
    numpyro.deterministic("whitened_singular_values", snr)
    edge = jnp.sqrt(jnp.minimum(d, n)) + jnp.sqrt(c)
    numpyro.deterministic("effective_rank",
                          jnp.sum(snr > rank_threshold * edge).astype(U.dtype))
    numpyro.deterministic("noise_factor_var",
                          jnp.linalg.svd(Lam, compute_uv=False) ** 2
                          if Lam.shape[1] > 0 else jnp.zeros((0,), U.dtype))
    if store_noise_cov:
        numpyro.deterministic("noise_cov", Lam @ Lam.T + jnp.diag(psi))


def _predictive(X, Z, d, c, covariate_scale, H=None):
    """y from posterior draws of the identified B, Γ, the site effects and Σ."""
    B = numpyro.sample("B", dist.ImproperUniform(constraints.real, (), (d, c)))
    mean = X @ B
    if Z is not None:
        gamma = numpyro.sample("gamma", dist.ImproperUniform(constraints.real, (),
                                                              (Z.shape[1], c)))
        mean = mean + Z @ gamma
    if H is not None:
        mean = mean + H @ numpyro.sample(
            "site_effect", dist.ImproperUniform(constraints.real, (), (H.shape[1], c)))
    cov = numpyro.sample("noise_cov",
                         dist.ImproperUniform(constraints.positive_definite, (), (c, c)))
    with numpyro.plate("subject", X.shape[0]):
        numpyro.sample("y", dist.MultivariateNormal(mean, cov))


def sign_reference(X, Y, Z, rank: int) -> np.ndarray:
    """Right singular vectors (c × rank) of a ridge estimate of B: the per-draw sign
    convention of the loadings (the same for every chain)."""
    return ridge_svd(X, Y, Z, rank)[2]


def ridge_svd(X, Y, Z, rank: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rank-``rank`` truncated SVD (left d×R, values R, right c×R) of the ridge estimate
    (XᵀX + κI)⁻¹XᵀY (κ = 10⁻³·mean SNP variance·n; Y residualised on Z)."""
    X = np.asarray(X, dtype=float)
    Y = np.asarray(Y, dtype=float)
    if Z is not None:
        Z = np.asarray(Z, dtype=float)
        Y = Y - Z @ np.linalg.lstsq(Z, Y, rcond=None)[0]
    d = X.shape[1]
    kappa = 1e-3 * np.trace(X.T @ X) / d + 1e-8
    B = np.linalg.solve(X.T @ X + kappa * np.eye(d), X.T @ Y)
    u, s, vt = np.linalg.svd(B, full_matrices=False)
    return u[:, :rank], s[:rank], vt[:rank].T


def align_loadings(fit, reference: str = "posterior_mean"):
    """A copy of a GLRR fit whose ``snp_loading``/``phenotype_loading`` draws are re-signed
    (and, within ties of the sorted singular values, re-ordered) to match the singular
    vectors of the posterior mean of B (MatchAlign-style pivot alignment).

    Per draw and component h the permutation π maximising Σ_h |⟨v_h, v*_π(h)⟩| over
    components (Hungarian algorithm) is applied to loadings and singular values, then each
    pair is flipped so that ⟨v_h, v*_h⟩ ≥ 0.  B itself is unchanged (it is identified).
    """
    from scipy.optimize import linear_sum_assignment

    if reference != "posterior_mean":
        raise ModelSpecError(f"reference must be 'posterior_mean', got {reference!r}")
    post = fit.posterior
    B_mean = post["B"].mean(("chain", "draw")).values
    R = post.sizes["rank"]
    _, _, vt = np.linalg.svd(B_mean, full_matrices=False)
    pivot = vt[:R].T                                             # c × R
    left = post["snp_loading"].values.copy()
    right = post["phenotype_loading"].values.copy()
    svals = post["singular_values"].values.copy()
    sig = post["signal_singular_values"].values.copy()
    for ch in range(left.shape[0]):
        for k in range(left.shape[1]):
            overlap = right[ch, k].T @ pivot                    # R × R
            rows, cols = linear_sum_assignment(-np.abs(overlap))
            order = rows[np.argsort(cols)]
            sign = np.sign(overlap[order, np.arange(R)])
            sign[sign == 0] = 1.0
            left[ch, k] = left[ch, k][:, order] * sign
            right[ch, k] = right[ch, k][:, order] * sign
            svals[ch, k] = svals[ch, k][order]
            sig[ch, k] = sig[ch, k][order]
    tree = fit.tree.copy()
    ds = tree["posterior"].to_dataset()
    ds["snp_loading"] = (ds["snp_loading"].dims, left)
    ds["phenotype_loading"] = (ds["phenotype_loading"].dims, right)
    ds["singular_values"] = (ds["singular_values"].dims, svals)
    ds["signal_singular_values"] = (ds["signal_singular_values"].dims, sig)
    tree["posterior"] = ds
    return type(fit)(tree)


def srrr_objective(U, V, delta, X, Y, psi, *, snp_l1, phenotype_ridge, delta_precision,
                   Z=None, gamma=None, phenotype_l1=None):
    """Sparse reduced-rank regression objective (Vounou et al. 2010, with weighting Σ⁻¹ =
    diag(1/ψ) and a ridge on the phenotype loadings in place of their orthonormality):

        ½ Σ_l (y_l − Bᵀx_l)ᵀ diag(ψ)⁻¹ (y_l − Bᵀx_l) + snp_l1 Σ|u_ih|
        + phenotype_ridge Σ v_jh² + ½ Σ_h θ_h δ_h²,     B = U diag(δ) Vᵀ

    (``phenotype_l1`` replaces the ridge by an L1 term).  It is −log p(U, V, δ | Y, ψ, θ)
    of the GLRR with diagonal noise, up to a constant: its minimiser is the MAP.
    """
    U, V, delta = (np.asarray(a, dtype=float) for a in (U, V, delta))
    resid = Y - X @ (U * delta) @ V.T
    if Z is not None:
        resid = resid - Z @ gamma
    value = 0.5 * np.sum(resid**2 / np.asarray(psi)[None, :]) + snp_l1 * np.sum(np.abs(U))
    if phenotype_l1 is not None:
        value += phenotype_l1 * np.sum(np.abs(V))
    else:
        value += phenotype_ridge * np.sum(V**2)
    return float(value + 0.5 * np.sum(np.asarray(delta_precision) * delta**2))


def rank_precision(sample: dict[str, np.ndarray]) -> np.ndarray:
    """θ_h (the prior precision of δ_h) from a draw's hidden sites ``rank_global`` and
    ``rank_increment`` (present in MAP/SVI guide parameters or raw draws)."""
    tau = np.asarray(sample["rank_global"])
    inc = sample.get("rank_increment")
    if inc is None:
        return tau[..., None]
    inc = np.asarray(inc)
    ones = np.ones(inc.shape[:-1] + (1,))
    return tau[..., None] * np.concatenate([ones, np.cumprod(inc, axis=-1)], axis=-1)


def choose_rank(table) -> int:
    """Rank chosen from a :func:`bayesimg.report.compare` table over fits labelled
    ``"rank=R"`` (e.g. from ``select_hyperparameter(GLRR(), data, [{"rank": r}, ...])``):
    the smallest R whose elpd is within one standard error of the difference (``dse``)
    of the best — the one-standard-error rule, which prefers the simpler model when the
    criterion cannot tell them apart."""
    ranks = {}
    for label in table.index:
        parts = dict(p.strip().split("=") for p in str(label).split(","))
        if "rank" not in parts:
            raise ModelSpecError(f"compare table row {label!r} is not labelled 'rank=R'")
        ranks[label] = int(float(parts["rank"]))
    close = [label for label in table.index
             if float(table.loc[label, "elpd_diff"]) <= float(table.loc[label, "dse"])]
    return min(ranks[label] for label in close)
