"""BNMix(structure="order"): conjugate scores against brute force, the sampler against
exact enumeration over all DAGs, and input checks."""

from itertools import permutations

import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from scipy.stats import multivariate_t

import bayesimg
from bayesimg.data import make_views
from bayesimg.errors import DataValidationError, ModelSpecError
from bayesimg.models import BNMix
from bayesimg.models.bnmix import edge_probabilities, skeleton_probabilities
from bayesimg.models.bnmix.order import parent_sets, score_table, set_validity

A_NOISE, B_NOISE, S_MU, C_W = 2.0, 1.0, 2.0, 1.0


def brute_local_score(y, Xpa):
    """log p(y | parents) by the multivariate t: y ~ t_{2a}(0, (b/a)(I + D Λ⁻¹ Dᵀ)),
    D = (1, X_pa) (weights and σ² integrated out directly, no sufficient statistics)."""
    D = np.column_stack([np.ones(len(y)), Xpa])
    prior_var = np.r_[S_MU**2, np.full(Xpa.shape[1], C_W**2)]
    shape = (B_NOISE / A_NOISE) * (np.eye(len(y)) + (D * prior_var) @ D.T)
    return multivariate_t(loc=np.zeros(len(y)), shape=shape, df=2 * A_NOISE).logpdf(y)


def _frame(X):
    return pd.DataFrame(X, index=[f"s{i}" for i in range(len(X))],
                        columns=[f"n{j}" for j in range(X.shape[1])])


def _chain_data(n=40, seed=3):
    rng = np.random.default_rng(seed)
    x0 = rng.normal(size=n)
    x1 = 0.6 * x0 + rng.normal(size=n)
    x2 = 0.5 * x1 - 0.3 * x0 + rng.normal(size=n)
    x3 = 0.4 * x2 + rng.normal(size=n)
    return np.column_stack([x0, x1, x2, x3])


def test_score_table_matches_brute_force_marginal_likelihood():
    X = _chain_data(n=30)
    labels = np.r_[np.zeros(12, int), np.ones(18, int)]
    sets = parent_sets(4, 2)
    Xt = np.column_stack([np.ones(len(X)), X])
    S = np.stack([Xt[labels == k].T @ Xt[labels == k] for k in range(2)])
    counts = np.bincount(labels).astype(float)
    table = np.asarray(score_table(jnp.asarray(S), jnp.asarray(counts), jnp.asarray(sets),
                                   1 / S_MU**2, 1 / C_W**2, A_NOISE, B_NOISE))
    for k in range(2):
        Xk = X[labels == k]
        for j in range(4):
            for s, members in enumerate(sets):
                pa = [int(u) for u in members if u < 4]
                if j in pa:
                    continue
                assert table[k, j, s] == pytest.approx(brute_local_score(Xk[:, j], Xk[:, pa]),
                                                       rel=1e-5, abs=1e-4)


def test_set_validity_honours_blacklist_whitelist_and_penalty():
    p = 4
    sets = parent_sets(p, 2)
    base = ~np.eye(p, dtype=bool)
    base[0, 3] = False                                  # 0 -> 3 blacklisted
    white = np.zeros((p, p), bool)
    white[1, 2] = True                                  # 1 -> 2 required
    pen = np.ones((p, p))
    pen[2, 3] = 4.0
    valid, log_prior = set_validity(sets, base, white, pen)
    as_sets = [frozenset(int(u) for u in s if u < p) for s in sets]
    for s, members in enumerate(as_sets):
        assert valid[3, s] == (3 not in members and 0 not in members)
        assert valid[2, s] == (2 not in members and 1 in members)
        if valid[3, s]:
            assert log_prior[3, s] == pytest.approx(-np.log(4.0) * (2 in members))


def _linear_extensions(adj):
    p = adj.shape[0]
    return sum(all(perm.index(i) < perm.index(j) for i, j in zip(*np.nonzero(adj), strict=True))
               for perm in permutations(range(p)))


def exact_edge_posterior(X, edge_log_odds, max_parents=3, dag_uniform=False):
    """P(i → j | x) by enumerating every DAG on p ≤ 4 nodes, each weighted by its
    marginal likelihood (brute force) × (q/(1 − q))^#edges × its number of linear
    extensions (the order-modular prior; ``dag_uniform``: × 1 instead)."""
    p = X.shape[1]
    local = {}
    for j in range(p):
        for mask in range(2 ** p):
            pa = [i for i in range(p) if mask >> i & 1]
            if j not in pa and len(pa) <= max_parents:
                local[j, mask] = brute_local_score(X[:, j], X[:, pa])
    off = [(i, j) for i in range(p) for j in range(p) if i != j]
    logw, adjs = [], []
    for bits in range(2 ** len(off)):
        adj = np.zeros((p, p), bool)
        for e, (i, j) in enumerate(off):
            adj[i, j] = bits >> e & 1
        masks = [sum(1 << i for i in np.flatnonzero(adj[:, j])) for j in range(p)]
        if any((j, m) not in local for j, m in enumerate(masks)):
            continue
        n_ext = _linear_extensions(adj)
        if n_ext == 0:                                   # cyclic
            continue
        logw.append(sum(local[j, m] for j, m in enumerate(masks)) + edge_log_odds * adj.sum()
                    + (0.0 if dag_uniform else np.log(n_ext)))
        adjs.append(adj)
    w = np.exp(np.asarray(logw) - max(logw))
    return np.tensordot(w / w.sum(), np.asarray(adjs, float), axes=1)


def test_sampled_edge_posterior_matches_exact_enumeration():
    X = _chain_data()
    data = make_views({"x": _frame(X)}, standardize=False)
    model = BNMix(1, structure="order", max_parents=3, standardize=False, init_restarts=1)
    fit = bayesimg.fit(model, data, method="gibbs", chains=2, warmup=200, draws=2500, seed=0,
                       progress=False)
    sampled = edge_probabilities(fit).isel(cluster=0).values
    # q = expected_parents / (candidate parents) = 1/3 (module docstring)
    log_odds = np.log(1 / 3 / (1 - 1 / 3))
    exact = exact_edge_posterior(X, log_odds)
    # the check can fail: the DAG-uniform prior (no linear-extension weight) differs
    assert np.abs(exact_edge_posterior(X, log_odds, dag_uniform=True) - exact).max() > 0.05
    assert np.abs(sampled - exact).max() < 0.04, (sampled.round(3), exact.round(3))
    # direction-free summary: P(pair joined) = P(i → j) + P(j → i)
    skel = skeleton_probabilities(fit).isel(cluster=0).values
    a, b = np.triu_indices(4, 1)
    np.testing.assert_allclose(skel, (exact + exact.T)[a, b], atol=0.04)


def test_order_structure_inputs():
    with pytest.raises(ModelSpecError, match="structure"):
        BNMix(2, structure="dag")
    with pytest.raises(ModelSpecError, match="max_parents"):
        BNMix(2, structure="order", max_parents=0)
    X = _chain_data(n=40)
    data = make_views({"x": _frame(X)})
    white = np.zeros((4, 4), bool)
    white[[0, 1, 2], 3] = True
    with pytest.raises(DataValidationError, match="max_parents"):
        BNMix(1, structure="order", max_parents=2, whitelist=white).validate(data)
    with pytest.raises(ModelSpecError, match="gibbs"):
        BNMix(1, structure="order").model_args(data, "nuts")
    wide = make_views({"x": _frame(np.random.default_rng(0).normal(size=(40, 60)))})
    with pytest.raises(ModelSpecError, match="score table"):
        BNMix(2, structure="order", max_parents=4).validate(wide)


@pytest.mark.slow
def test_chains_agree_on_the_benchmark_design():
    """Issue 16's mixing target on one seed of the benchmark design (benchmarks/bnmix.py
    records all six): independent chains agree on every skeleton probability."""
    from bayesimg.data.simulate_bnmix import simulate_bnmix
    from bayesimg.models.bnmix.identified import chain_agreement
    data, _ = simulate_bnmix(n=450, n_nodes=25, n_clusters=3, seed=3)
    fit = bayesimg.fit(BNMix(3, structure="order"), data, method="gibbs", chains=2,
                       warmup=300, draws=300, seed=1, progress=False)
    agree = chain_agreement(fit.posterior, 0.0)
    assert agree["max_abs_dP_skeleton"] <= 0.1 + agree["iid_floor_max_abs_dP_skeleton"]


def test_node_relocation_gibbs_leaves_the_order_posterior_invariant():
    """The exact node relocations (order.node_gibbs) alone, run as a chain on a fixed
    random score table (p = 4, two clusters, one node needing a parent so that the
    log-sum-exp fallback runs too), visit the 24 orders with frequencies ∝ the exact
    order score; a uniform distribution over orders would fail the same check."""
    import jax

    from bayesimg.models.bnmix.order import node_gibbs, node_scores

    p, K = 4, 2
    sets = parent_sets(p, 2)
    rng = np.random.default_rng(0)
    table = rng.normal(scale=2.0, size=(K, p, len(sets)))
    for j in range(p):
        table[:, j, (sets == j).any(axis=1)] = -np.inf
    table[1, 2, 0] = -np.inf                            # cluster 1: node 2 has a parent
    table, sets_j = jnp.asarray(table), jnp.asarray(sets)
    orders = list(permutations(range(p)))
    positions = np.stack([np.argsort(o) for o in orders])
    exact = np.stack([np.asarray(node_scores(table, jnp.tile(jnp.asarray(pos)[None], (K, 1)),
                                             sets_j).sum(axis=-1)) for pos in positions])
    exact = np.exp(exact - exact.max(axis=0))
    exact /= exact.sum(axis=0)                                          # (24, K)

    @jax.jit
    def chain(key):
        def body(pos, k):
            pos = node_gibbs(k, pos, table, sets_j, 1)
            return pos, pos
        return jax.lax.scan(body, jnp.tile(jnp.arange(p)[None], (K, 1)),
                            jax.random.split(key, 40_000))[1]

    draws = np.asarray(chain(jax.random.PRNGKey(0)))                    # (draws, K, p)
    index = {tuple(pos): i for i, pos in enumerate(positions)}
    for k in range(K):
        freq = np.bincount([index[tuple(d)] for d in draws[:, k]], minlength=24) / len(draws)
        assert np.abs(freq - exact[:, k]).max() < 0.015, (freq.round(3), exact[:, k].round(3))
        assert np.abs(1 / 24 - exact[:, k]).max() > 0.1
