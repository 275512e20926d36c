"""SNP → gene grouping (coordinates and mappings), LD pruning, and the bundled demo."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from bayesimg.data import (
    GenotypeTable,
    group_snps,
    ld_prune,
    load_demo,
    load_demo_truth,
    load_gene_table,
    make_dataset,
)
from bayesimg.data.genes import normalize_chrom
from bayesimg.errors import DataValidationError, DataWarning, InputFileError

# Genes on "chr1": A body 1000-2000, B body 2500-3000 (windows of 600 overlap),
# C body 10000-11000; D on chr2.
GENES = pd.DataFrame({
    "gene": ["A", "B", "C", "D"],
    "chrom": ["chr1", "chr1", "chr1", "chr2"],
    "start": [1000, 2500, 10000, 500],
    "end": [2000, 3000, 11000, 900],
})

# snp: (chrom, pos, expected gene with window=600)
LAYOUT = {
    "s_far": ("1", 20000, None),       # outside every window
    "s_inC": ("1", 10500, "C"),
    "s_inA": ("1", 1500, "A"),         # inside A
    "s_AB": ("1", 2200, "A"),          # 200 from A's end, 300 from B's start → A
    "s_B": ("1", 2450, "B"),           # in B window (50) and A window (450) → B
    "s_lowA": ("1", 500, "A"),         # 500 before A (window)
    "s_D": ("chr2", 700, "D"),         # "chr2" label matches "chr2" table row
    "s_chr3": ("3", 100, None),        # no genes on chr3
}


@pytest.fixture
def dataset():
    rng = np.random.default_rng(0)
    names = list(LAYOUT)
    d, n = len(names), 40
    values = rng.integers(0, 3, size=(n, d)).astype(float)
    snps = pd.DataFrame({
        "snp": names, "chrom": [LAYOUT[s][0] for s in names],
        "pos": np.array([LAYOUT[s][1] for s in names], dtype=np.int64),
        "a1": ["A"] * d, "a2": ["G"] * d, "gene": pd.Series([None] * d, dtype=object)})
    table = GenotypeTable(np.array([f"i{k}" for k in range(n)]), values, snps)
    return make_dataset(table)


def group_quietly(*args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        return group_snps(*args, **kwargs)


def genes_of(ds):
    return dict(zip(ds.snps["snp"], ds.snps["gene"], strict=True))


def assert_contiguous(ds):
    labels = list(ds.snps["gene"])
    seen = []
    for lab in labels:
        if not seen or seen[-1] != lab:
            assert lab not in seen, f"gene {lab} is split"
            seen.append(lab)


def test_normalize_chrom():
    assert normalize_chrom("chr2") == normalize_chrom("2") == normalize_chrom(2) == "2"
    assert normalize_chrom("CHRX") == normalize_chrom("23") == "X"
    assert normalize_chrom("chrM") == normalize_chrom("MT") == normalize_chrom("26") == "M"


def test_load_gene_table():
    table = load_gene_table()
    assert list(table.columns) == ["gene", "chrom", "start", "end", "strand", "gene_type"]
    assert len(table) == 20345 and set(table["gene_type"]) == {"protein_coding"}
    lct = table[table["gene"] == "LCT"].iloc[0]
    assert (lct["chrom"], lct["start"], lct["end"]) == ("2", 136545410, 136594750)
    assert len(load_gene_table(gene_types=None)) == 57820
    with pytest.raises(DataValidationError, match="hg38"):
        load_gene_table("hg38")


def test_group_from_coordinates(dataset):
    with pytest.warns(DataWarning, match="dropped 2 of 8 SNPs"):
        grouped = group_snps(dataset, GENES, window=600)
    expected = {s: g for s, (_, _, g) in LAYOUT.items() if g is not None}
    assert genes_of(grouped) == expected
    record = grouped.preprocessing["grouping"]
    assert record["method"] == "coordinates" and record["window"] == 600
    assert sorted(record["snps_dropped_unassigned"]) == ["s_chr3", "s_far"]
    assert record["snps_in_several_genes"] == 2  # s_AB and s_B
    assert record["gene_sizes"] == {"A": 3, "B": 1, "C": 1, "D": 1}
    # Contiguous, genes by position, SNPs by position within a gene.
    assert list(grouped.snp_names) == ["s_lowA", "s_inA", "s_AB", "s_B", "s_inC", "s_D"]
    assert list(grouped.gene_names) == ["A", "B", "C", "D"]
    # Genotype columns and per-SNP centres moved with their SNPs.
    src = list(dataset.snp_names)
    for j, snp in enumerate(grouped.snp_names):
        np.testing.assert_array_equal(grouped.genotypes[:, j],
                                      dataset.genotypes[:, src.index(snp)])
        assert (grouped.preprocessing["genotype_center"][j]
                == dataset.preprocessing["genotype_center"][src.index(snp)])


def test_tie_on_body_distance_goes_to_nearest_midpoint(dataset):
    genes = pd.DataFrame({"gene": ["long", "short"], "chrom": ["1", "1"],
                          "start": [1000, 1400], "end": [3000, 1600]})
    grouped = group_quietly(dataset, genes, window=0)
    assert genes_of(grouped)["s_inA"] == "short"   # inside both; midpoint 1500 is nearer


def test_window_zero_and_singletons(dataset):
    grouped = group_snps(dataset, GENES, window=0, unassigned="singleton")
    labels = genes_of(grouped)
    assert labels["s_lowA"] == "s_lowA" and labels["s_far"] == "s_far"
    assert labels["s_inA"] == "A" and labels["s_AB"] == "s_AB"
    assert grouped.n_snps == dataset.n_snps
    assert grouped.preprocessing["grouping"]["n_singletons"] == 5  # far, AB, B, lowA, chr3
    assert_contiguous(grouped)


def test_unassigned_nearest(dataset):
    with pytest.warns(DataWarning, match="dropped 1 of 8"):   # chr3 has no genes
        grouped = group_snps(dataset, GENES, window=600, unassigned="nearest")
    assert genes_of(grouped)["s_far"] == "C"
    assert "s_chr3" not in genes_of(grouped)
    assert grouped.preprocessing["grouping"]["snps_assigned_nearest"] == 1


def test_group_from_mapping_dict_dataframe_and_file(dataset, tmp_path):
    mapping = {"s_inA": "G1", "s_AB": "G1", "s_inC": "G2", "s_D": "G3", "absent": "G9"}
    by_dict = group_quietly(dataset, mapping)
    frame = pd.DataFrame({"snp": list(mapping), "gene": list(mapping.values())})
    by_frame = group_quietly(dataset, frame)
    frame.to_csv(tmp_path / "map.csv", index=False)
    by_file = group_quietly(dataset, str(tmp_path / "map.csv"))
    for grouped in (by_dict, by_frame, by_file):
        assert genes_of(grouped) == {k: v for k, v in mapping.items() if k != "absent"}
        record = grouped.preprocessing["grouping"]
        assert record["method"] == "mapping" and record["mapping_entries_ignored"] == 1
        assert len(record["snps_dropped_unassigned"]) == 4
        assert_contiguous(grouped)


def test_mapping_unassigned_singleton_and_nearest(dataset):
    mapping = {"s_inA": "G1", "s_inC": "G2"}
    single = group_snps(dataset, mapping, unassigned="singleton")
    assert genes_of(single)["s_B"] == "s_B" and single.n_snps == 8
    near = group_quietly(dataset, mapping, unassigned="nearest")
    labels = genes_of(near)
    assert labels["s_B"] == "G1" and labels["s_far"] == "G2" and "s_D" not in labels


def test_mapping_errors(dataset, tmp_path):
    conflict = pd.DataFrame({"snp": ["s_inA", "s_inA"], "gene": ["G1", "G2"]})
    with pytest.raises(DataValidationError, match="several genes.*column 's_inA'"):
        group_snps(dataset, conflict)
    with pytest.raises(DataValidationError, match="columns snp, gene"):
        group_snps(dataset, pd.DataFrame({"x": [1]}))
    with pytest.raises(InputFileError, match="nope.csv"):
        group_snps(dataset, str(tmp_path / "nope.csv"))
    with pytest.raises(DataValidationError, match="no SNP could be assigned"):
        group_quietly(dataset, {"absent": "G"})
    with pytest.raises(DataValidationError, match="unassigned"):
        group_snps(dataset, GENES, unassigned="keep")


def test_ld_prune_keeps_first_of_each_pair():
    rng = np.random.default_rng(1)
    n = 200
    base = rng.integers(0, 3, size=(n, 3)).astype(float)
    values = np.column_stack([base[:, 0], base[:, 0], base[:, 1], base[:, 1], base[:, 2]])
    values[:5, 1] = 2 - values[:5, 1]        # s1 ≈ s0 (r² high but < 1)
    snps = pd.DataFrame({"snp": [f"s{j}" for j in range(5)], "chrom": "1",
                         "pos": np.arange(5) * 100 + 100, "a1": "A", "a2": "G",
                         "gene": ["g1", "g1", "g2", "g2", "g2"]})
    table = GenotypeTable(np.array([f"i{k}" for k in range(n)]), values, snps)
    ds = make_dataset(table)
    pruned = ld_prune(ds, r2=0.8)
    assert list(pruned.snp_names) == ["s0", "s2", "s4"]
    record = pruned.preprocessing["ld_pruning"]
    assert record["kept_partner"] == {"s1": "s0", "s3": "s2"}
    assert len(pruned.preprocessing["genotype_center"]) == 3
    protected = ld_prune(ds, r2=0.8, keep=["s3"])
    assert list(protected.snp_names) == ["s0", "s3", "s4"]
    assert ld_prune(ds, r2=0.8, within="chromosome").n_snps == 3
    with pytest.raises(DataValidationError, match="r2"):
        ld_prune(ds, r2=0)


def test_ld_prune_needs_grouping(dataset):
    with pytest.raises(DataValidationError, match="group_snps"):
        ld_prune(dataset)


# --------------------------------------------------------------------------- bundled demo
@pytest.fixture(scope="module")
def demo():
    return load_demo()


def test_load_demo(demo):
    assert demo.n_subjects == 503 and demo.n_phenotypes == 8
    assert list(demo.covariate_names) == ["age", "sex[M]"]
    assert demo.n_snps == 1611 and len(demo.gene_names) == 15
    assert {"LCT", "MCM6", "AGT", "TTN"} <= set(demo.gene_names)
    assert_contiguous(demo)
    np.testing.assert_allclose(demo.phenotypes.std(axis=0), 1)
    np.testing.assert_allclose(demo.genotypes.mean(axis=0), 0, atol=1e-10)
    assert demo.preprocessing["snps_dropped_missing"] == ["rs12464380", "rs17304212",
                                                          "rs746578"]


def test_demo_truth_matches_dataset(demo):
    truth = load_demo_truth()
    assert list(truth.columns) == ["snp", "gene", "a1", "phenotype", "effect", "effect_std"]
    assert (truth["effect"] != 0).all() and truth["snp"].nunique() == 5
    assert set(truth["gene"]) == {"MCM6", "AGT", "TTN"}
    assert "rs4988235" in set(truth["snp"])
    labels = genes_of(demo)
    a1 = dict(zip(demo.snps["snp"], demo.snps["a1"], strict=True))
    for row in truth.itertuples():
        assert labels[row.snp] == row.gene and a1[row.snp] == row.a1
        assert row.phenotype in set(demo.phenotype_names)
    # The planted effects are visible: regression on the five planted SNPs + covariates.
    names = list(demo.snp_names)
    X = demo.genotypes[:, [names.index(s) for s in truth["snp"].unique()]]
    design = np.column_stack([X, demo.covariates])
    coef = np.linalg.lstsq(design, demo.phenotypes, rcond=None)[0]
    pheno = list(demo.phenotype_names)
    snps = list(truth["snp"].unique())
    for row in truth.itertuples():
        estimate = coef[snps.index(row.snp), pheno.index(row.phenotype)]
        assert abs(estimate - row.effect_std) < 0.15


def test_load_demo_options():
    small = load_demo(("AGT",), genes=["AGT"], covariates=False, standardize_phenotypes=False)
    assert list(small.gene_names) == ["AGT"] and small.covariates is None
    assert small.phenotypes[:, 0].mean() > 1000          # mm³, not standardised
    pruned = load_demo(("AGT",), ld_prune_r2=0.8)
    assert {"rs699", "rs7079"} <= set(pruned.snp_names)  # planted SNPs are protected
    assert pruned.n_snps < 304
    with pytest.raises(DataValidationError, match="BRCA"):
        load_demo(("BRCA",))
