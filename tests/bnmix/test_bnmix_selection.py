"""Choosing K: PSIS-LOO through the shared compare report, BIC beside it, and the
overfitted sparse-Dirichlet mixture, in a clear case (true K = 2)."""

from __future__ import annotations

import numpy as np
import pytest

import bayesimg
from bayesimg.data.simulate_bnmix import simulate_bnmix
from bayesimg.models import BNMix
from bayesimg.models.bnmix import bic
from bayesimg.workflows import select_n_clusters

OPTS = dict(method="gibbs", chains=2, warmup=200, draws=300, seed=3, progress=False)


@pytest.fixture(scope="module")
def case():
    return simulate_bnmix(n=300, n_nodes=6, n_clusters=2, edge_prob=0.5, n_remove=3, n_add=3,
                          w_min=0.8, w_max=1.2, seed=4)


@pytest.fixture(scope="module")
def fits(case):
    data, truth = case
    return {k: bayesimg.fit(BNMix(k, order=list(truth.order)), data, **OPTS) for k in (1, 2, 3)}


def test_loo_and_bic_pick_true_k(fits):
    k, table = select_n_clusters(fits, ic="loo")
    assert k == 2, table
    # K=1 is far worse; K=3 is not better than K=2 beyond its standard error and
    # leaves its extra cluster (nearly) empty
    assert table.loc["K=1", "elpd_diff"] > 4 * table.loc["K=1", "dse"]
    tie = abs(table.loc["K=3", "elpd"] - table.loc["K=2", "elpd"])
    assert tie < 2 * max(table.loc["K=2", "dse"], table.loc["K=3", "dse"], 0.5)
    assert table.loc["K=3", "occupied"] == 2
    scores = {k: bic(f)["bic"] for k, f in fits.items()}
    assert min(scores, key=scores.get) == 2
    assert table.loc["K=2", "bic"] == pytest.approx(scores[2])


def test_overfitted_sparse_dirichlet_empties_extra_clusters(case):
    data, truth = case
    fit = bayesimg.fit(BNMix(4, order=list(truth.order), dirichlet_alpha=0.01), data, **OPTS)
    pi = fit.posterior["pi"].mean(("chain", "draw")).values
    assert np.sum(pi > 0.05) == 2, pi
