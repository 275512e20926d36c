r"""Integrated leave-one-subject-out for L2R2 (:mod:`bayesimg.models.glrr.longitudinal`).

L2R2's subject i has T_i visit rows y_it = Aᵀ Uᵀ x̃_it + Γᵀ z̃_it + b_i + ε_it with
b_i ~ N_c(0, D), D = diag(ω), ε_it ~ N_c(0, Σ), U (d×R) ~ N(0, diag s) entrywise and
Γ ~ N(0, s_Γ²) entrywise, A = diag(δ)Vᵀ.  Given θ = (A, Σ, ω, s):

* b_i is integrated out exactly: subject i's visits are jointly
  N(μ_i, I_{T_i} ⊗ Σ + 11ᵀ ⊗ D).  Rotating each subject's visits by an orthonormal
  Helmert matrix H_{T_i} (first row 1ᵀ/√T_i, the other T_i − 1 rows contrasts
  orthogonal to 1) makes them independent:
  (H ⊗ I)(I ⊗ Σ + 11ᵀ ⊗ D)(H ⊗ I)ᵀ = I ⊗ Σ + T_i e₁e₁ᵀ ⊗ D, i.e. the mean row has noise
  Σ + T_i D and each contrast row noise Σ, and the rotated rows keep the linear form
  (H x̃, H z̃, H y).  The rotation is orthonormal within a subject, so densities
  (Jacobian 1) and the leave-one-subject-out split are unchanged.
* U and Γ are integrated out exactly: β = (vec U, vec Γ) is Gaussian given θ and enters
  each rotated row linearly with loadings a_h (U) and unit vectors (Γ), the form of
  :func:`~bayesimg.models.core.predict.gaussian_loo_given_loadings` with a noise
  covariance per row class (Σ; Σ + T D for each distinct visit count T) and the rows
  grouped by subject, which gives log p(y_i | y_{-i}, θ) for all visits and phenotypes
  of subject i at once (block hat-matrix identity, Vehtari, Mononen, Tolvanen, Sivula &
  Winther 2016, JMLR 17(103), §3).
* A, Σ, ω (and the Laplace mixing variances s, drawn from their full conditional given
  the stored U as for GLRR, :meth:`GeneralizedLowRankRegression.loo_conditioning`) are
  conditioned on, and PSIS runs over their draws.  Why not A too: B = U A is bilinear,
  so (U, A) are not jointly Gaussian given anything smaller, and p(y | θ without A) has
  no closed form; with U (d×R, d ≈ n: what one subject moves most) integrated, the
  importance ratios 1/p(y_i | y_{-i}, θ) only have to cover A (R×c), Σ and ω, which one
  subject moves little.  ``tests/glrr/test_l2r2_loo.py`` checks the closed form against
  scipy's multivariate normal on the full (Σ_i T_i c)-vector and, slow, the estimate
  against brute-force refits.

Cost per draw: one (dR + rc)² Cholesky, O(N p²) for N visits and one (T_i c)² solve per
subject.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from bayesimg.data.longitudinal import LongitudinalData
from bayesimg.models.core.predict import flat_draws, gaussian_loo_given_layers

__all__ = ["helmert", "l2r2_integrated_loo", "rotate_visits", "training_longitudinal"]


def helmert(T: int) -> np.ndarray:
    """Orthonormal T×T matrix whose first row is 1ᵀ/√T (the rest: Helmert contrasts)."""
    H = np.zeros((T, T))
    H[0] = 1.0 / np.sqrt(T)
    for k in range(1, T):
        H[k, :k] = 1.0 / np.sqrt(k * (k + 1))
        H[k, k] = -k / np.sqrt(k * (k + 1))
    return H


def rotate_visits(subject: np.ndarray, *arrays: np.ndarray | None):
    """Rotate every subject's visit rows by :func:`helmert`.

    ``subject`` (N,) the subject of each visit row (rows of a subject contiguous);
    ``arrays`` (N, ·) or None.  Returns ``(rotated arrays…, noise_class, counts)``:
    ``noise_class`` (N,) 0 for contrast rows, 1 + k for the mean row of a subject whose
    visit count is ``counts[k]`` (so class 1 + k has noise Σ + counts[k]·D).
    """
    subject = np.asarray(subject)
    N = subject.size
    starts = np.flatnonzero(np.r_[True, subject[1:] != subject[:-1]])
    sizes = np.diff(np.r_[starts, N])
    counts = np.unique(sizes)
    out = [None if a is None else np.empty_like(np.asarray(a, dtype=float)) for a in arrays]
    noise_class = np.zeros(N, dtype=np.int64)
    for T in counts:
        H = helmert(int(T))
        first = starts[sizes == T]
        rows = first[:, None] + np.arange(T)[None, :]                 # (m, T)
        for a, o in zip(arrays, out, strict=True):
            if a is not None:
                o[rows] = np.einsum("uv,mv...->mu...", H, np.asarray(a, dtype=float)[rows])
        noise_class[first] = 1 + int(np.searchsorted(counts, T))
    return (*out, noise_class, counts)


def training_longitudinal(tree) -> LongitudinalData | None:
    """The fit's training data in model units, from its constant_data/observed_data
    (None when the fit did not store them)."""
    cd = tree["constant_data"].dataset if "constant_data" in tree.children else {}
    if any(k not in cd for k in ("X", "time", "visit_mask")) \
            or "observed_data" not in tree.children:
        return None
    X = np.asarray(cd["X"].values, dtype=float)
    snps = np.asarray(cd["X"].coords["genotype_snp"].values, dtype=str)
    y = tree["observed_data"].dataset["y"]
    mask = np.asarray(cd["visit_mask"].values).astype(bool)
    Z = np.asarray(cd["Z"].values, dtype=float) if "Z" in cd else None
    covs = None if Z is None else np.asarray(cd["Z"].coords["visit_covariate"].values, str)
    return LongitudinalData(
        subjects=np.asarray(y.coords["subject"].values, dtype=str), genotypes=X,
        snps=pd.DataFrame({"snp": snps}), phenotypes=np.asarray(y.values, dtype=float),
        phenotype_names=np.asarray(y.coords["phenotype"].values, dtype=str),
        visit_mask=mask, time=np.asarray(cd["time"].values, dtype=float),
        visit_labels=np.where(mask, "v", ""), covariates=Z, covariate_names=covs,
        name="training data of the fit")


def l2r2_integrated_loo(model, tree, *, draws: np.ndarray, rng: np.random.Generator):
    """``(log_lik (S, n), theta, note)`` of an L2R2 fit at the flat draw indices
    ``draws`` (see the module docstring), or None when the fit lacks its data or the
    stored layers."""
    data = training_longitudinal(tree)
    if data is None:
        return None
    X, Z = model.design(data)
    Y = data.flat_phenotypes()
    subject, _ = data.visit_index()
    d, c = X.shape[1], Y.shape[1]
    got = model.loo_conditioning(tree, draws=draws, rng=rng, d=d, c=c)
    if got is None:
        return None
    layers, Sig, s_u, _ = got
    S = Sig.shape[0]
    if model.fixed_subject_var:
        omega = np.full((S, c), float(model.subject_var_prior))
    else:
        omega = flat_draws(tree, ("subject_var",), draws).get("subject_var")
        if omega is None:
            return None
        omega = np.asarray(omega, dtype=float)
    Xr, Zr, Yr, noise_class, counts = rotate_visits(subject, X, Z, Y)
    noise = np.concatenate([Sig[:, None], Sig[:, None] + counts[None, :, None, None]
                            * np.einsum("sj,jk->sjk", omega, np.eye(c))[:, None]], axis=1)
    from bayesimg.models.core.site_effects import training_site_design
    H = training_site_design(tree)
    if H is None:
        log_lik = gaussian_loo_given_layers(Xr, Zr, Yr, layers, noise, s_u,
                                            model.covariate_scale**2,
                                            noise_class=noise_class, subject=subject)
    else:
        # site effects conditioned on per draw (shared by a whole site): y − H u
        u = np.asarray(flat_draws(tree, ("site_effect",), draws)["site_effect"], float)
        log_lik = np.concatenate([gaussian_loo_given_layers(
            Xr, Zr, rotate_visits(subject, Y - H[subject] @ u[s])[0], layers[s:s + 1],
            noise[s:s + 1], s_u[s:s + 1], model.covariate_scale**2,
            noise_class=noise_class, subject=subject) for s in range(S)])
    theta = {"layers": (("rank", "phenotype"), layers),
             "noise_cov": (("phenotype", "phenotype_2"), Sig),
             "subject_var": (("phenotype",), omega)}
    note = ("U, Γ and the subject intercepts b_i integrated out given A = diag(δ)Vᵀ, Σ, ω"
            + (" and U's Laplace mixing variances (drawn from their full conditional given U)"
               if model.snp_prior == "laplace" else "")
            + ("; the site effects conditioned on per draw" if H is not None else ""))
    return log_lik, theta, note
