r"""Exact blocked Gibbs sampler for GLRR (the posterior of :mod:`bayesimg.models.glrr`).

Model (as in glrr.py; n subjects, d SNPs, c phenotypes, r covariates, R layers,
K noise factors; rows l of Y)::

    y_l = Bᵀx_l + Γᵀz_l + Λη_l + e_l,   B = U diag(δ) Vᵀ,   η_l ~ N_K(0, I),
    e_l ~ N_c(0, diag ψ),                (so y_l | B, Γ, Λ, ψ ~ N(Bᵀx_l + Γᵀz_l, Σ),
                                          Σ = ΛΛᵀ + diag ψ)

with u_ih ~ Laplace(rate ρ_u) or N(0, 1/d), v_jh ~ N(0, 1/c) or Laplace(rate ρ_v),
δ_h ~ N(0, 1/θ_h), θ_h = τ_δ Π_{m=2..h} ζ_m (MGP; ``"common"``: θ_h = τ_δ),
τ_δ ~ Gamma(a₀, b₀) (or fixed), ζ_m ~ Gamma(a_r, 1), Γ_kj ~ N(0, s²),
1/ψ_j ~ Gamma(a_ψ, b_ψ), λ_jk = t_jk τ_k^{-1/2} with t_jk ~ Student-t₃, τ_k = Π_{m≤k} ξ_m,
ξ₁ ~ Gamma(a₁, 1), ξ_m ~ Gamma(a₂, 1).

Exact auxiliary-variable representations (they add latent variables whose marginal
is the model's prior, so the posterior of the model's sites is unchanged — no
approximation):

* (η_l, the latent noise factors, are *not* used: every block sees the marginal
  N(·, ΛΛᵀ + diag ψ) likelihood, as NUTS does, by Woodbury);
* Student-t₃ noise loadings: λ_jk | φ_jk ~ N(0, 1/(φ_jk τ_k)), φ_jk ~ Gamma(3/2, 3/2)
  (Bhattacharya & Dunson 2011 — the same scale mixture the NUTS model integrates out);
* Laplace loadings: u_ih | s_ih ~ N(0, s_ih), s_ih ~ Exp(rate ρ_u²/2) (Park & Casella
  2008), so 1/s_ih | u_ih ~ InvGauss(ρ_u/|u_ih|, ρ_u²); the same for Laplace v.

One sweep (Σ, Σ⁻¹ from one c×c eigendecomposition of ΛΛᵀ + diag ψ):

1. *Mean blocks* given Σ (collapsed over η: they see the correlated noise Σ, not
   diag ψ; conditioning on η instead would make B and η nearly collinear along the
   strong noise factors and the chain crawl).  With T = Y − ZΓ:

   * u_h | rest, layer by layer: N(Q⁻¹b, Q⁻¹), Q = δ_h² (v_hᵀΣ⁻¹v_h) XᵀX + D_h,
     b = δ_h Xᵀ(T − Σ_{m≠h} δ_m Xu_m v_mᵀ)Σ⁻¹v_h, D_h = diag(1/s_·h) (Laplace) or d·I;
     one d×d Cholesky per layer (d ≤ n), or Bhattacharya–Chakraborty–Mallick with an
     n×n system (d > n) — :mod:`bayesimg.models.core.conditionals`;
   * V | rest: Gaussian prior — all of V at once, vec V ~ N with precision
     (AᵀA) ⊗ Σ⁻¹ + c·I, A = XU diag(δ), drawn by :func:`matrix_normal_kron`
     (eigendecompositions of Σ and the R×R AᵀA); Laplace prior — layer by layer,
     precision δ_h²‖Xu_h‖² Σ⁻¹ + diag(1/s_·h) (c×c Cholesky);
   * δ | rest: N_R with precision (UᵀXᵀXU) ∘ (VᵀΣ⁻¹V) + diag θ (R×R Cholesky);
   * Γ | rest: precision Σ⁻¹ ⊗ ZᵀZ + I/s², by :func:`matrix_normal_kron`;
   * *scale moves* (generalised Gibbs, Liu & Sabatti 2000): the likelihood is flat
     along (u_h, δ_h) → (a u_h, δ_h/a) and (v_h, δ_h) → (a v_h, δ_h/a), and
     one-at-a-time updates creep along that ridge.  With Haar measure da/a and
     Jacobian a^{d−1}, t = log a has density ∝ exp((d−1)t − α e^t − β e^{2t} − γ e^{−2t})
     (α = ρ_u‖u_h‖₁ for the Laplace prior with s integrated out, β = d‖u_h‖²/2 for the
     Gaussian one, γ = θ_h δ_h²/2; the same with c, v_h for the phenotype side),
     log-concave: one independence Metropolis–Hastings step per layer from a
     Laplace approximation at its mode (exact whatever the acceptance; the
     ``scale_accept`` sample stat is its mean acceptance rate).  The Laplace mixing
     variances s are integrated out in the move and redrawn from their conditional
     right after it;
   * s | U, V (Laplace priors): inverse Gaussian, as above.
2. Rank shrinkage: τ_δ ~ Gamma(a₀ + R/2, b₀ + ½Σ_h (θ_h/τ_δ) δ_h²) and, in turn,
   ζ_m ~ Gamma(a_r + (R − m + 1)/2, 1 + ½Σ_{h≥m} (θ_h/ζ_m) δ_h²).
3. Noise, with E = Y − XB − ZΓ and S = EᵀE: *one HMC transition on (Λ, log ψ) with η
   integrated out* (:func:`collapsed_noise_hmc`), targeting
   p(Λ, ψ | E, φ, τ) ∝ |Σ|^{−n/2} exp(−½ tr Σ⁻¹S) Π N(λ_jk; 0, 1/(φ_jk τ_k)) Π IG(ψ_j),
   evaluated with its gradient by Woodbury (one K×K Cholesky per leapfrog step; cost
   O(c²K + K³), independent of n: S is formed once); then φ_jk ~ Gamma(2,
   (3 + τ_k λ_jk²)/2) and ξ_m in turn ~ Gamma(a_m + c(K − m + 1)/2,
   1 + ½Σ_{k≥m} (τ_k/ξ_m) Σ_j φ_jk λ_jk²).  K = 0: 1/ψ_j ~ Gamma(a_ψ + n/2,
   b_ψ + ½‖E_·j‖²).

Why the noise block is collapsed HMC (issue 18, item 4).  The earlier kernel drew the
factor scores η | Λ, ψ, then Λ rows, ψ | η, a per-factor scale move (η_·k/a, aλ_·k) and
per-phenotype ridge moves (λ_j, ψ_j) → (bλ_j, ψ_j + (1 − b²)‖λ_j‖²).  On correlated noise
that is not exactly low-rank-plus-diagonal (AR(1) across 8 ROIs, real 1000 Genomes
genotypes, n = 503, K = 4; ``benchmarks/glrr_mixing.py``) ψ mixed slowly: R-hat 1.13,
min bulk ESS 28 per 4000 draws, while Σ_jj itself had lag-1 autocorrelation ≤ 0.44.
Diagnosis on those chains: each ψ_j had lag-10 autocorrelation 0.7–0.8 and correlated
−0.54 … −0.85 with ‖λ_j‖² (the ψ_j ↔ factor-variance trade-off at nearly constant Σ);
the slowest direction of log ψ across chains alternated in sign along the ROI chain
(+ψ₂ −ψ₃ +ψ₄ −ψ₅ …), and NUTS on the collapsed block (same S) showed neighbouring log ψ
correlated down to −0.73 with posterior sds up to 0.47 — a weakly identified direction
that moves several ψ_j *and* all of Λ together.  Conditioning on η pins it (ψ_j | η has
sd ≈ √(2/n) ≈ 0.06 in log), the per-phenotype ridge moves change one ψ_j at a time,
and the η–Λ scale coupling was not the problem (Σ mixed).  NUTS with a diagonal mass on
the collapsed block had min ESS 1350 per 4000 for ψ, so the move here is HMC on the
collapsed (η-free) target, replacing η, the Λ-row draws, the scale move, the ψ draw and
the ridge moves.  It needs no adaptation (the Gibbs programs have no warm-up phase):
its diagonal mass is a curvature scale from what the move conditions on (S, φ, τ; see
:func:`collapsed_noise_hmc`), step size U(0.5, 1) (jittered), 16 leapfrog steps.  On the
same data and run length (4 × (1000 + 1000)): ψ R-hat 1.009, min ESS 405; Σ 1.004 / 1325;
B 1.010 / 385; acceptance ≈ 0.74 (``noise_hmc_accept``).  On 2-factor noise (same
genotypes): Σ 1.005 / 1528, ψ 1.006 / 750 (were 1.030 / 177, 1.072 / 58), but B 1.064 / 43:
a weak third rank layer over the rank-2 truth, which this move does not touch.  It is
also a smaller program than the blocks it replaces (issue 19).

Every step is an exact draw from a full conditional of the augmented posterior, or
(scale moves, noise HMC) a Metropolis–Hastings step that leaves it invariant; the
collapsed steps are valid partially collapsed Gibbs orders (van Dyk & Park 2008): η is
never instantiated, and s is redrawn from its conditional right after the scale moves
that integrate it out; the HMC move conditions on φ and τ, which are then drawn given
the new Λ.  All Gamma variates of a
sweep come from one call of :func:`bayesimg.models.core.gamma.gamma` (a smaller program
than ``jax.random.gamma``; their shapes are known in advance; each call costs seconds of
compilation), and the N(0, 1) / U(0, 1) variates of the scale moves, the Laplace mixing
variances, the Gaussian blocks (u_h for d ≤ n, V, δ, Γ) and the HMC move from one call
each (:class:`_VariatePool`); the u layers are one ``fori_loop`` (one copy of the layer
update in the program whatever R). These changed the random stream in December 2026: the
same seed gives different, equally exact draws than before. The recorded draws are the
NUTS model's own sites (U, V, δ, the MGP increments, ψ, Γ, the non-centred noise
loadings t = Λτ^{1/2} and ξ) with every deterministic site computed by the NUTS model
function itself, so the stored posterior, its identified summaries and the pointwise
log-likelihood are defined exactly as for NUTS (``tests/glrr/test_glrr_gibbs.py`` checks agreement).

Identification of ψ and mixing on correlated noise. The likelihood sees Σ only, and
Σ = ΛΛᵀ + diag ψ splits uniquely into Λ and ψ only when the factor model has no more free
parameters than Σ has entries: Ledermann's bound (c − K)² ≥ c + K (K ≤ 4.47 for c = 8).
With the former default K = c − 1 the split is not identified and ψ drifts on a set of
equal likelihood whose position only the prior sets (AR(1)-correlated ROIs, n = 503, 339
SNPs, c = 8, rank 3, K = 7, 2 × (200 + 300) sweeps: ψ R-hat 1.35, min ESS 5, while B and Σ
were near convergence). The default K is therefore the largest K within the bound
(:func:`~bayesimg.models.glrr.model.ledermann_bound`, at most 10); more factors can be
asked for, with a warning.  Bounding K made ψ identified, not faster (K = 4 and K = 7
mixed alike under the former noise block: ψ R-hat 1.13 at the default run length); the
collapsed HMC move of step 3 is what made it mix (figures above and in
``benchmarks/results/glrr_mixing.json``).

Site random effects (``H`` given; :mod:`bayesimg.models.core.site_effects`).  The sweep
above runs on y − Hu, which leaves p(θ | u, y) invariant.  Then u is drawn from its full
conditional given θ, with η integrated out.  The rows of E = Y − XB − ZΓ at site s are
N(u_s, Σ), so u_s | θ ~ N(P_s⁻¹Σ⁻¹Σ_{i∈s}e_i, P_s⁻¹), with P_s = n_sΣ⁻¹ + diag(1/τ²).
Finally τ and its half-Cauchy auxiliary ν are drawn from their conjugate conditionals.

Start: the rank-R truncated SVD of a ridge estimate of B (as SVI/MAP) perturbed per
chain (U, V by 30% of a typical entry, δ by a factor e^{N(0, 0.3²)}), ψ from the ridge
residuals (× e^{N(0, 0.2²)}), small random Λ, unit MGP increments, Laplace mixing
variances drawn from their conditional; warm-up does the rest.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.linalg import cho_solve
from numpyro import handlers

from bayesimg.models.core import flat_random
from bayesimg.models.core.conditionals import (
    gaussian_columns_given_precision,
    gaussian_columns_wide,
    inverse_gaussian,
    matrix_normal_kron,
)
from bayesimg.models.core.gamma import gamma
from bayesimg.models.core.gibbs_kernel import ExactGibbsKernel
from bayesimg.models.core.site_effects import (
    draw_site_scales,
    initial_site_state,
    site_effects_given_precisions,
)

#: degrees of freedom of the Student-t noise loadings (ν of the MGP, as in glrr.py)
NU = 3.0
#: Newton iterations locating the mode of a scale move's log-density
SCALE_NEWTON_STEPS = 20


class GLRRGibbsState(NamedTuple):
    i: jnp.ndarray
    z: dict
    rng_key: jnp.ndarray
    #: sample stats read by the MCMC driver: ``cholesky_jitter`` (jitter retries of
    #: the Cholesky factorisations in this sweep), ``scale_accept`` (mean acceptance
    #: of the 2R layer scale moves) and, with noise factors, ``noise_hmc_accept``
    #: (whether the collapsed noise HMC transition was accepted)
    stats: dict


def scale_move(key, p, alpha, beta, gamma, *, normal=None, uniform=None):
    """One independence Metropolis–Hastings step for t with log-density
    p·t − α e^t − β e^{2t} − γ e^{−2t} (α, β, γ ≥ 0: concave), from the current t = 0.

    The proposal is the Laplace approximation N(t*, 1/h(t*)) at the mode t* (Newton,
    steps clipped to ±2).  ``normal``/``uniform``: the proposal's N(0, 1) and the
    acceptance's U(0, 1) variates (shaped as ``alpha``) instead of draws from ``key``.
    Returns (t, accepted), elementwise over the inputs.
    """
    dtype = alpha.dtype
    tiny = jnp.finfo(dtype).tiny

    def logf(t):
        return p * t - alpha * jnp.exp(t) - beta * jnp.exp(2.0 * t) - gamma * jnp.exp(-2.0 * t)

    def curvature(t):
        return alpha * jnp.exp(t) + 4.0 * beta * jnp.exp(2.0 * t) + 4.0 * gamma * jnp.exp(-2.0 * t)

    def newton(_, t):
        g = p - alpha * jnp.exp(t) - 2.0 * beta * jnp.exp(2.0 * t) + 2.0 * gamma * jnp.exp(-2.0 * t)
        return jnp.clip(t + jnp.clip(g / (curvature(t) + tiny), -2.0, 2.0), -30.0, 30.0)

    mode = jax.lax.fori_loop(0, SCALE_NEWTON_STEPS, newton, jnp.zeros_like(alpha))
    sd = 1.0 / jnp.sqrt(curvature(mode) + tiny)
    if normal is None or uniform is None:
        k_prop, k_acc = jax.random.split(key)
        normal = flat_random.normal(k_prop, alpha.shape, dtype)
        uniform = flat_random.uniform(k_acc, alpha.shape, dtype)
    prop = mode + sd * normal
    zero = jnp.zeros_like(prop)

    def logq(t):
        return -0.5 * ((t - mode) / sd) ** 2

    log_ratio = logf(prop) - logf(zero) - logq(prop) + logq(zero)
    accept = jnp.log(uniform) < log_ratio
    return jnp.where(accept, prop, zero), accept


#: leapfrog steps of the collapsed noise HMC move and its base step size (whitened units)
NOISE_LEAPFROG_STEPS = 16
NOISE_STEP_SIZE = 1.0


def collapsed_noise_logdensity(Lam, log_psi, prior_prec, S, n, psi_prior):
    """log p(Λ, log ψ | E, φ, τ) up to a constant, η integrated out, and its gradient.

    The residuals E (n×c, ``S = EᵀE``) are N(0, Σ), Σ = ΛΛᵀ + diag ψ, so
    log p = −(n/2) log|Σ| − ½ tr(Σ⁻¹S) − ½ Σ prior_prec·Λ² − a_ψ log ψ − b_ψ/ψ
    (λ_jk ~ N(0, 1/prior_prec_jk), 1/ψ_j ~ Gamma(a_ψ, b_ψ), with the Jacobian of log ψ).
    By Woodbury with C = I + ΛᵀΨ⁻¹Λ (one K×K Cholesky): log|Σ| = Σ log ψ + log|C|,
    Σ⁻¹ = Ψ⁻¹ − Ψ⁻¹ΛC⁻¹ΛᵀΨ⁻¹, Σ⁻¹Λ = Ψ⁻¹ΛC⁻¹, and
    ∂/∂Λ = −nΣ⁻¹Λ + Σ⁻¹SΣ⁻¹Λ − prior_prec∘Λ,
    ∂/∂ψ_j = −(n/2)(Σ⁻¹)_jj + ½(Σ⁻¹SΣ⁻¹)_jj.
    Returns (value, (∂/∂Λ, ∂/∂log ψ)).
    """
    dtype = Lam.dtype
    K = Lam.shape[1]
    a_psi, b_psi = psi_prior[0], psi_prior[1]
    psi = jnp.exp(log_psi)
    M = Lam / psi[:, None]                                   # Ψ⁻¹Λ
    chol = jnp.linalg.cholesky(jnp.eye(K, dtype=dtype) + Lam.T @ M)
    A = cho_solve((chol, True), M.T).T                       # Σ⁻¹Λ = Ψ⁻¹ΛC⁻¹
    W = jnp.diag(1.0 / psi) - A @ M.T                        # Σ⁻¹
    WS = W @ S
    value = (-0.5 * n * (jnp.sum(log_psi) + 2.0 * jnp.sum(jnp.log(jnp.diagonal(chol))))
             - 0.5 * jnp.sum(W * S) - 0.5 * jnp.sum(prior_prec * Lam * Lam)
             - a_psi * jnp.sum(log_psi) - b_psi * jnp.sum(1.0 / psi))
    grad_lam = -n * A + WS @ A - prior_prec * Lam
    grad_psi = -0.5 * n * jnp.diagonal(W) + 0.5 * jnp.sum(WS * W, axis=1)
    grad_log_psi = psi * grad_psi - a_psi + b_psi / psi
    return value, (grad_lam, grad_log_psi)


def collapsed_noise_hmc(normal, uniform, Lam, psi, prior_prec, S, n, psi_prior,
                        steps=NOISE_LEAPFROG_STEPS, step_size=NOISE_STEP_SIZE):
    """One HMC transition on (Λ, log ψ) of :func:`collapsed_noise_logdensity`.

    The diagonal mass is a curvature scale computed only from what the move conditions
    on (S, φ, τ), never from (Λ, ψ), so the transition is an exact Metropolis–Hastings
    step without adaptation (the Gibbs programs have no warm-up phase).  For λ_jk:
    n(Σ̂⁻¹)_jj + prior_prec_jk, Σ̂ = S/n — the Fisher information of λ_jk is
    n[(Σ⁻¹)_jj (ΛᵀΣ⁻¹Λ)_kk + (Σ⁻¹Λ)_jk²] ≤ 2n(Σ⁻¹)_jj, as ΛᵀΣ⁻¹Λ = I − C⁻¹ ≼ I;
    for log ψ_j: n/2 — its information is (n/2)(ψ_j(Σ⁻¹)_jj)² ≤ n/2, as ψ_j ≤ 1/(Σ⁻¹)_jj.
    Directions the data pin down therefore get steps of about their posterior scale, and
    weakly identified ones (the ψ ↔ Λ trade-offs) are crossed by the trajectory.  The step
    size is ``step_size`` × U(0.5, 1) (jittered: no resonant
    trajectory lengths), ``steps`` leapfrog steps.  ``normal`` holds the c(K + 1) N(0, 1)
    variates of the momenta, ``uniform`` the two U(0, 1) of the step size and the
    acceptance.  Returns (Λ, ψ, accepted).
    """
    dtype = Lam.dtype
    c, K = Lam.shape
    n = jnp.asarray(n, dtype)
    sig_hat = S / n + 1e-9 * jnp.mean(jnp.diagonal(S) / n) * jnp.eye(c, dtype=dtype)
    info = n * jnp.diagonal(jnp.linalg.inv(sig_hat))
    mass = (info[:, None] + prior_prec, jnp.full((c,), n / 2.0, dtype))
    eps = step_size * (0.5 + 0.5 * uniform[0])
    mom = (jnp.sqrt(mass[0]) * normal[:c * K].reshape(c, K), jnp.sqrt(mass[1]) * normal[c * K:])

    def kinetic(p):
        return 0.5 * (jnp.sum(p[0] ** 2 / mass[0]) + jnp.sum(p[1] ** 2 / mass[1]))

    x0 = (Lam, jnp.log(psi))
    v0, g0 = collapsed_noise_logdensity(*x0, prior_prec, S, n, psi_prior)

    def leapfrog(_, carry):
        x, p, _, g = carry
        p = jax.tree.map(lambda pi, gi: pi + 0.5 * eps * gi, p, g)
        x = jax.tree.map(lambda xi, pi, mi: xi + eps * pi / mi, x, p, mass)
        v, g = collapsed_noise_logdensity(*x, prior_prec, S, n, psi_prior)
        p = jax.tree.map(lambda pi, gi: pi + 0.5 * eps * gi, p, g)
        return x, p, v, g

    x1, p1, v1, _ = jax.lax.fori_loop(0, steps, leapfrog, (x0, mom, v0, g0))
    log_ratio = v1 - kinetic(p1) - v0 + kinetic(mom)
    accept = jnp.log(uniform[1]) < jnp.where(
        jnp.isfinite(log_ratio), log_ratio, -jnp.inf)
    return (jnp.where(accept, x1[0], Lam), jnp.where(accept, jnp.exp(x1[1]), psi), accept)


def _loading_scale_rates(M, laplace: bool, rate, size: int):
    """(α, β) per column of a loading matrix for :func:`scale_move`.

    Laplace prior with rate r: α = r Σ|m|, β = 0; Gaussian prior with precision
    ``size``: α = 0, β = size Σ m² / 2.
    """
    zeros = jnp.zeros((M.shape[1],), M.dtype)
    if laplace:
        return rate * jnp.sum(jnp.abs(M), axis=0), zeros
    return zeros, size * jnp.sum(M * M, axis=0) / 2.0

def _laplace_inverse_variance(key, x, rate, normal=None, uniform=None):
    """1/s | x ~ InvGauss(ρ/|x|, ρ²) for x | s ~ N(0, s), s ~ Exp(ρ²/2)."""
    tiny = jnp.finfo(x.dtype).tiny
    return inverse_gaussian(key, rate / jnp.maximum(jnp.abs(x), tiny), rate * rate,
                            normal=normal, uniform=uniform)


class _GammaPool:
    """All Gamma(shape, 1) variates of a sweep from one call of :func:`gamma`.

    The shapes of every Gamma conditional are known before the sweep starts (only the
    rates depend on the state), and each separate ``jax.random.gamma`` call costs
    seconds of XLA compilation on CPU; one call for all of them keeps the compile
    short.  ``take(rate)`` hands out the next block, divided by ``rate``, in request
    order.
    """

    def __init__(self, key, blocks, dtype):
        self.sizes = [int(jnp.size(b)) for b in blocks]
        shapes = jnp.concatenate([jnp.ravel(jnp.asarray(b, dtype)) for b in blocks])
        self.draws = gamma(key, shapes, dtype=dtype)
        self.offset = 0
        self.block = 0

    def take(self, rate):
        size = self.sizes[self.block]
        out = self.draws[self.offset:self.offset + size].reshape(jnp.shape(rate))
        self.offset += size
        self.block += 1
        return out / rate


class _VariatePool:
    """A sweep's N(0, 1) and U(0, 1) variates of the given sizes from one call each.

    Every ``jax.random.normal``/``uniform`` call site compiles its own copy of the bit
    generator and (normal) of the inverse error function; one call per sweep for all the
    small blocks whose sizes are known in advance keeps the program short.
    ``take(shape)`` hands out the next block in request order.
    """

    def __init__(self, key, size, dtype, sampler):
        self.draws = sampler(key, (max(size, 1),), dtype)
        self.offset = 0

    def take(self, shape):
        size = int(np.prod(shape))
        out = self.draws[self.offset:self.offset + size].reshape(shape)
        self.offset += size
        return out


def _cumulative_precision(head, increments):
    """head · (1, ζ₂, ζ₂ζ₃, …): the MGP precisions from the increments."""
    ones = jnp.ones((1,), increments.dtype)
    return head * jnp.concatenate([ones, jnp.cumprod(increments)])


class GLRRGibbs(ExactGibbsKernel):
    """Blocked Gibbs kernel for :class:`~bayesimg.models.glrr.GeneralizedLowRankRegression`.

    Built by ``GLRR.gibbs_kernel(data)``; every hyperparameter that is an argument of
    the model function is read from the model arguments, so one compiled program
    serves a grid of penalties or priors (as for NUTS).
    """

    def __init__(self, model, model_fn):
        self.rank = model.rank
        self.noise_factors = model.n_noise_factors
        self.snp_laplace = model.snp_prior == "laplace"
        self.phen_laplace = model.phenotype_prior == "laplace"
        self.mgp = model.rank_prior == "mgp" and model.rank > 1
        self.fixed_global = model.fixed_global
        self.covariate_scale = model.covariate_scale
        self.model_fn = model_fn

    def _dims(self, kw):
        """``X, Y, Z``, the dtype, ``n, d, c`` and the rank and noise-factor bounds."""
        X, Y = kw["X"], kw["Y"]
        n, d = X.shape
        c = Y.shape[1]
        return X, Y, kw["Z"], X.dtype, n, d, c, self.rank, self.noise_factors(c)

    # ------------------------------------------------------------------ init
    def init(self, rng_key, num_warmup, init_params, model_args, model_kwargs):
        kw = model_kwargs
        X, Y, Z, dt, n, d, c, R, K = self._dims(kw)
        keys = jax.random.split(rng_key, 3)
        # ridge estimate of B (Y residualised on Z), its rank-R truncated SVD
        Yr = Y
        if Z is not None:
            Yr = Y - Z @ jnp.linalg.solve(Z.T @ Z, Z.T @ Y)
        kappa = 1e-3 * jnp.sum(X * X) / d + 1e-8
        if d <= n:
            B_ridge = jnp.linalg.solve(X.T @ X + kappa * jnp.eye(d, dtype=dt), X.T @ Yr)
        else:
            B_ridge = X.T @ jnp.linalg.solve(X @ X.T + kappa * jnp.eye(n, dtype=dt), Yr)
        left, svals, right_t = jnp.linalg.svd(B_ridge, full_matrices=False)
        # one normal call for every perturbation (a smaller init program)
        n_ig = d * R * self.snp_laplace + c * R * self.phen_laplace
        noise = _VariatePool(keys[0], d * R + c * R + R + c + c * K + n_ig, dt,
                             jax.random.normal)
        unif = _VariatePool(keys[1], n_ig, dt, jax.random.uniform)
        U = left[:, :R] + 0.3 / jnp.sqrt(d) * noise.take((d, R))
        V = right_t[:R].T + 0.3 / jnp.sqrt(c) * noise.take((c, R))
        delta = svals[:R] * jnp.exp(0.3 * noise.take((R,)))
        mean = X @ (U * delta) @ V.T
        z = {"U": U, "V": V, "delta": delta}
        if Z is not None:
            z["gamma"] = jnp.linalg.solve(Z.T @ Z, Z.T @ (Y - mean))
            mean = mean + Z @ z["gamma"]
        resid_var = jnp.maximum(jnp.mean((Y - mean) ** 2, axis=0), 1e-6 * jnp.var(Y) + 1e-12)
        z["psi"] = resid_var * jnp.exp(0.2 * noise.take((c,)))
        z["Lam"] = 0.1 * jnp.sqrt(z["psi"])[:, None] * noise.take((c, K))
        z["phi"] = jnp.ones((c, K), dt)
        z["noise_increment"] = jnp.ones((K,), dt)
        if not self.fixed_global:
            z["rank_global"] = 1.0 / jnp.mean(delta**2)
        if self.mgp:
            z["rank_increment"] = jnp.ones((R - 1,), dt)
        if self.snp_laplace:
            z["inv_s_u"] = _laplace_inverse_variance(None, U, kw["snp_rate"], noise.take((d, R)),
                                                     unif.take((d, R)))
        if self.phen_laplace:
            z["inv_s_v"] = _laplace_inverse_variance(None, V, kw["phenotype_rate"],
                                                     noise.take((c, R)), unif.take((c, R)))
        stats = {"cholesky_jitter": jnp.zeros((), jnp.int32),
                 "scale_accept": jnp.zeros((), dt)}
        if K > 0:
            stats["noise_hmc_accept"] = jnp.zeros((), dt)
        if kw.get("H") is not None:
            z.update(initial_site_state(kw["H"].shape[1], c, kw["site_scale"], dt))
        # a valid state already (every block has a finite value): no sweep here, which
        # would compile the whole sweep a second time into the init program
        return GLRRGibbsState(jnp.zeros((), jnp.int32), z, keys[2], stats)

    # ---------------------------------------------------------------- helpers
    def _theta(self, z, kw, dt):
        tau = z["rank_global"] if not self.fixed_global else kw["global_precision"][0]
        if self.mgp:
            return _cumulative_precision(tau, z["rank_increment"])
        return tau * jnp.ones((self.rank,), dt)

    def _gamma_shapes(self, kw, n, c, dt):
        """Shapes of the sweep's Gamma conditionals, in the order they are drawn."""
        R, K = self.rank, self.noise_factors(c)
        blocks = []
        if not self.fixed_global:
            blocks.append(kw["global_precision"][0] + R / 2.0)                  # τ_δ
        if self.mgp:
            blocks += [kw["rank_increment_shape"] + (R - m - 1) / 2.0 for m in range(R - 1)]
        if K == 0:
            blocks.append(jnp.full((c,), kw["psi_prior"][0] + n / 2.0, dt))     # 1/ψ
        else:
            blocks.append(jnp.full((c, K), (NU + 1.0) / 2.0, dt))               # φ
            a1, a2 = kw["noise_shapes"][0], kw["noise_shapes"][1]
            blocks += [(a1 if m == 0 else a2) + c * (K - m) / 2.0 for m in range(K)]  # ξ
        return blocks

    # ---------------------------------------------------------------- sweep
    def sample(self, state, model_args, model_kwargs):
        """One sweep; with site random effects (``H``): GLRR's sweep on y − Hu (θ | u),
        then u | θ and the site sds (:meth:`_site_blocks`)."""
        kw = model_kwargs
        if kw.get("H") is None:
            return self._sweep(state, model_args, kw)
        z = dict(state.z)
        site = {k: z.pop(k) for k in ("site_effect", "site_sd", "site_aux")}
        k_sweep, k_site = jax.random.split(state.rng_key)
        inner = self._sweep(GLRRGibbsState(state.i, z, k_sweep, state.stats), model_args,
                            {**kw, "Y": kw["Y"] - kw["H"] @ site["site_effect"]})
        z, jitter = self._site_blocks(k_site, dict(inner.z), kw, site)
        stats = dict(inner.stats)
        stats["cholesky_jitter"] = stats["cholesky_jitter"] + jitter
        return GLRRGibbsState(inner.i, z, inner.rng_key, stats)

    @staticmethod
    def _site_blocks(key, z, kw, site):
        """u | θ, y with the noise factors η integrated out: rows of E = Y − XB − ZΓ at
        site s are N(u_s, Σ), Σ = ΛΛᵀ + diag ψ, so u_s ~ N(P_s⁻¹Σ⁻¹Σ_{i∈s}e_i, P_s⁻¹),
        P_s = n_sΣ⁻¹ + diag(1/τ²); then τ, ν | u (:mod:`bayesimg.models.core.site_effects`)."""
        X, Y, Z, H = kw["X"], kw["Y"], kw["Z"], kw["H"]
        E = Y - X @ ((z["U"] * z["delta"]) @ z["V"].T)
        if Z is not None:
            E = E - Z @ z["gamma"]
        Sigma = z["Lam"] @ z["Lam"].T + jnp.diag(z["psi"])
        Sinv = jnp.linalg.inv(Sigma)
        Sinv = 0.5 * (Sinv + Sinv.T)
        counts = jnp.sum(H, axis=0)
        k_u, k_tau = jax.random.split(key)
        u, jitter = site_effects_given_precisions(
            k_u, counts[:, None, None] * Sinv[None], (H.T @ E) @ Sinv, site["site_sd"],
            return_jitter=True)
        sd, aux = draw_site_scales(k_tau, u, site["site_aux"], kw["site_scale"])
        z.update(site_effect=u, site_sd=sd, site_aux=aux)
        return z, jitter

    def _sweep(self, state, model_args, model_kwargs):
        kw = model_kwargs
        X, Y, Z, dt, n, d, c, R, K = self._dims(kw)
        narrow = d <= n
        z = dict(state.z)
        U, V, delta = z["U"], z["V"], z["delta"]
        all_keys = jax.random.split(state.rng_key, 4 + R)
        keys = iter(all_keys[:3])                      # all_keys[3:3 + R]: u layers (d > n)
        # the N(0, 1) / U(0, 1) variates of the scale moves, the Laplace mixing variances
        # and the noise HMC: one call each (see _VariatePool)
        small = (2 * R + d * R * self.snp_laplace + c * R * self.phen_laplace)
        r = 0 if Z is None else Z.shape[1]
        gauss = d * R * narrow + c * R + R + r * c          # u layers, V, δ, Γ
        normals = _VariatePool(next(keys), small + gauss + (c * (K + 1) if K > 0 else 0), dt,
                               jax.random.normal)
        uniforms = _VariatePool(next(keys), small + (2 if K > 0 else 0), dt, jax.random.uniform)
        n_jitter = jnp.zeros((), jnp.int32)
        eps2 = jnp.finfo(dt).eps ** 2

        # Σ = ΛΛᵀ + diag ψ and Σ⁻¹ from one eigendecomposition
        Lam, psi = z["Lam"], z["psi"]
        sig_val, sig_vec = jnp.linalg.eigh(Lam @ Lam.T + jnp.diag(psi))
        sig_val = jnp.maximum(sig_val, jnp.finfo(dt).tiny)
        Sinv = (sig_vec / sig_val) @ sig_vec.T
        prec_eig = (1.0 / sig_val, sig_vec)                 # eigen-pairs of Σ⁻¹
        theta = self._theta(z, kw, dt)
        gammas = _GammaPool(next(keys), self._gamma_shapes(kw, n, c, dt), dt)

        T = Y if Z is None else Y - Z @ z["gamma"]          # target of the layers
        XU = X @ U

        # ---- 1a. u_h | rest (η integrated out), layer by layer
        W = Sinv @ V                                         # Σ⁻¹V
        VSV = V.T @ W
        TW = T @ W                                           # TΣ⁻¹V (n×R)
        XtX = X.T @ X if narrow else None
        prior_u = z["inv_s_u"] if self.snp_laplace else jnp.full((d, R), d, dt)
        u_keys = all_keys[3:3 + R]
        u_noise = normals.take((R, d)) if narrow else None

        # a fori_loop over layers, not a Python loop: the compiled sweep holds one copy of
        # the layer update (and its factorisation) whatever the rank
        def u_layer(h, carry):
            U, XU, n_jitter = carry
            others = (delta * VSV[:, h]).at[h].set(0.0)
            t = delta[h] * (TW[:, h] - XU @ others)           # n-vector: b = Xᵀt
            a = delta[h] ** 2 * VSV[h, h]
            prior = prior_u[:, h]
            if narrow:
                u, j = gaussian_columns_given_precision(None, a * XtX, (X.T @ t)[:, None],
                                                        prior, 1.0, return_jitter=True,
                                                        noise=u_noise[h])
            else:
                a = jnp.maximum(a, eps2)
                u, j = gaussian_columns_wide(u_keys[h], X, (t / a)[:, None], prior / a,
                                             1.0 / jnp.sqrt(a), return_jitter=True)
            return (U.at[:, h].set(u[:, 0]), XU.at[:, h].set(X @ u[:, 0]),
                    n_jitter + j.astype(n_jitter.dtype))

        U, XU, n_jitter = jax.lax.fori_loop(0, R, u_layer, (U, XU, n_jitter))
        # scale moves (u_h, δ_h) → (a u_h, δ_h/a), s integrated out
        alpha_u, beta_u = _loading_scale_rates(U, self.snp_laplace, kw.get("snp_rate"), d)
        step, acc_u = scale_move(None, d - 1.0, alpha_u, beta_u, theta * delta**2 / 2.0,
                                 normal=normals.take((R,)), uniform=uniforms.take((R,)))
        U, XU, delta = U * jnp.exp(step), XU * jnp.exp(step), delta * jnp.exp(-step)
        if self.snp_laplace:
            z["inv_s_u"] = _laplace_inverse_variance(None, U, kw["snp_rate"],
                                                     normals.take((d, R)), uniforms.take((d, R)))

        # ---- 1b. V | rest
        A = XU * delta                                       # n×R design of V
        AtA = A.T @ A
        lin_v = Sinv @ (T.T @ A)                             # Σ⁻¹TᵀA (c×R)
        if not self.phen_laplace:
            V = matrix_normal_kron(None, prec_eig, jnp.linalg.eigh(AtA), lin_v,
                                   jnp.asarray(c, dt), noise=normals.take((c, R)))
        else:
            v_noise = normals.take((R, c))

            def v_layer(h, carry):                           # layer by layer, as for u
                V, n_jitter = carry
                others = AtA[:, h].at[h].set(0.0)
                rhs = lin_v[:, h] - Sinv @ (V @ others)
                v, j = gaussian_columns_given_precision(
                    None, AtA[h, h] * Sinv, rhs[:, None], z["inv_s_v"][:, h], 1.0,
                    return_jitter=True, noise=v_noise[h])
                return V.at[:, h].set(v[:, 0]), n_jitter + j.astype(n_jitter.dtype)

            V, n_jitter = jax.lax.fori_loop(0, R, v_layer, (V, n_jitter))
        alpha_v, beta_v = _loading_scale_rates(V, self.phen_laplace, kw.get("phenotype_rate"), c)
        step, acc_v = scale_move(None, c - 1.0, alpha_v, beta_v, theta * delta**2 / 2.0,
                                 normal=normals.take((R,)), uniform=uniforms.take((R,)))
        V, delta = V * jnp.exp(step), delta * jnp.exp(-step)
        if self.phen_laplace:
            z["inv_s_v"] = _laplace_inverse_variance(None, V, kw["phenotype_rate"],
                                                     normals.take((c, R)), uniforms.take((c, R)))

        # ---- 1c. δ | rest
        W = Sinv @ V
        VSV = V.T @ W
        b = jnp.sum(XU * (T @ W), axis=0)
        dd, j = gaussian_columns_given_precision(None, (XU.T @ XU) * VSV, b[:, None],
                                                 theta, 1.0, return_jitter=True,
                                                 noise=normals.take((R,)))
        n_jitter = n_jitter + j
        delta = dd[:, 0]
        XB = (XU * delta) @ V.T

        # ---- 1d. Γ | rest
        if Z is not None:
            lin_g = (Z.T @ (Y - XB)) @ Sinv
            z["gamma"] = matrix_normal_kron(None, jnp.linalg.eigh(Z.T @ Z), prec_eig, lin_g,
                                            jnp.asarray(1.0 / self.covariate_scale**2, dt),
                                            noise=normals.take((r, c)))

        # ---- 2. rank shrinkage θ
        if not self.fixed_global:
            b0 = kw["global_precision"][1]
            scaled = theta / z["rank_global"]
            z["rank_global"] = gammas.take(b0 + jnp.sum(scaled * delta**2) / 2.0)
        if self.mgp:
            tau = z["rank_global"] if not self.fixed_global else kw["global_precision"][0]
            inc = z["rank_increment"]
            for m in range(R - 1):                       # ζ_{m+2}: layers h ≥ m + 1
                without = _cumulative_precision(tau, inc.at[m].set(1.0))
                rate = 1.0 + jnp.sum(without[m + 1:] * delta[m + 1:] ** 2) / 2.0
                inc = inc.at[m].set(gammas.take(rate))
            z["rank_increment"] = inc

        # ---- 3. noise: (Λ, ψ) by collapsed HMC (η integrated out), then φ, ξ
        E = T - XB if Z is None else Y - XB - Z @ z["gamma"]
        if K > 0:
            tau_n = jnp.cumprod(z["noise_increment"])
            Lam, psi, acc_h = collapsed_noise_hmc(normals.take((c * (K + 1),)),
                                                  uniforms.take((2,)), Lam, psi, z["phi"] * tau_n,
                                                  E.T @ E, n, kw["psi_prior"])
            phi = gammas.take((NU + tau_n * Lam**2) / 2.0)
            col = jnp.sum(phi * Lam**2, axis=0)                   # Σ_j φ_jk λ_jk²
            xi = z["noise_increment"]
            for m in range(K):
                others = jnp.cumprod(xi.at[m].set(1.0))
                xi = xi.at[m].set(gammas.take(1.0 + jnp.sum(others[m:] * col[m:]) / 2.0))
            z["phi"], z["noise_increment"] = phi, xi
        else:
            psi = 1.0 / gammas.take(kw["psi_prior"][1] + jnp.sum(E**2, axis=0) / 2.0)
        z.update(U=U, V=V, delta=delta, Lam=Lam, psi=psi)
        accept = jnp.mean(jnp.concatenate([acc_u, acc_v]).astype(dt))
        stats = {"cholesky_jitter": n_jitter.astype(jnp.int32), "scale_accept": accept}
        if K > 0:
            stats["noise_hmc_accept"] = acc_h.astype(dt)
        return GLRRGibbsState(state.i + 1, z, all_keys[-1], stats)

    # -------------------------------------------------------------- outputs
    def model_sites(self, z):
        """The NUTS model's latent sites from a Gibbs state (noise_raw = Λ τ^{1/2})."""
        out = {"U": z["U"], "V": z["V"], "delta": z["delta"], "psi": z["psi"]}
        for name in ("rank_global", "rank_increment", "gamma", "site_effect", "site_sd"):
            if name in z:
                out[name] = z[name]
        if z["Lam"].shape[1] > 0:
            out["noise_increment"] = z["noise_increment"]
            out["noise_raw"] = z["Lam"] * jnp.sqrt(jnp.cumprod(z["noise_increment"]))
        return out

    def postprocess_fn(self, model_args, model_kwargs):
        model_fn = self.model_fn

        def to_model(z):
            sites = self.model_sites(z)
            seeded = handlers.seed(handlers.substitute(model_fn, data=sites),
                                   jax.random.PRNGKey(0))
            tr = handlers.trace(seeded).get_trace(**model_kwargs)
            return {name: site["value"] for name, site in tr.items()
                    if (site["type"] == "deterministic"
                        or (site["type"] == "sample" and not site["is_observed"]))}

        return to_model


__all__ = ["GLRRGibbs", "GLRRGibbsState", "collapsed_noise_hmc", "collapsed_noise_logdensity",
           "scale_move"]
