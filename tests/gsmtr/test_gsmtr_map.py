"""MAP of GSMTR's marginal form is the G-SMuRFS estimator (Wang et al. 2012).

At the joint mode (Ŵ, σ̂²) of log p(W, σ² | Y), multiplying the W-dependent part
by −2σ̂² gives ‖Y − XW‖²_F + γ₁ Σ_k ‖W_k‖_F + γ₂ Σ_i ‖w_i‖ with γ_j = 2σ̂√λ_j, so Ŵ
must be *the* G-SMuRFS solution at those γ's.  Checked three ways:

(a) KKT: stationarity on active rows, subgradient bounds on zero rows/genes;
(b) an independent FISTA solver (below, numpy only) gives the same W (absolute
    tolerance) and the same ``gsmurfs_objective`` (relative 1e-5);
(c) σ̂² solves its own first-order condition, which for the marginal density is a
    quadratic in 1/σ̂ with a closed-form root.

λ is chosen large enough that FISTA sets whole genes (and some SNP rows of active
genes) exactly to zero, so the subgradient conditions are exercised.  The model
smooths norms by ε = 1e-12 and Adam never produces exact zeros, hence W is
compared entry-wise with an absolute tolerance and zero rows as "norm < tol".
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from _gsmtr_helpers import centre_by_rotation

import bayesimg
from bayesimg.data import simulate_gsmtr
from bayesimg.errors import ConvergenceWarning
from bayesimg.models import GroupSparseMTR
from bayesimg.models.gsmtr import gsmurfs_objective

LAMBDA = 50.0


# ------------------------------------------------------------------ reference solver
def prox_nested(W, t, gamma1, gamma2, gene_index, n_genes):
    """prox of t(γ₂ Σ_i‖w_i‖ + γ₁ Σ_k ‖W_k‖_F): rows are nested in genes (a tree), so the
    prox is the composition leaves-first (Jenatton et al. 2011, JMLR 12:2297)."""
    row = np.linalg.norm(W, axis=1)
    W = W * np.maximum(0.0, 1.0 - t * gamma2 / np.maximum(row, 1e-300))[:, None]
    gene = np.sqrt(np.bincount(gene_index, weights=np.sum(W**2, axis=1), minlength=n_genes))
    return W * np.maximum(0.0, 1.0 - t * gamma1 / np.maximum(gene, 1e-300))[gene_index][:, None]


def fista(X, Y, gene_index, gamma1, gamma2, iters=20_000):
    """FISTA (Beck & Teboulle 2009) with gradient restart (O'Donoghue & Candès 2015)."""
    n_genes = gene_index.max() + 1
    step = 1.0 / (2.0 * np.linalg.norm(X, 2) ** 2)         # 1/L, L of ∇‖Y − XW‖²
    W = np.zeros((X.shape[1], Y.shape[1]))
    Z, t = W.copy(), 1.0
    XtX, XtY = X.T @ X, X.T @ Y
    for _ in range(iters):
        grad = 2.0 * (XtX @ Z - XtY)
        W_new = prox_nested(Z - step * grad, step, gamma1, gamma2, gene_index, n_genes)
        if np.sum((Z - W_new) * (W_new - W)) > 0:          # restart momentum
            t = 1.0
        t_new = (1.0 + np.sqrt(1.0 + 4.0 * t * t)) / 2.0
        Z = W_new + (t - 1.0) / t_new * (W_new - W)
        W, t = W_new, t_new
    return W


def kkt(W, X, Y, gene_index, gamma1, gamma2, active_rows, zero_rows_in_active, zero_genes):
    """Worst KKT violations of G-SMuRFS at W, each relative to γ₁ + γ₂.

    stationarity: g_i + γ₁ w_i/‖W_k‖ + γ₂ w_i/‖w_i‖ = 0 for active rows;
    zero row in an active gene: ‖g_i‖ ≤ γ₂;
    zero gene: min over ‖z_i‖ ≤ 1 of ‖G_k + γ₂ z‖_F ≤ γ₁, i.e.
    Σ_i max(‖g_i‖ − γ₂, 0)² ≤ γ₁²   (g = −2Xᵀ(Y − XW)).
    """
    n_genes = gene_index.max() + 1
    g = -2.0 * X.T @ (Y - X @ W)
    row = np.linalg.norm(W, axis=1)
    gene = np.sqrt(np.bincount(gene_index, weights=row**2, minlength=n_genes))
    scale = gamma1 + gamma2
    r = g[active_rows] + (gamma1 / gene[gene_index[active_rows]])[:, None] * W[active_rows] \
        + (gamma2 / row[active_rows])[:, None] * W[active_rows]
    stationarity = np.linalg.norm(r, axis=1).max() / scale
    gnorm = np.linalg.norm(g, axis=1)
    row_excess = (np.max(gnorm[zero_rows_in_active] - gamma2, initial=-np.inf)) / scale
    gene_excess = max(
        (np.sqrt(np.sum(np.maximum(gnorm[gene_index == k] - gamma2, 0.0) ** 2)) - gamma1) / scale
        for k in zero_genes)
    return stationarity, row_excess, gene_excess


# ------------------------------------------------------------------ the fit
@pytest.fixture(scope="module")
def problem():
    data, _ = simulate_gsmtr(n_subjects=100, n_snps=24, n_genes=6, n_phenotypes=3,
                             n_active_genes=2, snps_per_active_gene=2, effect_size=0.5, seed=3)
    data = centre_by_rotation(data)
    model = GroupSparseMTR(LAMBDA, LAMBDA)
    with warnings.catch_warnings():
        # run the full schedule (tol=1e-12 never declares convergence): the default
        # stopping rule (tol=1e-5) leaves a relative objective gap of ~3e-5.
        warnings.simplefilter("ignore", ConvergenceWarning)
        fit = bayesimg.fit(model, data, method="map", steps=40_000, tol=1e-12,
                           stop_on_convergence=False, final_lr_fraction=1e-4, seed=0,
                           progress=False)
    post = fit.posterior
    W_map = np.asarray(post["W"].values).reshape(post["W"].shape[-2:])
    sigma2 = float(np.asarray(post["sigma2"].values).ravel()[0])
    X, Y, gi = data.genotypes, data.phenotypes, data.gene_index
    gamma1, gamma2 = model.penalty_weights(np.sqrt(sigma2))
    W_ref = fista(X, Y, gi, gamma1, gamma2)
    return dict(data=data, model=model, fit=fit, W_map=W_map, sigma2=sigma2, X=X, Y=Y, gi=gi,
                gamma1=gamma1, gamma2=gamma2, W_ref=W_ref)


def _patterns(p):
    W_ref, gi = p["W_ref"], p["gi"]
    row = np.linalg.norm(W_ref, axis=1)
    gene = np.sqrt(np.bincount(gi, weights=row**2))
    zero_genes = np.flatnonzero(gene == 0)
    active_rows = np.flatnonzero(row > 0)
    zero_rows_in_active = np.flatnonzero((row == 0) & (gene[gi] > 0))
    return active_rows, zero_rows_in_active, zero_genes


def test_design_has_exact_zeros(problem):
    """λ is large enough that the reference solution has exactly-zero genes and exactly
    zero rows inside active genes (otherwise (a) would not test the subgradients)."""
    active_rows, zero_rows_in_active, zero_genes = _patterns(problem)
    assert len(zero_genes) >= 2
    assert len(zero_rows_in_active) >= 1
    assert len(active_rows) >= 4
    assert problem["fit"].method == "map"
    assert problem["fit"].tree.attrs["precision"] == "float64"


def test_reference_solver_satisfies_kkt(problem):
    """The FISTA solution itself is optimal (so it is a valid reference)."""
    p = problem
    stat, row_ex, gene_ex = kkt(p["W_ref"], p["X"], p["Y"], p["gi"], p["gamma1"], p["gamma2"],
                                *_patterns(p))
    assert stat < 1e-8 and row_ex < 0 and gene_ex < 0, (stat, row_ex, gene_ex)


def test_map_satisfies_kkt(problem):
    """(a) KKT at the MAP's W.  Adam's final W is within ~1e-6 of the optimum (test
    below); through 2XᵀX (‖·‖₂ ≈ 60 here) and the w/‖w‖ terms of rows with norms ≳ 1e-2
    that moves the residuals by ≲ 1e-4·γ, so 1e-3 (relative to γ₁ + γ₂) is tight but
    safe; the subgradient bounds must hold with the same slack."""
    p = problem
    active_rows, zero_rows_in_active, zero_genes = _patterns(p)
    stat, row_ex, gene_ex = kkt(p["W_map"], p["X"], p["Y"], p["gi"], p["gamma1"], p["gamma2"],
                                active_rows, zero_rows_in_active, zero_genes)
    assert stat < 1e-3, stat
    assert row_ex < 1e-3, row_ex
    assert gene_ex < 1e-3, gene_ex
    # and the MAP's "zeros" are numerically zero (absolute tolerance)
    row = np.linalg.norm(p["W_map"], axis=1)
    assert row[zero_rows_in_active].max() < 1e-4
    assert row[np.isin(p["gi"], zero_genes)].max() < 1e-4


def test_map_matches_fista(problem):
    """(b) Same W (absolute 1e-4) and the same G-SMuRFS objective (relative 1e-5)."""
    p = problem
    args = (p["X"], p["Y"], p["gi"], p["gamma1"], p["gamma2"])
    f_map = gsmurfs_objective(p["W_map"], *args)
    f_ref = gsmurfs_objective(p["W_ref"], *args)
    assert f_ref <= f_map + 1e-9 * abs(f_ref)     # FISTA is at least as good …
    assert (f_map - f_ref) / abs(f_ref) < 1e-5, (f_map, f_ref)   # … and MAP is as good
    np.testing.assert_allclose(p["W_map"], p["W_ref"], rtol=0, atol=1e-4)


def test_map_sigma2_first_order_condition(problem):
    """(c) ∂/∂s log p(W, s | Y) = 0 at s = σ̂², for the marginal form

        log p = −((n + d)c/2 + 4) log s − (RSS/2 + 1)/s − P(W)/√s + const,
        P(W) = √λ₁ Σ_k ‖W_k‖ + √λ₂ Σ_i ‖w_i‖   (InvGamma(3, 1) gives the 4 and the 1),

    whose derivative vanishes where B u² + (P/2) u − A = 0 for u = 1/√s (A = (n+d)c/2 + 4,
    B = RSS/2 + 1).  (NumPyro's point-mass guide maximises the density in σ² itself,
    without a log-Jacobian.)"""
    p = problem
    X, Y, gi, W = p["X"], p["Y"], p["gi"], p["W_map"]
    n, c = Y.shape
    d = X.shape[1]
    row_sq = np.sum(W**2, axis=1)
    eps = 1e-12                                     # the model's smoothing
    P = np.sqrt(LAMBDA) * (np.sum(np.sqrt(np.bincount(gi, weights=row_sq) + eps))
                           + np.sum(np.sqrt(row_sq + eps)))
    A = (n + d) * c / 2 + 4
    B = np.sum((Y - X @ W) ** 2) / 2 + 1
    u = (-P / 2 + np.sqrt(P**2 / 4 + 4 * A * B)) / (2 * B)
    sigma2_foc = 1 / u**2
    assert abs(p["sigma2"] / sigma2_foc - 1) < 1e-6, (p["sigma2"], sigma2_foc)
    # and the derivative itself, relative to its two largest terms
    s = p["sigma2"]
    deriv = -A / s + B / s**2 + P / (2 * s**1.5)
    assert abs(deriv) / (A / s) < 1e-6
