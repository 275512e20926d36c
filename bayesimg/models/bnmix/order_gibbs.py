r"""Blocked Gibbs kernel of ``BNMix(structure="order")``: conjugate networks, order MCMC.

State: labels z, weights π, per cluster an order ≺_k, a DAG G_k (parent sets of size
≤ d) and its parameters θ_k = (μ_k, B_k, σ²_k); the model and the scores are in
:mod:`bayesimg.models.bnmix.order`.  One sweep:

1. z_i | θ, π ~ Categorical(∝ π_k p(x_i | θ_k)) (fixed where the label is known);
2. π | z ~ Dirichlet(α + n_k);
3. S_k = Σ_{i: z_i = k} x̃_i x̃_iᵀ, x̃ = (1, x), and the score table log ρ_j(U) +
   log p(x_kj | U) of every cluster, node and enumerated parent set (weights and
   variances integrated out);
4. ≺_k | z: moves on each cluster's order with the DAGs summed out, collapsed steps
   on p(≺ | z, x): ``adjacent_passes`` passes of Metropolis adjacent transpositions,
   then ``node_moves`` exact Gibbs relocations (a node put back at a slot drawn from
   its conditional given the others' relative order);
5. G_k | ≺_k, z exactly (each node's parent set from its compatible sets), then
   σ²_kj, (μ_kj, B_k[U, j]) from their Normal-inverse-gamma posterior; binary nodes
   (roots): θ_kj ~ Beta(1 + Σ x, 1 + n_k − Σ x), μ_kj = logit θ_kj.

Steps 4–5 draw (≺, G, θ) | z without reading the old G, θ, so the sweep is a valid
blocked Gibbs sampler of p(z, π, ≺, G, θ | x).  The kernel is a NumPyro
``MCMCKernel`` run by the shared compiled MCMC driver.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from bayesimg.models.bnmix.math import component_loglik, label_mask, mixture_loglik
from bayesimg.models.bnmix.order import draw_networks, node_gibbs, order_moves, score_table
from bayesimg.models.core.gibbs_kernel import ExactGibbsKernel


class OrderGibbsState(NamedTuple):
    i: jnp.ndarray
    z: dict
    stats: dict
    rng_key: jnp.ndarray


def masked_score_table(S, counts, kw):
    """(K, p, #sets) log ρ_j(U) + log p(x_kj | U), −inf on invalid parent sets."""
    table = score_table(S, counts, kw["parent_sets"], 1.0 / kw["mean_scale"] ** 2,
                        1.0 / kw["weight_scale"] ** 2, kw["noise_a"], kw["noise_b"])
    return jnp.where(kw["set_valid"][None], table + kw["set_log_prior"][None], -jnp.inf)


def sufficient_stats(X, onehot):
    """S_k = Σ_{i: z_i = k} x̃_i x̃_iᵀ with x̃ = (1, x): (K, p + 1, p + 1)."""
    Xt = jnp.concatenate([jnp.ones((X.shape[0], 1), X.dtype), X], axis=1)
    return jnp.einsum("nk,na,nb->kab", onehot, Xt, Xt)


class BNMixOrderGibbs(ExactGibbsKernel):
    """Blocked Gibbs + order-MCMC kernel for ``BNMix(structure="order")``."""

    def __init__(self, adjacent_passes: int = 1, node_moves: int = 0):
        self.adjacent_passes = int(adjacent_passes)
        self.node_moves = int(node_moves)

    def init(self, rng_key, num_warmup, init_params, model_args, model_kwargs):
        kw = model_kwargs
        X = kw["X"]
        K = kw["alpha"].shape[0]
        labels = kw["init_labels"]
        counts = jnp.bincount(labels, length=K).astype(X.dtype)
        z = {"pi": (counts + 1.0) / (counts.sum() + K), "mu": kw["init_mu"],
             "sigma2": kw["init_sigma2"], "B": kw["init_B"], "labels": labels,
             "position": jnp.tile(kw["init_position"][None], (K, 1))}
        stats = {"order_accept": jnp.zeros((), X.dtype), "log_lik": jnp.zeros((), X.dtype)}
        return OrderGibbsState(jnp.zeros((), jnp.int32), z, stats, rng_key)

    def sample(self, state, model_args, model_kwargs):
        kw = model_kwargs
        X, is_binary, known = kw["X"], kw["is_binary"], kw["known"]
        z = dict(state.z)
        K = z["pi"].shape[0]
        dtype = X.dtype
        k_lab, k_gam, k_ord, k_node, k_net, k_next = jax.random.split(state.rng_key, 6)

        # 1-2: labels and weights
        comp = component_loglik(X, z["mu"], z["B"], z["sigma2"], is_binary)
        comp = comp + jnp.log(z["pi"])[:, None] + label_mask(known, K)
        labels = jax.random.categorical(k_lab, comp, axis=0)
        onehot = jax.nn.one_hot(labels, K, dtype=dtype)
        counts = onehot.sum(axis=0)
        S = sufficient_stats(X, onehot)
        sum_x = S[:, 0, 1:]
        p = X.shape[1]
        # every Gamma variate of the sweep in one call: π, σ², θ (binary) ∝ g1/(g1 + g0)
        shapes = [kw["alpha"] + counts,
                  jnp.broadcast_to(kw["noise_a"] + 0.5 * counts[:, None], (K, p)),
                  1.0 + sum_x, 1.0 + counts[:, None] - sum_x]
        flat = jax.random.gamma(k_gam, jnp.concatenate([jnp.ravel(s) for s in shapes]),
                                dtype=dtype)
        flat = jnp.maximum(flat, jnp.finfo(dtype).tiny)
        g_pi, g_s2, g1, g0 = flat[:K], *flat[K:].reshape(3, K, p)
        pi = jnp.maximum(g_pi / g_pi.sum(), jnp.finfo(dtype).tiny)

        # 3-4: scores with the parameters integrated out; orders with the DAGs summed out
        table = masked_score_table(S, counts, kw)
        position, accept = order_moves(k_ord, z["position"], table, kw["parent_sets"],
                                       self.adjacent_passes)
        if self.node_moves > 0:
            position = node_gibbs(k_node, position, table, kw["parent_sets"], self.node_moves)

        # 5: DAGs given the orders, then their weights and variances; binary roots
        mu, B, sigma2 = draw_networks(k_net, S, counts, position, table, kw["parent_sets"],
                                      1.0 / kw["mean_scale"] ** 2,
                                      1.0 / kw["weight_scale"] ** 2, kw["noise_a"],
                                      kw["noise_b"], g_s2)
        theta = jnp.clip(g1 / (g1 + g0), 1e-12, 1 - 1e-12)
        mu = jnp.where(is_binary, jnp.log(theta) - jnp.log1p(-theta), mu)
        sigma2 = jnp.where(is_binary, 1.0, sigma2)
        B = jnp.where(is_binary[None, None, :], 0.0, B)

        z.update(pi=pi, mu=mu, sigma2=sigma2, B=B, labels=labels, position=position)
        log_lik = jnp.sum(mixture_loglik(X, pi, mu, B, sigma2, is_binary, known))
        return OrderGibbsState(state.i + 1, z, {"order_accept": accept, "log_lik": log_lik},
                               k_next)

    def postprocess_fn(self, model_args, model_kwargs):
        return lambda z: z
