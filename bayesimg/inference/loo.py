r"""Integrated LOO: leave-one-subject-out with the coefficients integrated out.

Plain PSIS-LOO reweights draws of every coefficient; with p ≈ n removing one subject
moves the coefficients so much that Pareto k̂ > 0.7 for most subjects.  For families
whose coefficients are Gaussian given hyperparameters θ (GSMTR: θ = (σ², τ, ω); GLRR:
θ = (diag(δ)Vᵀ, Σ, the prior variances of U), its SNP-side factor U integrated;
SpikeSlabMTR: θ = (inclusion indicators, mixture components, Σ), the included effects
integrated, :mod:`bayesimg.models.gsmtr.spike_slab_loo`; L2R2: GLRR's θ and the
random-intercept variances ω, U, Γ and the intercepts integrated,
:mod:`bayesimg.models.glrr.longitudinal_loo`),
``Model.loo_given_hyperparameters`` returns log p(y_i | y_{-i}, θ_s) exactly (all
phenotypes of subject i left out together; see
:mod:`bayesimg.models.core.predict`), and PSIS then runs over the draws θ_s only, with
importance ratios 1/p(y_i | y_{-i}, θ_s) (Vehtari, Mononen, Tolvanen, Sivula & Winther
2016, JMLR 17(103); the loo package's recipe for non-factorised models):

    p(y_i | y_{-i}) = ∫ p(y_i | y_{-i}, θ) p(θ | y_{-i}) dθ,
    p(θ | y_{-i}) ∝ p(θ | y) / p(y_i | y_{-i}, θ).

The fit carries what this needs (X, Z in ``constant_data``, y in ``observed_data``);
a fit saved without its data (or a family without the hook) falls back to plain PSIS
in ``fit.loo()``, which says so.  The cost per draw is one p×p Cholesky and a p×n
solve (p = SNPs + covariates < n) or one n×n inverse (p ≥ n) — for the block forms
(GLRR, SpikeSlabMTR) one p×p Cholesky and O(n p²) — in float64 numpy
batched over draws; ``max_draws`` (default 1000) thins the draws evenly per chain —
the number used is recorded in ``details["draws_used"]``.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from bayesimg.errors import ModelSpecError
from bayesimg.inference.fit import Fit
from bayesimg.inference.predictive import model_from_fit
from bayesimg.models.core.predict import thin_indices

__all__ = ["integrated_loo", "integrated_pointwise"]

#: default cap on the hyperparameter draws used
MAX_DRAWS = 1000


def integrated_pointwise(fit: Fit, *, max_draws: int | None = MAX_DRAWS, seed: int = 0):
    """``(tree, note, draws_used)``: a DataTree with ``posterior`` = θ draws and
    ``log_likelihood/y`` = log p(y_i | y_{-i}, θ_s) (chain, draw, subject), the hook's note
    and the number of draws used; None where the hook does not apply."""
    tree = fit.tree
    if fit.approximate or fit.n_chains * fit.n_draws < 2:
        return None
    model = model_from_fit(fit)
    post = tree["posterior"].dataset
    n_chains, n_draws = int(post.sizes["chain"]), int(post.sizes["draw"])
    idx = thin_indices(n_chains, n_draws, max_draws)
    flat = (np.arange(n_chains)[:, None] * n_draws + idx[None, :]).ravel()
    res = model.loo_given_hyperparameters(tree, draws=flat, rng=np.random.default_rng(seed))
    if res is None:
        return None
    log_lik, theta, note = res
    shape = (n_chains, idx.size)
    subjects = np.asarray(tree["observed_data"].dataset.coords["subject"].values) \
        if "subject" in tree["observed_data"].dataset.coords else np.arange(log_lik.shape[1])
    coords = {"chain": np.arange(n_chains), "draw": idx}
    theta_ds = xr.Dataset({k: (("chain", "draw") + tuple(dims),
                               np.asarray(v).reshape(shape + np.shape(v)[1:]))
                           for k, (dims, v) in theta.items()}, coords=coords)
    ll_ds = xr.Dataset({"y": (("chain", "draw", "subject"), log_lik.reshape(shape + (-1,)))},
                       coords={**coords, "subject": subjects})
    out = xr.DataTree.from_dict({"posterior": theta_ds, "log_likelihood": ll_ds})
    out.attrs.update(tree.attrs)
    return out, note, int(flat.size)


def integrated_loo(fit: Fit, *, max_draws: int | None = MAX_DRAWS, seed: int = 0):
    """Integrated PSIS-LOO of ``fit`` (an ICResult with ``method="integrated"``), or
    None when the family has no Gaussian-given-θ form or the fit lacks its data."""
    from bayesimg.report.compare import loo as psis_loo

    got = integrated_pointwise(fit, max_draws=max_draws, seed=seed)
    if got is None:
        return None
    small, note, used = got
    res = psis_loo(small, var_name="y")
    res.method = "integrated"
    # p_loo = lppd − elpd_loo with lppd from the fit's own pointwise log-likelihood (the
    # usual definition; PSIS's own p would refer to the integrated densities)
    if "log_likelihood" in fit.tree.children and "y" in fit.tree["log_likelihood"].dataset:
        ll = np.asarray(fit.tree["log_likelihood"].dataset["y"].values, dtype=float)
        ll = ll.reshape(-1, ll.shape[-1])
        if ll.shape[1] == res.pointwise.size:
            from scipy.special import logsumexp
            lppd_i = logsumexp(ll, axis=0) - np.log(ll.shape[0])
            res.p_pointwise = lppd_i - res.pointwise
            res.p = float(res.p_pointwise.sum())
    res.details = {"integrated": note, "draws_used": used,
                   "draws_total": fit.n_chains * fit.n_draws}
    return res


def check_method(method: str) -> str:
    method = str(method).lower()
    if method not in ("auto", "integrated", "psis"):
        raise ModelSpecError(f"loo method must be 'auto', 'integrated' or 'psis', got {method!r}")
    return method
