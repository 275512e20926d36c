"""make_dataset: alignment, validation, missing-data policies, standardisation."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from bayesimg.data import GenotypeTable, make_dataset, simulate_genotypes
from bayesimg.data.prepare import take_snps
from bayesimg.errors import DataValidationError, DataWarning

N = 30


@pytest.fixture
def genotypes() -> GenotypeTable:
    return simulate_genotypes(N, 6, rho=0.3, maf_range=(0.3, 0.5), seed=1)


@pytest.fixture
def phenotypes(genotypes) -> pd.DataFrame:
    rng = np.random.default_rng(2)
    return pd.DataFrame(rng.normal(10, 2, size=(N, 3)), columns=["a", "b", "c"],
                        index=genotypes.subjects)


@pytest.fixture
def covariates(genotypes) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    return pd.DataFrame({"age": rng.uniform(20, 80, N),
                         "site": rng.choice(["s1", "s2", "s3"], N)},
                        index=genotypes.subjects)


def quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        return fn(*args, **kwargs)


def with_values(table: GenotypeTable, values: np.ndarray) -> GenotypeTable:
    return GenotypeTable(table.subjects, values, table.snps, table.source)


# --------------------------------------------------------------------------- alignment
def test_clean_inputs_give_a_dataset_without_warnings(genotypes, phenotypes, covariates):
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        ds = make_dataset(genotypes, phenotypes, covariates, name="toy")
    assert ds.name == "toy" and ds.n_subjects == N and ds.n_snps == 6
    assert ds.n_phenotypes == 3 and list(ds.phenotype_names) == ["a", "b", "c"]
    assert list(ds.covariate_names) == ["age", "site[s2]", "site[s3]"]
    assert list(ds.snps.columns) == ["snp", "chrom", "pos", "a1", "a2", "gene"]
    assert ds.preprocessing["subjects_dropped"] == {"genotypes": [], "phenotypes": [],
                                                    "covariates": []}


def test_inner_join_records_and_warns_dropped_subjects(genotypes, phenotypes, covariates):
    pheno = pd.concat([phenotypes.iloc[2:], pd.DataFrame(
        [[1.0, 2.0, 3.0]], columns=["a", "b", "c"], index=["stranger"])])
    cov = covariates.drop(index=genotypes.subjects[10])
    with pytest.warns(DataWarning, match=r"kept 27.*2 of 29 in phenotypes \(e\.g\. 'stranger'\)"):
        ds = make_dataset(genotypes, pheno.iloc[::-1], cov)
    dropped = ds.preprocessing["subjects_dropped"]
    assert sorted(dropped["phenotypes"]) == sorted(["stranger", genotypes.subjects[10]])
    assert sorted(dropped["genotypes"]) == sorted(
        [genotypes.subjects[0], genotypes.subjects[1], genotypes.subjects[10]])
    assert dropped["covariates"] == [genotypes.subjects[0], genotypes.subjects[1]]
    # Subjects follow the genotype order, and rows stay matched.
    expected = [s for s in genotypes.subjects if s in set(pheno.index) & set(cov.index)]
    assert list(ds.subjects) == expected
    raw = pheno.loc[expected, "a"].to_numpy()
    center, scale = ds.preprocessing["phenotype_center"], ds.preprocessing["phenotype_scale"]
    np.testing.assert_allclose(ds.phenotypes[:, 0] * scale[0] + center[0], raw)


def test_too_few_common_subjects(genotypes, phenotypes):
    pheno = phenotypes.iloc[:5]
    with pytest.raises(DataValidationError, match=r"only 5 subjects.*genotypes \(30 subjects\)"
                       r".*phenotypes \(5 subjects\).*at least 10"):
        quiet(make_dataset, genotypes, pheno)


def test_no_common_subjects_mentions_ids(genotypes, phenotypes):
    pheno = phenotypes.set_axis([f"x{s}" for s in phenotypes.index])
    with pytest.raises(DataValidationError, match="only 0 subjects.*spelled"):
        quiet(make_dataset, genotypes, pheno)


def test_duplicated_ids_in_a_dataframe(genotypes, phenotypes):
    pheno = phenotypes.set_axis(list(phenotypes.index[:-1]) + [phenotypes.index[0]])
    with pytest.raises(DataValidationError, match=f"subject '{phenotypes.index[0]}'"):
        make_dataset(genotypes, pheno)


def test_needs_a_table():
    with pytest.raises(DataValidationError, match="at least one"):
        make_dataset()


# --------------------------------------------------------------------------- phenotypes
def test_missing_phenotype_is_an_error_naming_column_and_subject(genotypes, phenotypes):
    phenotypes.iloc[4, 1] = np.nan
    with pytest.raises(DataValidationError) as err:
        make_dataset(genotypes, phenotypes)
    assert err.value.column == "b" and err.value.subject == phenotypes.index[4]
    assert "drop_missing_phenotypes" in str(err.value)


def test_drop_missing_phenotypes(genotypes, phenotypes):
    phenotypes.iloc[4, 1] = np.nan
    with pytest.warns(DataWarning, match="dropped 1 subjects with missing phenotypes"):
        ds = make_dataset(genotypes, phenotypes, drop_missing_phenotypes=True)
    assert ds.n_subjects == N - 1 and phenotypes.index[4] not in ds.subjects
    assert ds.preprocessing["subjects_dropped"]["missing_phenotypes"] == [phenotypes.index[4]]
    assert not np.isnan(ds.phenotypes).any()


def test_missing_covariate_is_an_error(genotypes, phenotypes, covariates):
    covariates.loc[covariates.index[7], "site"] = None
    with pytest.raises(DataValidationError, match=f"column 'site'.*'{covariates.index[7]}'"):
        make_dataset(genotypes, phenotypes, covariates)


def test_infinite_phenotype(genotypes, phenotypes):
    phenotypes.iloc[3, 2] = np.inf
    with pytest.raises(DataValidationError, match="infinite") as err:
        make_dataset(genotypes, phenotypes)
    assert err.value.column == "c" and err.value.subject == phenotypes.index[3]


def test_constant_phenotype(genotypes, phenotypes):
    phenotypes["b"] = 7.0
    with pytest.raises(DataValidationError, match="constant.*column 'b'"):
        make_dataset(genotypes, phenotypes)


def test_non_numeric_phenotype(genotypes, phenotypes):
    phenotypes["b"] = "x"
    with pytest.raises(DataValidationError, match="not numeric.*column 'b'"):
        make_dataset(genotypes, phenotypes)


def test_unknown_phenotype_column(genotypes, phenotypes):
    with pytest.raises(DataValidationError, match="column 'zz'"):
        make_dataset(genotypes, phenotypes, phenotype_columns=["a", "zz"])


def test_phenotype_standardisation_and_selection(genotypes, phenotypes):
    ds = make_dataset(genotypes, phenotypes, phenotype_columns=["c", "a"])
    assert list(ds.phenotype_names) == ["c", "a"]
    np.testing.assert_allclose(ds.phenotypes.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(ds.phenotypes.std(axis=0), 1)
    raw = make_dataset(genotypes, phenotypes, phenotype_columns=["c", "a"],
                       standardize_phenotypes=False)
    np.testing.assert_allclose(raw.phenotypes, phenotypes[["c", "a"]].to_numpy())
    assert raw.preprocessing["phenotypes_standardized"] is False


# --------------------------------------------------------------------------- covariates
def test_categorical_covariate_one_hot(genotypes, phenotypes, covariates):
    ds = make_dataset(genotypes, phenotypes, covariates, standardize_covariates=False)
    enc = ds.preprocessing["covariates_one_hot"]["site"]
    assert enc["reference"] == "s1" and enc["columns"] == ["site[s2]", "site[s3]"]
    np.testing.assert_array_equal(ds.covariates[:, 1],
                                  (covariates["site"] == "s2").to_numpy(float))
    np.testing.assert_allclose(ds.covariates[:, 0], covariates["age"].to_numpy())
    std = make_dataset(genotypes, phenotypes, covariates)
    np.testing.assert_allclose(std.covariates.mean(axis=0), 0, atol=1e-12)


def test_constant_covariates(genotypes, phenotypes, covariates):
    covariates["age"] = 50.0
    with pytest.raises(DataValidationError, match="constant.*column 'age'"):
        make_dataset(genotypes, phenotypes, covariates)
    covariates["age"] = np.arange(N, dtype=float)
    covariates["site"] = "s1"
    with pytest.raises(DataValidationError, match="single level 's1'.*column 'site'"):
        make_dataset(genotypes, phenotypes, covariates)


# --------------------------------------------------------------------------- genotypes
def test_invalid_genotype_value_names_snp_and_subject(genotypes):
    values = genotypes.values.copy()
    values[5, 2] = 3.0
    with pytest.raises(DataValidationError, match="not an allele count") as err:
        make_dataset(with_values(genotypes, values))
    assert err.value.column == genotypes.snps["snp"][2]
    assert err.value.subject == genotypes.subjects[5]


def test_missing_genotype_policy(genotypes):
    values = genotypes.values.copy()
    values[:3, 0] = np.nan         # 10% missing → dropped (> 5%)
    values[4, 1] = np.nan          # 1 missing → imputed with the mean
    values[:, 2] = 1.0             # constant → dropped
    values[[0, 1], 3] = np.nan     # 2/30 missing → dropped at 5%, kept at 10%
    table = with_values(genotypes, values)
    with pytest.warns(DataWarning, match="dropped 2 SNPs.*imputed 1 missing calls"
                      r".*1 constant"):
        ds = make_dataset(table, standardize_genotypes=None)
    snp = list(genotypes.snps["snp"])
    p = ds.preprocessing
    assert p["snps_dropped_missing"] == [snp[0], snp[3]]
    assert p["snps_dropped_constant"] == [snp[2]]
    assert p["genotypes_imputed"] == 1
    assert list(ds.snp_names) == [snp[1], snp[4], snp[5]]
    assert ds.genotypes[4, 0] == pytest.approx(np.nanmean(values[:, 1]))

    ds10 = quiet(make_dataset, table, max_snp_missing=0.1, standardize_genotypes=None)
    assert ds10.preprocessing["snps_dropped_missing"] == []
    assert ds10.preprocessing["genotypes_imputed"] == 3 + 1 + 2


def test_snp_becoming_constant_after_alignment_is_dropped(genotypes, phenotypes):
    values = genotypes.values.copy()
    values[:, 0] = 0.0
    values[0, 0] = 2.0             # only the first subject carries the allele
    table = with_values(genotypes, values)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DataWarning)
        ds = make_dataset(table, phenotypes.iloc[1:])
    assert any("1 constant" in str(w.message) for w in caught)
    assert ds.preprocessing["snps_dropped_constant"] == [genotypes.snps["snp"][0]]


def test_genotype_standardisation_modes(genotypes):
    raw = genotypes.values
    centred = make_dataset(genotypes)
    np.testing.assert_allclose(centred.genotypes.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(centred.genotypes + centred.preprocessing["genotype_center"],
                               raw)
    assert np.all(centred.preprocessing["genotype_scale"] == 1)
    scaled = make_dataset(genotypes, standardize_genotypes="scale")
    np.testing.assert_allclose(scaled.genotypes.std(axis=0), 1)
    p = scaled.preprocessing
    np.testing.assert_allclose(scaled.genotypes * p["genotype_scale"] + p["genotype_center"],
                               raw)
    counts = make_dataset(genotypes, standardize_genotypes=None)
    np.testing.assert_array_equal(counts.genotypes, raw)
    with pytest.raises(DataValidationError, match="standardize_genotypes"):
        make_dataset(genotypes, standardize_genotypes="zscore")


def test_genotype_table_must_be_a_genotype_table(phenotypes):
    with pytest.raises(DataValidationError, match="GenotypeTable"):
        make_dataset(np.zeros((3, 3)), phenotypes)


def test_phenotypes_only_dataset(phenotypes, covariates):
    ds = make_dataset(phenotypes=phenotypes, covariates=covariates)
    assert ds.genotypes is None and ds.n_phenotypes == 3 and ds.n_covariates == 3


def test_take_snps_keeps_per_snp_arrays_in_step(genotypes):
    ds = make_dataset(genotypes)
    order = [4, 0, 2]
    sub = take_snps(ds, order, {"note": 1})
    np.testing.assert_array_equal(sub.preprocessing["genotype_center"],
                                  ds.preprocessing["genotype_center"][order])
    assert list(sub.snp_names) == [ds.snp_names[i] for i in order]
    assert sub.preprocessing["note"] == 1 and "note" not in ds.preprocessing


def test_min_maf_drops_rare_snps_and_records_them(genotypes, phenotypes):
    values = genotypes.values.copy()
    values[:, 0] = 0.0
    values[:2, 0] = 1.0          # MAF = 2 / (2n): rare
    rare_id = str(genotypes.snps["snp"].iloc[0])
    table = with_values(genotypes, values)
    with pytest.warns(DataWarning, match="minor-allele frequency"):
        ds = make_dataset(table, phenotypes, min_maf=0.05)
    assert rare_id in ds.preprocessing["snps_dropped_maf"]
    assert rare_id not in set(ds.snps["snp"])
    kept = quiet(make_dataset, table, phenotypes)      # default keeps every polymorphic SNP
    assert rare_id in set(kept.snps["snp"])
    with pytest.raises(DataValidationError, match="min_maf"):
        make_dataset(table, phenotypes, min_maf=0.7)
