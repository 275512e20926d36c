"""PLINK 2 and BGEN readers on the real 1000 Genomes panels, converted inside the test.

The bundled .bed files are written out as .pgen/.pvar/.psam with pgenlib's PgenWriter
and as BGEN v1.2 (zlib, 8-bit probabilities) with the bgen package's BgenWriter; both
readers must then return read_plink's genotypes subject by subject, SNP by SNP, with
region and SNP selection reading only what is asked for.
"""

from __future__ import annotations

import importlib.resources
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bayesimg.data import make_dataset, read_bgen, read_pgen, read_plink
from bayesimg.errors import DataValidationError, DataWarning, InputFileError

pgenlib = pytest.importorskip("pgenlib")
bgen = pytest.importorskip("bgen")

DEMO = importlib.resources.files("bayesimg.data") / "datasets" / "demo_1000g"


def plink_table(name: str):
    with importlib.resources.as_file(DEMO) as folder, warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        return read_plink(folder / name)


@pytest.fixture(scope="module")
def lct():
    return plink_table("LCT")


@pytest.fixture(scope="module")
def chr2():
    return plink_table("chr2")


# --------------------------------------------------------------------------- writers
def write_pgen(prefix: Path, table, *, dosages: np.ndarray | None = None,
               header: bool = True) -> Path:
    """Write ``table`` (a1 = ALT, a2 = REF) as a PLINK 2 fileset with pgenlib."""
    values = table.values if dosages is None else dosages
    n, d = values.shape
    with pgenlib.PgenWriter(bytes(f"{prefix}.pgen", "utf8"), n, d, False,
                            dosage_present=dosages is not None) as writer:
        for j in range(d):
            column = values[:, j]
            if dosages is None:
                writer.append_biallelic(np.where(np.isnan(column), -9, column).astype(np.int8))
            else:
                writer.append_dosages(np.where(np.isnan(column), -9, column).astype(np.float32))
    snps = table.snps
    lines = ["##fileformat=PVARv1.0", "#CHROM\tPOS\tID\tREF\tALT"] if header else []
    lines += [f"{c}\t{p}\t{s}\t{a2}\t{a1}" if header else f"{c}\t{s}\t0\t{p}\t{a1}\t{a2}"
              for s, c, p, a1, a2 in zip(snps["snp"], snps["chrom"], snps["pos"], snps["a1"],
                                         snps["a2"], strict=True)]
    Path(f"{prefix}.pvar").write_text("\n".join(lines) + "\n")
    psam = ["#FID\tIID\tSEX"] + [f"F{s}\t{s}\tNA" for s in table.subjects]
    Path(f"{prefix}.psam").write_text("\n".join(psam) + "\n")
    return prefix


def write_bgen(path: Path, table, *, probabilities=None, ids_in_file: bool = True) -> Path:
    """Write ``table`` as BGEN v1.2 (layout 2, zlib, 8 bits): alleles (a2, a1), so the
    second allele counted by read_bgen is a1; hard calls as one-hot probabilities."""
    n, d = table.values.shape
    samples = [str(s) for s in table.subjects] if ids_in_file else []
    with bgen.BgenWriter(str(path), n_samples=n, samples=samples, compression="zlib",
                         layout=2) as writer:
        for j in range(d):
            if probabilities is None:
                counts = table.values[:, j]
                probs = np.zeros((n, 3))
                ok = ~np.isnan(counts)
                probs[np.flatnonzero(ok), counts[ok].astype(int)] = 1.0
                probs[~ok] = np.nan
            else:
                probs = probabilities[j]
            snp = table.snps.iloc[j]
            writer.add_variant(varid=f"{snp['chrom']}:{snp['pos']}", rsid=snp["snp"],
                               chrom=str(snp["chrom"]), pos=int(snp["pos"]),
                               alleles=[snp["a2"], snp["a1"]], genotypes=probs, bit_depth=8)
    return path


def assert_same(table, expected, *, columns=None):
    expected_values = expected.values if columns is None else expected.values[:, columns]
    expected_snps = expected.snps if columns is None else expected.snps.iloc[columns]
    np.testing.assert_array_equal(table.subjects.astype(str), expected.subjects.astype(str))
    for i in range(table.n_subjects):              # subject by subject
        np.testing.assert_array_equal(table.values[i], expected_values[i],
                                      err_msg=str(table.subjects[i]))
    cols = ["snp", "chrom", "pos", "a1", "a2"]
    pd.testing.assert_frame_equal(table.snps[cols].reset_index(drop=True),
                                  expected_snps[cols].reset_index(drop=True),
                                  check_dtype=False)


# --------------------------------------------------------------------------- PLINK 2
def test_pgen_of_the_real_chr2_panel_reads_as_the_bed(tmp_path, chr2):
    prefix = write_pgen(tmp_path / "chr2", chr2)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        table = read_pgen(prefix)
    assert table.kind == "hard calls" and table.source.endswith("chr2.pgen")
    assert_same(table, chr2)
    assert table.values.dtype == np.float64 and np.isnan(table.values).sum() > 0


def test_pgen_region_and_snp_selection(tmp_path, chr2):
    prefix = write_pgen(tmp_path / "chr2", chr2)
    pos = chr2.snps["pos"].to_numpy()
    start, end = 136_400_000, 140_000_000
    inside = np.flatnonzero((pos >= start) & (pos <= end))
    # small blocks: the selection is decoded block by block
    table = read_pgen(f"{prefix}.pvar", region=("chr2", start, end), block_size=7)
    assert_same(table, chr2, columns=inside)
    picked = [chr2.snps["snp"].iloc[j] for j in (5000, 12, 9000)]
    with pytest.warns(DataWarning, match="3 of the 4 SNPs.*not in the file within region"):
        both = read_pgen(prefix, snps=picked + [chr2.snps["snp"].iloc[inside[0]]],
                         region=("2", start, end))
    assert list(both.snps["snp"]) == [chr2.snps["snp"].iloc[inside[0]]]
    some = read_pgen(prefix, snps=picked, subjects=chr2.subjects[::5])
    order = sorted([5000, 12, 9000])
    np.testing.assert_array_equal(some.values, chr2.values[::5][:, order])
    assert list(some.subjects) == list(chr2.subjects[::5])


def test_pgen_headerless_bim_style_pvar_and_count_minor(tmp_path, lct):
    prefix = write_pgen(tmp_path / "lct", lct, header=False)
    assert_same(read_pgen(prefix), lct)
    minor = read_pgen(prefix, count="minor")
    np.testing.assert_array_equal(minor.values, read_plink_minor(lct))


def test_pgen_with_bim_and_fam_instead_of_pvar_and_psam(tmp_path, lct):
    prefix = write_pgen(tmp_path / "LCT", lct)
    Path(f"{prefix}.pvar").unlink()
    Path(f"{prefix}.psam").unlink()
    with importlib.resources.as_file(DEMO) as folder:
        for suffix in ("bim", "fam"):
            Path(f"{prefix}.{suffix}").write_bytes((folder / f"LCT.{suffix}").read_bytes())
    assert_same(read_pgen(f"{prefix}.pgen"), lct)


def read_plink_minor(table):
    from bayesimg.data.io import _count_minor_allele
    return _count_minor_allele(table.values, table.snps)[0]


def test_pgen_dosages_are_read_as_dosages(tmp_path, lct):
    rng = np.random.default_rng(1)
    dosages = np.clip(lct.values + rng.normal(0, 0.15, lct.values.shape), 0, 2)
    dosages = np.round(dosages * 16384) / 16384            # pgen's dosage resolution
    prefix = write_pgen(tmp_path / "imp", lct, dosages=dosages)
    table = read_pgen(prefix)
    assert table.kind == "dosages"
    np.testing.assert_allclose(table.values, dosages, atol=1e-4)
    assert np.array_equal(np.isnan(table.values), np.isnan(dosages))
    with pytest.warns(DataWarning, match="mean-imputed"):
        data = make_dataset(table, standardize_genotypes=None, max_snp_missing=1.0)
    assert data.preprocessing["genotype_values"] == "dosages"


def test_pgen_named_errors(tmp_path, lct):
    prefix = write_pgen(tmp_path / "lct", lct)
    with pytest.warns(DataWarning, match="1 of the 2 SNPs.*'rsNOPE'"):
        assert read_pgen(prefix, snps=["rs4988235", "rsNOPE"]).n_snps == 1
    with pytest.raises(DataValidationError, match="no variant"):
        read_pgen(prefix, region=("3", 1, 10))
    with pytest.raises(DataValidationError, match="region"):
        read_pgen(prefix, region=("2", 10))
    psam = Path(f"{prefix}.psam")
    lines = psam.read_text().splitlines()
    psam.write_text("\n".join(lines[:-1]) + "\n")                   # one subject short
    with pytest.raises(InputFileError, match="belong together") as err:
        read_pgen(prefix)
    assert err.value.path.endswith("lct.pgen")
    psam.write_text("\n".join(lines[:-1] + [lines[1]]) + "\n")     # duplicated IID
    with pytest.raises(DataValidationError, match="more than once"):
        read_pgen(prefix)
    Path(f"{prefix}.pvar").unlink()
    with pytest.raises(InputFileError, match=r"\.pvar file not found"):
        read_pgen(prefix)


def test_pgen_multiallelic_variants_and_unnamed_ids(tmp_path):
    n = 6
    with pgenlib.PgenWriter(bytes(f"{tmp_path}/m.pgen", "utf8"), n, 3, False,
                            allele_ct_limit=3) as writer:
        writer.append_biallelic(np.array([0, 1, 2, -9, 1, 0], dtype=np.int8))
        writer.append_alleles(np.array([0, 1, 0, 2, 1, 2, 0, 0, 2, 2, 0, 1], dtype=np.int32),
                              allele_ct=3)
        writer.append_biallelic(np.array([2, 2, 1, 0, 0, 1], dtype=np.int8))
    (tmp_path / "m.pvar").write_text("#CHROM\tPOS\tID\tREF\tALT\n1\t10\trs1\tA\tG\n"
                                     "1\t20\t.\tC\tT,G\n1\t30\t.\tG\tA\n")
    (tmp_path / "m.psam").write_text("#IID\n" + "".join(f"s{i}\n" for i in range(n)))
    with pytest.warns(DataWarning, match="1 selected multi-allelic.*'1:20:C:T,G'"):
        table = read_pgen(tmp_path / "m")
    assert list(table.snps["snp"]) == ["rs1", "1:30:G:A"]
    np.testing.assert_array_equal(table.values[:, 1], [2, 2, 1, 0, 0, 1])
    assert np.isnan(table.values[3, 0])


# --------------------------------------------------------------------------- BGEN
@pytest.mark.parametrize("indexed", [True, False])
def test_bgen_of_the_real_lct_panel_reads_as_the_bed(tmp_path, lct, indexed):
    path = write_bgen(tmp_path / "lct.bgen", lct)
    if not indexed:
        Path(f"{path}.bgi").unlink()
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        table = read_bgen(path)
    assert table.kind == "hard calls"
    assert_same(table, lct)
    pos = lct.snps["pos"].to_numpy()
    start, end = 136_500_000, 136_600_000
    inside = np.flatnonzero((pos >= start) & (pos <= end))
    assert_same(read_bgen(path, region=("chr2", start, end)), lct, columns=inside)
    few = read_bgen(path, snps=["rs4988235"], subjects=lct.subjects[::7])
    assert list(few.subjects) == list(lct.subjects[::7])
    one = read_bgen(path, snps=["rs4988235"])
    j = list(lct.snps["snp"]).index("rs4988235")
    np.testing.assert_array_equal(one.values[:, 0], lct.values[:, j])
    np.testing.assert_array_equal(few.values[:, 0], lct.values[::7, j])


def test_bgen_sample_file_and_dosages(tmp_path, lct):
    sub = lct.snps.iloc[:40]
    rng = np.random.default_rng(2)
    probs = rng.dirichlet([1.0, 1.0, 1.0], size=(40, lct.n_subjects))
    probs[3, 10] = np.nan                                      # a missing genotype
    table = type(lct)(lct.subjects, lct.values[:, :40], sub)
    path = write_bgen(tmp_path / "imp.bgen", table, probabilities=probs, ids_in_file=False)
    with pytest.raises(InputFileError, match="no subject IDs"):
        read_bgen(path)
    sample = tmp_path / "imp.sample"
    sample.write_text("ID_1 ID_2 missing\n0 0 0\n"
                      + "".join(f"{s} {s} 0\n" for s in lct.subjects))
    read = read_bgen(path)                                     # found beside the .bgen
    assert read.kind == "dosages" and list(read.subjects) == list(lct.subjects)
    expected = probs[:, :, 1] + 2 * probs[:, :, 2]
    np.testing.assert_allclose(read.values, expected.T, atol=2 / 255)
    assert np.isnan(read.values[10, 3]) and np.isnan(read.values).sum() == 1
    assert ((read.values >= 0) & (read.values <= 2) | np.isnan(read.values)).all()
    sample.write_text("ID_1 ID_2 missing\n0 0 0\n" + "a a 0\n")
    with pytest.raises(InputFileError, match="belong together"):
        read_bgen(path, sample=sample)


def test_bgen_multiallelic_variant_is_announced(tmp_path, lct):
    path = tmp_path / "m.bgen"
    n = lct.n_subjects
    with bgen.BgenWriter(str(path), n_samples=n, samples=list(lct.subjects),
                         compression="zlib") as writer:
        writer.add_variant(varid="v1", rsid="rs1", chrom="2", pos=10, alleles=["A", "G"],
                           genotypes=np.tile([0.0, 1.0, 0.0], (n, 1)))
        writer.add_variant(varid="v2", rsid="rs2", chrom="2", pos=20,
                           alleles=["A", "G", "T"],
                           genotypes=np.tile([1.0, 0, 0, 0, 0, 0], (n, 1)))
    with pytest.warns(DataWarning, match="1 selected multi-allelic.*'rs2'"):
        table = read_bgen(path)
    assert list(table.snps["snp"]) == ["rs1"] and (table.values == 1.0).all()


def test_bgen_named_errors(tmp_path, lct):
    with pytest.raises(InputFileError, match="not found"):
        read_bgen(tmp_path / "none.bgen")
    junk = tmp_path / "junk.bgen"
    junk.write_bytes(b"\x00" * 64)
    with pytest.raises(InputFileError):
        read_bgen(junk)
    path = write_bgen(tmp_path / "lct.bgen", lct)
    with pytest.raises(DataValidationError, match="no variant"):
        read_bgen(path, snps=["rsNOPE"])
    with pytest.raises(DataValidationError, match="count"):
        read_bgen(path, count="alt")
