"""BNMix input checks (named errors), options (black/whitelist, penalties, binary
nodes, known labels) and reproducibility, on tiny problems."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

import bayesimg
from bayesimg.data import make_views
from bayesimg.data.simulate_bnmix import simulate_bnmix
from bayesimg.errors import DataValidationError, ModelSpecError
from bayesimg.models import BNMix

OPTS = dict(method="gibbs", chains=2, warmup=100, draws=100, seed=0, progress=False)


@pytest.fixture(scope="module")
def small():
    return simulate_bnmix(n=120, n_nodes=5, n_clusters=2, edge_prob=0.5, n_remove=2, n_add=2,
                          seed=2)


def _views(X, names=None):
    names = names or [f"v{j}" for j in range(X.shape[1])]
    subjects = [f"s{i}" for i in range(X.shape[0])]
    return make_views({"x": pd.DataFrame(X, index=subjects, columns=names)}, standardize=False)


def test_constant_node_is_named(small):
    data, _ = small
    view = data.views[0]
    values = view.values.copy()
    values[:, 2] = 3.0
    bad = dataclasses.replace(data, views=(dataclasses.replace(view, values=values),))
    with pytest.raises(DataValidationError, match="node 'n3' is constant"):
        BNMix(2).validate(bad)


def test_too_few_samples_per_cluster(small):
    data, _ = small
    with pytest.raises(DataValidationError, match="too few samples per cluster.*at most K = 12"):
        BNMix(13).validate(data)
    with pytest.raises(DataValidationError, match="too few samples per cluster"):
        BNMix(2).validate(data.subset_subjects(np.arange(15)))
    with pytest.raises(ModelSpecError, match="n_clusters"):
        BNMix(0)


def test_edge_matrix_errors_name_the_node(small):
    data, _ = small
    with pytest.raises(DataValidationError, match=r"shape \(4, 4\).*5 nodes.*'n5'"):
        BNMix(2, blacklist=np.zeros((4, 4), bool)).validate(data)
    with pytest.raises(DataValidationError, match="'zz', which is not in the data"):
        BNMix(2, whitelist=[("n1", "zz")]).validate(data)
    with pytest.raises(DataValidationError, match="cycle: n1 -> n2 -> n1"):
        BNMix(2, whitelist=[("n1", "n2"), ("n2", "n1")]).validate(data)
    with pytest.raises(DataValidationError, match="both whitelisted and blacklisted"):
        BNMix(2, whitelist=[("n1", "n2")], blacklist=[("n1", "n2")]).validate(data)
    with pytest.raises(DataValidationError, match="edge_penalty must be >= 1"):
        BNMix(2, edge_penalty=np.full((5, 5), 0.5)).validate(data)
    with pytest.raises(DataValidationError, match="before its whitelisted parent 'n1'"):
        BNMix(2, order=["n2", "n1", "n3", "n4", "n5"], whitelist=[("n1", "n2")]).validate(data)
    with pytest.raises(DataValidationError, match="missing e.g. 'n5'"):
        BNMix(2, order=["n1", "n2", "n3", "n4"]).validate(data)


def test_missing_values_and_unsupported_views():
    X = np.random.default_rng(0).normal(size=(40, 3))
    X[5, 1] = np.nan
    with pytest.raises(DataValidationError, match="missing entries.*column 'v1'.*subject 's5'"):
        BNMix(2).validate(_views(X))
    counts = pd.DataFrame(np.random.default_rng(1).integers(0, 3, (40, 2)).astype(float),
                          index=[f"s{i}" for i in range(40)], columns=["g1", "g2"])
    gauss = pd.DataFrame(np.random.default_rng(2).normal(size=(40, 2)), index=counts.index,
                         columns=["y1", "y2"])
    data = make_views({"snp": counts, "y": gauss}, likelihoods={"snp": "binomial2"})
    with pytest.raises(DataValidationError, match="binomial2"):
        BNMix(2).validate(data)
    with pytest.raises(DataValidationError, match="known_labels column 'subtype'"):
        BNMix(2, known_labels="subtype").validate(_views(np.nan_to_num(X)))


def test_blacklist_whitelist_penalty_and_reproducibility(small):
    data, truth = small
    order = [str(v) for v in truth.node_names[truth.order]]
    first, second = order[0], order[1]
    # an edge absent from both true DAGs, penalised (bnClustOmics-style factor)
    pa, ch = next((truth.order[a], truth.order[b]) for a in range(5) for b in range(a + 1, 5)
                  if (a, b) not in ((0, 1), (2, 4)) and not truth.dags[:, truth.order[a],
                                                                       truth.order[b]].any())
    pa, ch = str(truth.node_names[pa]), str(truth.node_names[ch])
    model = BNMix(2, order=order, blacklist=[(first, second)], whitelist=[(order[2], order[4])],
                  edge_penalty=pd.DataFrame([[1e6]], index=[pa], columns=[ch]))
    fit = bayesimg.fit(model, data, **OPTS)
    B = fit.posterior["B"]
    assert float(np.abs(B.sel(parent=first, node=second)).max()) == 0.0
    # a heavily penalised absent edge is shrunk to ~0
    assert float(np.abs(B.sel(parent=pa, node=ch)).max()) < 0.01
    # reversed edges (later → earlier in the order) are never present
    assert float(np.abs(B.sel(parent=order[4], node=order[0])).max()) == 0.0
    again = bayesimg.fit(model, data, **OPTS)
    np.testing.assert_array_equal(fit.posterior["B"].values, again.posterior["B"].values)
    assert fit.tree["constant_data"]["whitelist"].sel(parent=order[2], node=order[4]) == 1


def test_binary_roots_and_known_labels():
    data, truth = simulate_bnmix(n=150, n_nodes=4, n_clusters=2, n_binary=2, edge_prob=0.6,
                                 seed=5)
    labels = pd.DataFrame({"grp": np.where(truth.labels == 0, "A", "B")},
                          index=data.subjects)
    labels.iloc[::3, 0] = None            # a third unknown: semi-supervised
    data = dataclasses.replace(data, labels=labels)
    fit = bayesimg.fit(BNMix(2, known_labels="grp"), data, **OPTS)
    post = fit.posterior
    assert list(post["cluster"].values) == ["A", "B"]
    # binary nodes are roots: nothing points into them; their intercepts are logits
    assert float(np.abs(post["B"].sel(node=["b1", "b2"])).max()) == 0.0
    assert np.all(post["sigma2"].sel(node=["b1", "b2"]).values == 1.0)
    memb = post["membership"].mean(("chain", "draw"))
    known = labels["grp"].notna().values
    target = (labels["grp"][known] == "B").astype(float).values
    np.testing.assert_allclose(memb.sel(cluster="B").values[known], target, atol=1e-9)
    assert fit.tree.attrs["alignment"].find("known labels") > 0


@pytest.mark.parametrize("method", ["gibbs", "map", "svi", "nuts"])
def test_single_node_is_a_gaussian_mixture(method):
    # one node (no candidate edges): every method fits a plain two-component mixture
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.normal(-2.0, 1.0, 80), rng.normal(2.0, 1.0, 80)])[:, None]
    opts = dict(OPTS, method=method)
    if method in ("map", "svi"):
        opts = dict(method=method, steps=1500, seed=0, progress=False)
    fit = bayesimg.fit(BNMix(2), _views(x, ["a"]), **opts)
    memb = fit.posterior["membership"].mean(("chain", "draw")).values
    truth = np.repeat([0, 1], 80)
    agree = max(np.mean(memb.argmax(-1) == truth), np.mean(memb.argmax(-1) != truth))
    assert agree > 0.9
    assert fit.posterior["B"].shape[-2:] == (1, 1)
