"""bayesimg.metrics against hand-worked examples (and scikit-learn where installed)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bayesimg import metrics as M

# true = [0,0,0,1,1,1], pred = [0,0,1,1,2,2]
# contingency rows (true) × cols (pred): [[2,1,0],[0,1,2]]
TRUE = [0, 0, 0, 1, 1, 1]
PRED = ["a", "a", "b", "b", "c", "c"]


def test_contingency_and_ari_by_hand():
    assert M.contingency_table(TRUE, PRED).tolist() == [[2, 1, 0], [0, 1, 2]]
    # Σ C(n_ij,2) = 1 + 1 = 2; rows C(3,2)+C(3,2) = 6; cols C(2,2)*3 = 3; C(6,2) = 15
    # expected = 6*3/15 = 1.2; max = 4.5; ARI = (2 - 1.2)/(4.5 - 1.2) = 0.8/3.3
    assert M.adjusted_rand_index(TRUE, PRED) == pytest.approx(0.8 / 3.3)
    assert M.adjusted_rand_index(TRUE, TRUE) == 1.0
    # relabelling does not matter
    assert M.adjusted_rand_index([0, 0, 1, 1], [5, 5, 7, 7]) == 1.0
    # the classic "independent" example: ARI is negative here
    assert M.adjusted_rand_index([0, 0, 1, 1], [0, 1, 0, 1]) == pytest.approx(-0.5)


def test_entropy_based_scores_by_hand():
    # H(true) = log 2; H(pred) = log 3 (three clusters of 2)
    # I = Σ p_ij log(p_ij/(p_i p_j)): cells 2/6 (×2): (1/3) log((1/3)/(1/2·1/3)) = (1/3) log 2
    #     cells 1/6 (×2): (1/6) log((1/6)/(1/2·1/3)) = 0  → I = (2/3) log 2
    mi = 2.0 / 3.0 * math.log(2)
    assert M.homogeneity(TRUE, PRED) == pytest.approx(mi / math.log(2))       # 2/3
    assert M.completeness(TRUE, PRED) == pytest.approx(mi / math.log(3))
    assert M.normalized_mutual_info(TRUE, PRED) == pytest.approx(
        mi / ((math.log(2) + math.log(3)) / 2))
    h, c = M.homogeneity(TRUE, PRED), M.completeness(TRUE, PRED)
    assert M.v_measure(TRUE, PRED) == pytest.approx(2 * h * c / (h + c))
    # a split of one class: perfectly homogeneous, not complete
    assert M.homogeneity([0, 0, 1, 1], [0, 1, 2, 2]) == pytest.approx(1.0)
    assert M.completeness([0, 0, 1, 1], [0, 1, 2, 2]) < 1.0


def test_accuracy_and_matching_by_hand():
    # best matching: a→0 (2), c→1 (2), b unmatched or matched with 1 cell → 4/6... b is left
    # over with 2 classes for 3 clusters; optimal total = 2 + 2 = 4
    assert M.clustering_accuracy(TRUE, PRED) == pytest.approx(4 / 6)
    mapping = M.match_labels(TRUE, PRED)
    assert mapping["a"] == 0 and mapping["c"] == 1 and mapping["b"] is None
    assert M.clustering_accuracy([1, 1, 2, 2, 2], [9, 9, 9, 8, 8]) == pytest.approx(4 / 5)


def test_agrees_with_scikit_learn_on_random_labels():
    skm = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    for _ in range(20):
        a = rng.integers(0, 4, 60)
        b = rng.integers(0, 3, 60)
        assert M.adjusted_rand_index(a, b) == pytest.approx(skm.adjusted_rand_score(a, b))
        assert M.normalized_mutual_info(a, b) == pytest.approx(
            skm.normalized_mutual_info_score(a, b))
        assert M.homogeneity(a, b) == pytest.approx(skm.homogeneity_score(a, b))
        assert M.completeness(a, b) == pytest.approx(skm.completeness_score(a, b))


def test_label_errors():
    with pytest.raises(ValueError, match="differ in length"):
        M.adjusted_rand_index([0, 1], [0, 1, 1])
    with pytest.raises(ValueError, match="empty"):
        M.adjusted_rand_index([], [])


def _adj(p, edges):
    a = np.zeros((p, p), int)
    for i, j in edges:
        a[i, j] = 1
    return a


def test_cpdag_of_chain_collider_and_meek_rule():
    # chain 0→1→2: no v-structure, all undirected
    cp = M.dag_to_cpdag(_adj(3, [(0, 1), (1, 2)]))
    assert cp.tolist() == [[0, 1, 0], [1, 0, 1], [0, 1, 0]]
    # collider 0→2←1: compelled
    cp = M.dag_to_cpdag(_adj(3, [(0, 2), (1, 2)]))
    assert cp.tolist() == [[0, 0, 1], [0, 0, 1], [0, 0, 0]]
    # 0→2←1, 2→3: Meek R1 orients 2→3
    cp = M.dag_to_cpdag(_adj(4, [(0, 2), (1, 2), (2, 3)]))
    assert cp[2, 3] == 1 and cp[3, 2] == 0
    # R2: 0→1→2 and 0—2 become 0→2 when 0→1→2 are compelled: a→c←b, c→d, a→d
    dag = _adj(4, [(0, 2), (1, 2), (2, 3), (0, 3)])
    cp = M.dag_to_cpdag(dag)
    assert cp[0, 3] == 1 and cp[3, 0] == 0
    with pytest.raises(ValueError, match="acyclic"):
        M.dag_to_cpdag(_adj(2, [(0, 1), (1, 0)]))


def test_shd_tpr_fdr_by_hand():
    truth = _adj(4, [(0, 1), (1, 2), (2, 3)])
    est = _adj(4, [(1, 0), (1, 2), (0, 3)])     # reversal, correct, one extra; 2→3 missing
    # pairs: {0,1} reversed (1), {1,2} same, {2,3} missing (1), {0,3} extra (1) → SHD 3
    assert M.shd(est, truth) == 3
    s = M.structure_scores(est, truth)
    # skeleton: TP {0,1},{1,2} = 2; FP {0,3} = 1; FN {2,3} = 1
    assert (s["TP"], s["FP"], s["FN"]) == (2, 1, 1)
    assert s["TPR"] == pytest.approx(2 / 3)
    assert s["FDR"] == pytest.approx(1 / 3)
    # Markov-equivalent DAGs: SHD > 0 on DAGs, 0 on CPDAGs
    a = _adj(3, [(0, 1), (1, 2)])
    b = _adj(3, [(1, 0), (1, 2)])
    assert M.shd(a, b) == 1
    assert M.shd(a, b, cpdag=True) == 0
    # a collider vs the chain: CPDAG SHD counts the two differently-marked pairs
    c = _adj(3, [(0, 1), (2, 1)])
    assert M.shd(a, c, cpdag=True) == 2
    empty = np.zeros((3, 3), int)
    assert M.structure_scores(empty, empty) == {"TP": 0, "FP": 0, "FN": 0, "TPR": 1.0,
                                                "FDR": 0.0, "SHD": 0}


def test_graph_errors():
    with pytest.raises(ValueError, match="square"):
        M.shd(np.zeros((2, 3)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="self-loop"):
        M.shd(np.eye(2), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="differ in size"):
        M.shd(np.zeros((2, 2)), np.zeros((3, 3)))


def test_graph_scores_by_hand_direction_counts():
    truth = _adj(4, [(0, 1), (1, 2), (2, 3)])
    est = _adj(4, [(1, 0), (1, 2), (0, 3)])     # reversal, correct, one extra; 2→3 missing
    s = M.graph_scores(est, truth)
    assert list(s) == ["dag", "cpdag", "skeleton"]
    # DAG: only 1→2 right; 1→0 and 0→3 wrong (FP 2); 0→1 and 2→3 missed (FN 2)
    assert (s["dag"]["TP"], s["dag"]["FP"], s["dag"]["FN"]) == (1, 2, 2)
    assert s["dag"]["FDR"] == pytest.approx(2 / 3) and s["dag"]["TPR"] == pytest.approx(1 / 3)
    assert s["dag"]["SHD"] == 3
    # skeleton: as structure_scores
    assert {k: s["skeleton"][k] for k in ("TP", "FP", "FN")} == {"TP": 2, "FP": 1, "FN": 1}
    assert s["skeleton"]["SHD"] == 2
    # CPDAGs: truth's chain is fully undirected; the estimate 0 ← 1 → 2, 0 → 3 has no
    # v-structure either, so {0,1} and {1,2} match as undirected pairs
    assert (s["cpdag"]["TP"], s["cpdag"]["FP"], s["cpdag"]["FN"]) == (2, 1, 1)
    assert s["cpdag"]["SHD"] == M.shd(est, truth, cpdag=True) == 2


def test_graph_scores_markov_equivalence_and_collider():
    chain = _adj(3, [(0, 1), (1, 2)])
    reversed_chain = _adj(3, [(2, 1), (1, 0)])   # same equivalence class
    s = M.graph_scores(reversed_chain, chain)
    assert s["dag"]["TP"] == 0 and s["dag"]["FDR"] == 1.0 and s["dag"]["SHD"] == 2
    assert s["cpdag"]["TP"] == 2 and s["cpdag"]["FDR"] == 0.0 and s["cpdag"]["SHD"] == 0
    assert s["skeleton"]["TPR"] == 1.0 and s["skeleton"]["FDR"] == 0.0
    # the collider 0 → 1 ← 2 is its own class: its compelled marks differ from the chain's
    collider = _adj(3, [(0, 1), (2, 1)])
    s = M.graph_scores(collider, chain)
    assert s["dag"]["TP"] == 1 and s["dag"]["FP"] == 1        # 0 → 1 right, 2 → 1 reversed
    assert s["cpdag"]["TP"] == 0 and s["cpdag"]["FDR"] == 1.0  # every mark differs
    assert s["skeleton"]["SHD"] == 0
    # identical graphs score perfectly at every level; empty graphs by convention
    for level in M.graph_scores(collider, collider).values():
        assert (level["TPR"], level["FDR"], level["SHD"]) == (1.0, 0.0, 0)
    empty = np.zeros((3, 3), int)
    assert M.graph_scores(empty, chain)["dag"] == {"TP": 0, "FP": 0, "FN": 2, "TPR": 0.0,
                                                   "FDR": 0.0, "SHD": 2}


def test_graph_scores_cyclic_estimate_and_mean():
    truth = _adj(3, [(0, 1), (1, 2)])
    cyc = _adj(3, [(0, 1), (1, 2), (2, 0)])
    s = M.graph_scores(cyc, truth)
    assert np.isnan(s["cpdag"]["SHD"]) and s["dag"]["TP"] == 2 and s["dag"]["FP"] == 1
    with pytest.raises(ValueError, match="acyclic"):
        M.graph_scores(truth, cyc)
    m = M.mean_graph_scores([truth, _adj(3, [(1, 0), (1, 2)])], [truth, truth])
    assert m["dag"]["FDR"] == pytest.approx(0.25) and m["cpdag"]["FDR"] == 0.0
