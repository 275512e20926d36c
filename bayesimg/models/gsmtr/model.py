r"""Bayesian group-sparse multitask regression (GSMTR).

SNPs → imaging phenotypes with gene-level and SNP-level shrinkage: the model of
Greenlaw et al. (2017, Bioinformatics 33:2513), sampled by the R package
bgsmtr 0.7, the Bayesian counterpart of G-SMuRFS (Wang et al. 2012).

Notation: n subjects, X (n×d) centred minor-allele counts, Y (n×c) standardised
phenotypes, optional covariates Z (n×r); the d SNPs are partitioned into K genes,
gene k holding m_k SNPs; w_i is row i of W (its effects on all c phenotypes)
and W_k the rows of gene k.

Joint density (exactly bgsmtr's target; λ₁, λ₂ are its ``lam_1_fixed``,
``lam_2_fixed``, the squares of the paper's penalties)::

    log p = −(nc/2) log σ² − ‖Y − XW − ZΓ‖²_F / (2σ²)
            −(dc/2) log σ² − Σ_k Σ_{i∈k} ‖w_i‖² (1/τ_k + 1/ω_i) / (2σ²)
            − Σ_k (m_k c/2) log τ_k − Σ_i (c/2) log ω_i
            + Σ_k log Gamma(τ_k | (m_k c + 1)/2, rate λ₁/2)
            + Σ_i log Gamma(ω_i | (c + 1)/2, rate λ₂/2)
            + log InvGamma(σ² | 3, 1)            [+ log p(Γ), our extension]

Two parameterisations of the same posterior are offered:

``"marginal"`` (default)
    τ and ω integrated out analytically.  With
    ∫ τ^{-1/2} exp(−a/τ − bτ) dτ = √(π/b) exp(−2√(ab)) each mixture collapses
    to a multivariate Laplace kernel, giving::

        log p(W, σ² | Y) = −((n + d)c/2) log σ² − ‖Y − XW − ZΓ‖²_F / (2σ²)
                           + (dc/2) log λ₁ − (√λ₁/σ) Σ_k ‖W_k‖_F
                           + (dc/2) log λ₂ − (√λ₂/σ) Σ_i ‖w_i‖₂
                           + log InvGamma(σ² | 3, 1) + const,

    the G-SMuRFS penalty: given σ its mode is
    argmin ‖Y − XW‖²_F + γ₁ Σ_k ‖W_k‖_F + γ₂ Σ_i ‖w_i‖₂ with γ_j = 2σ√λ_j, so
    MAP of this form *is* G-SMuRFS.  The log-density is concave in W for fixed
    σ, a good geometry for NUTS.  The (dc/2) log λ terms are the exact
    λ-dependence of the normalising constants, needed when λ has a hyperprior.
    The norms are smoothed as √(‖·‖² + ε), ε = 1e-12 (immaterial for sampling,
    and it keeps gradients finite at exact zeros).
``"hierarchical"``
    τ (``gene``) and ω (``snp``) kept as latent variables: the density above
    verbatim (the form bgsmtr's Gibbs sampler uses).

For NUTS the weights can be *whitened*: W = T V with T = L⁻ᵀ, L Lᵀ = XᵀX + κI
and κ = (√λ₁ + √λ₂)²/2 (the precision the Laplace prior roughly adds), so the
sampler sees V with near-isotropic posterior even under strong LD.  The
Jacobian is constant, so the target is unchanged.

Options beyond bgsmtr: covariates Z with Γ ~ N(0, ``covariate_scale``²); site
(scanner, batch) random intercepts y_i += u_{s(i)}, u_{s,j} ~ N(0, τ_j²),
τ_j ~ HalfCauchy(0, ``site_scale``) when the dataset carries a grouping column
(``make_dataset(..., random_effects="site")``; math, prior choice and Gibbs blocks in
:mod:`bayesimg.models.core.site_effects`; the Gibbs kernel draws u jointly with Γ);
λ₁, λ₂
with Gamma hyperpriors (fully Bayes); λ chosen over a grid by WAIC/PSIS-LOO
(:func:`bayesimg.inference.select_hyperparameter`).

Outputs (named dims): ``W`` (snp, phenotype), ``sigma2``, ``gene_norm`` = ‖W_k‖_F
(gene), ``snp_norm`` = ‖w_i‖ (snp), ``gamma`` (covariate, phenotype),
``tau`` (gene) and ``omega`` (snp) in the hierarchical form, ``lambda1``,
``lambda2`` with hyperpriors, ``site_effect`` (site, phenotype) and ``site_sd``
(phenotype) with site random effects.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.distributions import constraints

from bayesimg.data.dataset import Dataset
from bayesimg.errors import DataValidationError, ModelSpecError
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

_NORM_EPS = 1e-12
PARAMETERIZATIONS = ("marginal", "hierarchical")


def _smooth_norm(sq):
    return jnp.sqrt(sq + _NORM_EPS)


class GroupSparseMTR(GenotypePhenotypeIO, Model):
    """Bayesian group-sparse multitask regression (bgsmtr's density).

    Parameters
    ----------
    lambda1, lambda2 : float
        Gene-level and SNP-level shrinkage λ₁, λ₂ (bgsmtr's ``lam_1_fixed``,
        ``lam_2_fixed``).  Ignored when ``hyperprior`` is given.
    hyperprior : tuple(float, float) or None
        ``(shape, rate)`` of Gamma hyperpriors on λ₁ and λ₂ (fully Bayes).
    parameterization : {"marginal", "hierarchical"}
        See the module docstring; both target the same posterior of (W, σ²).
    whiten : {"auto", True, False}
        Sample W through the whitening transform (marginal form only);
        ``"auto"`` whitens when d ≤ 4000.
    covariate_scale : float
        Prior sd of covariate coefficients Γ (phenotypes standardised).
    site_scale : float
        Scale A of the half-Cauchy prior on the site random-effect sds τ_j (used when
        the dataset has ``sites``; see :mod:`bayesimg.models.core.site_effects`).
    """

    name = "gsmtr"
    observed = {"y": ("subject", "phenotype")}
    hidden_sites = frozenset({"W_white"}) | SITE_HIDDEN
    association_site = "W"
    supports_subsampling = True
    trace_sites = ("sigma2", "gene_norm")

    def __init__(self, lambda1: float = 2.0, lambda2: float = 2.0, *,
                 hyperprior: tuple[float, float] | None = None,
                 parameterization: str = "marginal", whiten="auto",
                 covariate_scale: float = 10.0, site_scale: float = 1.0):
        for label, lam in (("lambda1", lambda1), ("lambda2", lambda2)):
            if not np.isfinite(lam) or lam <= 0:
                raise ModelSpecError(f"{label} must be a positive number, got {lam!r}")
        if parameterization not in PARAMETERIZATIONS:
            raise ModelSpecError(
                f"parameterization must be one of {PARAMETERIZATIONS}, got {parameterization!r}")
        if hyperprior is not None:
            if len(hyperprior) != 2 or min(hyperprior) <= 0:
                raise ModelSpecError(
                    f"hyperprior must be (shape, rate) with both > 0, got {hyperprior!r}")
        if whiten not in ("auto", True, False):
            raise ModelSpecError(f"whiten must be 'auto', True or False, got {whiten!r}")
        if covariate_scale <= 0:
            raise ModelSpecError(f"covariate_scale must be > 0, got {covariate_scale!r}")
        if not np.isfinite(site_scale) or site_scale <= 0:
            raise ModelSpecError(f"site_scale must be a positive number, got {site_scale!r}")
        self.site_scale = float(site_scale)
        self.lambda1 = float(lambda1)
        self.lambda2 = float(lambda2)
        self.hyperprior = None if hyperprior is None else tuple(map(float, hyperprior))
        self.parameterization = parameterization
        self.whiten = whiten
        self.covariate_scale = float(covariate_scale)

    # ------------------------------------------------------------ interface
    @property
    def dims(self):
        return {
            "W": ("snp", "phenotype"),
            "W_white": ("snp", "phenotype"),
            "sigma2": (),
            "gamma": ("covariate", "phenotype"),
            "tau": ("gene",),
            "omega": ("snp",),
            "gene_norm": ("gene",),
            "snp_norm": ("snp",),
            "lambda1": (),
            "lambda2": (),
            **SITE_DIMS,
        }

    def settings(self) -> dict[str, Any]:
        return {"lambda1": self.lambda1, "lambda2": self.lambda2,
                "hyperprior": self.hyperprior, "parameterization": self.parameterization,
                "whiten": self.whiten, "covariate_scale": self.covariate_scale,
                "site_scale": self.site_scale}

    def _whitened(self, data: Dataset) -> bool:
        if self.parameterization != "marginal":
            return False
        if self.whiten == "auto":
            return data.n_snps <= 4000
        return bool(self.whiten)

    def static_key(self, data: Dataset | None = None) -> tuple:
        return (type(self).__qualname__, self.parameterization, self.hyperprior,
                self.covariate_scale, self.whiten,
                data is not None and getattr(data, "sites", None) is not None)

    def validate(self, data: Dataset) -> None:
        if data.genotypes is None or data.n_snps == 0:
            raise DataValidationError("GSMTR needs genotypes (no SNP columns in the dataset)")
        if data.phenotypes is None or data.n_phenotypes == 0:
            raise DataValidationError("GSMTR needs phenotypes (no phenotype columns)")
        _ = data.gene_names  # raises if SNPs are not grouped
        check_finite_arrays(data)
        # no intercept (as bgsmtr): phenotypes must be centred
        check_centred_phenotypes(data, "GSMTR")

    def coords(self, data: Dataset) -> dict[str, np.ndarray]:
        coords = {"snp": data.snp_names, "gene": data.gene_names,
                  "phenotype": np.asarray(data.phenotype_names, dtype=str),
                  "subject": np.asarray(data.subjects, dtype=str)}
        if data.covariates is not None:
            coords["covariate"] = np.asarray(data.covariate_names, dtype=str)
        if data.sites is not None:
            coords["site"] = site_levels(data)
        return coords

    def model_args(self, data: Dataset, method: str = "nuts") -> dict[str, Any]:
        self.validate(data)
        X = np.asarray(data.genotypes, dtype=float)
        gene_index = data.gene_index
        n_genes = len(data.gene_names)
        args = {
            "X": X,
            "Y": np.asarray(data.phenotypes, dtype=float),
            "Z": None if data.covariates is None else np.asarray(data.covariates, dtype=float),
            "gene_index": gene_index,
            "gene_sizes": np.bincount(gene_index, minlength=n_genes).astype(float),
            "lambda1": np.asarray(self.lambda1),
            "lambda2": np.asarray(self.lambda2),
            "whitener": None,
            "H": site_design(data),
            "site_scale": np.asarray(self.site_scale),
        }
        if method != "gibbs" and self._whitened(data):
            kappa = (np.sqrt(self.lambda1) + np.sqrt(self.lambda2)) ** 2 / 2.0
            if self.hyperprior is not None:
                shape, rate = self.hyperprior
                kappa = 2.0 * shape / rate
            args["whitener"] = whitening_transform(X, kappa)
        return args

    def predictive_args(self, data: Dataset, method: str = "nuts") -> dict[str, Any]:
        kwargs = self.model_args(data, method)
        kwargs["Y"] = None
        kwargs["n_phenotypes"] = data.n_phenotypes
        kwargs["whitener"] = None  # W itself is in the posterior: sample it directly
        return kwargs

    def init_strategy(self, data: Dataset, method: str):
        return numpyro.infer.init_to_uniform(radius=0.5)

    def constant_data(self, data: Dataset):
        out = super().constant_data(data)
        # SNP → gene map: the integrated LOO rebuilds the prior precisions from τ, ω
        out["gene_index"] = (("snp",), np.asarray(data.gene_index, dtype=np.int64))
        return out

    # ------------------------------------------------------------ prediction, LOO
    def predict_draws(self, tree, new_data, *, draws, rng):
        """Phenotypes of new subjects: y = XW + ZΓ + ε, ε ~ N(0, σ²) (original units);
        with site effects, + u_s for a known site, + N(0, τ²) for an unseen one."""
        from bayesimg.models.core.predict import (
            flat_draws,
            regression_inputs,
            site_aware_predictive,
        )
        inputs = regression_inputs(tree, new_data)
        post = flat_draws(tree, ("W", "gamma", "sigma2", "site_effect", "site_sd")
                          + tuple(self._noise_sites), draws)
        return site_aware_predictive(tree, new_data, inputs, post, post["W"],
                                     self._noise_cov(post, tree), rng)

    @staticmethod
    def _noise_cov(post, tree) -> np.ndarray:
        """Noise variances per draw (S,): iid N(0, σ²) across phenotypes."""
        return post["sigma2"]

    def loo_given_hyperparameters(self, tree, *, draws, rng):
        """log p(y_i | y_{-i}, σ², τ, ω) with W and Γ integrated out.

        Given θ = (σ², τ, ω) the columns of W are N(0, σ² D⁻¹), D = diag(1/τ_k(i) + 1/ω_i)
        (so A = XᵀX + D as in the Gibbs sampler), Γ ~ N(0, s²) (s = ``covariate_scale``,
        integrated too), and y_j = Xw_j + Zγ_j + ε_j: exactly Gaussian.  Fits without τ, ω
        in the posterior (the marginal form, NUTS/SVI) get them drawn from their exact
        full conditionals 1/τ_k | W, σ² ~ InvGauss(√(λ₁σ²/‖W_k‖²), λ₁) and
        1/ω_i | · ~ InvGauss(√(λ₂σ²/‖w_i‖²), λ₂), which with the stored (W, σ²) are
        draws of the same joint posterior.

        With site random effects the site effects u are integrated too: given θ and the
        site sds τ (added to θ) the column j of [W; Γ; U] has the prior
        N(0, diag(σ²/D, s², τ_j²)), so each phenotype is an exact Gaussian regression on
        [X, Z, H] and the log density sums over phenotypes.  (Families with correlated
        noise do not integrate u this way and fall back to PSIS.)
        """
        setup = self._given_theta(tree, draws, rng)
        if setup is None:
            return None
        design, Y, sigma2, prior_var, post, theta, note = setup
        if "site_var" in post:
            from bayesimg.models.core.predict import gaussian_loo_given_prior
            n_sites = design.shape[1] - prior_var.shape[1]
            log_lik = self._site_columns(
                lambda j, v: gaussian_loo_given_prior(design, Y[:, [j]], sigma2, v),
                prior_var, post["site_var"], n_sites)
            return log_lik, theta, note
        return self._integrated_loglik(design, Y, sigma2, prior_var, post, tree), theta, note

    #: held-out densities with W, Γ integrated (``heldout_given_hyperparameters``) hold
    #: for iid N(0, σ²) noise; subclasses with another noise model set this False
    _heldout_integrated = True

    def heldout_given_hyperparameters(self, tree, new_data, *, draws, rng):
        """log p(ỹ_i | y_train, σ², τ, ω) of new subjects with W and Γ integrated out."""
        from bayesimg.models.core.predict import gaussian_heldout_given_prior, regression_inputs
        if not self._heldout_integrated:
            return None
        setup = self._given_theta(tree, draws, rng)
        if setup is None:
            return None
        design, Y, sigma2, prior_var, post, _, _ = setup
        new = regression_inputs(tree, new_data)
        if new["Y"] is None:
            return None
        B_new = new["X"] if new["Z"] is None else np.hstack([new["X"], new["Z"]])
        if "site_var" not in post:
            return gaussian_heldout_given_prior(design, Y, B_new, new["Y"], sigma2, prior_var)
        from bayesimg.models.core.site_effects import new_site_design
        H_new, unseen = new_site_design(tree, new_data)
        if unseen.any():
            return None      # an unseen site's effect is not in this form: sampled density
        B_new = np.hstack([B_new, H_new])
        return self._site_columns(
            lambda j, v: gaussian_heldout_given_prior(design, Y[:, [j]], B_new,
                                                      new["Y"][:, [j]], sigma2, v),
            prior_var, post["site_var"], H_new.shape[1])

    def _given_theta(self, tree, draws, rng):
        """(design, Y, σ² (S,), prior variances (S, p), posterior draws, θ, note) of the
        Gaussian model given θ = (σ², τ, ω), from the fit's stored data; None without it."""
        from bayesimg.models.core.predict import flat_draws
        cd = tree["constant_data"].dataset if "constant_data" in tree.children else {}
        if "X" not in cd or "gene_index" not in cd or "observed_data" not in tree.children:
            return None
        X = np.asarray(cd["X"].values, dtype=float)
        Y = np.asarray(tree["observed_data"].dataset["y"].values, dtype=float)
        Z = np.asarray(cd["Z"].values, dtype=float) if "Z" in cd else None
        gene_index = np.asarray(cd["gene_index"].values, dtype=np.int64)
        from bayesimg.models.core.site_effects import training_site_design
        H = training_site_design(tree)
        if H is not None and type(self)._integrated_loglik is not \
                GroupSparseMTR._integrated_loglik:
            return None
        post = flat_draws(tree, ("sigma2", "tau", "omega", "W", "lambda1", "lambda2",
                                 "site_sd") + tuple(self._noise_sites), draws)
        sigma2 = np.asarray(post["sigma2"], dtype=float)
        note = "W and Γ integrated out given σ², τ, ω"
        if "tau" not in post or "omega" not in post:
            if "W" not in post:
                return None
            S = sigma2.shape[0]
            lam1 = np.asarray(post.get("lambda1", np.full(S, self.lambda1)), dtype=float)
            lam2 = np.asarray(post.get("lambda2", np.full(S, self.lambda2)), dtype=float)
            W = np.asarray(post["W"], dtype=float)
            row_sq = np.maximum(np.sum(W**2, axis=2), 1e-300)             # (S, d)
            n_genes = int(gene_index.max()) + 1
            gene_sq = np.stack([np.bincount(gene_index, weights=r, minlength=n_genes)
                                for r in row_sq])
            gene_sq = np.maximum(gene_sq, 1e-300)
            inv_tau = rng.wald(np.sqrt(lam1[:, None] * sigma2[:, None] / gene_sq),
                               lam1[:, None] * np.ones_like(gene_sq))
            inv_omega = rng.wald(np.sqrt(lam2[:, None] * sigma2[:, None] / row_sq),
                                 lam2[:, None] * np.ones_like(row_sq))
            post["tau"], post["omega"] = 1.0 / inv_tau, 1.0 / inv_omega
            note += " (τ, ω drawn from their full conditionals given the stored W, σ²)"
        tau, omega = np.asarray(post["tau"], float), np.asarray(post["omega"], float)
        D = 1.0 / tau[:, gene_index] + 1.0 / omega                          # (S, d)
        prior_var = sigma2[:, None] / D
        design = X
        if Z is not None:
            design = np.hstack([X, Z])
            prior_var = np.hstack([prior_var,
                                   np.full((sigma2.shape[0], Z.shape[1]),
                                           self.covariate_scale**2)])
        theta = {"sigma2": ((), sigma2), "tau": (("gene",), tau), "omega": (("snp",), omega)}
        if H is not None:
            # site effects: the last columns of the design, prior variance τ_j² per
            # phenotype (post["site_var"], (S, c)); see _per_phenotype
            site_sd = np.asarray(post["site_sd"], dtype=float)                  # (S, c)
            design = np.hstack([design, H])
            post["site_var"] = site_sd**2
            theta["site_sd"] = (("phenotype",), site_sd)
            note += ", and the site effects u given their sds τ"
        theta.update({name: ((), np.asarray(post[name], float)) for name in self._noise_sites})
        return design, Y, sigma2, prior_var, post, theta, note

    @staticmethod
    def _site_columns(density, prior_var, site_var, n_sites):
        """Σ_j density(j, v_j), v_j = (prior variances, then τ_j² for each of the n_sites
        site columns): with site effects the prior of column j of [W; Γ; U] is
        diag(σ²/D, s², τ_j²), so each phenotype is its own exact Gaussian regression (iid
        noise keeps the columns independent given θ)."""
        return sum(density(j, np.hstack([prior_var, np.repeat(site_var[:, [j]], n_sites,
                                                               axis=1)]))
                   for j in range(site_var.shape[1]))

    #: scalar noise sites besides σ² that the integrated LOO conditions on
    _noise_sites: tuple[str, ...] = ()

    @staticmethod
    def _integrated_loglik(design, Y, sigma2, prior_var, post, tree):
        """log p(y_i | y_{-i}, θ) (S, n), coefficients integrated out, iid N(0, σ²) noise."""
        from bayesimg.models.core.predict import gaussian_loo_given_prior
        return gaussian_loo_given_prior(design, Y, sigma2, prior_var)

    # ------------------------------------------------------------ the model
    def numpyro_model(self, method: str = "nuts"):
        # the Gibbs kernel works on the hierarchical form (its state holds τ and ω)
        hierarchical = self.parameterization == "hierarchical" or method == "gibbs"
        hyperprior = self.hyperprior
        covariate_scale = self.covariate_scale

        noise_params, observe = self._noise_params, self._observe

        def gsmtr_model(X, Y, Z, gene_index, gene_sizes, lambda1, lambda2, whitener,
                        H=None, site_scale=1.0, n_phenotypes=None, subsample_size=None,
                        **noise_args):
            n, d = X.shape
            c = Y.shape[1] if Y is not None else n_phenotypes
            if c is None:
                raise ModelSpecError("pass Y or n_phenotypes to draw from the predictive")
            n_genes = gene_sizes.shape[0]
            if hyperprior is not None:
                lambda1 = numpyro.sample("lambda1", dist.Gamma(*hyperprior))
                lambda2 = numpyro.sample("lambda2", dist.Gamma(*hyperprior))
            sigma2 = numpyro.sample("sigma2", dist.InverseGamma(3.0, 1.0))
            sigma = jnp.sqrt(sigma2)

            if hierarchical:
                tau = numpyro.sample(
                    "tau", dist.Gamma((gene_sizes * c + 1.0) / 2.0, lambda1 / 2.0))
                omega = numpyro.sample(
                    "omega", dist.Gamma(jnp.full((d,), (c + 1.0) / 2.0), lambda2 / 2.0))
                precision = (1.0 / tau[gene_index] + 1.0 / omega) / sigma2      # (d,)
                W = numpyro.sample(
                    "W", dist.ImproperUniform(constraints.real, (), (d, c)))
                # the joint's W-kernel with its −Σ(m_k c/2)log τ − Σ(c/2)log ω − (dc/2)log σ² terms
                numpyro.factor("W_prior", (
                    -0.5 * jnp.sum(precision[:, None] * W**2)
                    - 0.5 * c * jnp.sum(jnp.log(tau[gene_index]))
                    - 0.5 * c * jnp.sum(jnp.log(omega))
                    - 0.5 * d * c * jnp.log(sigma2)))
            else:
                if whitener is not None:
                    V = numpyro.sample(
                        "W_white", dist.ImproperUniform(constraints.real, (), (d, c)))
                    W = numpyro.deterministic("W", whitener @ V)
                else:
                    W = numpyro.sample(
                        "W", dist.ImproperUniform(constraints.real, (), (d, c)))
                row_sq = jnp.sum(W**2, axis=1)
                gene_sq = jax.ops.segment_sum(row_sq, gene_index, num_segments=n_genes)
                numpyro.factor("W_prior", (
                    -0.5 * d * c * jnp.log(sigma2)
                    + 0.5 * d * c * (jnp.log(lambda1) + jnp.log(lambda2))
                    - (jnp.sqrt(lambda1) * jnp.sum(_smooth_norm(gene_sq))
                       + jnp.sqrt(lambda2) * jnp.sum(_smooth_norm(row_sq))) / sigma))

            row_sq = jnp.sum(W**2, axis=1)
            numpyro.deterministic("snp_norm", jnp.sqrt(row_sq))
            numpyro.deterministic(
                "gene_norm",
                jnp.sqrt(jax.ops.segment_sum(row_sq, gene_index, num_segments=n_genes)))
            gamma = None
            if Z is not None:
                gamma = numpyro.sample(
                    "gamma", dist.Normal(0.0, covariate_scale).expand([Z.shape[1], c]).to_event(2))
            site_effect = None
            if H is not None:
                # site random intercepts: centred for the Gibbs kernel's state, else non-centred
                site_effect = sample_site_effects(H.shape[1], c, site_scale, centred=hierarchical)
            noise = noise_params(sigma2, c, noise_args)

            def batch_mean(rows):
                # subsample_size (SVI only): the likelihood of a random minibatch of subjects,
                # scaled by n / batch (NumPyro's subsampling plate)
                if subsample_size is None:
                    mean, Yb = X @ W, Y
                    if Z is not None:
                        mean = mean + Z @ gamma
                    if H is not None:
                        mean = mean + H @ site_effect
                    return mean, Yb
                mean = X[rows] @ W
                if Z is not None:
                    mean = mean + Z[rows] @ gamma
                if H is not None:
                    mean = mean + H[rows] @ site_effect
                return mean, None if Y is None else Y[rows]

            observe(n, c, subsample_size, batch_mean, noise)

        return gsmtr_model

    # the noise model (a subclass with correlated noise overrides both)
    @staticmethod
    def _noise_params(sigma2, c, noise_args) -> dict:
        """Noise sites sampled before the likelihood; here only σ² (already drawn)."""
        return {"sigma": jnp.sqrt(sigma2)}

    @staticmethod
    def _observe(n, c, subsample_size, batch_mean, noise) -> None:
        """y_lj ~ N(mean_lj, σ²) independently over subjects l and phenotypes j."""
        with numpyro.plate("subject", n, subsample_size=subsample_size, dim=-2) as rows:
            mean, Yb = batch_mean(rows)
            with numpyro.plate("phenotype", c, dim=-1):
                numpyro.sample("y", dist.Normal(mean, noise["sigma"]), obs=Yb)

    def pads_subjects(self, data: Dataset, method: str) -> bool:
        """The Gibbs kernel on d ≤ n works on XᵀX, XᵀY, ‖Y‖², ZᵀZ, ... and n only (see
        :mod:`bayesimg.models.gsmtr.gibbs`): zero-padded subjects change nothing.  Only
        for that kernel: a subclass with its own (e.g. the bilateral one) does not pad."""
        return (method == "gibbs" and data.n_snps <= data.n_subjects
                and type(self).gibbs_kernel is GroupSparseMTR.gibbs_kernel)

    def gibbs_kernel(self, data: Dataset):
        """Exact blocked Gibbs kernel (:mod:`bayesimg.models.gsmtr.gibbs`)."""
        from bayesimg.models.gsmtr.gibbs import GSMTRGibbs
        return GSMTRGibbs(hyperprior=self.hyperprior, covariate_scale=self.covariate_scale)

    # ------------------------------------------------------------ penalised form
    def penalty_weights(self, sigma: float) -> tuple[float, float]:
        """G-SMuRFS penalties γ₁ = 2σ√λ₁, γ₂ = 2σ√λ₂ implied at noise sd ``sigma``."""
        return 2.0 * sigma * np.sqrt(self.lambda1), 2.0 * sigma * np.sqrt(self.lambda2)


def whitening_transform(X: np.ndarray, kappa: float) -> np.ndarray:
    """T = L⁻ᵀ with L Lᵀ = XᵀX + κI, so that Tᵀ(XᵀX + κI)T = I."""
    d = X.shape[1]
    A = X.T @ X + kappa * np.eye(d)
    L = np.linalg.cholesky(A)
    return np.linalg.solve(L.T, np.eye(d))


def gsmurfs_objective(W, X, Y, gene_index, gamma1, gamma2):
    """‖Y − XW‖²_F + γ₁ Σ_k ‖W_k‖_F + γ₂ Σ_i ‖w_i‖₂ (Wang et al. 2012)."""
    W = np.asarray(W)
    resid = Y - X @ W
    row_sq = np.sum(W**2, axis=1)
    gene_sq = np.bincount(gene_index, weights=row_sq)
    return float(np.sum(resid**2) + gamma1 * np.sum(np.sqrt(gene_sq))
                 + gamma2 * np.sum(np.sqrt(row_sq)))
