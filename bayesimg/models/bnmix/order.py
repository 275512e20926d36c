r"""Conjugate DAG scores and order MCMC for the BN mixture (``BNMix(structure="order")``).

Model, per cluster k (labels z given; Gaussian node j with parent set U ⊆ nodes,
|U| ≤ d = ``max_parents``; binary nodes are roots)::

    σ²_kj ~ InvGamma(a, b)
    β_kj = (μ_kj, B_k[U, j]) | σ²_kj ~ N(0, σ²_kj Λ⁻¹),   Λ = diag(1/s_μ², 1/c², …, 1/c²)
    x_ij | z_i = k ~ N(μ_kj + Σ_{u∈U} B_k[u, j] x_iu, σ²_kj)

(a Normal-inverse-gamma regression per node: parameter independence and modularity,
Heckerman, Geiger & Chickering 1995, so the marginal likelihood of a DAG factorises
over its nodes).  With X_U = (1, x_U) the design of cluster k's n_k subjects, A =
Λ + X_UᵀX_U = L Lᵀ, r = X_Uᵀy, w = L⁻¹r, a_n = a + n_k/2 and
b_n = b + (yᵀy − |w|²)/2, the local score is the exact log marginal likelihood

    log p(y | U) = −(n_k/2) log 2π + ½ log|Λ| − Σ log diag L
                   + a log b − a_n log b_n + log Γ(a_n) − log Γ(a),

computed from the cluster's sufficient statistics S_k = Σ_{i∈k} x̃_i x̃_iᵀ only
(:func:`score_table`, all clusters, nodes and candidate parent sets at once), and the
conditional posterior is σ² | U, y ~ InvGamma(a_n, b_n), β | σ², U, y ~ N(A⁻¹r, σ² A⁻¹).

Structure prior: the order-modular prior of Friedman & Koller (2003),

    p(≺_k, G_k) ∝ Π_j ρ_j(U_j) 1[every u ∈ U_j precedes j in ≺_k],
    ρ_j(U) = Π_{u∈U} (q/(1 − q)) / pf_uj  (0 if U has a blacklisted parent, lacks a
                                            whitelisted one, or |U| > d),

pf the edge-penalty matrix (bnClustOmics' ``edgepmat``, as BiDAG: an edge with pf = 2
costs log 2) and q = p₀/D the prior inclusion probability of a candidate edge (p₀ =
``expected_parents``, D the number of candidate parents of an average node; whitelisted
edges are not charged): independent Bernoulli(q) edges, the sparsity prior that keeps
a cluster whose labels are still mixed from explaining the mixing by extra edges.
Summing the DAGs out gives the order score

    log p(x_k | ≺_k) = Σ_j log Σ_{U compatible with ≺_k} ρ_j(U) p(x_kj | U)       (exact:
    a log-sum-exp over the parent sets enumerated once, :func:`parent_sets`),

on which two kinds of moves over orders run, both leaving p(≺ | z, x) invariant:

* adjacent transpositions (:func:`order_moves`), Metropolis, in two phases of disjoint
  pairs (a swap of the nodes at t, t+1 changes the predecessor sets of those two nodes
  only, so the decisions of one phase are independent Metropolis steps);
* exact Gibbs relocations of one node (:func:`node_gibbs`).  An order is the pair
  (relative order ≺₋ᵥ of the other nodes, slot t ∈ {0..p−1} of node v), so drawing t
  from p(t | ≺₋ᵥ, z, x) is a Gibbs step.  With r_u the rank of u in ≺₋ᵥ, node v at
  slot t has predecessors {u : r_u < t}, and a node u ≠ v has v among its possible
  parents iff t ≤ r_u, so

      log p(t | ≺₋ᵥ) = const + s_v(t) + Σ_{u: r_u < t} [s_u⁻ − s_u⁺],
      s_v(t) = log Σ_{U ⊆ {u: r_u < t}} ρ_v(U) p(x_v | U),
      s_u^± = log Σ_{U compatible with ≺₋ᵥ, v ∈ U allowed (+) or not (−)} ρ_u(U) p(x_u | U),

  all p slots from one pass over the table (s_v by cumulative sums of the sets
  bucketed by their latest member; s_u⁺ = s_u⁻ + the sum over the Σ_{m<d} C(p−1, m)
  sets holding v).  Unlike a random relocation proposal, which is mostly rejected once
  the chain sits in a peaked mode, the step puts v wherever the data want it, which
  is what carries a chain between the orders of two Markov-equivalent or
  near-equivalent DAGs (the diagnosis of issue 16: with the labels fixed to the truth,
  adjacent swaps plus random relocations left two chains at max |ΔP(skeleton edge)|
  0.09–0.997; benchmarks/README.md).

Given the order, each node's parent set is drawn exactly from its compatible sets
∝ ρ p(x | U), then β, σ² from their conjugate posterior: the order steps are collapsed
steps on p(≺ | z, x) followed by exact draws of G | ≺ and θ | G, so the sweep leaves
p(≺, G, θ | z, x) invariant (the old G, θ are not used by the order moves).

Marginally P(G) ∝ ρ(G) · #(linear extensions of G): order MCMC's known preference for
DAGs with many orders (Friedman & Koller 2003; Kuipers & Moffa 2017 remove it with
partition MCMC).  This is the model we state, and the tests' exact enumeration weighs
DAGs the same way.  The score is not score-equivalent (unlike BGe, Geiger & Heckerman
2002): Markov-equivalent DAGs score nearly, not exactly, alike; direction is still
judged through direction-free summaries (:mod:`bayesimg.models.bnmix.identified`).

Each cluster has its own order ≺_k: the order score factorises over clusters, so K
chains run side by side and a move is accepted or rejected per cluster — a move
that helps one cluster's network is not vetoed by another's (with one shared order the
K ratios multiply), and the clusters' DAGs are no more constrained than in
bnClustOmics, which runs order MCMC per cluster.

Cost per sweep: one score table (K × p × #sets, #sets = Σ_{m≤d} C(p, m); 2,626 for
p = 25, d = 3) from batched unrolled (d+1)×(d+1) Cholesky factors, exponentiated once;
then one masked sum of it per adjacent-swap phase and per node relocation (a
log-sum-exp where a sum underflows or an entry is impossible, so every step is exact).
"""

from __future__ import annotations

from itertools import combinations
from math import comb

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import gammaln

from bayesimg.models.bnmix.math import adjacent_swap_proposal

LOG_2PI = 1.8378770664093453
#: largest score table (clusters × nodes × parent sets) ``BNMix`` accepts (~0.4 GB in float64
#: with its Cholesky intermediates a few times that): beyond it, say so before compiling
MAX_TABLE = 20_000_000


def n_parent_sets(p: int, max_parents: int) -> int:
    """Number of enumerated sets, Σ_{m ≤ d} C(p, m) (every node a candidate; a node's own
    index and its forbidden parents are masked per node by :func:`set_validity`)."""
    return sum(comb(p, m) for m in range(min(max_parents, p) + 1))


def parent_sets(p: int, max_parents: int) -> np.ndarray:
    """(#sets, d) int array of every subset of {0..p−1} of size ≤ d, padded with ``p``."""
    d = int(max_parents)
    rows = [c + (p,) * (d - len(c)) for m in range(min(d, p) + 1)
            for c in combinations(range(p), m)]
    return np.asarray(rows, dtype=np.int64).reshape(-1, d)


def set_validity(sets: np.ndarray, base_allowed: np.ndarray, whitelist: np.ndarray,
                 penalty: np.ndarray, edge_log_odds: float = 0.0,
                 ) -> tuple[np.ndarray, np.ndarray]:
    """``(valid (p, #sets) bool, log_prior (p, #sets))``: set U is a valid parent set of
    node j iff every member may point into j (``base_allowed``: not blacklisted, not j,
    j Gaussian) and every whitelisted parent of j is in U;
    log ρ_j(U) = |U| · ``edge_log_odds`` − Σ_{u∈U} log pf_uj (whitelisted parents are
    not charged the odds)."""
    p = base_allowed.shape[0]
    ext_ok = np.vstack([base_allowed, np.ones((1, p), bool)])         # pad row: allowed
    ext_pen = np.vstack([np.log(np.where(np.isfinite(penalty), penalty, 1.0)),
                         np.zeros((1, p))])
    ok = ext_ok[sets].all(axis=1)                                     # (#sets, p)
    member = np.zeros((sets.shape[0], p + 1), bool)
    np.put_along_axis(member, sets, True, axis=1)
    has_white = (member[:, :p].astype(int) @ whitelist.astype(int)) == whitelist.sum(0)
    valid = (ok & has_white).T
    n_free = ((sets < p)[:, :, None] & ~np.vstack([whitelist, np.zeros((1, p), bool)])[sets]
              ).sum(axis=1)                                            # (#sets, p)
    log_prior = (-ext_pen[sets].sum(axis=1) + edge_log_odds * n_free).T
    return valid, np.where(valid, log_prior, 0.0)


def _cholesky(A):
    """Unrolled Cholesky of a batch of small m×m matrices: L as a list of lists of
    arrays (the lower triangle), each of the batch shape (vectorised, no LAPACK call
    per matrix)."""
    m = A.shape[-1]
    L = [[None] * m for _ in range(m)]
    for j in range(m):
        s = A[..., j, j] - sum((L[j][k] ** 2 for k in range(j)), jnp.zeros_like(A[..., j, j]))
        L[j][j] = jnp.sqrt(jnp.maximum(s, 1e-12))
        for i in range(j + 1, m):
            t = A[..., i, j] - sum((L[i][k] * L[j][k] for k in range(j)),
                                   jnp.zeros_like(A[..., i, j]))
            L[i][j] = t / L[j][j]
    return L


def _forward(L, r):
    """w = L⁻¹ r for r (..., m, q) with L from :func:`_cholesky` (batch dims of L
    broadcast against r's leading dims)."""
    m = len(L)
    w = []
    for i in range(m):
        t = r[..., i, :] - sum((L[i][k][..., None] * w[k] for k in range(i)),
                               jnp.zeros_like(r[..., i, :]))
        w.append(t / L[i][i][..., None])
    return jnp.stack(w, axis=-2)


def _backward(L, w):
    """β = L⁻ᵀ w for w (..., m) (single right-hand side)."""
    m = len(L)
    beta = [None] * m
    for i in reversed(range(m)):
        t = w[..., i] - sum((L[k][i] * beta[k] for k in range(i + 1, m)),
                            jnp.zeros_like(w[..., i]))
        beta[i] = t / L[i][i]
    return jnp.stack(beta, axis=-1)


def _design(S, sets, prec_mu, prec_w):
    """Gram blocks of the designs (1, x_U): S (K, P, P) with P = p + 1 (column 0 the
    intercept) → ``(A (K, #sets, m, m), idx (#sets, m), prec (#sets, m))``, A = Λ + X_UᵀX_U,
    pad slots an identity row (they add nothing to the score)."""
    K, P, _ = S.shape
    p = P - 1
    S_ext = jnp.pad(S, ((0, 0), (0, 1), (0, 1)))                      # index P: zeros
    idx = jnp.concatenate([jnp.zeros((sets.shape[0], 1), sets.dtype), sets + 1], axis=1)
    pad = jnp.concatenate([jnp.zeros((sets.shape[0], 1), bool), sets == p], axis=1)
    prec = jnp.where(pad, 1.0, prec_w).at[:, 0].set(prec_mu).astype(S.dtype)
    A = S_ext[:, idx[:, :, None], idx[:, None, :]] + jax.vmap(jnp.diag)(prec)[None]
    return A, idx, prec, pad, S_ext


def score_table(S, counts, sets, prec_mu, prec_w, a, b):
    """(K, p, #sets) local log marginal likelihoods log p(x_kj | U) (module docstring)
    for every cluster k, node j and enumerated set U (invalid sets not masked here)."""
    A, idx, prec, pad, S_ext = _design(S, sets, prec_mu, prec_w)
    L = _cholesky(A)
    P = S.shape[1]
    r = S_ext[:, idx, 1:P]                                            # (K, #sets, m, p)
    w = _forward(L, r)
    quad = jnp.sum(w * w, axis=-2)                                    # (K, #sets, p)
    yty = jnp.diagonal(S, axis1=1, axis2=2)[:, 1:]                    # (K, p)
    a_n = a + 0.5 * counts                                            # (K,)
    b_n = b + 0.5 * jnp.maximum(yty[:, None, :] - quad, 0.0)
    log_det = sum(jnp.log(L[i][i]) for i in range(len(L)))            # (K, #sets)
    half_log_prec = 0.5 * jnp.sum(jnp.where(pad, 0.0, jnp.log(prec)), axis=1)   # (#sets,)
    const = (-0.5 * counts * LOG_2PI + a * jnp.log(b) - gammaln(a) + gammaln(a_n))
    out = (const[:, None, None] + (half_log_prec[None] - log_det)[..., None]
           - a_n[:, None, None] * jnp.log(b_n))
    return jnp.swapaxes(out, 1, 2)                                    # (K, p, #sets)


def compatible(position, sets):
    """(K, p, #sets) bool: every member of U precedes node j in cluster k's order
    (``position`` (K, p), position[k, j] = place of node j)."""
    K = position.shape[0]
    pos_ext = jnp.concatenate([position, jnp.full((K, 1), -1, position.dtype)], axis=1)
    latest = jnp.max(pos_ext[:, sets], axis=-1)                       # (K, #sets)
    return latest[:, None, :] < position[:, :, None]


def node_scores(table, position, sets):
    """(K, p) log Σ_{U compatible} ρ p(x | U) per cluster and node (``table`` already
    holds log ρ + log p and −inf on invalid sets)."""
    masked = jnp.where(compatible(position, sets), table, -jnp.inf)
    return jax.nn.logsumexp(masked, axis=-1)


def order_moves(key, position, table, sets, adjacent_passes: int):
    """``adjacent_passes`` passes of Metropolis adjacent transpositions on every
    cluster's order with the DAGs summed out (module docstring).  Returns
    ``(position (K, p), acceptance rate)``."""
    K, p = position.shape
    dtype = table.dtype
    # the table is fixed during the moves: exponentiate it once, so an evaluation is a
    # masked sum (exact log-sum-exp where a node's compatible sets all underflow)
    top = jnp.max(table, axis=-1, keepdims=True)
    E = jnp.exp(table - top)

    def scores(pos):
        total = jnp.sum(jnp.where(compatible(pos, sets), E, 0.0), axis=-1)
        return jax.lax.cond(jnp.any(total <= 0), lambda: node_scores(table, pos, sets),
                            lambda: jnp.log(total) + top[..., 0])

    def decide(pos, ns, new, group, n_groups, key):
        ns_new = scores(new)
        diff = jnp.where(ns_new == ns, 0.0, ns_new - ns)              # −inf − −inf: no change
        onehot = jax.nn.one_hot(group, n_groups + 1, dtype=dtype)[..., :n_groups]
        log_ratio = jnp.einsum("kp,kpg->kg", diff, onehot)           # (K, groups)
        u = jax.random.uniform(key, (K, n_groups), dtype)
        ok = jnp.log(u) < log_ratio
        take = jnp.einsum("kg,kpg->kp", ok.astype(dtype), onehot) > 0
        return (jnp.where(take, new, pos), jnp.where(take, ns_new, ns),
                jnp.sum(ok).astype(dtype), jnp.asarray(K * n_groups, dtype))

    def adjacent_pass(carry, _):
        pos, ns, key = carry
        key, *phase_keys = jax.random.split(key, 3)
        acc = tot = jnp.zeros((), dtype)
        for o, k in zip((0, 1), phase_keys, strict=True):
            n_pairs, group, new = adjacent_swap_proposal(pos, o, p)
            if n_pairs == 0:
                continue
            pos, ns, a_, n_ = decide(pos, ns, new, group, n_pairs, k)
            acc, tot = acc + a_, tot + n_
        return (pos, ns, key), (acc, tot)

    if adjacent_passes <= 0:
        return position, jnp.zeros((), dtype)
    carry, (acc, tot) = jax.lax.scan(adjacent_pass, (position, scores(position), key), None,
                                     length=adjacent_passes)
    return carry[0], acc.sum() / jnp.maximum(tot.sum(), 1.0)


def node_gibbs(key, position, table, sets, n_nodes: int):
    """Exact Gibbs relocations: ``n_nodes`` times (scanned), a uniformly chosen node v of
    every cluster is taken out of its order and put back at a slot t drawn from its
    exact conditional given the relative order of the others (module docstring).
    Returns the new ``position`` (K, p)."""
    K, p = position.shape
    n_sets, d = sets.shape
    slots = jnp.arange(p)
    kk = jnp.arange(K)[:, None]
    # the sets holding node v, a fixed number of them for every v: Σ_{m<d} C(p−1, m)
    n_hold = sum(comb(p - 1, m) for m in range(min(d, p)))
    holds = jnp.any(sets[None] == slots[:, None, None], axis=-1)           # (p, #sets)
    hold_idx = jax.vmap(lambda h: jnp.nonzero(h, size=n_hold)[0])(holds)   # (p, n_hold)
    # the table is fixed during the moves: exponentiate it once (fast path below)
    top = jnp.max(table, axis=-1)                                          # (K, p)
    E = jnp.exp(table - top[..., None])

    def conditional(pos, v, linear: bool):
        """(K, p) log p(v at slot t | the others' relative order) + const, and the
        others' ranks (their positions with v taken out; v itself −1)."""
        pos_v = jnp.take_along_axis(pos, v[:, None], 1)                    # (K, 1)
        rank = jnp.where(pos > pos_v, pos - 1, pos)
        rank = jnp.where(slots[None] == v[:, None], -1, rank)
        rank_ext = jnp.concatenate([rank, jnp.full((K, 1), -1, rank.dtype)], axis=1)
        latest = jnp.max(rank_ext[:, sets], axis=-1)                       # (K, #sets)
        holds_v = holds[v]                                                 # (K, #sets)
        idx_v = hold_idx[v]                                                # (K, n_hold)
        # every other node u: its score with v before it (sets holding v allowed: v's
        # rank −1 passes the test) and with v after it (those sets excluded)
        before_u = latest[:, None, :] < rank[:, :, None]                   # (K, p, #sets)
        latest_v = jnp.take_along_axis(latest, idx_v, 1)                   # (K, n_hold)
        before_v = latest_v[:, None, :] < rank[:, :, None]                 # (K, p, n_hold)
        t_v = table[jnp.arange(K), v]                                      # (K, #sets)
        if linear:
            no_v = jnp.sum(jnp.where(before_u & ~holds_v[:, None], E, 0.0), axis=-1)
            part = jnp.sum(jnp.where(before_v, E[kk, :, idx_v].swapaxes(1, 2), 0.0), -1)
            with_v, without_v = jnp.log(no_v + part), jnp.log(no_v)        # (− top: cancels)
            # node v at slot t: its predecessors are the others of rank < t, so a set is
            # compatible iff its latest member's rank + 1 ≤ t (cumulative bucket sums)
            e_v = jnp.exp(t_v - top[kk, v[:, None]])
            bucket = jnp.zeros((K, p), E.dtype).at[kk, latest + 1].add(e_v)
            own = jnp.log(jnp.cumsum(bucket, axis=1))
        else:
            with_v = jax.nn.logsumexp(jnp.where(before_u, table, -jnp.inf), axis=-1)
            without_v = jax.nn.logsumexp(
                jnp.where(before_u & ~holds_v[:, None], table, -jnp.inf), axis=-1)
            own = jax.nn.logsumexp(jnp.where(latest[:, None, :] < slots[None, :, None],
                                             t_v[:, None, :], -jnp.inf), axis=-1)
        others = slots[None] != v[:, None]
        # u before v (rank_u < t): u's score without v, else with v; −inf − −inf: u's
        # score is −inf either way in no reachable state, count it as no change
        diff = jnp.where(others, without_v - with_v, 0.0)
        diff = jnp.where(jnp.isnan(diff), 0.0, diff)
        by_rank = jnp.zeros((K, p + 1), diff.dtype).at[
            kk, jnp.where(others, rank, p)].add(diff)[:, :p - 1]
        prefix = jnp.concatenate([jnp.zeros((K, 1), diff.dtype), jnp.cumsum(by_rank, 1)], 1)
        # a zero in the fast path is either an impossible slot or an underflow: recheck
        zero = jnp.any(others & (no_v <= 0)) | jnp.any(own == -jnp.inf) if linear else False
        return own + prefix, rank, zero

    def step(pos, key):
        k_v, k_t = jax.random.split(key)
        v = jax.random.randint(k_v, (K,), 0, p)                            # one node per cluster
        logp, rank, zero = conditional(pos, v, True)
        logp = jax.lax.cond(zero, lambda: conditional(pos, v, False)[0], lambda: logp)
        t = jax.random.categorical(k_t, logp, axis=-1)                     # (K,)
        new = jnp.where(rank >= t[:, None], rank + 1, rank)
        new = jnp.where(slots[None] == v[:, None], t[:, None], new)
        return new.astype(pos.dtype), None

    out, _ = jax.lax.scan(step, position, jax.random.split(key, n_nodes))
    return out

def draw_networks(key, S, counts, position, table, sets, prec_mu, prec_w, a, b, gamma):
    """Exact draws given the orders: each node's parent set ∝ ρ p(x | U) over its
    compatible sets, then σ² ~ InvGamma(a_n, b_n) and β ~ N(A⁻¹r, σ² A⁻¹) (``gamma``
    (K, p): standard Gamma(a_n) variates, drawn by the caller with its others — one
    ``jax.random.gamma`` call per sweep compiles much faster than several).  Returns
    ``(mu (K, p), B (K, p, p), sigma2 (K, p))`` (mu, sigma2 of binary nodes: 0, 1)."""
    K, P, _ = S.shape
    p = P - 1
    k_set, k_e = jax.random.split(key)
    logits = jnp.where(compatible(position, sets), table, -jnp.inf)
    # inverse-CDF draw (one uniform per node, not a Gumbel variate per parent set)
    w_set = jnp.exp(logits - jnp.max(logits, axis=-1, keepdims=True))
    cdf = jnp.cumsum(w_set, axis=-1)
    u = jax.random.uniform(k_set, (K, p), S.dtype) * cdf[..., -1]
    choice = jnp.minimum(jnp.sum(cdf <= u[..., None], axis=-1), sets.shape[0] - 1)
    # (float round-off can land past the last set: the clamp keeps it a compatible one
    # only when the last set is; step back to the last set with positive weight)
    choice = jnp.where(jnp.take_along_axis(w_set, choice[..., None], -1)[..., 0] > 0, choice,
                       sets.shape[0] - 1 - jnp.argmax(w_set[..., ::-1] > 0, axis=-1))
    members = sets[choice]                                            # (K, p, d)
    S_ext = jnp.pad(S, ((0, 0), (0, 1), (0, 1)))                      # index P: zeros
    idx = jnp.concatenate([jnp.zeros((K, p, 1), members.dtype), members + 1], axis=-1)
    pad = jnp.concatenate([jnp.zeros((K, p, 1), bool), members == p], axis=-1)
    prec = jnp.where(pad, 1.0, prec_w).at[..., 0].set(prec_mu).astype(S.dtype)
    kk = jnp.arange(K)[:, None, None, None]
    A = S_ext[kk, idx[..., :, None], idx[..., None, :]] + prec[..., :, None] * jnp.eye(
        idx.shape[-1], dtype=S.dtype)                                 # (K, p, m, m)
    L = _cholesky(A)
    nodes = 1 + jnp.arange(p)
    r = S_ext[kk[..., 0], idx, nodes[None, :, None]]                  # (K, p, m)
    w = _forward(L, r[..., None])[..., 0]                             # (K, p, m)
    yty = S[:, nodes, nodes]
    b_n = b + 0.5 * jnp.maximum(yty - jnp.sum(w * w, axis=-1), 0.0)
    sigma2 = b_n / gamma
    eps = jax.random.normal(k_e, w.shape, S.dtype)
    beta = _backward(L, w + jnp.sqrt(sigma2)[..., None] * eps)        # (K, p, m)
    mu = beta[..., 0]
    B = jnp.zeros((K, p + 1, p), S.dtype)
    kb = jnp.broadcast_to(jnp.arange(K)[:, None, None], members.shape)
    jj = jnp.broadcast_to(jnp.arange(p)[None, :, None], members.shape)
    B = B.at[kb, members, jj].add(jnp.where(members < p, beta[..., 1:], 0.0))[:, :p]
    return mu, B, sigma2
