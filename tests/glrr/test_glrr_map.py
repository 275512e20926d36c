"""MAP of GLRR with fixed rank and an L1 (Laplace) SNP prior is sparse reduced-rank
regression (Vounou et al. 2010): at the joint mode (Û, V̂, δ̂, ψ̂, θ̂), (Û, V̂, δ̂) must
minimise ``srrr_objective`` at (ψ̂, θ̂) — the Σ⁻¹-weighted residual sum of squares plus
snp_l1·Σ|u_ih| plus ridge terms on V and δ.  Checked by

(a) KKT: stationarity for the nonzero u_ih, the subgradient bound |∂_u f| ≤ snp_l1 for
    the zero ones, and ∂f/∂V = ∂f/∂δ = 0;
(b) an independent solver (numpy proximal-gradient block descent started at the MAP)
    cannot lower the objective by more than 1e-6 relative;
(c) ψ̂_j solves its own first-order condition in closed form.

Diagonal noise (noise_factors=0), one common *fixed* layer precision τ_δ (with τ_δ free
the joint mode drifts slowly along the scale ridge δ → ∞, U → 0, τ_δ → 0, so Adam never
settles), and a penalty large enough that some SNP loadings are exactly zero.  The
optimiser starts at the ridge SVD (the model's MAP init): from a random start it falls
into the trivial local mode B = 0 that every product-form L1 problem has.  Adam never
produces exact zeros, so loadings below 1e-5·max|U| count as zero and those above
1e-3·max|U| as nonzero (at most two in between are tolerated).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from _glrr_helpers import draws
from _gsmtr_helpers import centre_by_rotation

import bayesimg
from bayesimg.data.simulate_glrr import simulate_glrr
from bayesimg.errors import ConvergenceWarning
from bayesimg.models import GLRR
from bayesimg.models.glrr import srrr_objective

PENALTY = 40.0
TAU = 0.01
PSI_A, PSI_B = 1.0, 0.3


@pytest.fixture(scope="module")
def problem():
    data, truth = simulate_glrr(n_subjects=150, n_snps=15, n_phenotypes=4, rank=2,
                                singular_values=[25, 15], n_active_snps=4, noise_factors=0,
                                seed=3)
    data = centre_by_rotation(data)
    model = GLRR(rank=2, noise_factors=0, rank_prior="common", snp_penalty=PENALTY,
                 global_precision=TAU, psi_prior=(PSI_A, PSI_B), keep_raw=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        fit = bayesimg.fit(model, data, method="map", steps=40_000, tol=1e-12,
                           stop_on_convergence=False, final_lr_fraction=1e-4, seed=0,
                           progress=False)
    p = {k: draws(fit, k)[0] for k in ("U", "V", "delta", "psi", "B")}
    p["truth"] = truth
    p.update(X=data.genotypes, Y=data.phenotypes, model=model, fit=fit)
    return p


def _grads(p, U, V, delta):
    X, Y, psi = p["X"], p["Y"], p["psi"]
    resid = (Y - X @ (U * delta) @ V.T) / psi[None, :]          # Σ⁻¹-weighted residual
    XtR = X.T @ resid                                           # d × c
    gU = -(XtR @ V) * delta                                     # ∂(½ weighted RSS)/∂U
    gV = -(XtR.T @ U) * delta
    gd = -np.sum(U * (XtR @ V), axis=0)
    return gU, gV, gd


def test_map_satisfies_kkt(problem):
    p = problem
    U, V, delta, tau = p["U"], p["V"], p["delta"], TAU
    c = V.shape[0]
    gU, gV, gd = _grads(p, U, V, delta)
    m = np.abs(U).max()
    zero, nonzero = np.abs(U) < 1e-5 * m, np.abs(U) > 1e-3 * m
    assert zero.sum() >= 3 and nonzero.sum() >= 8, (zero.sum(), nonzero.sum())
    assert (~zero & ~nonzero).sum() <= 2
    stat_u = np.abs(gU + PENALTY * np.sign(U))[nonzero].max() / PENALTY
    sub_u = (np.abs(gU[zero]).max() - PENALTY) / PENALTY
    stat_v = np.abs(gV + c * V).max() / np.abs(c * V).max()
    stat_d = np.abs(gd + tau * delta).max() / np.abs(tau * delta).max()
    assert stat_u < 1e-3, stat_u
    assert sub_u < 1e-3, sub_u
    assert stat_v < 1e-3 and stat_d < 1e-3, (stat_v, stat_d)


def test_no_better_srrr_solution_nearby(problem):
    """(b) proximal-gradient block descent on the sRRR objective from the MAP."""
    p = problem
    U, V, delta = p["U"].copy(), p["V"].copy(), p["delta"].copy()
    U[np.abs(U) < 1e-5 * np.abs(U).max()] = 0.0
    tau = TAU
    kw = dict(snp_l1=PENALTY, phenotype_ridge=V.shape[0] / 2.0,
              delta_precision=np.full(2, tau))
    f0 = srrr_objective(p["U"], p["V"], p["delta"], p["X"], p["Y"], p["psi"], **kw)
    X, psi = p["X"], p["psi"]
    for _ in range(300):
        gU, _, _ = _grads(p, U, V, delta)
        L = np.linalg.norm(X, 2) ** 2 * np.max(delta**2) * np.linalg.norm(V, 2) ** 2 \
            / psi.min()
        Z = U - gU / L
        U = np.sign(Z) * np.maximum(np.abs(Z) - PENALTY / L, 0.0)
        _, gV, _ = _grads(p, U, V, delta)
        LV = np.linalg.norm(X @ U * delta, 2) ** 2 / psi.min() + V.shape[0]
        V = V - (gV + V.shape[0] * V) / LV
        _, _, gd = _grads(p, U, V, delta)
        Ld = np.max(np.sum((X @ U) ** 2, axis=0)) * np.max(np.sum(V**2 / psi[:, None], 0)) + tau
        delta = delta - (gd + tau * delta) / Ld
    f1 = srrr_objective(U, V, delta, p["X"], p["Y"], p["psi"], **kw)
    assert f1 >= f0 - 1e-6 * abs(f0), (f0, f1)
    np.testing.assert_allclose((U * delta) @ V.T, p["B"], atol=1e-3)


def test_map_noise_first_order_condition(problem):
    """(c) The point-mass guide maximises the density in ψ itself:
    ψ̂_j = (RSS_j/2 + b_ψ)/(n/2 + a_ψ + 1) under the InvGamma(a_ψ, b_ψ) prior."""
    p = problem
    n = p["Y"].shape[0]
    rss = np.sum((p["Y"] - p["X"] @ p["B"]) ** 2, axis=0)
    np.testing.assert_allclose(p["psi"], (rss / 2 + PSI_B) / (n / 2 + PSI_A + 1), rtol=1e-5)


def test_map_is_a_sparse_rank2_estimate(problem):
    """The sRRR estimate finds the planted structure: rank 2 (both layers on) and
    B within 30% (relative Frobenius) of the truth."""
    p = problem
    T = p["truth"].B.to_numpy()
    assert np.linalg.matrix_rank(p["B"], tol=1e-3 * np.abs(p["B"]).max()) == 2
    assert np.linalg.norm(p["B"] - T) / np.linalg.norm(T) < 0.3
