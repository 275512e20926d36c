"""The bundled chromosome-2 panel (1000 Genomes) and its loader."""

from __future__ import annotations

import importlib.resources
import warnings

import numpy as np
import pandas as pd
import pytest

from bayesimg.data import (
    CHR2_POPULATIONS,
    load_chr2_panel,
    load_chr2_populations,
    read_plink,
)
from bayesimg.errors import DataValidationError, DataWarning

DEMO = importlib.resources.files("bayesimg.data") / "datasets" / "demo_1000g"


@pytest.fixture(scope="module")
def panel():
    return load_chr2_panel()


def fam_iids() -> np.ndarray:
    with importlib.resources.as_file(DEMO / "chr2.fam") as path:
        fam = pd.read_csv(path, sep=r"\s+", header=None, dtype=str)
    return fam[1].to_numpy()


def test_default_panel_counts(panel):
    assert panel.name == "chr2_1000g"
    assert panel.n_subjects == 503
    assert panel.n_snps == 4524
    assert len(panel.gene_names) == 901
    assert panel.phenotypes is None and panel.covariates is None
    assert set(panel.snps["chrom"].astype(str)) == {"2"}
    prep = panel.preprocessing
    assert prep["snps_input"] == 10_025
    assert len(prep["snps_dropped_missing"]) == 31
    assert prep["grouping"]["n_genes"] == 901
    assert prep["grouping"]["window"] == 10_000
    # centred allele counts
    np.testing.assert_allclose(panel.genotypes.mean(axis=0), 0.0, atol=1e-12)


def test_subjects_match_the_fam(panel):
    np.testing.assert_array_equal(panel.subjects, fam_iids())
    populations = load_chr2_populations()
    np.testing.assert_array_equal(populations.index.to_numpy(), fam_iids())
    assert populations.value_counts().to_dict() == {
        "IBS": 107, "TSI": 107, "CEU": 99, "FIN": 99, "GBR": 91}
    assert set(populations) == set(CHR2_POPULATIONS)


def test_genes_are_contiguous_and_in_position_order(panel):
    labels = panel.snps["gene"].to_numpy()
    starts = np.flatnonzero(np.r_[True, labels[1:] != labels[:-1]])
    assert len(starts) == len(set(labels[starts])) == 901
    first_pos = panel.snps["pos"].to_numpy()[starts]
    assert np.all(np.diff(first_pos) > 0)


def test_ungrouped_and_window():
    raw = load_chr2_panel(gene_table=None)
    assert raw.n_snps == 10_025 - 31
    assert raw.snps["gene"].isna().all()
    narrow = load_chr2_panel(window=0)
    assert narrow.n_snps < 4524
    assert set(narrow.snp_names) <= set(raw.snp_names)


@pytest.mark.parametrize("population, n", [("FIN", 99), (["ceu", "GBR"], 190)])
def test_population_filter(population, n):
    data = load_chr2_panel(population=population)
    wanted = {population} if isinstance(population, str) else {"CEU", "GBR"}
    assert data.n_subjects == n
    assert set(load_chr2_populations().loc[data.subjects]) == wanted
    # the MAF filter uses the kept individuals only
    freq = data.preprocessing["genotype_center"] / 2.0
    assert np.minimum(freq, 1 - freq).min() >= 0.05
    assert len(data.preprocessing["snps_dropped_maf"]) > 0
    # subjects keep the .fam order
    order = pd.Index(fam_iids()).get_indexer(data.subjects)
    assert np.all(np.diff(order) > 0)


@pytest.mark.parametrize("population", ["YRI", ["FIN", "EUR"], []])
def test_unknown_population_is_a_named_error(population):
    with pytest.raises(DataValidationError, match="population") as err:
        load_chr2_panel(population=population)
    assert "FIN" in str(err.value)


def test_shared_snps_agree_with_the_dense_panels():
    """The 18 rsIDs also in the LCT/TTN files carry the same genotypes: the bundled chr2
    files belong together and to the same individuals, and every file's .bim A1 names
    the allele it counts (rs4988235-A at 0.74 in CEU, 0.09 in TSI, as in 1000 Genomes):
    where two files label a SNP's alleles in opposite order the counts are complements,
    where they label it alike the counts are equal (SOURCE.md)."""
    chr2 = load_chr2_panel(gene_table=None)
    with importlib.resources.as_file(DEMO) as folder, warnings.catch_warnings():
        # the padding slots hold code 01, a fill read_plink recognises: no warning
        warnings.simplefilter("error", DataWarning)
        dense = {r: read_plink(folder / r) for r in ("LCT", "TTN")}
    shared = {}
    for region, table in dense.items():
        rows = pd.Index(table.subjects).get_indexer(chr2.subjects)
        assert (rows >= 0).all()
        for snp in set(table.snps["snp"]) & set(chr2.snp_names):
            j = list(table.snps["snp"]).index(snp)
            k = list(chr2.snp_names).index(snp)
            mine = tuple(table.snps[["a1", "a2"]].iloc[j])
            theirs = tuple(chr2.snps[["a1", "a2"]].iloc[k])
            assert mine in (theirs, theirs[::-1]), snp
            counts = chr2.genotypes[:, k] + chr2.preprocessing["genotype_center"][k]
            other = table.values[rows, j]
            ok = np.isfinite(other) & np.isin(counts, (0.0, 1.0, 2.0))  # not imputed
            expected = other[ok] if mine == theirs else 2.0 - other[ok]
            np.testing.assert_array_equal(counts[ok], expected, err_msg=snp)
            shared.setdefault(region, []).append(mine == theirs)
    assert len(shared["LCT"]) == 2 and len(shared["TTN"]) == 16
