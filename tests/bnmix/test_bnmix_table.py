"""BNMix on one table of mixed binary and continuous columns: types found per column,
column order and names kept end to end, constant columns refused by name."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import bayesimg
from bayesimg.data.simulate_bnmix import simulate_bnmix
from bayesimg.errors import DataValidationError
from bayesimg.models import BNMix
from bayesimg.models.bnmix import edge_probabilities, skeleton_probabilities
from bayesimg.models.bnmix.table import views_from_table

OPTS = dict(method="gibbs", chains=2, warmup=100, draws=100, seed=0, progress=False)


@pytest.fixture(scope="module")
def mixed():
    data, truth = simulate_bnmix(n=150, n_nodes=4, n_clusters=2, n_binary=2, edge_prob=0.6,
                                 seed=5)
    X = np.hstack([v.values for v in data.views])
    names = [str(v) for v in truth.node_names]
    frame = pd.DataFrame(X, index=data.subjects, columns=names)
    # interleave the types and rename: the fit must follow the table, not the view split
    new_names = {n: f"mut_{n}" if n.startswith("b") else f"expr_{n}" for n in names}
    cols = [names[2], names[0], names[3], names[4], names[1], names[5]]
    table = frame[cols].rename(columns=new_names)
    dag = truth.dags.any(axis=0)
    true_edges = [(new_names[names[i]], new_names[names[j]]) for i, j in np.argwhere(dag)]
    return table, true_edges


def test_types_order_and_names_kept(mixed):
    table, _ = mixed
    data = views_from_table(table)
    assert [n for v in data.views for n in v.feature_names] == list(table.columns)
    assert [v.likelihood for v in data.views] == ["gaussian", "bernoulli", "gaussian",
                                                   "bernoulli", "gaussian"]
    np.testing.assert_array_equal(np.hstack([v.values for v in data.views]),
                                  table.to_numpy(float))
    assert BNMix.node_names(data).tolist() == list(table.columns)


def test_constant_and_bad_columns_are_refused_by_name(mixed):
    table, _ = mixed
    t = table.copy()
    t.insert(2, "flat", 1.0)
    t["zeros"] = 0
    with pytest.raises(DataValidationError, match=r"2 constant column\(s\) \['flat', 'zeros'\]"):
        bayesimg.fit(BNMix(2), t, **OPTS)
    t = table.copy()
    t.iloc[3, 1] = np.nan
    with pytest.raises(DataValidationError, match="missing entries"):
        views_from_table(t)
    with pytest.raises(DataValidationError, match="only 0/1"):
        views_from_table(table, binary=[table.columns[0]])
    with pytest.raises(DataValidationError, match="'nope', which is not in the table"):
        views_from_table(table, binary=["nope"])


def test_fit_a_mixed_table_directly(mixed):
    table, true_edges = mixed
    cols = list(table.columns)
    binary = [c for c in cols if c.startswith("mut_")]
    # a positional blacklist uses the table's column order: forbid cols[0] -> cols[2]
    black = np.zeros((6, 6), bool)
    black[0, 2] = True
    fit = bayesimg.fit(BNMix(2, blacklist=black), table, **OPTS)
    ep = edge_probabilities(fit)
    assert list(ep["parent"].values) == cols and list(ep["node"].values) == cols
    assert float(ep.sel(parent=cols[0], node=cols[2]).max()) == 0.0
    # binary columns are roots, continuous ones are not constrained to be
    assert float(ep.sel(node=binary).max()) == 0.0
    assert fit.tree["constant_data"]["is_binary"].sel(node=binary).all()
    # the strongest true edges are found under their own names (either direction: the
    # order is sampled; an edge out of a binary node has only one direction)
    skel = np.maximum(ep.values, np.swapaxes(ep.values, 1, 2)).max(axis=0)
    found = [skel[cols.index(a), cols.index(b)] for a, b in true_edges
             if (a, b) != (cols[0], cols[2])]
    assert np.mean(np.asarray(found) > 0.5) >= 0.75
    # the direction-free summaries are stored under the same names, and the clusters and
    # networks are judged as separate groups
    post = fit.posterior
    pairs = list(post["pair"].values)
    assert f"{cols[0]}--{cols[1]}" in pairs and f"{binary[0]}--{binary[1]}" not in pairs
    np.testing.assert_allclose(
        skeleton_probabilities(fit).sel(pair=f"{cols[0]}--{cols[1]}").values,
        # one order per draw: at most one direction is present, so P(joined) is the sum
        ep.sel(parent=cols[0], node=cols[1]).values + ep.sel(parent=cols[1], node=cols[0]).values,
        atol=1e-12)
    assert set(post["implied_var"].dims) == {"chain", "draw", "cluster", "node"}
    messages = bayesimg.report.diagnose(fit).messages
    assert any(m.startswith("clusters (pi, membership)") for m in messages)
