"""Diagnostics of BN-mixture fits on what the data identify: direction-free summaries
(skeleton, implied moments) and directed weights excused only where the chains agree
on the edge but not on its direction.  Hand-built chains whose answer is known."""

from __future__ import annotations

import json

import numpy as np
import xarray as xr

from bayesimg.models.bnmix import skeleton_probabilities
from bayesimg.models.bnmix.identified import (
    GROUPS,
    chain_agreement,
    direction_exclusions,
    identified_summaries,
    pair_labels,
)
from bayesimg.report import diagnose

NAMES = np.array(["a", "b", "c"])
CLUSTERS = np.array(["c1"])
BASE = ~np.eye(3, dtype=bool)
C, S = 2, 1000


def _equivalent_chains(seed=0, extra_edge_in_chain0=False):
    """Two chains of one cluster, a and b dependent, c independent.  Each draw's
    covariance of (a, b) is drawn alike in both chains; chain 0 writes it as a → b,
    chain 1 as the Markov-equivalent b → a."""
    rng = np.random.default_rng(seed)
    va = rng.uniform(0.9, 1.1, (C, S))
    vb = rng.uniform(1.9, 2.1, (C, S))
    cov = rng.uniform(0.75, 0.85, (C, S))
    B = np.zeros((C, S, 1, 3, 3))
    mu = np.zeros((C, S, 1, 3))
    s2 = np.ones((C, S, 1, 3))
    mu[..., 2] = rng.normal(0.5, 0.05, (C, S))[..., None]
    s2[..., 2] = rng.uniform(0.9, 1.1, (C, S))[..., None]
    B[0, :, 0, 0, 1] = cov[0] / va[0]
    s2[0, :, 0, 0], s2[0, :, 0, 1] = va[0], vb[0] - cov[0] ** 2 / va[0]
    B[1, :, 0, 1, 0] = cov[1] / vb[1]
    s2[1, :, 0, 1], s2[1, :, 0, 0] = vb[1], va[1] - cov[1] ** 2 / vb[1]
    if extra_edge_in_chain0:                       # a real disagreement: c → a in chain 0 only
        B[0, :, 0, 2, 0] = 0.5
    return {"B": B, "mu": mu, "sigma2": s2,
            "pi": np.ones((C, S, 1)), "membership": rng.uniform(0.4, 0.6, (C, S, 4, 1))}


def _tree(samples):
    summ = identified_summaries(samples, np.zeros(3, bool), BASE, 0.1)
    excl = direction_exclusions(samples, NAMES, CLUSTERS, BASE, 0.1)
    pairs = pair_labels(NAMES, BASE)
    dims = {"B": ("cluster", "parent", "node"), "mu": ("cluster", "node"),
            "sigma2": ("cluster", "node"), "pi": ("cluster",),
            "membership": ("sample", "cluster"), "skeleton": ("cluster", "pair"),
            "implied_mean": ("cluster", "node"), "implied_var": ("cluster", "node"),
            "implied_cov": ("cluster", "pair")}
    ds = xr.Dataset({k: (("chain", "draw") + dims[k], v) for k, v in {**samples, **summ}.items()},
                    coords={"cluster": CLUSTERS, "node": NAMES, "parent": NAMES, "pair": pairs,
                            "sample": [f"s{i}" for i in range(4)]})
    tree = xr.DataTree.from_dict({"posterior": ds})
    tree.attrs.update(method="gibbs", approximate=0,
                      alignment=json.dumps({"convergence_groups": GROUPS,
                                            **({"convergence_exclude": excl} if excl else {})}))
    return tree, summ, excl


def test_implied_moments_are_those_of_the_sem():
    s = _equivalent_chains()
    summ = identified_summaries(s, np.zeros(3, bool), BASE, 0.1)
    # the defining identity (I − Bᵀ) Σ (I − B) = D, rebuilt from var/cov for one draw
    for c in range(C):
        B, d = s["B"][c, 7, 0], s["sigma2"][c, 7, 0]
        cov = np.diag(summ["implied_var"][c, 7, 0])
        cov[0, 1] = cov[1, 0] = summ["implied_cov"][c, 7, 0][0]       # pair a--b
        cov[0, 2] = cov[2, 0] = summ["implied_cov"][c, 7, 0][1]       # a--c
        cov[1, 2] = cov[2, 1] = summ["implied_cov"][c, 7, 0][2]       # b--c
        M = np.eye(3) - B
        np.testing.assert_allclose(M.T @ cov @ M, np.diag(d), atol=1e-12)
    # a root's implied variance is its residual variance (a in chain 0, b in chain 1)
    np.testing.assert_allclose(summ["implied_var"][0, :, 0, 0], s["sigma2"][0, :, 0, 0])
    np.testing.assert_allclose(summ["implied_var"][1, :, 0, 1], s["sigma2"][1, :, 0, 1])
    assert summ["skeleton"][..., 0, 0].all() and not summ["skeleton"][..., 0, 1:].any()
    # binary roots: mean θ and variance θ(1 − θ)
    sb = {**s, "mu": np.zeros_like(s["mu"]), "B": np.zeros_like(s["B"])}
    summ_b = identified_summaries(sb, np.array([True, False, False]), BASE, 0.1)
    np.testing.assert_allclose(summ_b["implied_mean"][..., 0], 0.5)
    np.testing.assert_allclose(summ_b["implied_var"][..., 0], 0.25)


def test_direction_only_disagreement_is_excused_not_a_problem():
    tree, _, excl = _tree(_equivalent_chains())
    excused = {(e["var"], tuple(e["sel"].values())) for e in excl["elements"]}
    assert excused == {("B", ("c1", "a", "b")), ("B", ("c1", "b", "a")),
                       ("mu", ("c1", "a")), ("sigma2", ("c1", "a")),
                       ("mu", ("c1", "b")), ("sigma2", ("c1", "b"))}
    assert excl["directed_weights_not_identified"] == 2
    # a--b joined in every draw of both chains, the other pairs never
    np.testing.assert_array_equal(skeleton_probabilities(tree).sel(cluster="c1").values,
                                  [1.0, 0.0, 0.0])
    d = diagnose(tree)
    assert d.ok, str(d)
    assert any("direction not identified" in m for m in d.messages)
    assert any(m.startswith("clusters (pi, membership)") and m.endswith("- converged.")
               for m in d.messages)
    assert any(m.startswith("networks (skeleton, implied_mean") and m.endswith("- converged.")
               for m in d.messages)
    agree = chain_agreement(tree["posterior"].to_dataset(), 0.1)
    # every pair's P is 0 or 1: no Monte Carlo error, so the iid floor is 0 too
    assert agree == {"max_abs_dP_skeleton": 0.0, "max_abs_dP_directed": 1.0,
                     "iid_floor_max_abs_dP_skeleton": 0.0}


def test_skeleton_disagreement_is_reported():
    tree, _, excl = _tree(_equivalent_chains(extra_edge_in_chain0=True))
    # the a--b pair is still excused; the c → a edge (one chain only) is not
    assert ("B", ("c1", "c", "a")) not in {(e["var"], tuple(e["sel"].values()))
                                           for e in excl["elements"]}
    d = diagnose(tree)
    assert not d.ok
    assert "skeleton[c1, a--c]" in " ".join(d.problems)
    # the clusters are judged apart from the networks: converged, while the networks not
    assert any(m.startswith("clusters") and m.endswith("- converged.") for m in d.messages)
    assert any(m.startswith("networks") and m.endswith("NOT converged.") for m in d.messages)
    assert chain_agreement(tree["posterior"].to_dataset(), 0.1)["max_abs_dP_skeleton"] == 1.0


def test_iid_floor_matches_independent_chains():
    # chains of independent draws with P(joined) = ½ for one pair: the spread of two
    # chains of S draws has sd √(2 · ¼ / S), so its mean |ΔP| is ≈ 0.8 · that sd
    rng = np.random.default_rng(1)
    s = _equivalent_chains()
    on = rng.random((C, S)) < 0.5
    s["B"][:, :, 0, 2, 1] = np.where(on, 0.5, 0.0)          # c → b half the time, iid
    tree, _, _ = _tree(s)
    agree = chain_agreement(tree["posterior"].to_dataset(), 0.1, floor_reps=400)
    expected = np.sqrt(2 / np.pi) * np.sqrt(2 * 0.25 / S)
    assert abs(agree["iid_floor_max_abs_dP_skeleton"] - expected) < 0.15 * expected
    assert agree["max_abs_dP_skeleton"] < 4 * expected      # these chains do mix
