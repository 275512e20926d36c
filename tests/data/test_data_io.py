"""Readers: PLINK filesets and subject tables, including every bad-input error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from bed_reader import to_bed

from bayesimg.data import GenotypeTable, read_plink, read_table
from bayesimg.data.io import concat_genotype_tables
from bayesimg.errors import DataValidationError, InputFileError


def write_plink(prefix, values, *, iids=None, sids=None, chrom="2", a1=None):
    n, d = values.shape
    iids = [f"S{i}" for i in range(n)] if iids is None else iids
    sids = [f"rs{j}" for j in range(d)] if sids is None else sids
    to_bed(f"{prefix}.bed", values.astype(np.float32), properties={
        "fid": iids, "iid": iids, "sid": sids, "chromosome": [chrom] * d,
        "bp_position": list(range(1000, 1000 + 100 * d, 100)),
        "allele_1": a1 or ["A"] * d, "allele_2": ["G"] * d,
    })
    return prefix


@pytest.fixture
def genotypes():
    rng = np.random.default_rng(0)
    values = rng.integers(0, 3, size=(7, 5)).astype(np.float64)
    values[2, 3] = np.nan
    return values


@pytest.fixture
def plink(tmp_path, genotypes):
    return write_plink(tmp_path / "toy", genotypes)


# --------------------------------------------------------------------------- PLINK
def test_read_plink_roundtrip(plink, genotypes):
    table = read_plink(plink)
    assert isinstance(table, GenotypeTable)
    assert table.values.dtype == np.float64
    np.testing.assert_array_equal(table.values, genotypes)
    assert list(table.subjects) == [f"S{i}" for i in range(7)]
    assert list(table.snps.columns) == ["snp", "chrom", "pos", "a1", "a2", "gene"]
    assert list(table.snps["snp"]) == [f"rs{j}" for j in range(5)]
    assert table.snps["gene"].isna().all()
    assert table.snps["pos"].dtype == np.int64
    assert table.source.endswith("toy.bed")


@pytest.mark.parametrize("suffix", [".bed", ".bim", ".fam"])
def test_read_plink_accepts_any_member_path(plink, genotypes, suffix):
    np.testing.assert_array_equal(read_plink(f"{plink}{suffix}").values, genotypes)


def test_read_plink_count_minor_flips(tmp_path):
    values = np.array([[2, 0], [2, 1], [1, 0], [2, 0]], dtype=float)  # rs0: A1 freq 7/8
    prefix = write_plink(tmp_path / "flip", values)
    table = read_plink(prefix, count="minor")
    np.testing.assert_array_equal(table.values[:, 0], 2 - values[:, 0])
    np.testing.assert_array_equal(table.values[:, 1], values[:, 1])
    assert list(table.snps["a1"]) == ["G", "A"] and list(table.snps["a2"]) == ["A", "G"]


@pytest.mark.parametrize("missing", [".bed", ".bim", ".fam"])
def test_read_plink_missing_file(plink, missing):
    Path(f"{plink}{missing}").unlink()
    with pytest.raises(InputFileError, match=rf"toy\{missing}") as err:
        read_plink(plink)
    assert err.value.path.endswith(f"toy{missing}")


def test_read_plink_truncated_bed(plink):
    bed = f"{plink}.bed"
    data = open(bed, "rb").read()
    open(bed, "wb").write(data[:-3])
    with pytest.raises(InputFileError, match="truncated") as err:
        read_plink(plink)
    assert "toy.bed" in str(err.value) and "7 subjects" in str(err.value)


def test_read_plink_fam_does_not_match_bed(plink):
    with open(f"{plink}.fam", "a") as fh:  # 5 extra subjects → 3 bytes per SNP instead of 2
        for i in range(5):
            fh.write(f"X{i} X{i} 0 0 0 -9\n")
    with pytest.raises(InputFileError, match="toy.fam") as err:
        read_plink(plink)
    assert "longer than expected" in str(err.value) or "truncated" in str(err.value)


def test_read_plink_bim_does_not_match_bed(plink):
    with open(f"{plink}.bim", "a") as fh:
        fh.write("2\trsExtra\t0\t99999\tA\tG\n")
    with pytest.raises(InputFileError, match="truncated.*toy.bim"):
        read_plink(plink)


def test_read_plink_duplicated_subject(tmp_path, genotypes):
    iids = [f"S{i}" for i in range(7)]
    iids[4] = "S1"
    prefix = write_plink(tmp_path / "dup", genotypes, iids=iids)
    with pytest.raises(DataValidationError, match="S1") as err:
        read_plink(prefix)
    assert err.value.subject == "S1" and err.value.source.endswith("dup.fam")


def test_read_plink_duplicated_snp(tmp_path, genotypes):
    sids = ["rs1", "rs2", "rs3", "rs2", "rs5"]
    prefix = write_plink(tmp_path / "dupsnp", genotypes, sids=sids)
    with pytest.raises(DataValidationError, match="rs2") as err:
        read_plink(prefix)
    assert err.value.column == "rs2" and "dupsnp.bim" in str(err.value)


def test_read_plink_bad_magic(plink):
    bed = f"{plink}.bed"
    data = bytearray(open(bed, "rb").read())
    data[0] = 0
    open(bed, "wb").write(bytes(data))
    with pytest.raises(InputFileError, match="magic"):
        read_plink(plink)


def test_read_plink_malformed_bim(plink):
    with open(f"{plink}.bim", "w") as fh:
        fh.write("2 rs0 0 1000\n" * 5)
    with pytest.raises(InputFileError, match=r"4 columns.*toy\.bim"):
        read_plink(plink)


def test_concat_genotype_tables_reorders_subjects(tmp_path, genotypes):
    a = read_plink(write_plink(tmp_path / "a", genotypes))
    order = [6, 5, 4, 3, 2, 1, 0]
    b = read_plink(write_plink(tmp_path / "b", genotypes[order][:, :2],
                               iids=[f"S{i}" for i in order], sids=["x1", "x2"]))
    both = concat_genotype_tables([a, b])
    assert both.n_snps == 7
    np.testing.assert_array_equal(both.values[:, 5:], genotypes[:, :2])


def test_concat_genotype_tables_errors(tmp_path, genotypes):
    a = read_plink(write_plink(tmp_path / "a", genotypes))
    b = read_plink(write_plink(tmp_path / "b", genotypes[:6]))
    with pytest.raises(DataValidationError, match="different subjects.*S6"):
        concat_genotype_tables([a, b])
    c = read_plink(write_plink(tmp_path / "c", genotypes))
    with pytest.raises(DataValidationError, match="rs0"):
        concat_genotype_tables([a, c])


# --------------------------------------------------------------------------- tables
def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_read_table_csv(tmp_path):
    path = write(tmp_path, "p.csv", "IID,y1,y2,site\nA,1.5,2,s1\nB,2.5,,s2\nC,3,4,s1\n")
    table = read_table(path)
    assert list(table.index) == ["A", "B", "C"] and table.index.name == "IID"
    assert table["y1"].dtype == np.float64 and np.isnan(table.loc["B", "y2"])
    assert list(table["site"]) == ["s1", "s2", "s1"]  # all non-numeric → categorical
    assert table.attrs["source"] == str(path)


def test_read_table_formats(tmp_path):
    tsv = write(tmp_path, "p.tsv", "id\tage\tname\nx1\t30\tAl\nx2\t40\tBo\n")
    txt = write(tmp_path, "p.txt", "id\tage\nx1\t30\nx2\t40\n")
    semi = write(tmp_path, "p.dat", "id;age\nx1;30\nx2;40\n")
    for path, kwargs in ((tsv, {}), (txt, {}), (semi, {"sep": ";"})):
        table = read_table(path, columns=["age"], **kwargs)
        assert list(table.columns) == ["age"] and table.loc["x2", "age"] == 40.0
    frame = pd.DataFrame({"v": [1.0, 2.0], "subject": [101, 102]})
    frame.to_parquet(tmp_path / "p.parquet")
    table = read_table(tmp_path / "p.parquet", id_column="subject")
    assert list(table.index) == ["101", "102"] and list(table["v"]) == [1.0, 2.0]
    frame.set_index("subject").to_parquet(tmp_path / "indexed.parquet")
    table = read_table(tmp_path / "indexed.parquet")
    assert list(table.index) == ["101", "102"] and table.index.name == "subject"


def test_read_table_missing_file(tmp_path):
    with pytest.raises(InputFileError, match="nothere.csv"):
        read_table(tmp_path / "nothere.csv")


def test_read_table_unknown_extension(tmp_path):
    path = write(tmp_path, "p.dat", "id,a\nx,1\n")
    with pytest.raises(InputFileError, match="extension"):
        read_table(path)


def test_read_table_missing_id_column(tmp_path):
    path = write(tmp_path, "p.csv", "IID,y\nA,1\n")
    with pytest.raises(DataValidationError, match="'subject_id'") as err:
        read_table(path, id_column="subject_id")
    assert "p.csv" in str(err.value)


def test_read_table_missing_value_column(tmp_path):
    path = write(tmp_path, "p.csv", "IID,y\nA,1\n")
    with pytest.raises(DataValidationError, match="'z'"):
        read_table(path, columns=["y", "z"])


def test_read_table_duplicated_subject(tmp_path):
    path = write(tmp_path, "p.csv", "IID,y\nA,1\nB,2\nA,3\n")
    with pytest.raises(DataValidationError, match="subject 'A'") as err:
        read_table(path)
    assert err.value.source == str(path)


def test_read_table_empty_subject_id(tmp_path):
    path = write(tmp_path, "p.csv", "IID,y\nA,1\n,2\n")
    with pytest.raises(DataValidationError, match="empty subject ID on data row 2"):
        read_table(path)


def test_read_table_non_numeric_value(tmp_path):
    path = write(tmp_path, "p.csv", "IID,y1,y2\nA,1,2\nB,2,3..1\nC,3,oops\n")
    with pytest.raises(DataValidationError) as err:
        read_table(path)
    msg = str(err.value)
    assert "'3..1'" in msg and "column 'y2'" in msg and "subject 'B'" in msg
    assert "p.csv" in msg


def test_read_table_categorical_override(tmp_path):
    # (a column named like site/scanner would be categorical anyway: is_site_column)
    path = write(tmp_path, "p.csv", "IID,group\nA,1\nB,2\nC,X\n")
    with pytest.raises(DataValidationError, match="'X'"):
        read_table(path)
    assert list(read_table(path, categorical=["group"])["group"]) == ["1", "2", "X"]
    path2 = write(tmp_path, "q.csv", "IID,sex\nA,F\nB,M\n")
    with pytest.raises(DataValidationError, match="'F'.*column 'sex'.*subject 'A'"):
        read_table(path2, categorical=[])


def test_read_table_all_empty_column(tmp_path):
    path = write(tmp_path, "p.csv", "IID,y,z\nA,1,\nB,2,\n")
    with pytest.raises(DataValidationError, match="column 'z'"):
        read_table(path)


def test_read_table_empty_file(tmp_path):
    with pytest.raises(InputFileError, match="empty"):
        read_table(write(tmp_path, "p.csv", ""))


@pytest.mark.parametrize("first", [0, 1])
def test_read_table_ignores_a_saved_row_index(tmp_path, first):
    from bayesimg.errors import DataWarning

    rows = "".join(f"{first + i},S{i},{i * 1.5}\n" for i in range(4))
    path = write(tmp_path, "p.csv", ",IID,y\n" + rows)   # pandas to_csv / R write.csv
    with pytest.warns(DataWarning, match="no name and holds the row numbers"):
        table = read_table(path)
    assert list(table.columns) == ["y"] and list(table.index) == ["S0", "S1", "S2", "S3"]
    path = write(tmp_path, "q.csv", ",IID,y\n7,S0,1\n3,S1,2\n")    # not row numbers
    with pytest.raises(DataValidationError, match="column number 1 has no name"):
        read_table(path)
