r"""Exact blocked Gibbs sampler for :class:`~bayesimg.models.gsmtr.SpikeSlabMTR`.

The model, its priors and references are in :mod:`bayesimg.models.gsmtr.spike_slab`.
One sweep:

1. **SNP by SNP** (a ``lax.fori_loop`` over j = 1 … d), (δ_j, component m_j, w_j) drawn
   jointly given everything else, with the gene indicator γ_g *integrated out*.  With
   R₋ⱼ = Y − ZΓ − Σ_{i≠j} x_i w_iᵀ and s_jj = x_jᵀx_j, the likelihood of w_j is that of
   b̂_j = x_jᵀR₋ⱼ / s_jj ~ N(w_j, Σ/s_jj), so with S = Σ/s_jj:

   * null: b̂_j ~ N(0, S); component m (pattern U_m, scale v_m): b̂_j ~ N(0, v_m²U_m + S);
   * log Bayes factor of m against the null, in closed form:
     rank-1 U = uuᵀ (Sherman–Morrison; κ = uᵀΣ⁻¹u, a = uᵀΣ⁻¹b̂):
     log BF = −½ log(1 + v² s κ) + ½ v² s² a² / (1 + v² s κ);
     ROI subset S, U = D_S = diag(1_S) (independent effects on the ROIs of S, exactly 0 on
     the others; S = all ROIs is U = I): with Σ⁻¹ restricted to S and zero-padded,
     (Σ⁻¹)_SS = VΛVᵀ, and y = Vᵀ(Σ⁻¹b̂)_S,
     log BF = −½ Σ_i log(1 + v² s λ_i) + ½ Σ_i v² s² y_i² / (1 + v² s λ_i)
     (w_S | b̂ has precision s(Σ⁻¹)_SS + I/v² and linear term s(Σ⁻¹b̂)_S; zero-padded
     directions have λ_i = 0 and y_i = 0 and contribute nothing);
   * P(δ_j = 1, m | ·) ∝ p_j π_m BF_m and P(δ_j = 0 | ·) ∝ 1 − p_j, where p_j is the
     prior inclusion probability given the other SNPs of gene g with γ_g integrated out:
     π_snp if another SNP of g is in, else
     π_g π_s (1 − π_s)^{m_g−1} / [π_g π_s (1 − π_s)^{m_g−1} + (1 − π_g) + π_g (1 − π_s)^{m_g}];
   * w_j | δ_j = 1, m: rank-1: w = βu, β ~ N(s a / P, 1/P), P = 1/v² + s κ;
     subset S: w = V c, c_i independent N(s y_i / P_i, 1/P_i), P_i = 1/v² + s λ_i, and
     w_k = 0 for k ∉ S.

   The running residual is updated only when w_j changes (most SNPs stay out), at O(n c)
   (or O(d c) in the sufficient-statistics form used when d ≤ n, which carries XᵀR instead
   of R and never touches the n rows in the sweep).  Per SNP the Bayes factors of all
   components cost O(c² + K₁ c + K₂ c²) (K₁ rank-1, K₂ fixed subset patterns): Σ⁻¹, the
   κ's and one c×c eigendecomposition per fixed subset pattern are computed once per sweep.

   **The "subsets" family** (SNP j's own ROI subset S_j, prior P(S | φ), see the model).
   Summing over the 2^c − 1 subsets inside the δ_j update is out of reach for c ≈ 20, so
   S_j is kept in the state *whether or not it is used*, with a pseudo-prior q_j(S) when
   unused (SNP out, or in another pattern) — Carlin & Chib (1995, JRSS-B 57:473): the joint
   target p(θ | Y) × q_j(S_j)^[S_j unused] has the posterior as its marginal.  q_j is
   independent Bernoulli(p_jk) per ROI given S ≠ ∅, p_jk rising with SNP j's marginal
   |z_jk| (computed once from the data; it shapes the mixing only).  Per SNP, in order:

   a. if S_j is unused: S_j ~ q_j (its full conditional; sequential exact sampling of the
      non-empty product-Bernoulli);
   b. (δ_j, m_j) with w_j integrated out, given S_j: the "subsets" components get, beside
      π_m and their Bayes factor at D_(S_j), the factor P(S_j | φ) / q_j(S_j) (in the
      states that use S_j the joint has P(S_j | φ) where the others have q_j(S_j)).
      log BF at S (any mask): with P_t = s D_S Σ⁻¹ D_S + I/v_t² and h = s D_S Σ⁻¹ b̂,
      log BF_t = −½ log det(v_t² P_t) + ½ hᵀP_t⁻¹h (one c×c Cholesky per scale);
   c. if S_j is used: per-ROI collapsed Gibbs, k = 1 … c: η_jk | η_j,−k, v_t, b̂ ∝
      φ^η (1 − φ)^(1−η) BF_t(S_j with / without k), S = ∅ excluded;
   d. w_j | everything: rank-1 / fixed subset as above; own subset: w = D_S(P_t⁻¹h + L_t⁻ᵀε)
      ("shared_subsets": w = β 1_S, below).

   a–d are each exact conditional draws of the joint (a and c given the rest, b and c with
   w_j integrated out, d last), so the step leaves the joint — hence the posterior —
   invariant.  It replaces 40 padded data-driven subset slots evaluated for every SNP
   three times per sweep; the per-ROI flips cost c Choleskys of c×c, and only for SNPs in
   the family.  After the sweep, φ | {S_j used} is drawn exactly on its grid
   (∝ prior × Π_j φ^|S_j| (1 − φ)^(c − |S_j|) / (1 − (1 − φ)^c)).

   **The "shared_subsets" family** (w_j = β_j 1_(S_j): ONE coefficient on the ROIs of the
   SNP's own subset, exactly 0 off it — a pleiotropic effect of one sign on 6 of 8 ROIs
   is not forced onto all 8, as the all-ROI "shared" pattern forces it, nor does it pay
   for 6 free coefficients, as D_S does).  It is the rank-1 formula with u = 1_S, so given
   S and Σ, β ~ N(0, v²) integrates out in one dimension:
   b̂_j | S ~ N(0, v² 1_S1_Sᵀ + Σ/s), and with κ_S = 1_SᵀΣ⁻¹1_S, a_S = 1_SᵀΣ⁻¹b̂_j,
   log BF_t(S) = −½ log(1 + v_t² s κ_S) + ½ v_t² s² a_S² / (1 + v_t² s κ_S)  (O(c²) per S,
   no Cholesky), and β | S, b̂ ~ N(s a_S / P, 1/P), P = 1/v_t² + s κ_S.  The per-ROI flip
   of k changes κ_S by ±(2(Σ⁻¹1_S)_k ∓ (Σ⁻¹)_kk) and a_S by ±(Σ⁻¹b̂)_k: a one-coefficient
   marginal, so step c costs O(c²) per ROI here.  Both own-subset families share the
   one S_j in the state (a–d above, with "used" = the SNP is in either family; the
   pseudo-prior q_j and its Carlin–Chib ratio are the same, each family with its own
   subset prior P_f(S | φ_f)); the components are the mixture (families × slab scales)
   beside the fixed patterns, so b compares D_(S_j), β1_(S_j) and the fixed patterns at
   once and c flips S_j under the chosen family.  Each family has its own rate φ_f,
   drawn from the subsets of the SNPs in that family.
2. γ_g | δ, π: 1 if any SNP of g is in, else Bernoulli(π_g(1 − π_s)^{m_g} /
   [π_g(1 − π_s)^{m_g} + 1 − π_g]).
3. π_gene | γ ~ Beta(a_g + Σγ, b_g + G − Σγ); π_snp | δ, γ ~ Beta(a_s + Σδ,
   b_s + Σ_g γ_g m_g − Σδ); mixture weights: ``mixture_prior="product"`` (default),
   π_(p,t) = ω_p ρ_t with pattern weights ω | m, δ ~ Dirichlet(α + pattern counts among
   δ = 1) and scale weights ρ | m, δ ~ Dirichlet(α + scale counts) — the likelihood of the
   component labels, Π ω_p^{n_p} ρ_t^{n_t}, factorises, so the two are conditionally
   independent Dirichlets; ``"joint"``: one Dirichlet(α + counts) over all (pattern, scale)
   pairs.
4. Σ | W, Γ: full: InvWishart(ν₀ + n, Ψ₀ + EᵀE); diagonal: σ_k² ~ InvGamma(a₀ + n/2,
   b₀ + (EᵀE)_kk/2), E = Y − XW − ZΓ.
5. Γ | W, Σ, u (covariates): vec Γ ~ N with precision Σ⁻¹ ⊗ ZᵀZ + I/s_Γ²; with site random
   effects (``H``; :mod:`bayesimg.models.core.site_effects`) the site indicators join the
   covariates in the sufficient statistics (Z̃ = [Z, H]), Γ is drawn given u, then
   u_s | Γ, W, Σ ~ N(P_s⁻¹Σ⁻¹b_s, P_s⁻¹), P_s = n_sΣ⁻¹ + diag(1/τ²), b_s the site's residual
   sum, and τ, ν | u.  Γ
   (:func:`~bayesimg.models.core.conditionals.matrix_normal_kron`).

Each step draws from the exact full conditional of the joint (step 1 from the conditional
with γ marginalised, which step 2 then redraws), so the sweep leaves the posterior
invariant.  The kernel is a NumPyro ``MCMCKernel`` run by the shared MCMC driver.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from bayesimg.models.core import flat_random
from bayesimg.models.core.conditionals import matrix_normal_kron
from bayesimg.models.core.gamma import gamma
from bayesimg.models.core.gibbs_kernel import ExactGibbsKernel
from bayesimg.models.core.linalg import robust_cholesky, solve_lower
from bayesimg.models.core.site_effects import (
    draw_site_scales,
    initial_site_state,
    site_augmented,
    site_effects_given_precisions,
    stacked_coefficients,
)

#: the own-subset families: "subsets" (U = D_S) and "shared_subsets" (w = β 1_S)
OWN_FAMILIES = ("subsets", "shared_subsets")


class SpikeSlabGibbsState(NamedTuple):
    i: jnp.ndarray
    z: dict
    cache: dict
    rng_key: jnp.ndarray
    #: ``cholesky_jitter``: retries of the residual covariance's Cholesky (0: exact)
    stats: dict


def _log_sigmoid_odds(log_a, log_b):
    """(log a/(a+b), log b/(a+b))."""
    total = jnp.logaddexp(log_a, log_b)
    return log_a - total, log_b - total


def prior_inclusion_logs(others_in, gene_size, pi_gene, pi_snp):
    """(log p, log(1 − p)): SNP j's prior inclusion probability given the other SNPs of its
    gene (``others_in`` of them in, ``gene_size`` = m_g), γ_g integrated out."""
    log_s, log_not_s = jnp.log(pi_snp), jnp.log1p(-pi_snp)
    log_a = jnp.log(pi_gene) + log_s + (gene_size - 1.0) * log_not_s
    log_b = jnp.logaddexp(jnp.log1p(-pi_gene), jnp.log(pi_gene) + gene_size * log_not_s)
    lone_in, lone_out = _log_sigmoid_odds(log_a, log_b)
    some = others_in > 0
    return jnp.where(some, log_s, lone_in), jnp.where(some, log_not_s, lone_out)


def subset_eigen(sigma_inv, masks):
    """Per ROI-subset pattern S (rows of ``masks``, 0/1): the eigendecomposition of Σ⁻¹
    restricted to S and zero-padded, (λ (P2, c), V (P2, c, c), masks); once per sweep.
    None when there are no subset patterns."""
    if masks.shape[0] == 0:
        return None
    block = masks[:, :, None] * sigma_inv[None] * masks[:, None, :]
    lam, V = jnp.linalg.eigh(0.5 * (block + jnp.swapaxes(block, 1, 2)))
    return jnp.maximum(lam, 0.0), V, masks


def component_log_bf(bhat, s, sigma_inv, kappa, rank1, sub_eig, scales2):
    """Log Bayes factors (n_patterns, n_scales) of every component against the null for
    b̂ ~ N(w, Σ/s) (formulas in the module docstring), and the pieces the w draw reuses."""
    t = sigma_inv @ bhat
    a = rank1 @ t                                        # (P1,)
    v2 = scales2[None, :]
    denom = 1.0 + v2 * s * kappa[:, None]                # (P1, S)
    log_bf = -0.5 * jnp.log(denom) + 0.5 * v2 * (s * a[:, None]) ** 2 / denom
    y = None
    if sub_eig is not None:
        lam, V, masks = sub_eig
        y = jnp.einsum("pci,pc->pi", V, masks * t[None, :])          # (P2, c)
        vs = scales2[None, :, None] * s * lam[:, None, :]             # (P2, S, c)
        lbf_sub = (-0.5 * jnp.sum(jnp.log1p(vs), axis=2)
                   + 0.5 * jnp.sum((s * y[:, None, :]) ** 2 * scales2[None, :, None]
                                   / (1.0 + vs), axis=2))
        log_bf = jnp.concatenate([log_bf, lbf_sub], axis=0)
    return log_bf, a, y


def own_subset_bf(bhat, s, sigma_inv, mask, scales2):
    """Log Bayes factors (n_scales,) of the ``"subsets"`` family at the SNP's own ROI subset
    S (0/1 ``mask``, any c) against the null, and the Cholesky pieces its w draw reuses.

    With P_t = s D_S Σ⁻¹ D_S + I/v_t² and h = s D_S Σ⁻¹ b̂: log BF_t = −½ log det(v_t² P_t)
    + ½ hᵀP_t⁻¹h (off S, P_t = I/v_t² and h = 0: those directions contribute nothing)."""
    c = mask.shape[0]
    h = s * mask * (sigma_inv @ bhat)
    P = (s * mask[:, None] * sigma_inv * mask[None, :])[None] \
        + jnp.eye(c, dtype=bhat.dtype)[None] / scales2[:, None, None]
    L = jnp.linalg.cholesky(P)                                        # (T, c, c)
    u = jax.scipy.linalg.solve_triangular(
        L, jnp.broadcast_to(h, (scales2.shape[0], c))[..., None], lower=True)[..., 0]  # (T, c)
    log_det = 2.0 * jnp.sum(jnp.log(jnp.diagonal(L, axis1=1, axis2=2)), axis=1) \
        + c * jnp.log(scales2)
    return -0.5 * log_det + 0.5 * jnp.sum(u * u, axis=1), (L, u)


def draw_own_subset(pieces, t, eps, mask):
    """w | subset S, scale t: N(P_t⁻¹h, P_t⁻¹) on S (L_tᵀw = u_t + ε), exactly 0 off S."""
    L, u = pieces
    w = jax.scipy.linalg.solve_triangular(L[t].T, u[t] + eps, lower=False)
    return mask * w


def own_shared_bf(bhat, s, sigma_inv, mask, scales2):
    """Log Bayes factors (n_scales,) of the ``"shared_subsets"`` family at the SNP's own ROI
    subset S against the null, and the pieces its w draw reuses: the rank-1 formula with
    u = 1_S (one coefficient β on the ROIs of S, exactly 0 off S), κ = 1_SᵀΣ⁻¹1_S and
    a = 1_SᵀΣ⁻¹b̂: log BF_t = −½ log(1 + v_t² s κ) + ½ v_t² s² a² / (1 + v_t² s κ)."""
    t = sigma_inv @ bhat
    kappa = mask @ sigma_inv @ mask
    a = mask @ t
    denom = 1.0 + scales2 * s * kappa
    return -0.5 * jnp.log(denom) + 0.5 * scales2 * (s * a) ** 2 / denom, (kappa, a)


def draw_own_shared(pieces, v2, s, eps0, mask):
    """w | S, scale v: w = β 1_S, β ~ N(s a / P, 1/P), P = 1/v² + s κ."""
    kappa, a = pieces
    prec = 1.0 / v2 + s * kappa
    return mask * (s * a / prec + eps0 / jnp.sqrt(prec))


def log_subset_prior(mask, rate):
    """log P(S | φ) = |S| log φ + (c − |S|) log(1 − φ) − log(1 − (1 − φ)^c): independent
    per-ROI inclusion at rate φ, S conditioned to be non-empty (−inf for S = ∅)."""
    c = mask.shape[-1]
    size = jnp.sum(mask, axis=-1)
    value = size * jnp.log(rate) + (c - size) * jnp.log1p(-rate) \
        - jnp.log1p(-jnp.power(1.0 - rate, c))
    return jnp.where(size > 0, value, -jnp.inf)


def log_proposal(mask, prob):
    """log q_j(S): SNP j's pseudo-prior over ROI subsets, independent Bernoulli(p_jk) per
    ROI conditioned on S ≠ ∅ (p_jk from the SNP's marginal evidence, fixed for the run)."""
    value = jnp.sum(mask * jnp.log(prob) + (1.0 - mask) * jnp.log1p(-prob), axis=-1)
    return value - jnp.log1p(-jnp.prod(1.0 - prob, axis=-1))


def draw_proposal(key, prob):
    """S ~ q_j: ROI by ROI, P(η_k = 1 | none of η_1..η_(k−1)) = p_k / (1 − Π_(i≥k)(1 − p_i)),
    and p_k once one ROI is in (exact sampling of the non-empty product-Bernoulli)."""
    tail = jnp.cumprod((1.0 - prob)[::-1])[::-1]                    # Π_{i ≥ k} (1 − p_i)
    unif = jax.random.uniform(key, prob.shape, prob.dtype)

    def step(any_in, k):
        p = jnp.where(any_in, prob[k], prob[k] / (1.0 - tail[k]))
        on = unif[k] < p
        return any_in | on, on.astype(prob.dtype)

    _, mask = lax.scan(step, jnp.asarray(False), jnp.arange(prob.shape[0]))
    return mask


def flip_rois(key, mask, log_bf_at, rate):
    """Per-ROI Gibbs update of an included SNP's subset S at its slab scale v, w integrated
    out: η_k | η_(−k) ∝ φ^η_k (1 − φ)^(1−η_k) BF(S with/without k) (S = ∅ excluded);
    ``log_bf_at(mask)`` is the family's log Bayes factor at that scale."""
    unif = jax.random.uniform(key, mask.shape, mask.dtype)
    log_odds_rate = jnp.log(rate) - jnp.log1p(-rate)

    def one(k, mask):
        on, off = mask.at[k].set(1.0), mask.at[k].set(0.0)
        logit = jnp.where(jnp.sum(off) > 0,
                          log_odds_rate + log_bf_at(on) - log_bf_at(off), jnp.inf)
        return jnp.where(unif[k] < jax.nn.sigmoid(logit), on, off)

    return lax.fori_loop(0, mask.shape[0], one, mask)


def draw_rate(key, masks, used, grid, log_prior):
    """φ | the subsets of the SNPs in the ``"subsets"`` family: exact, φ takes the values of
    ``grid`` with prior log-weights ``log_prior``."""
    c = masks.shape[1]
    sizes = jnp.sum(masks, axis=1) * used
    n_used = jnp.sum(used)
    log_post = log_prior + (jnp.sum(sizes) * jnp.log(grid) + (c * n_used - jnp.sum(sizes))
                * jnp.log1p(-grid) - n_used * jnp.log1p(-jnp.power(1.0 - grid, c)))
    return grid[jax.random.categorical(key, log_post)]


def update_logits(bhat, s, others_in, gene_size, pi_gene, pi_snp, log_weights, sigma_inv,
                  kappa, rank1, sub_eig, scales2):
    """Unnormalised log P(δ_j = 0), log P(δ_j = 1, component m) for m = 1 … K (the order of
    ``mixture_weights``) of one SNP given the rest, γ of its gene integrated out; also the
    pieces the draw of w_j reuses."""
    log_in, log_out = prior_inclusion_logs(others_in, gene_size, pi_gene, pi_snp)
    log_bf, a, y = component_log_bf(bhat, s, sigma_inv, kappa, rank1, sub_eig, scales2)
    return jnp.concatenate([log_out[None], log_in + log_weights + log_bf.reshape(-1)]), a, y


#: a pair move links SNP j to the SNP within ±PARTNER_WINDOW positions (any gene: LD crosses
#: gene borders) with the largest |r|, if |r| ≥ PARTNER_MIN_R
PARTNER_WINDOW = 50
PARTNER_MIN_R = 0.5


def ld_partners(X, gene_index, xx):
    """(partner (d,) int32, −1 for none; x_jᵀx_partner (d,)) from a window of neighbours
    (one pass over X per offset: memory n·d, cost 2·PARTNER_WINDOW·n·d once per fit)."""
    n, d = X.shape
    offsets = jnp.concatenate([jnp.arange(-PARTNER_WINDOW, 0), jnp.arange(1, PARTNER_WINDOW + 1)])
    cols = jnp.arange(d)

    def at_offset(o):
        k = jnp.clip(cols + o, 0, d - 1)
        gram = jnp.sum(X * jnp.roll(X, -o, axis=1), axis=0)       # x_jᵀx_{j+o}
        valid = (cols + o >= 0) & (cols + o < d)
        r = jnp.where(valid, jnp.abs(gram) / jnp.sqrt(xx * xx[k]), 0.0)
        return r, gram

    r, gram = lax.map(at_offset, offsets)                           # (2w, d) each
    best = jnp.argmax(r, axis=0)
    partner = jnp.where(r[best, cols] >= PARTNER_MIN_R, cols + offsets[best], -1)
    return partner.astype(jnp.int32), gram[best, cols]


class SpikeSlabGibbs(ExactGibbsKernel):
    """Blocked Gibbs kernel for :class:`~bayesimg.models.gsmtr.SpikeSlabMTR`.

    Patterns: rank-1 ones (rows u of ``model_kwargs["patterns"]``, U = uuᵀ) first, then
    ROI-subset ones (0/1 rows of ``model_kwargs["subsets"]``, U = diag(mask): independent
    effects on the ROIs of the subset, exactly 0 elsewhere; all ones is U = I).
    """

    def __init__(self, *, residual: str = "full", covariate_scale: float = 10.0,
                 mixture_prior: str = "product", own_families: tuple[str, ...] = ()):
        self.residual = residual
        self.covariate_scale = covariate_scale
        self.mixture_prior = mixture_prior
        #: the own-subset families, the last len(own_families) patterns, in this order:
        #: "subsets" (U = D_S) and/or "shared_subsets" (w = β 1_S); one S_j per SNP
        unknown = set(own_families) - set(OWN_FAMILIES)
        if unknown:
            raise ValueError(f"unknown own-subset families {sorted(unknown)}")
        self.own_families = tuple(own_families)

    # ------------------------------------------------------------------ init
    def init(self, rng_key, num_warmup, init_params, model_args, model_kwargs):
        kw = model_kwargs
        X, Y, Z = kw["X"], kw["Y"], site_augmented(kw)
        r = 0 if kw["Z"] is None else kw["Z"].shape[1]
        n, d = X.shape
        c = Y.shape[1]
        dtype = X.dtype
        n_genes = kw["gene_sizes"].shape[0]
        cache = {"xx": jnp.maximum(jnp.sum(X * X, axis=0), jnp.finfo(dtype).tiny)}
        cache["partner"], cache["partner_gram"] = ld_partners(X, kw["gene_index"], cache["xx"])
        if d <= n:
            cache["XtX"] = X.T @ X
            cache["XtY"] = X.T @ Y
            cache["YtY"] = Y.T @ Y
            if Z is not None:
                cache["XtZ"] = X.T @ Z
        else:
            cache["Xt"] = X.T
        target = Y
        z = {}
        if Z is not None:
            cache["ZtZ"] = Z.T @ Z
            cache["ZtY"] = Z.T @ Y
        if r:
            cache["ZtZ_eig"] = jnp.linalg.eigh(cache["ZtZ"][:r, :r])
            z["gamma"] = jnp.linalg.solve(
                cache["ZtZ"][:r, :r] + jnp.eye(r, dtype=dtype) / self.covariate_scale**2,
                cache["ZtY"][:r])
            target = Y - kw["Z"] @ z["gamma"]
        if kw.get("H") is not None:
            z.update(initial_site_state(kw["H"].shape[1], c, kw["site_scale"], dtype))
        cov = target.T @ target / n + 1e-6 * jnp.eye(c, dtype=dtype)
        if self.residual == "diagonal":
            cov = jnp.diag(jnp.diag(cov))
        z.update({
            "W": jnp.zeros((d, c), dtype),
            "snp_in": jnp.zeros((d,), jnp.int32),
            "slab_component": jnp.full((d,), -1, jnp.int32),
            "gene_in": jnp.zeros((n_genes,), jnp.int32),
            "pi_gene": jnp.asarray(0.5, dtype),
            "pi_snp": jnp.asarray(0.1, dtype),
            "mixture_weights": active_weights(kw["dirichlet_alpha"]).astype(dtype),
            "Sigma": cov,
        })
        if kw.get("roi_proposal") is not None:
            # S_j: each SNP's own ROI subset (the "subsets" family), φ: the per-ROI rate
            z["roi_subset"] = jnp.ones((d, c), jnp.int8)
            # one rate per own-subset family: its prior mean on the grid
            grid, log_prior = kw["roi_rate_grid"], kw["roi_rate_log_prior"]
            z["roi_rate"] = (jnp.exp(log_prior) @ grid).astype(dtype)
        # every SNP out is a valid state: no sweep here (it would compile the sweep twice)
        return SpikeSlabGibbsState(jnp.zeros((), jnp.int32), z, cache, rng_key,
                                   {"cholesky_jitter": jnp.zeros((), jnp.int32)})

    # ---------------------------------------------------------------- sweep
    def sample(self, state, model_args, model_kwargs):
        kw = model_kwargs
        X, Y, Z = kw["X"], kw["Y"], site_augmented(kw)
        r = 0 if kw["Z"] is None else kw["Z"].shape[1]
        gene_index, gene_sizes = kw["gene_index"], kw["gene_sizes"]
        rank1, scales = kw["patterns"], kw["slab_scales"]
        n, d = X.shape
        c = Y.shape[1]
        dtype = X.dtype
        n_genes = gene_sizes.shape[0]
        n_scales = scales.shape[0]
        z = dict(state.z)
        cache = state.cache
        narrow = "XtX" in cache
        key, next_key = jax.random.split(state.rng_key)
        keys = jax.random.split(key, 10)

        # ---- what every SNP update shares: Σ⁻¹, its eigenbasis, κ_p = u_pᵀΣ⁻¹u_p
        Sigma = z["Sigma"]
        L, n_jitter = robust_cholesky(Sigma)
        sigma_inv = jax.scipy.linalg.cho_solve((L, True), jnp.eye(c, dtype=dtype))
        sub_eig = subset_eigen(sigma_inv, kw["subsets"])
        kappa = jnp.sum((rank1 @ sigma_inv) * rank1, axis=1)
        scales2 = scales**2
        log_pi = jnp.log(z["mixture_weights"])

        # ---- the running residual (or Xᵀ residual), rebuilt from scratch every sweep
        W = z["W"]
        if narrow:
            xt_target = (cache["XtY"] if Z is None
                         else cache["XtY"] - cache["XtZ"] @ stacked_coefficients(z))
            resid = xt_target - cache["XtX"] @ W
        else:
            target = Y if Z is None else Y - Z @ stacked_coefficients(z)
            resid = target - X @ W

        unif = jax.random.uniform(keys[0], (d,), dtype)
        normal = flat_random.normal(keys[1], (d, c), dtype)
        xx = cache["xx"]
        n_in = jax.ops.segment_sum(z["snp_in"], gene_index, num_segments=n_genes)

        n_rank1 = rank1.shape[0]
        n_comp = log_pi.shape[0]
        # the own-subset families (each SNP's own ROI subset S_j, one S_j shared by the
        # families), the last n_own × n_scales components
        families = self.own_families
        n_own = len(families)
        own = n_own > 0
        n_fixed = n_comp - n_own * n_scales
        own_index = n_fixed // n_scales              # pattern index of the first family
        if own:
            proposal = kw["roi_proposal"]
            rate = z["roi_rate"]                      # (n_own,)
            log_pi_fixed, log_pi_own = log_pi[:n_fixed], log_pi[n_fixed:]
            roi_keys = flat_random.split(keys[4], (2, d))
        else:
            log_pi_fixed = log_pi

        def family_bf(f, bhat, s, mask, v2):
            """(log BF (n_scales,), pieces) of own-subset family ``families[f]`` at S."""
            bf = own_subset_bf if families[f] == "subsets" else own_shared_bf
            return bf(bhat, s, sigma_inv, mask, v2)

        def own_terms(j, bhat, s, mask):
            """log π_m + log BF + log P_f(S_j | φ_f) − log q_j(S_j) of every own-subset
            component (family-major), the pseudo-prior ratio of Carlin & Chib: S_j is in
            the state whether used or not, distributed as q_j when unused; and the pieces
            the w draws reuse (one per family)."""
            log_q = log_proposal(mask, proposal[j])
            terms, pieces = [], []
            for f in range(n_own):
                lbf, pc = family_bf(f, bhat, s, mask, scales2)
                terms.append(lbf + log_subset_prior(mask, rate[f]) - log_q)
                pieces.append(pc)
            return log_pi_own + jnp.concatenate(terms), tuple(pieces)

        def draw_own(m, pieces, s, eps, mask):
            """w | own-subset component m (family f = m // n_scales − own_index, scale t)."""
            f, t = m // n_scales - own_index, m % n_scales
            w = jnp.zeros((c,), dtype)
            for g in range(n_own):
                if families[g] == "subsets":
                    w_g = draw_own_subset(pieces[g], t, eps, mask)
                else:
                    w_g = draw_own_shared(pieces[g], scales2[t], s, eps[0], mask)
                w = jnp.where(f == g, w_g, w)
            return w

        def draw_effect(m, s, a, y, eps):
            """w | component m from the single-SNP likelihood (s = x_jᵀx_j)."""
            p, t = m // n_scales, m % n_scales
            v2 = scales2[t]
            w = jnp.zeros((c,), dtype)
            if n_rank1:
                # rank-1 pattern u_p: w = β u_p
                p1 = jnp.minimum(p, n_rank1 - 1)
                prec = 1.0 / v2 + s * kappa[p1]
                beta = s * a[p1] / prec + eps[0] / jnp.sqrt(prec)
                w = beta * rank1[p1]
            if sub_eig is not None:
                # ROI subset S: in the eigenbasis of Σ⁻¹ restricted to S, independent
                # N(s y_i / P_i, 1/P_i), P_i = 1/v² + s λ_i; directions off S are 0
                lam, V, masks = sub_eig
                q = jnp.clip(p - n_rank1, 0, masks.shape[0] - 1)
                prec_i = 1.0 / v2 + s * lam[q]
                coef = jnp.where(lam[q] > 0, s * y[q] / prec_i + eps / jnp.sqrt(prec_i), 0.0)
                w_sub = masks[q] * (V[q] @ coef)
                w = jnp.where(p >= n_rank1, w_sub, w)
            return w

        def column_of(j):
            return cache["XtX"][j] if narrow else cache["Xt"][j]

        def xt_resid(j, resid):
            return resid[j] if narrow else column_of(j) @ resid

        def one_snp(j, carry):
            resid, W, snp_in, comp, n_in, subsets = carry
            s = xx[j]
            w_old = W[j]
            bhat = xt_resid(j, resid) / s + w_old
            g = gene_index[j]
            was_in = snp_in[j]
            logits, a, y = update_logits(bhat, s, n_in[g] - was_in, gene_sizes[g],
                                         z["pi_gene"], z["pi_snp"], log_pi_fixed, sigma_inv,
                                         kappa, rank1, sub_eig, scales2)
            if own:
                # S_j unused (SNP out, or in another family): redraw it from q_j, its full
                # conditional; then (δ_j, component) with w_j integrated out, given S_j
                mask = subsets[j]
                was_used = (was_in > 0) & (comp[j] // n_scales >= own_index)
                mask = jnp.where(was_used, mask, draw_proposal(roi_keys[0, j], proposal[j]))
                own_logits, _ = own_terms(j, bhat, s, mask)
                log_in = prior_inclusion_logs(n_in[g] - was_in, gene_sizes[g], z["pi_gene"],
                                              z["pi_snp"])[0]
                logits = jnp.concatenate([logits, log_in + own_logits])
            choice = _categorical(logits, unif[j])
            included = choice > 0
            m = jnp.maximum(choice - 1, 0)
            w_new = draw_effect(m, s, a, y, normal[j])
            if own:
                # S_j used: per-ROI Gibbs flips under the chosen family at the chosen slab
                # scale (w_j integrated out), then w_j | S_j
                f = m // n_scales - own_index
                used = included & (f >= 0)
                t = m % n_scales

                def refine(args):
                    mk, _ = args
                    v2 = jnp.reshape(scales2[t], (1,))
                    branches = [
                        (lambda mk, g=g: flip_rois(
                            roi_keys[1, j], mk,
                            lambda msk: family_bf(g, bhat, s, msk, v2)[0][0], rate[g]))
                        for g in range(n_own)]
                    mk = lax.switch(jnp.clip(f, 0, n_own - 1), branches, mk)
                    pieces = tuple(family_bf(g, bhat, s, mk, scales2)[1] for g in range(n_own))
                    return mk, draw_own(m, pieces, s, normal[j], mk)

                mask, w_new = lax.cond(used, refine, lambda args: args, (mask, w_new))
                subsets = subsets.at[j].set(mask)
            w_new = jnp.where(included, w_new, 0.0)
            delta_w = w_old - w_new
            resid = lax.cond(jnp.any(delta_w != 0),
                             lambda r: r + jnp.outer(column_of(j), delta_w), lambda r: r, resid)
            now_in = included.astype(jnp.int32)
            return (resid, W.at[j].set(w_new), snp_in.at[j].set(now_in),
                    comp.at[j].set(jnp.where(included, m, -1).astype(jnp.int32)),
                    n_in.at[g].add(now_in - was_in), subsets)

        subsets = z["roi_subset"].astype(dtype) if own else jnp.zeros((d, 0), dtype)
        resid, W, snp_in, comp, n_in, subsets = lax.fori_loop(
            0, d, one_snp, (resid, W, z["snp_in"], z["slab_component"], n_in, subsets))

        # ---- pair moves: SNP j and its LD partner k (|r| ≥ PARTNER_MIN_R).  When exactly one
        # of them is in, (δ_j, w_j, δ_k, w_k) is redrawn from the posterior restricted to
        # {exactly one in}: j in with component m, or k in with m.  A Gibbs step given the
        # cell, so exact: prior odds × π_m × BF against both out, each b̂ computed with both
        # removed (within one gene the prior odds are 1; LD crosses gene borders).  It
        # lets a signal move between proxies in one step (single-SNP updates must pass
        # through "both in" or "both out"); pairs not in the cell are skipped at no cost.
        # "subsets" components use each SNP's own S (S_j for j, S_k for k, both kept) with
        # its factor P(S | φ) / q(S), as in the single-SNP step.
        partner = cache["partner"]
        pair_unif = jax.random.uniform(keys[8], (d,), dtype)
        pair_normal = flat_random.normal(keys[9], (d, c), dtype)

        def swap(j, carry):
            resid, W, snp_in, comp, n_in, subsets = carry
            k = jnp.maximum(partner[j], 0)
            gram = cache["partner_gram"][j]
            s_j, s_k = xx[j], xx[k]
            bhat_j = (xt_resid(j, resid) + s_j * W[j] + gram * W[k]) / s_j
            bhat_k = (xt_resid(k, resid) + s_k * W[k] + gram * W[j]) / s_k
            lbf_j, a_j, y_j = component_log_bf(bhat_j, s_j, sigma_inv, kappa, rank1,
                                               sub_eig, scales2)
            lbf_k, a_k, y_k = component_log_bf(bhat_k, s_k, sigma_inv, kappa, rank1,
                                               sub_eig, scales2)
            # prior odds: equal within one gene; across genes the genes' priors factorise,
            # P(j in, k out) = p_j (1 − p_k) with p from each gene's other SNPs (γ integrated)
            g_j, g_k = gene_index[j], gene_index[k]
            in_j, out_j = prior_inclusion_logs(n_in[g_j] - snp_in[j], gene_sizes[g_j],
                                               z["pi_gene"], z["pi_snp"])
            in_k, out_k = prior_inclusion_logs(n_in[g_k] - snp_in[k], gene_sizes[g_k],
                                               z["pi_gene"], z["pi_snp"])
            cross = g_j != g_k
            prior_j = jnp.where(cross, in_j + out_k, 0.0)
            prior_k = jnp.where(cross, out_j + in_k, 0.0)
            logit_j = log_pi_fixed + lbf_j.reshape(-1)
            logit_k = log_pi_fixed + lbf_k.reshape(-1)
            if own:
                # each SNP's own subset (S_j, S_k kept), with its pseudo-prior ratio
                own_j, pieces_j = own_terms(j, bhat_j, s_j, subsets[j])
                own_k, pieces_k = own_terms(k, bhat_k, s_k, subsets[k])
                logit_j = jnp.concatenate([logit_j, own_j])
                logit_k = jnp.concatenate([logit_k, own_k])
            logits = jnp.concatenate([prior_j + logit_j, prior_k + logit_k])
            choice = _categorical(logits, pair_unif[j])
            k_in = choice >= n_comp
            m = jnp.where(k_in, choice - n_comp, choice).astype(jnp.int32)
            eff_j = draw_effect(m, s_j, a_j, y_j, pair_normal[j])
            eff_k = draw_effect(m, s_k, a_k, y_k, pair_normal[j])
            if own:
                used = m // n_scales >= own_index
                eff_j = jnp.where(used, draw_own(m, pieces_j, s_j, pair_normal[j],
                                                 subsets[j]), eff_j)
                eff_k = jnp.where(used, draw_own(m, pieces_k, s_k, pair_normal[j],
                                                 subsets[k]), eff_k)
            w_j = jnp.where(k_in, 0.0, eff_j)
            w_k = jnp.where(k_in, eff_k, 0.0)
            resid = (resid + jnp.outer(column_of(j), W[j] - w_j)
                     + jnp.outer(column_of(k), W[k] - w_k))
            new_k = k_in.astype(jnp.int32)
            comp = comp.at[j].set(jnp.where(k_in, -1, m)).at[k].set(jnp.where(k_in, m, -1))
            n_in = n_in.at[g_j].add(1 - new_k - snp_in[j]).at[g_k].add(new_k - snp_in[k])
            return (resid, W.at[j].set(w_j).at[k].set(w_k),
                    snp_in.at[j].set(1 - new_k).at[k].set(new_k), comp, n_in, subsets)

        def pair_move(j, carry):
            snp_in = carry[2]
            k = jnp.maximum(partner[j], 0)
            in_cell = (partner[j] >= 0) & (snp_in[j] + snp_in[k] == 1)
            return lax.cond(in_cell, lambda cr: swap(j, cr), lambda cr: cr, carry)

        resid, W, snp_in, comp, n_in, subsets = lax.fori_loop(
            0, d, pair_move, (resid, W, snp_in, comp.astype(jnp.int32), n_in, subsets))
        z["W"], z["snp_in"], z["slab_component"] = W, snp_in, comp
        if own:
            # φ_f | the subsets in use by family f
            z["roi_subset"] = subsets.astype(jnp.int8)
            rate_keys = jax.random.split(keys[5], n_own)
            z["roi_rate"] = jnp.stack([
                draw_rate(rate_keys[f], subsets,
                          ((snp_in > 0) & (comp // n_scales == own_index + f)).astype(dtype),
                          kw["roi_rate_grid"], kw["roi_rate_log_prior"][f])
                for f in range(n_own)]).astype(dtype)

        # ---- γ | δ, π ;  π_gene | γ ;  π_snp | δ, γ ;  mixture weights | components
        a_g, b_g, a_s, b_s = (kw["inclusion_prior"][i] for i in range(4))
        pi_g, pi_s = z["pi_gene"], z["pi_snp"]
        log_on = jnp.log(pi_g) + gene_sizes * jnp.log1p(-pi_s)
        p_on = jnp.exp(log_on - jnp.logaddexp(log_on, jnp.log1p(-pi_g)))
        draw_on = jax.random.uniform(keys[2], (n_genes,), dtype) < p_on
        gene_in = ((n_in > 0) | draw_on).astype(jnp.int32)
        n_genes_in = jnp.sum(gene_in)
        n_snps_in = jnp.sum(snp_in)
        eligible = jnp.sum(gene_in * gene_sizes)
        z["gene_in"] = gene_in
        counts = jnp.zeros_like(kw["dirichlet_alpha"]).at[jnp.maximum(comp, 0)].add(
            snp_in.astype(dtype))

        # ---- Σ | W, Γ (its sufficient statistic EᵀE)
        if narrow:
            # EᵀE = TᵀT − (XᵀT)ᵀW − Wᵀ(XᵀE), T = Y − ZΓ, from sufficient statistics
            tt = cache["YtY"]
            if Z is not None:
                g_ = stacked_coefficients(z)
                zty = cache["ZtY"]
                tt = tt - g_.T @ zty - zty.T @ g_ + g_.T @ cache["ZtZ"] @ g_
            ete = tt - xt_target.T @ W - W.T @ resid
        else:
            ete = resid.T @ resid
        ete = 0.5 * (ete + ete.T)
        nu0, psi0 = kw["sigma_prior_df"], kw["sigma_prior_scale"]
        if self.residual == "full":
            sigma_shapes = (nu0 + n - jnp.arange(c, dtype=dtype)) / 2.0   # Bartlett's χ²/2
        else:
            sigma_shapes = jnp.full((c,), (nu0 - c + 1.0 + n) / 2.0, dtype)

        # every Gamma variate of the sweep in ONE call (each call site of jax.random.gamma
        # adds seconds of compile time): π_gene, π_snp (Beta as two Gammas each), the
        # Dirichlet weights, and Σ's
        alpha = kw["dirichlet_alpha"]
        if self.mixture_prior == "product":
            # π_(p,t) = ω_p ρ_t: pattern counts and scale counts, two Dirichlets
            a_pat, a_scale = alpha.reshape(-1, n_scales)[:, 0], jnp.max(
                alpha.reshape(-1, n_scales), axis=0)
            per = counts.reshape(-1, n_scales)
            weight_shapes = jnp.concatenate([jnp.where(a_pat > 0, a_pat + per.sum(axis=1), 1.0),
                                             a_scale + per.sum(axis=0)])
        else:
            weight_shapes = jnp.where(alpha > 0, alpha + counts, 1.0)
        n_w = weight_shapes.shape[0]
        shapes = jnp.concatenate([
            jnp.stack([a_g + n_genes_in, b_g + n_genes - n_genes_in,
                       a_s + n_snps_in, b_s + eligible - n_snps_in]).astype(dtype),
            weight_shapes, sigma_shapes])
        gam = jnp.maximum(gamma(keys[3], shapes, dtype=dtype),
                          jnp.finfo(dtype).tiny)
        z["pi_gene"] = _inside_unit(gam[0] / (gam[0] + gam[1]))
        z["pi_snp"] = _inside_unit(gam[2] / (gam[2] + gam[3]))
        if self.mixture_prior == "product":
            n_pat = a_pat.shape[0]
            omega = jnp.where(a_pat > 0, gam[4:4 + n_pat], 0.0)
            rho = gam[4 + n_pat:4 + n_w]
            weights = (omega[:, None] / jnp.sum(omega) * (rho / jnp.sum(rho))[None, :]).ravel()
        else:
            weights = jnp.where(alpha > 0, gam[4:4 + n_w], 0.0)
        z["mixture_weights"] = weights / jnp.sum(weights)
        sigma_gammas = gam[4 + n_w:]
        if self.residual == "full":
            Sigma = inverse_wishart(keys[6], 2.0 * sigma_gammas, psi0 + ete)
        else:
            Sigma = jnp.diag((jnp.diag(psi0) / 2.0 + jnp.diag(ete) / 2.0) / sigma_gammas)
        z["Sigma"] = Sigma

        # ---- Γ | W, Σ
        if Z is not None:
            zt_e = (cache["ZtY"] - cache["XtZ"].T @ W) if narrow else Z.T @ (Y - X @ W)
            lam_s, Q_s = jnp.linalg.eigh(Sigma)
            prec_eig = (1.0 / lam_s, Q_s)
            sigma_inv_e = Q_s @ (Q_s.T / lam_s[:, None])
            if r:
                zt_g = zt_e[:r]
                if kw.get("H") is not None:
                    zt_g = zt_g - cache["ZtZ"][:r, r:] @ z["site_effect"]
                z["gamma"] = matrix_normal_kron(keys[7], cache["ZtZ_eig"], prec_eig,
                                                zt_g @ sigma_inv_e,
                                                1.0 / self.covariate_scale**2)
            if kw.get("H") is not None:
                # u | Γ, W, Σ (rows independent over sites), then τ, ν | u
                sums = zt_e[r:]
                if r:
                    sums = sums - cache["ZtZ"][r:, :r] @ z["gamma"]
                counts = jnp.diagonal(cache["ZtZ"][r:, r:])
                k_u, k_tau = jax.random.split(jax.random.fold_in(keys[7], 13))
                u, jit = site_effects_given_precisions(
                    k_u, counts[:, None, None] * sigma_inv_e[None], sums @ sigma_inv_e,
                    z["site_sd"], return_jitter=True)
                n_jitter = n_jitter + jit
                z["site_effect"] = u
                z["site_sd"], z["site_aux"] = draw_site_scales(k_tau, u, z["site_aux"],
                                                               kw["site_scale"])

        return SpikeSlabGibbsState(state.i + 1, z, cache, next_key,
                                   {"cholesky_jitter": n_jitter})


def active_weights(alpha):
    """Equal mixture weights over the components with Dirichlet α > 0 (α = 0: weight exactly
    0, never chosen)."""
    active = (alpha > 0).astype(alpha.dtype)
    return active / jnp.sum(active)


def inverse_wishart(key, chi2, scale):
    """Σ ~ InvWishart(df, scale) by Bartlett's decomposition, given ``chi2`` (c,) with
    chi2_i ~ χ²(df − i): with scale = CCᵀ and A lower triangular, A_ii = √chi2_i,
    A_ij ~ N(0, 1) (i > j), Σ⁻¹ = C⁻ᵀAAᵀC⁻¹ is Wishart(df, scale⁻¹), so Σ = VᵀV with
    V = A⁻¹Cᵀ.  (numpyro's InverseWishart sampler costs ~6 s of compile time.)"""
    c = scale.shape[0]
    A = jnp.tril(flat_random.normal(key, (c, c), scale.dtype), -1) + jnp.diag(jnp.sqrt(chi2))
    C, _ = robust_cholesky(scale)
    V = solve_lower(A, C.T)
    Sigma = V.T @ V
    return 0.5 * (Sigma + Sigma.T)


def _categorical(logits, u):
    """Index drawn from softmax(``logits``) by inverting its CDF at the uniform ``u``."""
    cdf = jnp.cumsum(jax.nn.softmax(logits))
    return jnp.minimum(jnp.sum(cdf[:-1] < u), logits.shape[0] - 1)


def _inside_unit(p):
    """Keep π strictly inside (0, 1): the inclusion odds take logs of π and 1 − π."""
    eps = jnp.finfo(p.dtype).eps
    return jnp.clip(p, eps, 1.0 - eps)
