r"""Exact Gibbs kernel for the Bayesian-network mixture, with Metropolis moves on node orders.

Coefficients (partial pooling, the default ``pool=True``): node j's intercept and
edge weights in cluster k are a shared part plus a cluster deviation,

    μ_kj = m_j + δ_kj,    B_k[i, j] = B₀[i, j] + Δ_k[i, j],

with m_j ~ N(0, s_μ²), B₀ a horseshoe network (unscaled; whitelisted edges
N(0, c²)), Δ_k[i, j] ~ N(0, σ²_kj τ_k² λ²_kij) and δ_kj ~ N(0, ω² ψ²_kj) (both
horseshoes).  With ``pool=False`` the shared parts are 0, δ_kj ~ N(0, s_μ²) and
whitelisted Δ ~ N(0, σ²_kj c²): independent clusters.

One sweep (all blocks vectorised over clusters and nodes; shapes fixed, the
order enters only through an edge mask):

1. z_i | · ~ Categorical(∝ π_k p(x_i | θ_k)) (fixed where the label is known);
2. π | z ~ Dirichlet(α + n_k);
3. sufficient statistics S_k = Σ_{i: z_i = k} x̃_i x̃_iᵀ with x̃ = (1, x);
4. (optional) Metropolis moves on the shared node order, with the coefficients
   integrated out (each node's likelihood over all clusters is a closed-form
   Gaussian marginal given σ², λ, τ, ψ, ω:
   :func:`~bayesimg.models.bnmix.math.pooled_node_regression`), in
   ``order_moves`` passes of adjacent transpositions — every adjacent pair once,
   in two phases of disjoint pairs whose decisions are independent — and
   ``relocations`` relocation / segment-reversal proposals.  A proposal is a
   deterministic involution on (order, λ, ν, σ²): a pair whose direction flips
   exchanges its local scales (λ_ab ↔ λ_ba), so a strong edge can turn round
   instead of losing its scale, and the residual variance of a node whose parent
   set changes is multiplied by the ratio of its ridge residual variances under
   the new and old parents (Jacobian included).  Without these two parts an
   edge reversal is judged with the old σ² and a prior-drawn λ, and the order
   chain freezes in a poor order (the order-consistency of the true DAGs' edges
   stayed at 0.4–0.6 from the greedy start; with them it reaches 0.8–1.0).
   Moves that reverse a whitelisted edge are rejected.  The coefficients are
   redrawn from their conditional right after, so (order, coefficients) is one
   block;
5. (m_j, B₀[:, j], δ_·j, Δ_·[:, j]) | · — for every Gaussian node one exact joint
   draw of the shared and all K deviation coefficients (a Bayesian regression,
   solved through the Schur complement of its arrowhead precision);
   binary nodes (roots): θ_kj ~ Beta(1 + Σ x, 1 + n_k − Σ x), μ_kj = logit θ_kj;
6. σ²_kj | · ~ InvGamma(a + n_k/2 + m_j/2, b + RSS_kj/2 + Σ_i Δ²_kij/(2 τ_k² λ²_kij))
   (m_j: allowed parents of j);
7. horseshoe scales by the auxiliary-variable scheme of Makalic & Schmidt (2016),
   for each of the three horseshoes (Δ: local λ, global τ_k; B₀: λ₀, τ₀; δ: ψ, ω):
   λ² | ν ~ IG(1, 1/ν + b²/(2 s² τ²)), ν ~ IG(1, 1/A² + 1/λ²),
   τ² ~ IG((m + 1)/2, 1/ξ + Σ b²/(2 s² λ²)), ξ ~ IG(1, 1/τ_prior² + 1/τ²)
   (s² = σ²_kj for Δ, 1 otherwise; inactive coefficients: λ², ν from their prior).

The kernel is a NumPyro ``MCMCKernel`` driven by the shared compiled MCMC driver.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.linalg import solve_triangular

from bayesimg.models.bnmix.math import (
    adjacent_swap_proposal,
    allowed_from_position,
    component_loglik,
    label_mask,
    mixture_loglik,
    pooled_node_regression,
)
from bayesimg.models.core import flat_random
from bayesimg.models.core.gamma import gamma
from bayesimg.models.core.gibbs_kernel import ExactGibbsKernel
from bayesimg.stored_programs import stored_jit


def dist_ig_logpdf(a, b):
    """log density of InvGamma(a, b) (up to its normaliser, which cancels in ratios)."""
    return lambda x: -(a + 1.0) * jnp.log(x) - b / x


class BNMixGibbsState(NamedTuple):
    i: jnp.ndarray
    z: dict
    stats: dict
    rng_key: jnp.ndarray


def node_coefficient_sd(z, col, j, white_col, slab_scale, mean_scale, pool: bool):
    """Prior sds of node j's coefficients (intercept, b_{1..p, j}) given its allowed
    parents ``col`` (p,) and whitelist column: ``(sd0 (P,), sd (K, P))``, the shared
    part and the cluster deviations (P = p + 1)."""
    sigma2 = z["sigma2"][:, j]
    K = sigma2.shape[0]
    dev = jnp.where(white_col[None] & (not pool), slab_scale, z["tau"][:, None] * z["lam"][:, :, j])
    sd_b = jnp.where(col[None], dev * jnp.sqrt(sigma2)[:, None], 0.0)            # (K, p)
    if pool:
        sd_mu = z["omega"] * z["psi"][:, j]
        sh = jnp.where(white_col, slab_scale, z["tau_shared"] * z["lam_shared"][:, j])
        sd0 = jnp.concatenate([jnp.full((1,), mean_scale, sigma2.dtype),
                               jnp.where(col, sh, 0.0)])
    else:
        sd_mu = jnp.full((K,), mean_scale, sigma2.dtype)
        sd0 = jnp.zeros((col.shape[0] + 1,), sigma2.dtype)
    return sd0, jnp.concatenate([sd_mu[:, None], sd_b], axis=1)


def _horseshoe(b2, active, nu, xi, tau2, tau_scale, local_scale2, gammas, axes):
    """One Makalic–Schmidt update of a horseshoe block.

    ``b2`` = b²/s² (s² the coefficient's noise scaling, or 1), ``active`` where the
    coefficient exists, ``tau2`` the current global scale² (broadcastable), ``gammas``
    standard Gamma variates of shapes (1 or ½, 1, (m + 1)/2, 1).  Returns the new
    (λ², ν, τ², ξ).
    """
    g_lam, g_nu, g_tau, g_xi = gammas
    lam2 = (1.0 / nu + jnp.where(active, b2, 0.0) / (2.0 * tau2)) / g_lam
    nu = (1.0 / local_scale2 + 1.0 / lam2) / g_nu
    tau2 = (1.0 / xi + jnp.sum(jnp.where(active, b2 / (2.0 * lam2), 0.0), axis=axes)) / g_tau
    xi = (1.0 / tau_scale**2 + 1.0 / tau2) / g_xi
    return lam2, nu, tau2, xi


class BNMixGibbs(ExactGibbsKernel):
    """Blocked Gibbs + order-Metropolis kernel for :class:`~bayesimg.models.BNMix`."""

    def __init__(self, order_moves: int = 0, pool: bool = True, relocations: int = 0,
                 carry_scales: bool = True):
        # carry_scales=False: plain order proposals at fixed λ, σ² (valid, but slow to
        # mix on larger problems; kept as the reference the tests compare against)
        self.carry_scales = bool(carry_scales)
        self.order_moves = int(order_moves)
        self.relocations = int(relocations)
        self.pool = bool(pool)

    # ------------------------------------------------------------------ init
    def init(self, rng_key, num_warmup, init_params, model_args, model_kwargs):
        kw = model_kwargs
        X = kw["X"]
        K = kw["alpha"].shape[0]
        labels = kw["init_labels"]
        counts = jnp.bincount(labels, length=K).astype(X.dtype)
        p = X.shape[1]
        ones = jnp.ones((K, p, p), X.dtype)
        z = {
            "pi": (counts + 1.0) / (counts.sum() + K),
            "mu": kw["init_mu"],
            "sigma2": kw["init_sigma2"],
            "B": kw["init_B"],
            "tau": kw["init_tau"],
            "lam": ones,
            "nu": ones,
            "xi": jnp.ones((K,), X.dtype),
            "labels": labels,
            "position": kw["init_position"],
            "mu_shared": kw["init_mu_shared"],
            "B_shared": kw["init_B_shared"],
            "tau_shared": kw["init_tau_shared"],
            "lam_shared": ones[0],
            "nu_shared": ones[0],
            "xi_shared": jnp.ones((), X.dtype),
            "omega": kw["init_omega"],
            "psi": jnp.ones((K, p), X.dtype),
            "nu_psi": jnp.ones((K, p), X.dtype),
            "xi_omega": jnp.ones((), X.dtype),
        }
        stats = {"order_accept": jnp.zeros((), X.dtype), "log_lik": jnp.zeros((), X.dtype)}
        return BNMixGibbsState(jnp.zeros((), jnp.int32), z, stats, rng_key)

    # ---------------------------------------------------------------- sweep
    def sample(self, state, model_args, model_kwargs):
        kw = model_kwargs
        pool = self.pool
        X, is_binary = kw["X"], kw["is_binary"]
        base, white = kw["base_allowed"], kw["whitelist"]
        known = kw["known"]
        n, p = X.shape
        z = dict(state.z)
        K = z["pi"].shape[0]
        dtype = X.dtype
        keys = jax.random.split(state.rng_key, 12)
        slab, mean_scale = kw["slab_scale"], kw["mean_scale"]

        # 1: labels
        comp = component_loglik(X, z["mu"], z["B"], z["sigma2"], is_binary)
        comp = comp + jnp.log(z["pi"])[:, None] + label_mask(known, K)
        labels = flat_random.categorical(keys[0], comp, axis=0)
        onehot = jax.nn.one_hot(labels, K, dtype=dtype)
        counts = onehot.sum(axis=0)

        # 3: sufficient statistics
        Xt = jnp.concatenate([jnp.ones((n, 1), dtype), X], axis=1)
        S = jnp.einsum("nk,na,nb->kab", onehot, Xt, Xt)
        sigma2 = z["sigma2"]
        position = z["position"]

        # 4: order moves
        accept_rate = jnp.zeros((), dtype)
        if self.order_moves > 0 or self.relocations > 0:
            position, moved, accept_rate = self._order_moves(
                keys[2], position, z, S, counts, kw, pool)
            z.update(moved)
            sigma2 = z["sigma2"]
        allowed = allowed_from_position(position, base)
        gauss = ~is_binary
        nw_dev = allowed if pool else allowed & ~white                  # Δ horseshoe active
        nw_sh = allowed & ~white & pool                                 # B₀ horseshoe active
        m_j = allowed.sum(axis=0).astype(dtype)

        # every Gamma variate of the sweep in one call of the vectorised sampler
        # (bayesimg.models.core.gamma; jax.random.gamma is costly to compile); all
        # shapes are known here, the rates are applied block by block
        # θ's Beta(1 + Σx, 1 + n_k − Σx) is for binary nodes only: a Gaussian column's
        # Σx may be negative or exceed n_k, a shape ≤ 0 that the rejection loop never
        # accepts (64 rounds of the whole array every sweep, then NaN), so those unused
        # draws get shape 1 (the binary nodes' variates are the same: each element's
        # stream is its own)
        sum_x = S[:, 0, 1:]                                                     # (K, p)
        ones_kpp = jnp.ones((K, p, p), dtype)
        shapes = [kw["alpha"] + counts,                                         # π
                  jnp.where(is_binary, 1.0 + sum_x, 1.0),                       # θ (binary)
                  jnp.where(is_binary, 1.0 + counts[:, None] - sum_x, 1.0),
                  kw["noise_a"] + counts[:, None] / 2.0 + m_j / 2.0,            # σ²
                  jnp.where(nw_dev, 1.0, 0.5)[None] * ones_kpp,                 # λ²
                  ones_kpp,                                                     # ν
                  jnp.full((K,), (nw_dev.sum() + 1.0) / 2.0, dtype),            # τ²
                  jnp.ones((K,), dtype),                                        # ξ
                  jnp.where(nw_sh, 1.0, 0.5),                                   # λ₀²
                  ones_kpp[0],                                                  # ν₀
                  (nw_sh.sum() + 1.0).astype(dtype) / 2.0,                      # τ₀²
                  jnp.ones((), dtype),                                          # ξ₀
                  jnp.where(gauss & pool, 1.0, 0.5)[None] * ones_kpp[:, 0],     # ψ²
                  ones_kpp[:, 0],                                               # ν_ψ
                  (K * jnp.sum(gauss & pool) + 1.0).astype(dtype) / 2.0,      # ω²
                  jnp.ones((), dtype)]                                          # ξ_ω
        sizes = [a.size for a in shapes]
        flat = gamma(keys[1], jnp.concatenate([jnp.ravel(a) for a in shapes]), dtype=dtype)
        flat = jnp.maximum(flat, jnp.finfo(dtype).tiny)
        (g_pi, g_t1, g_t0, g_s2, g_lam, g_nu, g_tau, g_xi, g_lam0, g_nu0, g_tau0, g_xi0,
         g_psi, g_nupsi, g_om, g_xiom) = (
            part.reshape(jnp.shape(a)) for part, a in
            zip(jnp.split(flat, np.cumsum(sizes)[:-1]), shapes, strict=True))

        # 2: weights
        pi = g_pi / g_pi.sum()
        pi = jnp.maximum(pi, jnp.finfo(dtype).tiny)

        # 5: coefficients and intercepts (shared part and deviations, jointly per node)
        # the N(0, 1) variates of every node's draw from one call (each call site of
        # jax.random.normal compiles its own bit generator and inverse error function)
        reg_noise = flat_random.normal(keys[3], (p, K + 1, p + 1), dtype)

        def regression(j, noise):
            sd0, sd = node_coefficient_sd(z, allowed[:, j], j, white[:, j], slab, mean_scale,
                                          pool)
            return pooled_node_regression(S, j, sd0, sd, sigma2[:, j], counts, noise)

        _, beta0, beta = jax.vmap(regression)(jnp.arange(p), reg_noise)
        # beta0 (p, P), beta (p, K, P) → (K, p, P)
        beta = jnp.swapaxes(beta, 0, 1)
        beta_tot = beta0[None] + beta
        theta = jnp.clip(g_t1 / (g_t1 + g_t0), 1e-12, 1 - 1e-12)
        mu = jnp.where(is_binary, jnp.log(theta) - jnp.log1p(-theta), beta_tot[..., 0])
        edge_ok = allowed & gauss[None, :]
        B = jnp.where(edge_ok[None], jnp.swapaxes(beta_tot[..., 1:], 1, 2), 0.0)
        B_dev = jnp.where(edge_ok[None], jnp.swapaxes(beta[..., 1:], 1, 2), 0.0)
        B_sh = jnp.where(edge_ok, beta0[:, 1:].T, 0.0) if pool else jnp.zeros((p, p), dtype)
        mu_sh = jnp.where(gauss, beta0[:, 0], 0.0) if pool else jnp.zeros((p,), dtype)
        delta = jnp.where(gauss, beta[..., 0], 0.0)

        # 6: residual variances
        Sxy = jnp.swapaxes(S[:, :, 1:], 1, 2)                                   # (K, j, P)
        yty = jnp.diagonal(S, axis1=1, axis2=2)[:, 1:]                          # (K, p)
        rss = (yty - 2.0 * jnp.sum(beta_tot * Sxy, axis=-1)
               + jnp.einsum("kja,kab,kjb->kj", beta_tot, S, beta_tot))
        rss = jnp.maximum(rss, 0.0)
        tau, lam = z["tau"], z["lam"]
        b2 = B_dev * B_dev
        shrink = jnp.where(white[None] & (not pool), slab**2, (tau[:, None, None] * lam) ** 2)
        quad = jnp.sum(jnp.where(allowed[None], b2 / shrink, 0.0), axis=1)       # (K, p)
        sigma2 = (kw["noise_b"] + rss / 2.0 + quad / 2.0) / g_s2
        sigma2 = jnp.where(is_binary, 1.0, sigma2)

        # 7: horseshoe scales — deviations Δ (noise-scaled), shared B₀, intercept deviations δ
        A2 = kw["local_scale"] ** 2
        lam2, nu, tau2, xi = _horseshoe(
            b2 / sigma2[:, None, :], nw_dev[None], z["nu"], z["xi"], (tau**2)[:, None, None],
            kw["global_scale"], A2[None], (g_lam, g_nu, g_tau, g_xi), axes=(1, 2))
        lam02, nu0, tau02, xi0 = _horseshoe(
            B_sh * B_sh, nw_sh, z["nu_shared"], z["xi_shared"], z["tau_shared"] ** 2,
            kw["shared_global_scale"], A2, (g_lam0, g_nu0, g_tau0, g_xi0), axes=(0, 1))
        psi2, nu_psi, om2, xi_om = _horseshoe(
            delta * delta, (gauss & pool)[None], z["nu_psi"], z["xi_omega"], z["omega"] ** 2,
            kw["mean_dev_scale"], 1.0, (g_psi, g_nupsi, g_om, g_xiom), axes=(0, 1))

        z.update(pi=pi, mu=mu, sigma2=sigma2, B=B, tau=jnp.sqrt(tau2), lam=jnp.sqrt(lam2),
                 nu=nu, xi=xi, labels=labels, position=position, mu_shared=mu_sh,
                 B_shared=B_sh, tau_shared=jnp.sqrt(tau02), lam_shared=jnp.sqrt(lam02),
                 nu_shared=nu0, xi_shared=xi0, omega=jnp.sqrt(om2), psi=jnp.sqrt(psi2),
                 nu_psi=nu_psi, xi_omega=xi_om)
        log_lik = jnp.sum(mixture_loglik(X, pi, mu, B, sigma2, is_binary, known))
        stats = {"order_accept": accept_rate, "log_lik": log_lik}
        return BNMixGibbsState(state.i + 1, z, stats, keys[11])

    # ----------------------------------------------------------- order moves
    def _order_moves(self, key, position, z, S, counts, kw, pool):
        """Metropolis moves on the node order (adjacent transpositions, relocations).

        A proposal maps (order, λ, ν, σ²) → (order', λ', ν', σ²') by a deterministic
        involution given the order change: every node pair whose direction flips
        exchanges its local scales (λ_ab ↔ λ_ba, also ν and the shared λ₀, ν₀), so
        a strong edge can turn round; the residual variance of every node whose
        parent set changes is multiplied by r_kj = v̂_kj(new parents)/v̂_kj(old
        parents), v̂ the ridge-regression residual variance given the labels (a
        function of the order only, so r is inverted by the reverse move; Jacobian
        Π r).  Acceptance: the ratio of the nodes' marginal likelihoods (coefficients
        integrated out) × the σ² and ν prior ratios × the Jacobian.  Adjacent passes
        swap every adjacent pair once, in two phases of disjoint pairs; relocations
        pick a uniform slot s and a uniform new slot t and move the node at s to t or
        reverse the segment between them (probability ½ each; symmetric proposals).
        """
        X, is_binary = kw["X"], kw["is_binary"]
        base, white = kw["base_allowed"], kw["whitelist"]
        slab, mean_scale = kw["slab_scale"], kw["mean_scale"]
        noise_a, noise_b = kw["noise_a"], kw["noise_b"]
        dtype = X.dtype
        p = X.shape[1]
        inv_a2 = 1.0 / kw["local_scale"] ** 2
        eye_p = jnp.eye(p + 1, dtype=dtype).at[0, 0].set(1e-6)

        def node_ml(allowed, j, st):
            sd0, sd = node_coefficient_sd({**z, **st}, allowed[:, j], j, white[:, j], slab,
                                          mean_scale, pool)
            ml = pooled_node_regression(S, j, sd0, sd, st["sigma2"][:, j], counts)[0]
            return jnp.where(is_binary[j], 0.0, ml)

        def resid_scale(col, j):
            # (K,) ridge residual variance of node j on parents ``col`` (IG posterior mean)
            inc = jnp.concatenate([jnp.ones((1,), bool), col])
            G = jnp.where(inc[:, None] & inc[None, :], S, 0.0) + eye_p
            rhs = jnp.where(inc[None], S[:, :, 1 + j], 0.0)
            w = jax.vmap(lambda g, r: solve_triangular(jnp.linalg.cholesky(g), r, lower=True))(
                G, rhs)
            rss = S[:, 1 + j, 1 + j] - jnp.sum(w * w, axis=-1)
            return (noise_b + 0.5 * jnp.maximum(rss, 0.0)) / (noise_a + 0.5 * counts)

        ig = dist_ig_logpdf(noise_a, noise_b)

        def mh(pos, st, ml, vhat, new, group, n_groups, u, refresh):
            """Independent Metropolis decisions for groups of nodes (segment ids
            ``group``; ``n_groups`` = none) whose proposals touch disjoint node sets;
            ``u`` (n_groups,) U(0, 1) variates.  ``refresh``: no move, every Gaussian
            node's cached marginal likelihood and ridge residual variance recomputed."""
            nodes = jnp.arange(p)
            old_allowed = allowed_from_position(pos, base)
            new_allowed = allowed_from_position(new, base)
            flip = (pos[:, None] < pos[None, :]) != (new[:, None] < new[None, :])
            changed = (jnp.any(old_allowed != new_allowed, axis=0) | refresh) & ~is_binary
            vhat_new = jax.vmap(lambda j: resid_scale(new_allowed[:, j], j), out_axes=1)(nodes)
            carry = self.carry_scales
            ratio = jnp.where(changed[None] & carry & ~refresh, vhat_new / vhat, 1.0)
            prop = {k: jnp.where(flip & carry, jnp.swapaxes(v, -1, -2), v)
                    for k, v in st.items() if k != "sigma2"}
            prop["sigma2"] = st["sigma2"] * ratio
            ml_new = jnp.where(changed, jax.vmap(lambda j: node_ml(new_allowed, j, prop))(nodes),
                               ml)
            term = (ml_new - ml + jnp.sum(ig(prop["sigma2"]) - ig(st["sigma2"])
                                          + jnp.log(ratio), axis=0))
            # prior ratio of the exchanged ν ~ IG(½, 1/A²) (1 unless A_ab ≠ A_ba)
            d_inv = jnp.where(flip, inv_a2 - inv_a2.T, 0.0)
            nu_term = jnp.sum(d_inv * (1.0 / st["nu"] - 1.0 / jnp.swapaxes(st["nu"], -1, -2)),
                              axis=0)
            if pool:
                nu_term = nu_term + d_inv * (1.0 / st["nu_shared"] - 1.0 / st["nu_shared"].T)
            term = term + 0.5 * jnp.sum(nu_term, axis=1)
            illegal = jnp.any(flip & (white | white.T), axis=1)    # a whitelisted edge turns
            seg = n_groups + 1
            log_ratio = jax.ops.segment_sum(term, group, seg)[:n_groups]
            bad = jax.ops.segment_max(illegal.astype(jnp.int32), group, seg)[:n_groups] > 0
            ok = (jnp.log(u) < log_ratio) & ~bad
            take = (ok[jnp.minimum(group, n_groups - 1)] & (group < n_groups)) | refresh
            flip_take = flip & take[:, None] & take[None, :]
            st = {k: jnp.where(flip_take, prop[k], v) if k != "sigma2"
                  else jnp.where(take[None], prop[k], v) for k, v in st.items()}
            out = (jnp.where(take, new, pos), st, jnp.where(take, ml_new, ml),
                   jnp.where(take[None] & changed[None], vhat_new, vhat))
            return out, ok

        # every move of the sweep runs through one Metropolis step (each call site traces
        # and compiles its own copy of the vmapped marginal likelihoods and ridge fits):
        # a static schedule of move types, one scan.  Type 3 (first) fills the cache of
        # per-node marginal likelihoods and ridge residual variances at the current
        # order; then ``order_moves`` × (phase 0, phase 1) adjacent passes (types 0, 1)
        # and ``relocations`` (type 2).  Phase o pairs positions (o, o+1), (o+2, o+3), …:
        # a pair's swap changes only its two nodes' parent sets, so the decisions within
        # a phase are independent Metropolis steps; a relocation is one group.
        phases = [o for o in (0, 1) if (p - o) // 2 > 0]
        schedule = [3] + phases * self.order_moves + [2] * self.relocations
        n_groups = max(p // 2, 1)
        real_groups = jnp.asarray([p // 2, (p - 1) // 2, 1, 0], jnp.int32)

        def proposal(pos, kind, u):
            """(group (p,), proposed positions) of a move of type ``kind`` from three
            U(0, 1) variates ``u``; a node in no group has group ``n_groups``."""
            s = jnp.minimum(jnp.floor(u[0] * p), p - 1).astype(pos.dtype)    # uniform slot
            t = jnp.minimum(jnp.floor(u[1] * p), p - 1).astype(pos.dtype)    # uniform slot
            v = jnp.argmax(pos == s)
            # relocation: the node at s moves to t, those between shift towards s
            up = (pos > s) & (pos <= t)
            down = (pos < s) & (pos >= t)
            moved = jnp.where(up, pos - 1, jnp.where(down, pos + 1, pos)).at[v].set(t)
            # reversal: the segment of the order between s and t is reversed
            lo, hi = jnp.minimum(s, t), jnp.maximum(s, t)
            reversed_ = jnp.where((pos >= lo) & (pos <= hi), lo + hi - pos, pos)
            relocated = jnp.where(u[2] < 0.5, moved, reversed_)
            n_pairs, pair, swapped = adjacent_swap_proposal(pos, jnp.minimum(kind, 1), p)
            group = jnp.where(kind >= 2, 0, jnp.where(pair == n_pairs, n_groups, pair))
            new = jnp.where(kind == 2, relocated, swapped)
            return group, jnp.where(kind == 3, pos, new)

        def move(carry, step):
            pos, st, ml, vhat = carry
            kind, u = step
            group, new = proposal(pos, kind, u[:3])
            out, ok = mh(pos, st, ml, vhat, new, group, n_groups, u[3:], kind == 3)
            n_real = real_groups[kind]
            accepted = jnp.sum(ok & (jnp.arange(n_groups) < n_real)).astype(dtype)
            return out, (accepted, n_real.astype(dtype))

        st = {k: z[k] for k in ("lam", "nu", "lam_shared", "nu_shared", "sigma2")}
        if len(schedule) == 1:
            return position, st, jnp.zeros((), dtype)
        # every U(0, 1) variate of the moves from one call: per move, the proposal's
        # three and one per group for the acceptances
        unif = flat_random.uniform(key, (len(schedule), 3 + n_groups), dtype)
        cache = (jnp.zeros((p,), dtype), jnp.ones((counts.shape[0], p), dtype))
        carry, (a, n) = jax.lax.scan(move, (position, st, *cache),
                                     (jnp.asarray(schedule, jnp.int32), unif))
        position, st = carry[:2]
        return position, st, a.sum() / jnp.maximum(n.sum(), 1.0)

    def postprocess_fn(self, model_args, model_kwargs):
        return lambda z: z


_PILOT: dict = {}


def pilot_run(args: dict, sweeps: int, pool: bool, seed: int) -> dict:
    """Final state (numpy) of ``sweeps`` exact Gibbs sweeps at the fixed order, started
    from the ``init_*`` values in the model arguments ``args``; deterministic in ``seed``."""
    key = (int(sweeps), bool(pool))
    if key not in _PILOT:
        kernel = BNMixGibbs(order_moves=0, pool=pool)

        def run(kw, rng):
            state = kernel.init(rng, 0, None, (), kw)
            state = jax.lax.fori_loop(0, sweeps, lambda _, s: kernel.sample(s, (), kw), state)
            return state.z

        # kept on disk (new processes skip tracing it): the program is fixed by ``key``
        _PILOT[key] = stored_jit(run, "bayesimg.models.bnmix.gibbs.pilot_run", *key)
    kw = {k: jnp.asarray(v) for k, v in args.items()}
    z = _PILOT[key](kw, jax.random.PRNGKey(seed))
    return {k: np.asarray(v) for k, v in z.items()}

