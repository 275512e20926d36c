"""Imputed dosages: accepted in [0, 2] by make_dataset and read_dosage_table; hard calls exact."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from bayesimg.data import GenotypeTable, load_bgsmtr_layout, make_dataset, read_dosage_table
from bayesimg.data.io import check_genotype_values
from bayesimg.errors import DataValidationError, DataWarning

N, D = 30, 6


def _table(values):
    n, d = values.shape
    snps = pd.DataFrame({"snp": [f"rs{j}" for j in range(d)], "chrom": ["1"] * d,
                         "pos": np.arange(d, dtype=np.int64) * 100, "a1": ["A"] * d,
                         "a2": ["G"] * d, "gene": [None] * d})
    return GenotypeTable(np.asarray([f"s{i}" for i in range(n)]), values, snps)


@pytest.fixture
def dosages():
    rng = np.random.default_rng(3)
    return np.clip(rng.integers(0, 3, size=(N, D)) + rng.normal(0, 0.2, size=(N, D)), 0, 2)


def test_make_dataset_accepts_dosages_and_detects_them(dosages):
    ds = make_dataset(_table(dosages), standardize_genotypes=None)
    assert ds.preprocessing["genotype_values"] == "dosages"
    np.testing.assert_array_equal(ds.genotypes, dosages)        # nothing rounded
    centred = make_dataset(_table(dosages))
    np.testing.assert_allclose(centred.genotypes + centred.preprocessing["genotype_center"],
                               dosages)


def test_hard_calls_stay_exact_and_are_detected():
    rng = np.random.default_rng(4)
    calls = rng.integers(0, 3, size=(N, D)).astype(float)
    ds = make_dataset(_table(calls), standardize_genotypes=None)
    assert ds.preprocessing["genotype_values"] == "hard calls"
    np.testing.assert_array_equal(ds.genotypes, calls)
    declared = make_dataset(_table(calls), standardize_genotypes=None, dosages=True)
    assert declared.preprocessing["genotype_values"] == "dosages"


def test_dosages_false_insists_on_hard_calls(dosages):
    with pytest.raises(DataValidationError, match="not an allele count 0, 1 or 2.*"
                       "dosages=False") as err:
        make_dataset(_table(dosages), dosages=False)
    assert err.value.column == "rs0" and err.value.subject is not None
    with pytest.raises(DataValidationError, match="dosages must be"):
        make_dataset(_table(dosages), dosages="yes")


@pytest.mark.parametrize("bad", [2.0001, -0.01, 3.0, np.inf])
def test_values_outside_0_2_are_named_errors(dosages, bad):
    dosages[7, 4] = bad
    with pytest.raises(DataValidationError, match=r"not an allele count or dosage in \[0, 2\]"
                       ) as err:
        make_dataset(_table(dosages))
    assert err.value.column == "rs4" and err.value.subject == "s7"


def test_missing_dosages_are_mean_imputed_like_calls(dosages):
    dosages[3, 1] = np.nan
    with pytest.warns(DataWarning, match="imputed 1 missing"):
        ds = make_dataset(_table(dosages), standardize_genotypes=None)
    assert ds.genotypes[3, 1] == pytest.approx(np.nanmean(dosages[:, 1]))


def test_check_genotype_values_examples():
    assert check_genotype_values(np.array([[0.0, 1.0], [2.0, np.nan]])) == "hard calls"
    assert check_genotype_values(np.array([[0.0, 1.5]])) == "dosages"
    assert check_genotype_values(np.array([[0.0, 1.0]]), dosages=True) == "dosages"


def _write_dosage_csv(path, values):
    frame = pd.DataFrame(values, columns=[f"rs{j}" for j in range(values.shape[1])])
    frame.insert(0, "IID", [f"s{i}" for i in range(len(values))])
    frame.to_csv(path, index=False, float_format="%.4f")
    return path


def test_read_dosage_table_reads_imputed_values(tmp_path, dosages):
    # the values of an imputation server's output: 1.4388 is no longer refused
    dosages[0, 0] = 1.4388
    path = _write_dosage_csv(tmp_path / "imputed.csv", dosages)
    table = read_dosage_table(path)
    assert table.kind == "dosages" and table.values[0, 0] == 1.4388
    np.testing.assert_allclose(table.values, np.round(dosages, 4))
    ds = make_dataset(table, standardize_genotypes=None)
    assert ds.preprocessing["genotype_values"] == "dosages"
    with pytest.raises(DataValidationError, match="dosages=False"):
        read_dosage_table(path, dosages=False)


def test_read_dosage_table_hard_calls_and_bad_values(tmp_path):
    calls = np.random.default_rng(5).integers(0, 3, size=(12, 3)).astype(float)
    table = read_dosage_table(_write_dosage_csv(tmp_path / "calls.csv", calls))
    assert table.kind == "hard calls"
    np.testing.assert_array_equal(table.values, calls)
    calls[4, 2] = 2.5
    with pytest.raises(DataValidationError, match=r"\[0, 2\]") as err:
        read_dosage_table(_write_dosage_csv(tmp_path / "bad.csv", calls))
    assert (err.value.column, err.value.subject) == ("rs2", "s4")
    assert err.value.source.endswith("bad.csv")


def test_load_bgsmtr_layout_takes_dosages(tmp_path, dosages):
    folder = tmp_path / "bgsmtr"
    folder.mkdir()
    _write_dosage_csv(folder / "snp_data.csv", dosages)
    pd.DataFrame({"snp": [f"rs{j}" for j in range(D)],
                  "gene": ["g1"] * 3 + ["g2"] * 3}).to_csv(folder / "snp_groups.csv",
                                                           index=False)
    rng = np.random.default_rng(6)
    pheno = pd.DataFrame(rng.normal(size=(N, 2)), columns=["roi1", "roi2"])
    pheno.insert(0, "IID", [f"s{i}" for i in range(N)])
    pheno.to_csv(folder / "brain_measures.csv", index=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        data = load_bgsmtr_layout(folder)
    assert data.n_snps == D and data.preprocessing["genotype_values"] == "dosages"
