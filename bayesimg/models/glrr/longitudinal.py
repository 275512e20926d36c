r"""Bayesian longitudinal low-rank regression (L2R2): GLRR over repeated visits.

The longitudinal extension of GLRR by Lu, Khondker, Ibrahim, Wang & Zhu (2017,
NeuroImage 149:305–322, "Bayesian longitudinal low-rank regression models for imaging
genetic data from longitudinal studies"; the authors' MATLAB program BIG-S2/L2R2).
Subject i (genotypes x_i) is scanned at visits t = 1..T_i (times t_it, visit-level
covariates z_it); rows of its phenotypes::

    y_it = Bᵀ x̃_it + Γᵀ z̃_it + b_i + ε_it,
    x̃_it = x_i, or (x_i, t_it x_i) with ``genotype_by_time=True`` (the SNP × time
            interactions of the paper: B then stacks the main effects over the
            interactions, a 2d × c matrix, and the low rank is shared),
    z̃_it = (t_it, z_it): a population time trend (``time_effect=True``) and the
            time-varying covariates, coefficients Γ ~ N(0, s²) (the paper models the
            overall time trend by penalised splines; pass spline columns as covariates),
    b_i ~ N_c(0, diag ω)          subject random intercepts, 1/ω_j ~ Gamma(a_ω, b_ω)
                                  (``subject_var_prior``; a number fixes ω),
    ε_it ~ N_c(0, Σ) iid,         Σ = ΛΛᵀ + diag ψ (GLRR's factor noise, MGP on Λ),

with B = U diag(δ) Vᵀ and every prior of GLRR (:mod:`bayesimg.models.glrr.model`: Laplace
SNP loadings, rank shrinkage by a multiplicative gamma process, so the rank is chosen by
shrinkage).  Within a subject the visits are correlated through b_i (compound symmetry
per phenotype on top of the cross-phenotype Σ).  What is the paper's and what is ours:
the paper's random effects are the same random intercepts, its noise the same sparse
factor model; it fixes the rank and has no sparsity (as GLRR's anchor); the random
slopes, which the paper does not have either, are not offered.

Likelihood and leave-one-out
-----------------------------
The random intercepts are integrated out: subject i's visits are jointly
N(μ_i, I ⊗ Σ + 11ᵀ ⊗ diag ω) (:class:`~bayesimg.models.core.random_intercept.
RandomInterceptNormal`, determinant lemma and Woodbury through one c×c
eigendecomposition), so the pointwise log-likelihood is per *subject* (all its visits):
LOO leaves a subject out, as it predicts a new subject.  ``fit.loo()`` is integrated
LOO (:mod:`bayesimg.models.glrr.longitudinal_loo`: U, Γ and b_i integrated out given
A = diag(δ)Vᵀ, Σ, ω; PSIS over those draws); ``fit.loo(method="psis")`` is plain PSIS.
The posterior holds GLRR's identified sites (``B``, singular values and loadings, Σ, ψ, Γ …) plus
``subject_var`` ω (phenotype) and ``subject_effect`` (subject, phenotype) =
E[b_i | y, θ] per draw (a Rao–Blackwellised estimate: its posterior mean is that of b_i;
its spread across draws understates b_i's posterior sd).  Observed ``y`` is stored
padded (subject, visit, phenotype) with NaN where a subject has fewer visits.

Samplers
--------
NUTS/SVI/MAP use the marginal likelihood above.  ``method="gibbs"`` runs
:class:`~bayesimg.models.glrr.longitudinal_gibbs.L2R2Gibbs`: b_i drawn exactly from
its conditional with η integrated out, ω from its inverse-gamma conditional, and then
one sweep of GLRR's exact kernel on the visit-level data with the intercepts
subtracted (GLRR's conditionals are those of θ given b, unchanged).

Summaries: ``effective_rank`` and the signal singular values are computed on the
visit-level design (N visits rows), as GLRR computes them on its n rows.

Site random effects (``make_longitudinal(..., random_effects="site")``, a subject's site
fixed over its visits; :mod:`bayesimg.models.core.site_effects`): y_it gains u_{s(i)}.
The Gibbs kernel draws u with the subject intercepts integrated out
(:mod:`bayesimg.models.glrr.longitudinal_gibbs`).  Prediction for a subject at an unseen
site adds τ² to its intercept variance.  The integrated LOO conditions on u per draw.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist

from bayesimg.data.longitudinal import LongitudinalData
from bayesimg.errors import DataValidationError, ModelSpecError
from bayesimg.models.core.random_intercept import RandomInterceptNormal
from bayesimg.models.core.site_effects import sample_site_effects, site_design, site_levels
from bayesimg.models.glrr.model import GeneralizedLowRankRegression, ridge_svd, sign_reference

__all__ = ["L2R2", "LongitudinalLowRankRegression"]


class LongitudinalLowRankRegression(GeneralizedLowRankRegression):
    """L2R2 (Lu et al. 2017): GLRR with subject random intercepts over repeated visits.

    Parameters
    ----------
    rank, and every keyword of :class:`~bayesimg.models.GLRR`
        The low-rank regression and the factor noise, as GLRR.
    subject_var_prior : (float, float) or float
        (a_ω, b_ω) of 1/ω_j ~ Gamma(a_ω, b_ω), the random-intercept variances; a single
        number ≥ 0 fixes every ω_j to it (0: no random intercepts — GLRR on the visits).
    time_effect : bool
        Add the visit time (centred) as a fixed covariate (a linear population trend).
    genotype_by_time : bool
        Also regress on SNP × time (the paper's interactions): B has 2d rows, labelled
        ``snp`` and ``snp:time``.
    store_subject_effects : bool
        Keep E[b_i | y, θ] (subject × phenotype) per draw.
    """

    name = "l2r2"
    observed = {"y": ("subject", "visit", "phenotype")}

    def __init__(self, rank: int = 3, *, subject_var_prior: tuple[float, float] | float
                 = (1.0, 0.3), time_effect: bool = True, genotype_by_time: bool = False,
                 store_subject_effects: bool = True, **glrr):
        super().__init__(rank, **glrr)
        self.fixed_subject_var = np.isscalar(subject_var_prior)
        if self.fixed_subject_var:
            if not (np.isfinite(subject_var_prior) and subject_var_prior >= 0):
                raise ModelSpecError(
                    f"a fixed subject_var_prior must be >= 0, got {subject_var_prior!r}")
            self.subject_var_prior = float(subject_var_prior)
        else:
            pair = tuple(subject_var_prior)
            if len(pair) != 2 or not all(np.isfinite(p) and p > 0 for p in pair):
                raise ModelSpecError(
                    f"subject_var_prior must be two positive numbers or one number >= 0, "
                    f"got {subject_var_prior!r}")
            self.subject_var_prior = tuple(map(float, pair))
        self.time_effect = bool(time_effect)
        self.genotype_by_time = bool(genotype_by_time)
        self.store_subject_effects = bool(store_subject_effects)

    # ------------------------------------------------------------ interface
    @property
    def dims(self):
        out = dict(super().dims)
        out["subject_var"] = ("phenotype",)
        out["subject_effect"] = ("subject", "phenotype")
        return out

    def settings(self) -> dict[str, Any]:
        return {**super().settings(), "subject_var_prior": self.subject_var_prior,
                "time_effect": self.time_effect, "genotype_by_time": self.genotype_by_time,
                "store_subject_effects": self.store_subject_effects}

    def static_key(self, data: LongitudinalData | None = None) -> tuple:
        extra = (self.fixed_subject_var, self.time_effect, self.genotype_by_time,
                 self.store_subject_effects)
        if data is not None:
            extra = extra + (data.max_visits, self._uses_time(data), data.n_covariates)
        return super().static_key(data) + extra

    def _uses_time(self, data: LongitudinalData) -> bool:
        return bool(np.any(data.time[data.visit_mask] != 0.0))

    def term_names(self, data: LongitudinalData) -> np.ndarray:
        """Row labels of B: the SNPs, then ``snp:time`` with ``genotype_by_time``."""
        snps = np.asarray(data.snp_names, dtype=str)
        if not self.genotype_by_time:
            return snps
        return np.concatenate([snps, np.char.add(snps, ":time")])

    def covariate_names(self, data: LongitudinalData) -> np.ndarray | None:
        names = (["time"] if self.time_effect and self._uses_time(data) else []) + \
            ([] if data.covariate_names is None else list(map(str, data.covariate_names)))
        return np.asarray(names, dtype=str) if names else None

    def validate(self, data) -> None:
        if not isinstance(data, LongitudinalData):
            raise DataValidationError(
                f"L2R2 fits repeated measures: pass a LongitudinalData "
                f"(bayesimg.data.make_longitudinal), got {type(data).__name__}")
        d = data.n_snps * (2 if self.genotype_by_time else 1)
        c = data.n_phenotypes
        if self.rank > min(d, c):
            raise ModelSpecError(f"rank {self.rank} exceeds min(genetic terms, phenotypes) "
                                 f"= min({d}, {c}); use rank <= {min(d, c)}")
        self.check_noise_factors(c)
        if data.n_subjects < 2:
            raise DataValidationError(f"L2R2 needs at least 2 subjects, got {data.n_subjects}")
        if self.genotype_by_time and not self._uses_time(data):
            raise ModelSpecError("genotype_by_time needs visit times (read_visits(time=...))")
        for label, arr in (("genotypes", data.genotypes), ("phenotypes", data.flat_phenotypes()),
                           ("covariates", data.flat_covariates())):
            if arr is not None and not np.isfinite(arr).all():
                raise DataValidationError(f"{label} contain NaN or inf")
        Y = data.flat_phenotypes()
        sd = Y.std(axis=0)
        if np.any(sd == 0):
            raise DataValidationError("phenotype is constant over all visits",
                                      column=str(data.phenotype_names[int(np.argmin(sd))]))
        z = np.abs(Y.mean(axis=0)) / (sd / np.sqrt(len(Y)) + 1e-12)
        if np.any(z > 5.0):
            raise DataValidationError(
                "L2R2 has no intercept: phenotypes must be centred over visits "
                "(make_longitudinal centres them)",
                column=str(data.phenotype_names[int(np.argmax(z))]))

    def coords(self, data: LongitudinalData) -> dict[str, np.ndarray]:
        c = data.n_phenotypes
        phen = np.asarray(data.phenotype_names, dtype=str)
        coords = {"snp": self.term_names(data), "genotype_snp": data.snp_names,
                  "visit_covariate": (np.asarray([], dtype=str) if data.covariate_names is None
                                      else np.asarray(data.covariate_names, dtype=str)),
                  "phenotype": phen, "phenotype_2": phen.copy(),
                  "subject": np.asarray(data.subjects, dtype=str),
                  "visit": np.arange(1, data.max_visits + 1),
                  "rank": np.arange(1, self.rank + 1),
                  "rank_step": np.arange(2, self.rank + 1),
                  "noise_factor": np.arange(1, self.n_noise_factors(c) + 1)}
        covs = self.covariate_names(data)
        if covs is not None:
            coords["covariate"] = covs
        if data.sites is not None:
            coords["site"] = site_levels(data)
        return coords

    def design(self, data: LongitudinalData) -> tuple[np.ndarray, np.ndarray | None]:
        """Visit-level X̃ (N × d or 2d) and Z̃ (N × r) in subject-major visit order."""
        rows, _ = data.visit_index()
        X = np.asarray(data.genotypes, dtype=float)[rows]
        t = data.flat_time()
        if self.genotype_by_time:
            X = np.hstack([X, t[:, None] * X])
        parts = []
        if self.time_effect and self._uses_time(data):
            parts.append(t[:, None])
        if data.covariates is not None:
            parts.append(data.flat_covariates())
        Z = np.hstack(parts) if parts else None
        return X, Z

    def model_args(self, data: LongitudinalData, method: str = "nuts") -> dict[str, Any]:
        self.validate(data)
        X, Z = self.design(data)
        Y = np.asarray(data.flat_phenotypes(), dtype=float)
        rows, pos = data.visit_index()
        d, c = X.shape[1], Y.shape[1]
        snp_rate, phen_rate = self.penalties(d, c)
        prior = (np.asarray(self.subject_var_prior) if not self.fixed_subject_var
                 else np.asarray([self.subject_var_prior, 1.0]))
        return {
            "X": X, "Y": Y, "Z": Z,
            "Y_obs": np.where(data.visit_mask[..., None], data.phenotypes, 0.0),
            "visit_mask": data.visit_mask.astype(float),
            "subject_index": rows, "visit_position": pos,
            "subject_var_prior": prior,
            "snp_rate": np.asarray(snp_rate), "phenotype_rate": np.asarray(phen_rate),
            "rank_increment_shape": np.asarray(self.rank_increment_shape),
            "global_precision": np.asarray(self.global_precision),
            "noise_shapes": np.asarray(self.noise_shapes),
            "psi_prior": np.asarray(self.psi_prior),
            "rank_threshold": np.asarray(self.rank_threshold),
            "sign_reference": sign_reference(X, Y, Z, self.rank),
            # site random effects: the visits' site indicators (a subject's site is fixed)
            "H": None if data.sites is None else site_design(data)[rows],
            "site_scale": np.asarray(self.site_scale),
        }

    def subject_axis_args(self, data, method: str = "nuts", *, args=None):
        return frozenset({"Y_obs", "visit_mask"})

    def predictive_args(self, data, method: str = "nuts") -> dict[str, Any]:
        raise ModelSpecError("L2R2 has no posterior predictive draws yet; use "
                             "bayesimg.predict on new subjects' data or fit.loo()")

    def observed_data(self, data: LongitudinalData) -> dict[str, np.ndarray]:
        return {"y": np.asarray(data.phenotypes, dtype=float)}

    def constant_data(self, data: LongitudinalData):
        prep = data.preprocessing or {}
        out = {"X": (("subject", "genotype_snp"), np.asarray(data.genotypes, dtype=float)),
               "time": (("subject", "visit"), np.asarray(data.time, dtype=float)),
               "visit_mask": (("subject", "visit"), data.visit_mask.astype(np.int8)),
               "visit_label": (("subject", "visit"), np.asarray(data.visit_labels, dtype=str))}
        if data.covariates is not None:
            out["Z"] = (("subject", "visit", "visit_covariate"),
                        np.asarray(data.covariates, dtype=float))
        if data.sites is not None:
            out["site_of_subject"] = (("subject",), np.asarray(data.sites, dtype=str))
        for key, dim, n in (("phenotype_center", "phenotype", data.n_phenotypes),
                            ("phenotype_scale", "phenotype", data.n_phenotypes),
                            ("genotype_center", "genotype_snp", data.n_snps),
                            ("genotype_scale", "genotype_snp", data.n_snps),
                            ("covariate_center", "visit_covariate", data.n_covariates),
                            ("covariate_scale", "visit_covariate", data.n_covariates)):
            value = prep.get(key)
            if value is not None and np.shape(value) == (n,):
                out[key] = ((dim,), np.asarray(value, dtype=float))
        out["time_center"] = ((), np.asarray(float(prep.get("time_center", 0.0))))
        return out

    def init_strategy(self, data, method: str):
        if method not in ("svi", "map"):
            return numpyro.infer.init_to_uniform(radius=0.5)
        X, Z = self.design(data)
        left, svals, right = ridge_svd(X, data.flat_phenotypes(), Z, self.rank)
        return numpyro.infer.init_to_value(values={"U": left, "V": right, "delta": svals})

    # ------------------------------------------------------------ the model
    def numpyro_model(self, method: str = "nuts"):
        prior = self.prior_model()
        fixed = self.fixed_subject_var
        store_effects = self.store_subject_effects

        centred_sites = method == "gibbs"

        def l2r2_model(X, Y, Z, Y_obs, visit_mask, subject_index, visit_position,
                       subject_var_prior, H=None, site_scale=1.0, n_phenotypes=None,
                       from_posterior=False, **glrr_kw):
            if from_posterior:
                raise ModelSpecError("L2R2 has no posterior predictive model")
            n, T = visit_mask.shape
            # GLRR's priors and identified summaries on the visit-level design (the visits
            # are not independent here, so the likelihood is L2R2's own)
            c = Y.shape[1]
            layers = prior(X, Z, c, **glrr_kw)
            mean = X @ layers["B"]
            if Z is not None:
                mean = mean + Z @ layers["gamma"]
            if H is not None:
                mean = mean + H @ sample_site_effects(H.shape[1], c, site_scale,
                                                      centred=centred_sites)
            Lam, psi = layers["noise_factors"], layers["psi"]
            cov = Lam @ Lam.T + jnp.diag(psi)
            if fixed:
                omega = jnp.full((c,), subject_var_prior[0], X.dtype)
            else:
                omega = numpyro.sample(
                    "subject_var", dist.InverseGamma(subject_var_prior[0], subject_var_prior[1])
                    .expand([c]).to_event(1))
            padded = jnp.zeros((n, T, c), X.dtype).at[subject_index, visit_position].set(mean)
            likelihood = RandomInterceptNormal(padded, cov, omega, visit_mask)
            if store_effects and Y_obs is not None:
                numpyro.deterministic("subject_effect", likelihood.subject_effect(Y_obs))
            with numpyro.plate("subject", n):
                numpyro.sample("y", likelihood, obs=Y_obs)

        return l2r2_model

    def gibbs_kernel(self, data: LongitudinalData):
        """Exact blocked Gibbs kernel (:mod:`bayesimg.models.glrr.longitudinal_gibbs`)."""
        from bayesimg.models.glrr.longitudinal_gibbs import L2R2Gibbs
        return L2R2Gibbs(self, self.numpyro_model("gibbs"))

    def predict_draws(self, tree, new_data, *, draws, rng):
        """Visits of new subjects: y_i ~ N(μ_i, I ⊗ Σ + 11ᵀ ⊗ diag ω) per draw, their
        intercepts unknown (drawn from N(0, diag ω)); original units.

        ``new_data``: a :class:`~bayesimg.data.LongitudinalData` with the fit's SNPs,
        phenotypes and visit covariates (its own centring is undone and the fit's
        applied, times included).  With phenotypes, ``log_density`` is the per-subject
        marginal (all visits), as the fit's ``log_likelihood``.
        """
        from bayesimg.models.core.predict import PredictiveDraws, flat_draws
        new = _to_fit_units(tree, new_data)
        X, Z = self.design(new)
        post = flat_draws(tree, ("B", "gamma", "noise_cov", "subject_var", "site_effect",
                                 "site_sd"), draws)
        if "noise_cov" not in post:
            raise ModelSpecError("predicting new subjects needs Σ per draw: refit with "
                                 "store_noise_cov=True")
        S = post["B"].shape[0]
        c = new.n_phenotypes
        omega = post.get("subject_var")
        if omega is None:
            omega = np.full((S, c), float(self.subject_var_prior))
        mean_flat = np.einsum("nd,sdc->snc", X, post["B"])
        if Z is not None:
            if "gamma" not in post or post["gamma"].shape[1] != Z.shape[1]:
                raise DataValidationError("the new data's time/covariates do not match "
                                          "the fit's covariates")
            mean_flat = mean_flat + np.einsum("nr,src->snc", Z, post["gamma"])
        n, T = new.visit_mask.shape
        rows, pos = new.visit_index()
        from bayesimg.models.core.site_effects import SITE_PREDICTION_NOTE, new_site_design
        sites = new_site_design(tree, new)
        unseen = np.zeros(n, bool)
        if sites is not None:
            H, unseen = sites
            mean_flat = mean_flat + np.einsum("nk,skc->snc", H[rows], post["site_effect"])
        mean = np.zeros((S, n, T, c))
        mean[:, rows, pos] = mean_flat
        mask = new.visit_mask
        L = np.linalg.cholesky(post["noise_cov"])
        eps = np.einsum("scj,sntj->sntc", L, rng.standard_normal((S, n, T, c)))
        # a subject's intercept, plus its site's effect when the site is unseen: both are
        # constant over its visits, so an unseen site adds τ² to the intercept variance
        intercept_var = np.broadcast_to(omega[:, None, :], (S, n, c)).copy()
        if sites is not None:
            intercept_var[:, unseen] += post["site_sd"][:, None, :] ** 2
        b = rng.standard_normal((S, n, 1, c)) * np.sqrt(intercept_var)[:, :, None, :]
        y = (mean + b + eps)
        pc = np.asarray(tree["constant_data"].dataset["phenotype_center"].values) \
            if "phenotype_center" in tree["constant_data"].dataset else np.zeros(c)
        ps = np.asarray(tree["constant_data"].dataset["phenotype_scale"].values) \
            if "phenotype_scale" in tree["constant_data"].dataset else np.ones(c)
        nan = np.where(mask, 0.0, np.nan)[None, :, :, None]
        dims = ("subject", "visit", "phenotype")
        out = PredictiveDraws(
            draws={"y": (dims, y * ps + pc + nan)}, means={"y": (dims, mean * ps + pc + nan)},
            coords={"subject": np.asarray(new.subjects, dtype=str),
                    "visit": np.arange(1, T + 1),
                    "phenotype": np.asarray(new.phenotype_names, dtype=str)},
            attrs={"units": "original units of the phenotypes (the fit's standardisation "
                            "undone)"})
        if sites is not None:
            out.attrs["site_effects"] = SITE_PREDICTION_NOTE
        if np.isfinite(new.phenotypes[mask]).all():
            value = jnp.asarray(np.where(mask[..., None], new.phenotypes, 0.0))

            def density(m, cov, om):
                return RandomInterceptNormal(m, cov, om, jnp.asarray(mask, float)
                                             ).log_prob(value)
            out.log_density = np.array(jax.vmap(density)(
                jnp.asarray(mean), jnp.asarray(post["noise_cov"]), jnp.asarray(omega)))
            if unseen.any():
                sub = np.flatnonzero(unseen)
                value_u = value[sub]

                def density_unseen(m, cov, om):
                    return RandomInterceptNormal(m, cov, om, jnp.asarray(mask[sub], float)
                                                 ).log_prob(value_u)
                out.log_density[:, sub] = np.asarray(jax.vmap(density_unseen)(
                    jnp.asarray(mean[:, sub]), jnp.asarray(post["noise_cov"]),
                    jnp.asarray(omega + post["site_sd"] ** 2)))
            out.log_jacobian = -new.visit_counts * float(np.sum(np.log(ps)))
        return out

    def loo_given_hyperparameters(self, tree, *, draws, rng):
        """Integrated leave-one-subject-out (all visits and phenotypes of a subject): U, Γ
        and the subject intercepts integrated out given A = diag(δ)Vᵀ, Σ, ω (and U's
        Laplace mixing variances), PSIS over those draws
        (:mod:`bayesimg.models.glrr.longitudinal_loo`).  None without the stored data or
        layers (``fit.loo()`` then uses plain PSIS and says so)."""
        from bayesimg.models.glrr.longitudinal_loo import l2r2_integrated_loo
        return l2r2_integrated_loo(self, tree, draws=draws, rng=rng)

    def penalty_weights(self, d: int, c: int) -> dict[str, float]:
        raise ModelSpecError("L2R2 has no penalised counterpart implemented")


#: short alias
L2R2 = LongitudinalLowRankRegression


def _to_fit_units(tree, new: LongitudinalData) -> LongitudinalData:
    """``new`` with the fit's SNP/phenotype/covariate order and the fit's centring and
    scaling (genotypes, phenotypes, visit covariates, time) in place of its own."""
    import dataclasses

    from bayesimg.models.core.predict import _match, coord

    if not isinstance(new, LongitudinalData):
        raise DataValidationError(
            f"L2R2 predicts from a LongitudinalData (make_longitudinal), got "
            f"{type(new).__name__}")
    cd = tree["constant_data"].dataset
    prep = new.preprocessing or {}

    def const(name, n, default):
        return np.asarray(cd[name].values, dtype=float) if name in cd else np.full(n, default)

    def own(key, n, default):
        value = prep.get(key)
        return np.full(n, default) if value is None else np.asarray(value, dtype=float)

    snps = np.asarray(coord(tree, "genotype_snp"), dtype=str)
    gi = _match(snps, new.snp_names, "SNPs")
    raw = new.genotypes * own("genotype_scale", new.n_snps, 1.0) \
        + own("genotype_center", new.n_snps, 0.0)
    X = (raw[:, gi] - const("genotype_center", len(snps), 0.0)) \
        / const("genotype_scale", len(snps), 1.0)
    phen = np.asarray(coord(tree, "phenotype"), dtype=str)
    pi = _match(phen, new.phenotype_names, "phenotypes")
    c = new.n_phenotypes
    yraw = new.phenotypes * own("phenotype_scale", c, 1.0) + own("phenotype_center", c, 0.0)
    Y = (yraw[..., pi] - const("phenotype_center", len(phen), 0.0)) \
        / const("phenotype_scale", len(phen), 1.0)
    time = np.where(new.visit_mask, new.time + float(prep.get("time_center", 0.0))
                    - float(cd["time_center"].values) if "time_center" in cd else new.time,
                    0.0)
    Z, names = None, None
    fit_covs = coord(tree, "visit_covariate")
    if fit_covs is not None and len(fit_covs):
        if new.covariates is None:
            raise DataValidationError(f"the fit uses visit covariates {list(fit_covs)}; "
                                      "the new data have none")
        ci = _match(np.asarray(fit_covs, dtype=str), new.covariate_names, "covariates")
        r = new.n_covariates
        zraw = new.covariates * own("covariate_scale", r, 1.0) + own("covariate_center", r, 0.0)
        Z = (zraw[..., ci] - const("covariate_center", len(fit_covs), 0.0)) \
            / const("covariate_scale", len(fit_covs), 1.0)
        Z = np.where(new.visit_mask[..., None], Z, 0.0)
        names = np.asarray(fit_covs, dtype=str)
    return dataclasses.replace(
        new, genotypes=X, snps=new.snps.iloc[gi].reset_index(drop=True), phenotypes=Y,
        phenotype_names=phen, time=time, covariates=Z, covariate_names=names)
