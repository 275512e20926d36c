r"""Exact Gibbs kernel for the Bayesian-network mixture, with Metropolis moves on node orders.

One sweep (all blocks vectorised over clusters and nodes; shapes fixed, the
order enters only through an edge mask):

1. z_i | · ~ Categorical(∝ π_k p(x_i | θ_k)) (fixed where the label is known);
2. π | z ~ Dirichlet(α + n_k);
3. sufficient statistics S_k = Σ_{i: z_i = k} x̃_i x̃_iᵀ with x̃ = (1, x);
4. (optional) ``order_moves`` Metropolis moves on the shared node order: swap two
   adjacent nodes a, b; with the coefficients integrated out, only the
   regressions of a and b change, so the acceptance ratio is
   Π_k p(x_a | new parents) p(x_b | new parents) / (same, old parents), each a
   closed-form Gaussian marginal likelihood given σ², λ, τ
   (:func:`~bayesimg.models.bnmix_math.node_regression`); proposals that would
   reverse a whitelisted edge are rejected.  The coefficients are redrawn from
   their conditional right after, so (order, B) is updated as one block;
5. (μ_kj, b_kj) | · — for every cluster and Gaussian node one exact draw of a
   Bayesian regression on its allowed parents, prior sds (s_μ, σ_kj τ_k λ_kij);
   binary nodes (roots): θ_kj ~ Beta(1 + Σ x, 1 + n_k − Σ x), μ_kj = logit θ_kj;
6. σ²_kj | · ~ InvGamma(a + n_k/2 + m_j/2, b + RSS_kj/2 + Σ_i b²_kij/(2 τ_k² λ²_kij));
7. horseshoe scales by the auxiliary-variable scheme of Makalic & Schmidt (2016):
   λ² | ν ~ IG(1, 1/ν + b²/(2σ²τ²)), ν ~ IG(1, 1/A² + 1/λ²),
   τ² ~ IG((m + 1)/2, 1/ξ + Σ b²/(2σ²λ²)), ξ ~ IG(1, 1/τ₀² + 1/τ²)
   (masked or whitelisted edges: λ², ν from their prior).

The kernel is a NumPyro ``MCMCKernel`` driven by the shared compiled MCMC driver.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from numpyro.infer.mcmc import MCMCKernel

from bayesimg.models.bnmix_math import (
    allowed_from_position,
    component_loglik,
    label_mask,
    mixture_loglik,
    node_regression,
)


class BNMixGibbsState(NamedTuple):
    i: jnp.ndarray
    z: dict
    stats: dict
    rng_key: jnp.ndarray


def coefficient_sd(sigma2, tau, lam, allowed, whitelist, slab_scale, mean_scale):
    """(K, p, p+1) prior sd of (intercept, b_{1..p, j}) for each cluster k and node j."""
    K, p = sigma2.shape
    scale = jnp.where(whitelist[None], slab_scale, tau[:, None, None] * lam)   # (K, i, j)
    sd_b = jnp.where(allowed[None], scale * jnp.sqrt(sigma2)[:, None, :], 0.0)  # (K, i, j)
    sd_b = jnp.swapaxes(sd_b, 1, 2)                                             # (K, j, i)
    sd_mu = jnp.full((K, p, 1), mean_scale, sigma2.dtype)
    return jnp.concatenate([sd_mu, sd_b], axis=-1)


class BNMixGibbs(MCMCKernel):
    """Blocked Gibbs + order-Metropolis kernel for :class:`~bayesimg.models.BNMix`."""

    sample_field = "z"

    def __init__(self, order_moves: int = 0):
        self.order_moves = int(order_moves)

    @property
    def model(self):
        return None

    # ------------------------------------------------------------------ init
    def init(self, rng_key, num_warmup, init_params, model_args, model_kwargs):
        kw = model_kwargs
        X = kw["X"]
        K = kw["alpha"].shape[0]
        labels = kw["init_labels"]
        counts = jnp.bincount(labels, length=K).astype(X.dtype)
        p = X.shape[1]
        z = {
            "pi": (counts + 1.0) / (counts.sum() + K),
            "mu": kw["init_mu"],
            "sigma2": kw["init_sigma2"],
            "B": kw["init_B"],
            "tau": kw["init_tau"],
            "lam": jnp.ones((K, p, p), X.dtype),
            "nu": jnp.ones((K, p, p), X.dtype),
            "xi": jnp.ones((K,), X.dtype),
            "labels": labels,
            "position": kw["init_position"],
        }
        stats = {"order_accept": jnp.zeros((), X.dtype), "log_lik": jnp.zeros((), X.dtype)}
        return BNMixGibbsState(jnp.zeros((), jnp.int32), z, stats, rng_key)

    # ---------------------------------------------------------------- sweep
    def sample(self, state, model_args, model_kwargs):
        kw = model_kwargs
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
        labels = jax.random.categorical(keys[0], comp, axis=0)
        onehot = jax.nn.one_hot(labels, K, dtype=dtype)
        counts = onehot.sum(axis=0)

        # 3: sufficient statistics
        Xt = jnp.concatenate([jnp.ones((n, 1), dtype), X], axis=1)
        S = jnp.einsum("nk,na,nb->kab", onehot, Xt, Xt)

        sigma2, tau, lam = z["sigma2"], z["tau"], z["lam"]
        position = z["position"]

        # 4: order moves
        accept_rate = jnp.zeros((), dtype)
        if self.order_moves > 0:
            def node_sd(col, j):
                # (K, P) prior sds of node j's regression given its allowed-parent column
                scale = jnp.where(white[:, j][None], slab, tau[:, None] * lam[:, :, j])
                sd_b = jnp.where(col[None], scale * jnp.sqrt(sigma2[:, j])[:, None], 0.0)
                return jnp.concatenate([jnp.full((K, 1), mean_scale, dtype), sd_b], axis=1)

            def node_ml(col, j):
                sd = node_sd(col, j)
                ml = jax.vmap(lambda Sk, sdk, s2k, nk: node_regression(Sk, j, sdk, s2k, nk)[0])(
                    S, sd, sigma2[:, j], counts)
                return jnp.where(is_binary[j], 0.0, ml.sum())

            def move(pos, key):
                k_t, k_u = jax.random.split(key)
                t = jax.random.randint(k_t, (), 0, p - 1)
                order = jnp.argsort(pos)
                a, b = order[t], order[t + 1]
                new = pos.at[a].set(t + 1).at[b].set(t)
                old_allowed = allowed_from_position(pos, base)
                new_allowed = allowed_from_position(new, base)
                cols = jnp.stack([new_allowed[:, a], new_allowed[:, b],
                                  old_allowed[:, a], old_allowed[:, b]])
                ml = jax.vmap(node_ml)(cols, jnp.stack([a, b, a, b]))
                diff = ml[0] + ml[1] - ml[2] - ml[3]
                ok = (jnp.log(jax.random.uniform(k_u, (), dtype)) < diff) & ~white[a, b]
                return jnp.where(ok, new, pos), ok.astype(dtype)

            position, accepted = jax.lax.scan(
                move, position, jax.random.split(keys[2], self.order_moves))
            accept_rate = accepted.mean()
        allowed = allowed_from_position(position, base)
        nw = allowed & ~white
        m_j = allowed.sum(axis=0).astype(dtype)
        m = nw.sum().astype(dtype)

        # every Gamma variate of the sweep in one call (jax.random.gamma is costly to
        # compile); all shapes are known here, the rates are applied block by block
        sum_x = S[:, 0, 1:]                                                     # (K, p)
        ones_kpp = jnp.ones((K, p, p), dtype)
        shapes = [kw["alpha"] + counts,                                         # π
                  1.0 + sum_x, 1.0 + counts[:, None] - sum_x,                   # θ (binary)
                  kw["noise_a"] + counts[:, None] / 2.0 + m_j / 2.0,            # σ²
                  jnp.where(nw, 1.0, 0.5)[None] * ones_kpp,                     # λ²
                  ones_kpp,                                                     # ν
                  jnp.full((K,), (m + 1.0) / 2.0, dtype),                       # τ²
                  jnp.ones((K,), dtype)]                                        # ξ
        sizes = [a.size for a in shapes]
        flat = jax.random.gamma(keys[1], jnp.concatenate([a.ravel() for a in shapes]),
                                dtype=dtype)
        flat = jnp.maximum(flat, jnp.finfo(dtype).tiny)
        g_pi, g_t1, g_t0, g_s2, g_lam, g_nu, g_tau, g_xi = (
            part.reshape(a.shape) for part, a in
            zip(jnp.split(flat, np.cumsum(sizes)[:-1]), shapes, strict=True))

        # 2: weights
        pi = g_pi / g_pi.sum()
        pi = jnp.maximum(pi, jnp.finfo(dtype).tiny)

        # 5: coefficients and intercepts
        sd = coefficient_sd(sigma2, tau, lam, allowed, white, slab, mean_scale)   # (K, p, P)
        reg_keys = jax.random.split(keys[3], K * p).reshape(K, p, -1)
        nodes = jnp.arange(p)

        def per_cluster(Sk, sdk, s2k, nk, kk):
            return jax.vmap(lambda j, sdj, s2j, kj: node_regression(Sk, j, sdj, s2j, nk, kj)[1])(
                nodes, sdk, s2k, kk)

        beta = jax.vmap(per_cluster)(S, sd, sigma2, counts, reg_keys)          # (K, p, P)
        theta = jnp.clip(g_t1 / (g_t1 + g_t0), 1e-12, 1 - 1e-12)
        mu = jnp.where(is_binary, jnp.log(theta) - jnp.log1p(-theta), beta[..., 0])
        B = jnp.swapaxes(beta[..., 1:], 1, 2)                                   # (K, i, j)
        B = jnp.where(allowed[None] & ~is_binary[None, None, :], B, 0.0)

        # 6: residual variances
        Sxy = jnp.swapaxes(S[:, :, 1:], 1, 2)                                   # (K, j, P)
        yty = jnp.diagonal(S, axis1=1, axis2=2)[:, 1:]                          # (K, p)
        rss = (yty - 2.0 * jnp.sum(beta * Sxy, axis=-1)
               + jnp.einsum("kja,kab,kjb->kj", beta, S, beta))
        rss = jnp.maximum(rss, 0.0)
        b2 = B * B
        shrink = jnp.where(white[None], slab**2, (tau[:, None, None] * lam) ** 2)
        quad = jnp.sum(jnp.where(allowed[None], b2 / shrink, 0.0), axis=1)       # (K, p)
        sigma2 = (kw["noise_b"] + rss / 2.0 + quad / 2.0) / g_s2
        sigma2 = jnp.where(is_binary, 1.0, sigma2)

        # 7: horseshoe scales
        s2 = sigma2[:, None, :]
        lam2 = (1.0 / z["nu"] + jnp.where(nw, b2 / (2.0 * s2 * tau[:, None, None] ** 2),
                                          0.0)) / g_lam
        A2 = kw["local_scale"] ** 2
        nu = (1.0 / A2[None] + 1.0 / lam2) / g_nu
        tau2 = (1.0 / z["xi"] + jnp.sum(jnp.where(nw, b2 / (2.0 * s2 * lam2), 0.0),
                                        axis=(1, 2))) / g_tau
        xi = (1.0 / kw["global_scale"] ** 2 + 1.0 / tau2) / g_xi

        z.update(pi=pi, mu=mu, sigma2=sigma2, B=B, tau=jnp.sqrt(tau2), lam=jnp.sqrt(lam2),
                 nu=nu, xi=xi, labels=labels, position=position)
        log_lik = jnp.sum(mixture_loglik(X, pi, mu, B, sigma2, is_binary, known))
        stats = {"order_accept": accept_rate, "log_lik": log_lik}
        return BNMixGibbsState(state.i + 1, z, stats, keys[11])

    def postprocess_fn(self, model_args, model_kwargs):
        return lambda z: z
