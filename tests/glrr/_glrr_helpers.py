"""Shared helpers of the GLRR tests (not a test module)."""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
from _gsmtr_helpers import centre_by_rotation
from numpyro.infer import Predictive
from scipy.stats import multivariate_normal

from bayesimg.data import Dataset, load_demo
from bayesimg.data.simulate_glrr import simulate_glrr
from bayesimg.inference.common import device_args


def draws(fit, name: str) -> np.ndarray:
    """Posterior draws of ``name`` as (chain·draw, *site dims) numpy."""
    value = np.asarray(fit.posterior[name].values)
    return value.reshape((-1,) + value.shape[2:])


def error_and_coverage(B: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """Relative Frobenius error of the posterior mean of draws ``B`` (S, d, c) and the
    share of ``truth``'s entries inside their central 95% intervals."""
    rel = np.linalg.norm(B.mean(0) - truth) / np.linalg.norm(truth)
    lo, hi = np.quantile(B, [0.025, 0.975], axis=0)
    return float(rel), float(np.mean((lo <= truth) & (truth <= hi)))


def real_ld_case(seed: int = 0, n_phenotypes: int = 6, rank: int = 2,
                 singular_values=(30.0, 18.0), noise_factors: int = 1):
    """Rank-``rank`` truth on the bundled 1000 Genomes genotypes (MCM6, AGT, TTN, LD-pruned
    at r² 0.5, MAF ≥ 0.05: real LD), phenotypes exactly centred by rotation."""
    demo = load_demo(genes=["MCM6", "AGT", "TTN"], ld_prune_r2=0.5, covariates=False,
                     min_maf=0.05)
    data, truth = simulate_glrr(genotypes=demo, n_phenotypes=n_phenotypes, rank=rank,
                                singular_values=list(singular_values), n_active_snps=6,
                                noise_factors=noise_factors, noise_factor_sd=0.8, seed=seed)
    return centre_by_rotation(data), truth


def prior_draw(model, design: Dataset, c: int, seed: int):
    """(dataset, parameters) with parameters drawn from ``model``'s own prior and y from
    its likelihood (NumPyro ``Predictive`` of the model function: what the posterior
    must be calibrated against)."""
    dummy = dataclasses.replace(
        design, phenotypes=np.random.default_rng(0).standard_normal((design.n_subjects, c)),
        phenotype_names=np.array([f"pheno{j + 1:02d}" for j in range(c)], dtype=str))
    dummy = centre_by_rotation(dummy)
    kwargs = device_args(model.model_args(dummy))
    kwargs["Y"] = None
    kwargs["n_phenotypes"] = c
    sites = ["B", "noise_cov", "y"]
    out = Predictive(model.numpyro_model("nuts"), num_samples=1, return_sites=sites)(
        jax.random.PRNGKey(seed), **kwargs)
    out = {k: np.asarray(v)[0] for k, v in out.items()}
    data = centre_by_rotation(dataclasses.replace(dummy, phenotypes=out["y"]))
    return data, out


def l2r2_loo_direct(X, Z, Y, subject, A, Sig, omega, s_u, gv, only=None):
    """L2R2's log p(y_i | y_{-i}, θ) for the subjects ``only`` (default: all), U, Γ and the
    intercepts integrated out, from the dense covariance of all visits (visit-major,
    phenotypes inner) with scipy's multivariate normal: log p(y) − log p(y_{-i})."""
    N, c = Y.shape
    same = (subject[:, None] == subject[None, :]).astype(float)
    C = np.kron(np.eye(N), Sig) + np.kron(same, np.diag(omega))
    for h in range(A.shape[0]):
        C += np.kron(X @ np.diag(s_u[:, h]) @ X.T, np.outer(A[h], A[h]))
    if Z is not None:
        C += np.kron(gv * Z @ Z.T, np.eye(c))
    y = Y.ravel()
    full = multivariate_normal(np.zeros(N * c), C).logpdf(y)
    out = []
    for i in (np.unique(subject) if only is None else only):
        keep = np.repeat(subject != i, c)
        out.append(full - multivariate_normal(np.zeros(keep.sum()),
                                              C[np.ix_(keep, keep)]).logpdf(y[keep]))
    return np.array(out)
