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

* η_l: the latent noise factors of the factor model (integrating them out gives the
  model's N(·, ΛΛᵀ + diag ψ) likelihood, which NUTS evaluates by Woodbury);
* Student-t₃ noise loadings: λ_jk | φ_jk ~ N(0, 1/(φ_jk τ_k)), φ_jk ~ Gamma(3/2, 3/2)
  (Bhattacharya & Dunson 2011 — the same scale mixture the NUTS model integrates out);
* Laplace loadings: u_ih | s_ih ~ N(0, s_ih), s_ih ~ Exp(rate ρ_u²/2) (Park & Casella
  2008), so 1/s_ih | u_ih ~ InvGauss(ρ_u/|u_ih|, ρ_u²); the same for Laplace v.

One sweep (Σ, Σ⁻¹ from one c×c eigendecomposition of ΛΛᵀ + diag ψ):

1. *Mean blocks, η integrated out* (collapsed: they see the correlated noise Σ, not
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
3. Noise: with E = Y − XB − ZΓ, η_l ~ N(P⁻¹ΛᵀΨ⁻¹e_l, P⁻¹), P = I + ΛᵀΨ⁻¹Λ (one K×K
   Cholesky for all subjects); rows λ_j ~ N(P_j⁻¹ηᵀE_·j/ψ_j, P_j⁻¹),
   P_j = diag(φ_j τ) + ηᵀη/ψ_j (c batched K×K); a scale move per factor,
   (η_·k, λ_·k) → (η_·k/a, a λ_·k) (ηΛᵀ unchanged; Jacobian a^{c−n}; t = log a as
   above with p = c − n, β = τ_k Σ_j φ_jk λ_jk²/2, γ = ‖η_·k‖²/2: the η–Λ scale
   ridge that data augmentation crawls along when n is large);
   1/ψ_j ~ Gamma(a_ψ + n/2, b_ψ + ½‖E_·j − ηλ_j‖²); *ridge moves*
   (:func:`noise_ridge_moves`): Metropolis–Hastings along (λ_j, ψ_j) →
   (b λ_j, ψ_j + (1 − b²)‖λ_j‖²), which keeps Σ_jj, with η and φ integrated out — the
   split of a phenotype's variance between its own ψ_j and a factor that loads mostly
   on it is barely identified, and η-conditional updates cross it in O(n) sweeps
   (ESS of ψ_j 15 → 330 per 4000 draws in our tests); then φ_jk ~ Gamma(2,
   (3 + τ_k λ_jk²)/2) and ξ_m in turn ~ Gamma(a_m + c(K − m + 1)/2,
   1 + ½Σ_{k≥m} (τ_k/ξ_m) Σ_j φ_jk λ_jk²).  K = 0: 1/ψ_j ~ Gamma(a_ψ + n/2,
   b_ψ + ½‖E_·j‖²).

Every step is an exact draw from a full conditional of the augmented posterior, or
(scale and ridge moves) a Metropolis–Hastings step that leaves it invariant; the
collapsed steps are valid partially collapsed Gibbs orders (van Dyk & Park 2008): η is
drawn (step 3) before anything conditions on it, and s, φ are redrawn from their
conditionals right after the moves that integrate them out.  All Gamma variates of a
sweep come from one call of :func:`bayesimg.models.core.gamma.gamma` (a smaller program
than ``jax.random.gamma``; their shapes are known in advance; each
call costs seconds of compilation).  The recorded draws are the NUTS model's own sites
(U, V, δ, the MGP increments, ψ, Γ, the non-centred noise loadings t = Λτ^{1/2} and
ξ) with every deterministic site computed by the NUTS model function itself, so
the stored posterior, its identified summaries and the pointwise log-likelihood are
defined exactly as for NUTS (``tests/glrr/test_glrr_gibbs.py`` checks agreement).

Identification of ψ and mixing on correlated noise. The likelihood sees Σ only, and
Σ = ΛΛᵀ + diag ψ splits uniquely into Λ and ψ only when the factor model has no more free
parameters than Σ has entries: Ledermann's bound (c − K)² ≥ c + K (K ≤ 4.47 for c = 8).
With the former default K = c − 1 the split is not identified and ψ drifts on a set of
equal likelihood whose position only the prior sets (AR(1)-correlated ROIs, n = 503, 339
SNPs, c = 8, rank 3, K = 7, 2 × (200 + 300) sweeps: ψ R-hat 1.35, min ESS 5, while B and Σ
were near convergence). The default K is therefore the largest K within the bound
(:func:`~bayesimg.models.glrr.model.ledermann_bound`, at most 10); more factors can be
asked for, with a warning. Measured at the default run length (4 chains × (1000 + 1000)
sweeps, ``benchmarks/glrr_mixing.py``, ``benchmarks/results/glrr_mixing.json``) on the same
AR(1) data with K = 4: R-hat 1.006 for B (min bulk ESS 386), 1.018 for Σ (141) and 1.13 for
ψ (28), against 1.007, 1.024 and 1.128 with K = 7 at the same length: the 1.01 target is
missed for Σ and ψ there, and bounding K makes ψ identified rather than faster: an AR(1) Σ
is not a 4-factor matrix and several 4-factor splits fit it almost equally (a misspecified
noise model). On factor noise (``simulate_glrr``, 2 factors, same genotypes) K = 4 gave 1.049
(B), 1.030 (Σ), 1.072 (ψ): missed too. Tried and not kept: an HMC move on the whole
collapsed noise block (t, log ψ, log ξ; η and φ integrated) raised the ESS of Σ 3–5× but not
of ψ. Read Σ (``noise_cov``), not ψ, on such data.

Start: the rank-R truncated SVD of a ridge estimate of B (as SVI/MAP) perturbed per
chain (U, V by 30% of a typical entry, δ by a factor e^{N(0, 0.3²)}), ψ from the ridge
residuals (× e^{N(0, 0.2²)}), small random Λ, unit MGP increments, Laplace mixing
variances drawn from their conditional; warm-up does the rest.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy.linalg import cho_solve
from numpyro import handlers

from bayesimg.models.core.conditionals import (
    gaussian_columns_given_precision,
    gaussian_columns_wide,
    inverse_gaussian,
    matrix_normal_kron,
)
from bayesimg.models.core.gamma import gamma
from bayesimg.models.core.gibbs_kernel import ExactGibbsKernel

#: degrees of freedom of the Student-t noise loadings (ν of the MGP, as in glrr.py)
NU = 3.0
#: Newton iterations locating the mode of a scale move's log-density
SCALE_NEWTON_STEPS = 20
#: sds of log b of the passes of noise ridge moves per sweep (:func:`noise_ridge_moves`)
RIDGE_STEPS = (1.5, 0.5, 0.2)


class GLRRGibbsState(NamedTuple):
    i: jnp.ndarray
    z: dict
    rng_key: jnp.ndarray
    #: sample stats read by the MCMC driver: ``cholesky_jitter`` (jitter retries of
    #: the Cholesky factorisations in this sweep), ``scale_accept`` (mean acceptance
    #: of the 2R layer scale moves) and, with noise factors, ``noise_scale_accept``
    #: (the K factor scale moves) and ``noise_ridge_accept`` (the ridge moves)
    stats: dict


def scale_move(key, p, alpha, beta, gamma):
    """One independence Metropolis–Hastings step for t with log-density
    p·t − α e^t − β e^{2t} − γ e^{−2t} (α, β, γ ≥ 0: concave), from the current t = 0.

    The proposal is the Laplace approximation N(t*, 1/h(t*)) at the mode t* (Newton,
    steps clipped to ±2).  Returns (t, accepted), elementwise over the inputs.
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
    k_prop, k_acc = jax.random.split(key)
    prop = mode + sd * jax.random.normal(k_prop, alpha.shape, dtype)
    zero = jnp.zeros_like(prop)

    def logq(t):
        return -0.5 * ((t - mode) / sd) ** 2

    log_ratio = logf(prop) - logf(zero) - logq(prop) + logq(zero)
    accept = jnp.log(jax.random.uniform(k_acc, alpha.shape, dtype)) < log_ratio
    return jnp.where(accept, prop, zero), accept


def noise_ridge_moves(key, Lam, psi, tau, S, n, psi_prior, steps):
    """Passes (one per entry of ``steps``) of one Metropolis–Hastings move per phenotype j
    (in turn) along (λ_j, ψ_j) → (b λ_j, ψ_j + (1 − b²)‖λ_j‖²), log b ~ N(0, step²)
    (large and small steps: far jumps along the ridge when they fit, local ones when
    the off-diagonal covariances pin λ_j).  Σ_jj is unchanged, so the
    move slides between idiosyncratic and factor variance, the direction in which the
    η-conditional updates crawl (a factor loading on one phenotype trades with its ψ_j).

    Target: the noise block with η and φ integrated out — the Gaussian likelihood of
    the residuals E (``S = EᵀE``) under Σ = ΛΛᵀ + diag ψ, λ_jk ~ t₃(0, τ_k^{-1/2}),
    1/ψ_j ~ Gamma(a_ψ, b_ψ).  The maps form a one-parameter group acting on (λ_j, ψ_j)
    with Jacobian b^K, so the acceptance ratio is p(new)/p(old)·b^K (involutive MH).
    Per proposal the change of log|Σ| and tr(Σ⁻¹S) costs O(cK + K³) by Woodbury
    (C = I + ΛᵀΨ⁻¹Λ, H = SΨ⁻¹Λ, G = ΛᵀΨ⁻¹SΨ⁻¹Λ kept up to date).
    Returns (Λ, ψ, mean acceptance).
    """
    dtype = Lam.dtype
    c, K = Lam.shape
    a_psi, b_psi = psi_prior[0], psi_prior[1]
    k_b, k_u = jax.random.split(key)
    n_moves = len(steps) * c
    log_b = (jnp.asarray(steps, dtype)[:, None]
             * jax.random.normal(k_b, (len(steps), c), dtype)).ravel()
    log_u = jnp.log(jax.random.uniform(k_u, (n_moves,), dtype))
    M = Lam / psi[:, None]
    C = jnp.eye(K, dtype=dtype) + Lam.T @ M
    H = S @ M
    G = M.T @ H

    def logdet_and_trace(C, G):
        L = jnp.linalg.cholesky(C)
        return (2.0 * jnp.sum(jnp.log(jnp.diagonal(L))),
                jnp.sum(cho_solve((L, True), G) * jnp.eye(K, dtype=dtype)))

    def prior(lam, ps):
        return (-(NU + 1.0) / 2.0 * jnp.sum(jnp.log1p(tau * lam * lam / NU))
                - (a_psi + 1.0) * jnp.log(ps) - b_psi / ps)

    def body(i, carry):
        Lam, psi, C, H, G, n_acc = carry
        j = i % c
        lam, ps = Lam[j], psi[j]
        b = jnp.exp(log_b[i])
        lam_new = b * lam
        ps_new = ps + (1.0 - b * b) * jnp.sum(lam * lam)
        ok = ps_new > 0
        ps_new = jnp.where(ok, ps_new, ps)
        m_old, m_new = lam / ps, lam_new / ps_new
        dm = m_new - m_old
        C_new = C + jnp.outer(lam_new, m_new) - jnp.outer(lam, m_old)
        h = H[j]
        G_new = G + jnp.outer(dm, h) + jnp.outer(h, dm) + S[j, j] * jnp.outer(dm, dm)
        ld_old, tr_old = logdet_and_trace(C, G)
        ld_new, tr_new = logdet_and_trace(C_new, G_new)
        # log p = −(n/2)(Σ log ψ + log|C|) − ½(Σ S_ii/ψ_i − tr(C⁻¹G)) + priors
        delta_ll = (-0.5 * n * (jnp.log(ps_new) - jnp.log(ps) + ld_new - ld_old)
                    - 0.5 * (S[j, j] * (1.0 / ps_new - 1.0 / ps) - (tr_new - tr_old)))
        log_ratio = delta_ll + prior(lam_new, ps_new) - prior(lam, ps) + K * log_b[i]
        accept = ok & (log_u[i] < log_ratio)
        Lam = Lam.at[j].set(jnp.where(accept, lam_new, lam))
        psi = psi.at[j].set(jnp.where(accept, ps_new, ps))
        C = jnp.where(accept, C_new, C)
        G = jnp.where(accept, G_new, G)
        H = jnp.where(accept, H + jnp.outer(S[:, j], dm), H)
        return Lam, psi, C, H, G, n_acc + accept.astype(dtype)

    Lam, psi, _, _, _, n_acc = jax.lax.fori_loop(
        0, n_moves, body, (Lam, psi, C, H, G, jnp.zeros((), dtype)))
    return Lam, psi, n_acc / max(n_moves, 1)



def _loading_scale_rates(M, laplace: bool, rate, size: int):
    """(α, β) per column of a loading matrix for :func:`scale_move`.

    Laplace prior with rate r: α = r Σ|m|, β = 0; Gaussian prior with precision
    ``size``: α = 0, β = size Σ m² / 2.
    """
    zeros = jnp.zeros((M.shape[1],), M.dtype)
    if laplace:
        return rate * jnp.sum(jnp.abs(M), axis=0), zeros
    return zeros, size * jnp.sum(M * M, axis=0) / 2.0

def _laplace_inverse_variance(key, x, rate):
    """1/s | x ~ InvGauss(ρ/|x|, ρ²) for x | s ~ N(0, s), s ~ Exp(ρ²/2)."""
    tiny = jnp.finfo(x.dtype).tiny
    return inverse_gaussian(key, rate / jnp.maximum(jnp.abs(x), tiny), rate * rate)


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
        keys = jax.random.split(rng_key, 8)
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
        U = left[:, :R] + 0.3 / jnp.sqrt(d) * jax.random.normal(keys[0], (d, R), dt)
        V = right_t[:R].T + 0.3 / jnp.sqrt(c) * jax.random.normal(keys[1], (c, R), dt)
        delta = svals[:R] * jnp.exp(0.3 * jax.random.normal(keys[2], (R,), dt))
        mean = X @ (U * delta) @ V.T
        z = {"U": U, "V": V, "delta": delta}
        if Z is not None:
            z["gamma"] = jnp.linalg.solve(Z.T @ Z, Z.T @ (Y - mean))
            mean = mean + Z @ z["gamma"]
        resid_var = jnp.maximum(jnp.mean((Y - mean) ** 2, axis=0), 1e-6 * jnp.var(Y) + 1e-12)
        z["psi"] = resid_var * jnp.exp(0.2 * jax.random.normal(keys[3], (c,), dt))
        z["Lam"] = 0.1 * jnp.sqrt(z["psi"])[:, None] * jax.random.normal(keys[4], (c, K), dt)
        z["phi"] = jnp.ones((c, K), dt)
        z["noise_increment"] = jnp.ones((K,), dt)
        if not self.fixed_global:
            z["rank_global"] = 1.0 / jnp.mean(delta**2)
        if self.mgp:
            z["rank_increment"] = jnp.ones((R - 1,), dt)
        if self.snp_laplace:
            z["inv_s_u"] = _laplace_inverse_variance(keys[5], U, kw["snp_rate"])
        if self.phen_laplace:
            z["inv_s_v"] = _laplace_inverse_variance(keys[6], V, kw["phenotype_rate"])
        stats = {"cholesky_jitter": jnp.zeros((), jnp.int32),
                 "scale_accept": jnp.zeros((), dt)}
        if K > 0:
            stats["noise_scale_accept"] = jnp.zeros((), dt)
            stats["noise_ridge_accept"] = jnp.zeros((), dt)
        # a valid state already (every block has a finite value): no sweep here, which
        # would compile the whole sweep a second time into the init program
        return GLRRGibbsState(jnp.zeros((), jnp.int32), z, keys[7], stats)

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
        blocks.append(jnp.full((c,), kw["psi_prior"][0] + n / 2.0, dt))         # 1/ψ
        if K > 0:
            blocks.append(jnp.full((c, K), (NU + 1.0) / 2.0, dt))               # φ
            a1, a2 = kw["noise_shapes"][0], kw["noise_shapes"][1]
            blocks += [(a1 if m == 0 else a2) + c * (K - m) / 2.0 for m in range(K)]  # ξ
        return blocks

    # ---------------------------------------------------------------- sweep
    def sample(self, state, model_args, model_kwargs):
        kw = model_kwargs
        X, Y, Z, dt, n, d, c, R, K = self._dims(kw)
        narrow = d <= n
        z = dict(state.z)
        U, V, delta = z["U"], z["V"], z["delta"]
        all_keys = jax.random.split(state.rng_key, 20 + 3 * R + K)
        keys = iter(all_keys[:-1])
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
        for h in range(R):
            others = (delta * VSV[:, h]).at[h].set(0.0)
            t = delta[h] * (TW[:, h] - XU @ others)           # n-vector: b = Xᵀt
            a = delta[h] ** 2 * VSV[h, h]
            prior = prior_u[:, h]
            if narrow:
                u, j = gaussian_columns_given_precision(next(keys), a * XtX, (X.T @ t)[:, None],
                                                        prior, 1.0, return_jitter=True)
            else:
                a = jnp.maximum(a, eps2)
                u, j = gaussian_columns_wide(next(keys), X, (t / a)[:, None], prior / a,
                                             1.0 / jnp.sqrt(a), return_jitter=True)
            n_jitter = n_jitter + j
            U = U.at[:, h].set(u[:, 0])
            XU = XU.at[:, h].set(X @ u[:, 0])
        # scale moves (u_h, δ_h) → (a u_h, δ_h/a), s integrated out
        alpha_u, beta_u = _loading_scale_rates(U, self.snp_laplace, kw.get("snp_rate"), d)
        step, acc_u = scale_move(next(keys), d - 1.0, alpha_u, beta_u, theta * delta**2 / 2.0)
        U, XU, delta = U * jnp.exp(step), XU * jnp.exp(step), delta * jnp.exp(-step)
        if self.snp_laplace:
            z["inv_s_u"] = _laplace_inverse_variance(next(keys), U, kw["snp_rate"])

        # ---- 1b. V | rest
        A = XU * delta                                       # n×R design of V
        AtA = A.T @ A
        lin_v = Sinv @ (T.T @ A)                             # Σ⁻¹TᵀA (c×R)
        if not self.phen_laplace:
            V = matrix_normal_kron(next(keys), prec_eig, jnp.linalg.eigh(AtA), lin_v,
                                   jnp.asarray(c, dt))
        else:
            for h in range(R):
                others = AtA[:, h].at[h].set(0.0)
                rhs = lin_v[:, h] - Sinv @ (V @ others)
                v, j = gaussian_columns_given_precision(
                    next(keys), AtA[h, h] * Sinv, rhs[:, None], z["inv_s_v"][:, h], 1.0,
                    return_jitter=True)
                n_jitter = n_jitter + j
                V = V.at[:, h].set(v[:, 0])
        alpha_v, beta_v = _loading_scale_rates(V, self.phen_laplace, kw.get("phenotype_rate"), c)
        step, acc_v = scale_move(next(keys), c - 1.0, alpha_v, beta_v, theta * delta**2 / 2.0)
        V, delta = V * jnp.exp(step), delta * jnp.exp(-step)
        if self.phen_laplace:
            z["inv_s_v"] = _laplace_inverse_variance(next(keys), V, kw["phenotype_rate"])

        # ---- 1c. δ | rest
        W = Sinv @ V
        VSV = V.T @ W
        b = jnp.sum(XU * (T @ W), axis=0)
        dd, j = gaussian_columns_given_precision(next(keys), (XU.T @ XU) * VSV, b[:, None],
                                                 theta, 1.0, return_jitter=True)
        n_jitter = n_jitter + j
        delta = dd[:, 0]
        XB = (XU * delta) @ V.T

        # ---- 1d. Γ | rest
        if Z is not None:
            lin_g = (Z.T @ (Y - XB)) @ Sinv
            z["gamma"] = matrix_normal_kron(next(keys), jnp.linalg.eigh(Z.T @ Z), prec_eig, lin_g,
                                            jnp.asarray(1.0 / self.covariate_scale**2, dt))

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

        # ---- 3. noise: η, Λ, ψ, φ, ξ
        E = T - XB if Z is None else Y - XB - Z @ z["gamma"]
        if K > 0:
            LPsi = Lam / psi[:, None]                            # Ψ⁻¹Λ
            eta_t, j = gaussian_columns_given_precision(
                next(keys), Lam.T @ LPsi, (E @ LPsi).T, jnp.ones((K,), dt), 1.0,
                return_jitter=True)
            n_jitter = n_jitter + j
            eta = eta_t.T                                        # n×K
            tau_n = jnp.cumprod(z["noise_increment"])
            EtE = eta.T @ eta
            rhs = (E.T @ eta) / psi[:, None]                     # c×K

            def row(key, psi_j, phi_j, rhs_j):
                lam_j, jj = gaussian_columns_given_precision(
                    key, EtE / psi_j, rhs_j[:, None], phi_j * tau_n, 1.0, return_jitter=True)
                return lam_j[:, 0], jj

            Lam, jrows = jax.vmap(row)(jax.random.split(next(keys), c), psi, z["phi"], rhs)
            n_jitter = n_jitter + jnp.sum(jrows, dtype=jnp.int32)
            # scale of each factor: (η_·k, λ_·k) → (η_·k/a, a λ_·k) leaves ηΛᵀ unchanged
            step, acc_f = scale_move(next(keys), c - float(n), jnp.zeros((K,), dt),
                                     tau_n * jnp.sum(z["phi"] * Lam**2, axis=0) / 2.0,
                                     jnp.sum(eta * eta, axis=0) / 2.0)
            Lam, eta = Lam * jnp.exp(step), eta * jnp.exp(-step)
            resid = E - eta @ Lam.T
        else:
            resid = E
        psi = 1.0 / gammas.take(kw["psi_prior"][1] + jnp.sum(resid**2, axis=0) / 2.0)
        if K > 0:
            # (λ_j, ψ_j) along the ridge of constant Σ_jj, η and φ integrated out
            Lam, psi, acc_r = noise_ridge_moves(next(keys), Lam, psi, tau_n, E.T @ E, n,
                                                kw["psi_prior"], RIDGE_STEPS)
            phi = gammas.take((NU + tau_n * Lam**2) / 2.0)
            col = jnp.sum(phi * Lam**2, axis=0)                   # Σ_j φ_jk λ_jk²
            xi = z["noise_increment"]
            for m in range(K):
                others = jnp.cumprod(xi.at[m].set(1.0))
                xi = xi.at[m].set(gammas.take(1.0 + jnp.sum(others[m:] * col[m:]) / 2.0))
            z["phi"], z["noise_increment"] = phi, xi
        z.update(U=U, V=V, delta=delta, Lam=Lam, psi=psi)
        accept = jnp.mean(jnp.concatenate([acc_u, acc_v]).astype(dt))
        stats = {"cholesky_jitter": n_jitter.astype(jnp.int32), "scale_accept": accept}
        if K > 0:
            stats["noise_scale_accept"] = jnp.mean(acc_f.astype(dt))
            stats["noise_ridge_accept"] = acc_r
        return GLRRGibbsState(state.i + 1, z, all_keys[-1], stats)

    # -------------------------------------------------------------- outputs
    def model_sites(self, z):
        """The NUTS model's latent sites from a Gibbs state (noise_raw = Λ τ^{1/2})."""
        out = {"U": z["U"], "V": z["V"], "delta": z["delta"], "psi": z["psi"]}
        for name in ("rank_global", "rank_increment", "gamma"):
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


__all__ = ["GLRRGibbs", "GLRRGibbsState", "scale_move"]
