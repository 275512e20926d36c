"""Choosing K: PSIS-LOO through the shared compare report, BIC beside it, and the
overfitted sparse-Dirichlet mixture, in a clear case (true K = 2)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import bayesimg
from bayesimg.data.simulate_bnmix import simulate_bnmix
from bayesimg.errors import ModelSpecError
from bayesimg.models import BNMix
from bayesimg.models.bnmix import bic
from bayesimg.workflows import choose_by_one_se, select_n_clusters

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
    # the occupancy columns: K=2 splits the subjects, K=3's extra cluster holds
    # (nearly) nobody, so it is not eligible whatever its elpd
    assert table.loc["K=2", "occupied"] == 2 and table.loc["K=2", "smallest_share"] > 0.3
    assert table.loc["K=3", "smallest_share"] < 0.02 and not table.loc["K=3", "eligible"]
    assert table.loc["K=1", "smallest_share"] == 1.0
    k_any, t_any = select_n_clusters(fits, ic="loo", allow_small_clusters=True)
    assert t_any["eligible"].all() and k_any == 2
    scores = {k: bic(f)["bic"] for k, f in fits.items()}
    assert min(scores, key=scores.get) == 2
    assert table.loc["K=2", "bic"] == pytest.approx(scores[2])


def test_overfitted_sparse_dirichlet_empties_extra_clusters(case):
    data, truth = case
    fit = bayesimg.fit(BNMix(4, order=list(truth.order), dirichlet_alpha=0.01), data, **OPTS)
    pi = fit.posterior["pi"].mean(("chain", "draw")).values
    assert np.sum(pi > 0.05) == 2, pi


def test_one_se_rule_skips_small_clusters_unless_asked():
    # a hand-made comparison table: K=4 has the best elpd but an empty cluster, K=3 a
    # 1% cluster; K=2 is within one SE of the best eligible K, so it wins
    table = pd.DataFrame({"K": [4, 3, 2, 1], "elpd": [-100.0, -101.0, -103.0, -150.0],
                          "dse": [0.0, 2.5, 2.5, 9.0],
                          "smallest_share": [0.0, 0.01, 0.3, 1.0]},
                         index=["K=4", "K=3", "K=2", "K=1"])
    table["eligible"] = table["smallest_share"] >= 0.02
    assert choose_by_one_se(table) == 2
    # without the guard the rule lands on the empty-cluster K (its SE band is K=4, K=3)
    assert choose_by_one_se(table.assign(eligible=True), n_se=0.1) == 4
    assert choose_by_one_se(table.assign(eligible=True)) == 3
    # the best eligible K wins when nothing smaller is within its SE
    assert choose_by_one_se(table.assign(dse=0.0)) == 2
    with pytest.raises(ModelSpecError, match="no K is eligible"):
        choose_by_one_se(table.assign(eligible=False))
