"""BNMix recovers clusters and per-cluster DAGs on the structure-only design.

The design of the bnClustOmics study (K = 3, 25 Gaussian nodes, N = 450; the
clusters share means, noise variances and shared-edge weights, and differ only in
~12 edges each), simulated by :func:`bayesimg.data.simulate_bnmix.simulate_bnmix`.
The oracle is the Bayes classification with the true parameters; the issue's
target is an ARI within 0.05 of it (bnClustOmics: 0.727 vs 0.777 on its own
instance).

Two seeds (0 and 1, the first two of the benchmark's 0–5), averaged: seed 0 is
one of the two hardest of the six (its posterior sits ≈ 0.05 below the oracle
even with the true order and the true labels as start), seed 1 an easy one.
benchmarks/bnmix.py records all six (mean gap ≈ 0.03 with the order given,
≈ 0.04 with the order sampled; 0.07–0.09 before partial pooling and the
scale-carrying order moves).
"""

from __future__ import annotations

import numpy as np
import pytest

import bayesimg
from bayesimg.data.simulate_bnmix import simulate_bnmix
from bayesimg.metrics import adjusted_rand_index, match_labels, structure_scores
from bayesimg.models import BNMix
from bayesimg.models.bnmix import cluster_labels, edge_probabilities

SEEDS = (0, 1)
GIBBS = dict(method="gibbs", chains=2, warmup=300, draws=300, seed=1, progress=False)


@pytest.fixture(scope="module")
def sims():
    return {s: simulate_bnmix(n=450, n_nodes=25, n_clusters=3, seed=s) for s in SEEDS}


def _scores(fit, truth):
    labels = cluster_labels(fit)
    mapping = match_labels(truth.labels, labels)
    est = edge_probabilities(fit).values > 0.5
    rows = [structure_scores(est[k], truth.dags[mapping[k]]) for k in range(3)]
    cp = [structure_scores(est[k], truth.dags[mapping[k]], cpdag=True)["SHD"] for k in range(3)]
    return {"gap": adjusted_rand_index(truth.labels, truth.oracle_labels)
            - adjusted_rand_index(truth.labels, labels),
            "TPR": np.mean([r["TPR"] for r in rows]), "FDR": np.mean([r["FDR"] for r in rows]),
            "CPDAG_SHD": np.mean(cp)}


def test_given_order_recovers_clusters_and_dags(sims):
    scores, fits = {}, {}
    for s, (data, truth) in sims.items():
        fits[s] = bayesimg.fit(BNMix(3, order=list(truth.order)), data, **GIBBS)
        scores[s] = _scores(fits[s], truth)
    gaps = [v["gap"] for v in scores.values()]
    assert np.mean(gaps) < 0.05, scores
    assert max(gaps) < 0.07, scores
    for v in scores.values():
        assert v["TPR"] > 0.9 and v["FDR"] < 0.15, scores
        assert v["CPDAG_SHD"] < 6, scores
    # named dims, relabelled clusters, stored memberships, the shared network
    data, truth = sims[SEEDS[-1]]
    post = fits[SEEDS[-1]].posterior
    assert post["B"].dims == ("chain", "draw", "cluster", "parent", "node")
    assert post["B_shared"].dims == ("chain", "draw", "parent", "node")
    assert post["membership"].dims == ("chain", "draw", "sample", "cluster")
    assert list(post["node"].values[:2]) == ["n1", "n2"]
    np.testing.assert_allclose(post["membership"].sum("cluster"), 1.0, atol=1e-6)
    # the fixed order: every draw's B is strictly triangular after permutation
    P = np.asarray(truth.order)
    B = post["B"].values[..., P[:, None], P[None, :]]
    assert np.all(np.tril(np.abs(B).max(axis=(0, 1, 2))) == 0)
    # the clusters' common edges sit in the shared network, their differences in Δ_k
    base = truth.dags.all(axis=0)
    dev = np.abs(post["B"] - post["B_shared"]).mean(("chain", "draw")).values
    specific = truth.dags.any(axis=0) & ~base
    assert dev[:, base].mean() < 0.25 * dev[:, specific].mean()


@pytest.mark.slow   # ~65 s; benchmarks/bnmix.py records the sampled-order fits on seeds 0–5
def test_sampled_order_recovers_clusters_and_skeletons(sims):
    scores = {}
    for s, (data, truth) in sims.items():
        fit = bayesimg.fit(BNMix(3), data, **GIBBS)
        scores[s] = _scores(fit, truth)
        acc = fit.tree["sample_stats"]["order_accept"].values.mean()
        assert 0.05 < acc < 0.98
        pos = fit.posterior["position"].values
        assert np.all(np.sort(pos, axis=-1) == np.arange(25))   # always a permutation
    gaps = [v["gap"] for v in scores.values()]
    assert np.mean(gaps) < 0.05, scores
    assert max(gaps) < 0.07, scores
    for v in scores.values():
        # without the order, directions and some extra edges are the price (skeleton scores)
        assert v["TPR"] > 0.85 and v["FDR"] < 0.45, scores
