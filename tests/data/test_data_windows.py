"""gene_windows: consecutive windows of whole genes for a genome-wide scan."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from bayesimg.data import (
    GenotypeTable,
    describe_windows,
    gene_windows,
    load_chr2_panel,
    make_dataset,
)
from bayesimg.data.windows import _balanced_cuts, _min_windows
from bayesimg.errors import DataValidationError


def grouped(sizes_by_chrom: dict[str, list[int]], n: int = 30, seed: int = 0,
            phenotypes: bool = True):
    """A dataset whose genes have the given SNP counts, gene by gene, per chromosome."""
    rng = np.random.default_rng(seed)
    rows = []
    for chrom, sizes in sizes_by_chrom.items():
        pos = 1000
        for g, size in enumerate(sizes):
            for _ in range(size):
                rows.append({"chrom": chrom, "pos": pos, "gene": f"G{chrom}_{g}"})
                pos += 100
    snps = pd.DataFrame(rows)
    snps.insert(0, "snp", [f"rs{i}" for i in range(len(snps))])
    snps["a1"], snps["a2"] = "A", "G"
    snps = snps[["snp", "chrom", "pos", "a1", "a2", "gene"]]
    values = rng.integers(0, 3, size=(n, len(snps))).astype(float)
    subjects = np.array([f"i{k}" for k in range(n)])
    table = GenotypeTable(subjects, values, snps)
    pheno = pd.DataFrame(rng.standard_normal((n, 2)), index=subjects, columns=["y1", "y2"])
    return make_dataset(table, pheno if phenotypes else None, name="toy")


def assert_partition(data, windows, max_snps):
    snps = np.concatenate([w.snp_names for w in windows.values()])
    # every SNP in exactly one window, in the original order
    np.testing.assert_array_equal(snps, data.snp_names)
    owner = {}
    for name, w in windows.items():
        assert w.name == name
        genes = list(w.gene_names)
        for g in genes:
            assert g not in owner, f"gene {g} split between {owner.get(g)} and {name}"
            owner[g] = name
        chroms = set(w.snps["chrom"].astype(str))
        assert len(chroms) == 1
        chrom = chroms.pop()
        expected = f"chr{chrom}:{genes[0]}" + (f"-{genes[-1]}" if len(genes) > 1 else "")
        assert name == expected
        assert w.n_snps <= max_snps or len(genes) == 1
        np.testing.assert_array_equal(w.subjects, data.subjects)
        np.testing.assert_array_equal(w.phenotypes, data.phenotypes)
        ix = pd.Index(data.snp_names).get_indexer(w.snp_names)
        np.testing.assert_array_equal(w.genotypes, data.genotypes[:, ix])
        np.testing.assert_array_equal(w.preprocessing["genotype_center"],
                                      data.preprocessing["genotype_center"][ix])
    assert set(owner) == set(data.gene_names)


def test_partition_names_and_chromosomes():
    data = grouped({"1": [3, 1, 4, 1, 5, 9, 2, 6], "2": [5, 3, 5], "X": [2]})
    windows = gene_windows(data, max_snps=8)
    assert_partition(data, windows, 8)
    names = list(windows)
    assert names[0].startswith("chr1:G1_0-") and names[-1] == "chrX:GX_0"
    assert "chr1:G1_5" in names   # 9 SNPs > 8: a window alone
    table = describe_windows(windows)
    assert list(table.index) == names
    assert table["n_snps"].sum() == data.n_snps
    assert table["n_genes"].sum() == len(data.gene_names)
    rec = windows[names[0]].preprocessing["window"]
    assert rec["index"] == 0 and rec["n_windows"] == len(windows) and rec["max_snps"] == 8


def test_one_window_when_everything_fits():
    data = grouped({"2": [2, 2, 2]})
    windows = gene_windows(data, max_snps=100)
    assert list(windows) == ["chr2:G2_0-G2_2"]
    assert windows["chr2:G2_0-G2_2"].n_snps == 6


@pytest.mark.parametrize("seed", range(25))
def test_fewest_windows_then_most_even(seed):
    """Against brute force: the fewest windows under the cap, least Σ size²."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 7, size=int(rng.integers(1, 10)))
    cap = int(rng.integers(sizes.max(), sizes.max() + 10))
    best = None
    for k in range(len(sizes)):
        for cuts in itertools.combinations(range(1, len(sizes)), k):
            parts = np.split(sizes, cuts)
            loads = [int(p.sum()) for p in parts]
            if max(loads) <= cap:
                key = (len(parts), sum(v * v for v in loads))
                best = key if best is None else min(best, key)
    cuts = _balanced_cuts(sizes, cap)
    loads = [int(p.sum()) for p in np.split(sizes, cuts[:-1])]
    assert cuts[-1] == len(sizes) and max(loads) <= cap
    assert (len(loads), sum(v * v for v in loads)) == best
    assert _min_windows(sizes, cap) == best[0]


def test_chr2_panel_windows():
    data = load_chr2_panel()
    windows = gene_windows(data, max_snps=250)
    assert_partition(data, windows, 250)
    table = describe_windows(windows)
    assert len(windows) == 19
    assert table["n_snps"].between(229, 249).all()
    assert table["first_pos"].is_monotonic_increasing
    assert (table["first_pos"].to_numpy()[1:] > table["last_pos"].to_numpy()[:-1]).all()


def test_bad_inputs_are_named_errors():
    data = grouped({"1": [2, 3]})
    with pytest.raises(DataValidationError, match="max_snps"):
        gene_windows(data, max_snps=0)
    ungrouped = load_chr2_panel(gene_table=None)
    with pytest.raises(DataValidationError, match="group_snps"):
        gene_windows(ungrouped)
    split = data.subset_snps([0, 2, 1, 3, 4])   # G1_0, G1_1, G1_0, ...
    with pytest.raises(DataValidationError, match="contiguous"):
        gene_windows(split)
    with pytest.raises(DataValidationError, match="not a window"):
        describe_windows({"x": data})
