"""benchmarks/bilateral_vs_sp_bgsmtr.py without R: the "not installed" record and the
pairing of the exported example (synthetic stand-in data, never the ADNI-derived example)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(BENCH))
    try:
        import bilateral_vs_sp_bgsmtr
        yield bilateral_vs_sp_bgsmtr
    finally:
        sys.path.remove(str(BENCH))


def test_records_not_installed_and_exits_0(bench, tmp_path, monkeypatch):
    monkeypatch.setattr(bench.shutil, "which", lambda name: None)
    out = tmp_path / "r.json"
    assert bench.main(["--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["sp_bgsmtr"] == {"available": False,
                                   "why": "Rscript not installed on this machine"}
    assert "fits" not in result and "load_average_at_start" in result


def test_example_measures_pair_i_with_i_plus_28(bench, tmp_path):
    rng = np.random.default_rng(0)
    n, d = 40, 5
    subjects = [f"s{i}" for i in range(n)]
    X = pd.DataFrame(rng.integers(0, 3, (n, d)), index=subjects,
                     columns=[f"rs{j}" for j in range(d)])
    X.to_csv(tmp_path / "snp_data.csv", index_label="subject")
    base = rng.normal(size=(n, 12))
    cols = [str(i) for i in range(1, 13)] + [str(i) for i in range(29, 41)]
    # measure i + 28 is measure i plus noise: the pairs the loader builds must see that
    Y = pd.DataFrame(np.hstack([base, base + 0.3 * rng.normal(size=(n, 12))]),
                     index=subjects, columns=cols)
    Y.to_csv(tmp_path / "brain_measures.csv", index_label="subject")
    data, pairs, rename = bench.load_example(tmp_path)
    assert rename["29"] == "R_01" and rename["12"] == "L_12"
    names = list(map(str, data.phenotype_names))
    Ys = np.asarray(data.phenotypes)
    for left, right in pairs:
        r = np.corrcoef(Ys[:, names.index(left)], Ys[:, names.index(right)])[0, 1]
        assert r > 0.9, (left, right, r)
    assert data.n_snps == d and data.n_subjects == n
    # R's sd (ddof = 1) as sp_bgsmtr standardises
    assert np.allclose(Ys.std(axis=0, ddof=1), 1.0)


def test_example_with_unexpected_names_is_refused(bench, tmp_path):
    pd.DataFrame({"rs0": [0, 1]}, index=["a", "b"]).to_csv(tmp_path / "snp_data.csv")
    pd.DataFrame({"x": [0.0, 1.0]}, index=["a", "b"]).to_csv(tmp_path / "brain_measures.csv")
    with pytest.raises(SystemExit, match="unexpected measure names"):
        bench.load_example(tmp_path)


def test_top_overlap_counts_shared_entries(bench):
    a = np.arange(100.0).reshape(10, 10)
    b = a.copy()
    b.ravel()[:50] = 1000.0 + np.arange(50)       # b's top 50 are a's bottom 50
    out = bench.overlaps({"a": a, "b": b, "c": a})
    assert out == {"a__b": 0.0, "a__c": 1.0, "b__c": 0.0}
