"""read_plink's .bed padding check on the real 1000 Genomes files (padding code 01).

The bundled chr2/LCT .bed files fill the one unused 2-bit slot of each SNP block with
the code 01 ("missing") instead of PLINK's 00 (SOURCE.md): read_plink must read them
without a warning, and still flag a .fam one subject short (the slot then holds a real
subject's genotypes) or one subject long (the extra subject reads the fill), while a
.fam whose length changes the bytes per SNP stays an error (file size).
"""

from __future__ import annotations

import importlib.resources
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
from bed_reader import to_bed

from bayesimg.data import read_plink
from bayesimg.errors import DataWarning, InputFileError

DEMO = importlib.resources.files("bayesimg.data") / "datasets" / "demo_1000g"


def _copy(name: str, dest: Path) -> Path:
    with importlib.resources.as_file(DEMO) as folder:
        for suffix in ("bed", "bim", "fam"):
            shutil.copy(folder / f"{name}.{suffix}", dest / f"{name}.{suffix}")
    return dest / name


@pytest.mark.parametrize("name", ["LCT", "AGT", "TTN", "chr2"])
def test_real_1000_genomes_files_read_without_a_padding_warning(name):
    with importlib.resources.as_file(DEMO) as folder, warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        table = read_plink(folder / name)
    assert table.n_subjects == 503


@pytest.mark.parametrize("name", ["LCT", "chr2"])
def test_fam_one_subject_short_of_the_real_bed_is_flagged(tmp_path, name):
    prefix = _copy(name, tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        full = read_plink(prefix)
    fam = Path(f"{prefix}.fam")
    lines = fam.read_text().splitlines(keepends=True)
    fam.write_text("".join(lines[:-1]))              # 502 subjects: same bytes per SNP
    with pytest.warns(DataWarning, match="beyond the 502 subjects.*vary from SNP to SNP"):
        short = read_plink(prefix)
    np.testing.assert_array_equal(short.values, full.values[:-1])


def test_fam_one_subject_long_of_the_real_bed_is_flagged(tmp_path):
    prefix = _copy("chr2", tmp_path)
    fam = Path(f"{prefix}.fam")
    fam.write_text(fam.read_text() + "X X 0 0 0 -9\n")   # 504: the extra one is the fill
    with pytest.warns(DataWarning, match=r"last 1 subject\(s\).*'X'.*missing at all 10025"):
        table = read_plink(prefix)
    assert np.isnan(table.values[-1]).all()


@pytest.mark.parametrize("drop", [3, 4])
def test_fam_that_changes_the_bytes_per_snp_is_an_error(tmp_path, drop):
    prefix = _copy("chr2", tmp_path)
    fam = Path(f"{prefix}.fam")
    lines = fam.read_text().splitlines(keepends=True)
    fam.write_text("".join(lines[:-drop]))           # 500 or 499: 125 bytes, not 126
    with pytest.raises(InputFileError, match="longer than expected.*belong together"):
        read_plink(prefix)


def _write_with_fill(prefix: Path, values: np.ndarray, code: int) -> None:
    n, d = values.shape
    iids = [f"S{i}" for i in range(n)]
    to_bed(f"{prefix}.bed", values.astype(np.float32), properties={
        "fid": iids, "iid": iids, "sid": [f"rs{j}" for j in range(d)],
        "chromosome": ["1"] * d, "bp_position": list(range(100, 100 + 10 * d, 10)),
        "allele_1": ["A"] * d, "allele_2": ["G"] * d})
    raw = bytearray(Path(f"{prefix}.bed").read_bytes())
    per_snp = -(-n // 4)
    for j in range(d):
        i = 3 + j * per_snp + per_snp - 1
        for slot in range(n % 4, 4):
            raw[i] |= code << (2 * slot)
    Path(f"{prefix}.bed").write_bytes(bytes(raw))


@pytest.mark.parametrize("code", [1, 2, 3])
def test_constant_fill_is_padding_when_no_subject_could_show_it(tmp_path, code):
    rng = np.random.default_rng(code)
    values = rng.integers(0, 3, size=(41, 60)).astype(float)
    values[rng.random(values.shape) < 0.02] = np.nan
    _write_with_fill(tmp_path / "g", values, code)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        table = read_plink(tmp_path / "g")
    np.testing.assert_array_equal(table.values, values)


def test_constant_fill_on_few_snps_could_be_a_subject_and_is_flagged(tmp_path):
    values = np.random.default_rng(0).integers(0, 3, size=(41, 2)).astype(float)
    _write_with_fill(tmp_path / "g", values, 3)      # 2 SNPs: a subject can read 11, 11
    with pytest.warns(DataWarning, match="homozygous a2 .* could also do"):
        read_plink(tmp_path / "g")


# --------------------------------------------------------------------------- selections
def test_read_plink_region_and_snps_read_only_those(tmp_path):
    full = read_plink_quiet("chr2")
    pos = full.snps["pos"].to_numpy()
    inside = np.flatnonzero((pos >= 136_400_000) & (pos <= 140_000_000))
    with importlib.resources.as_file(DEMO) as folder, warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)      # one SNP: still no padding warning
        region = read_plink(folder / "chr2", region=("chr2", 136_400_000, 140_000_000))
        one = read_plink(folder / "LCT", snps=["rs4988235"])
    np.testing.assert_array_equal(region.values, full.values[:, inside])
    assert list(region.snps["snp"]) == list(full.snps["snp"].iloc[inside])
    assert one.n_snps == 1 and one.snps["pos"].iloc[0] == 136608646
    with importlib.resources.as_file(DEMO) as folder:
        with pytest.warns(DataWarning, match="1 of the 2 SNPs.*'rsNOPE'"):
            read_plink(folder / "LCT", snps=["rs4988235", "rsNOPE"])


def read_plink_quiet(name):
    with importlib.resources.as_file(DEMO) as folder:
        return read_plink(folder / name)


def test_selection_of_a_fam_one_subject_short_is_still_flagged(tmp_path):
    prefix = _copy("LCT", tmp_path)
    fam = Path(f"{prefix}.fam")
    fam.write_text("".join(fam.read_text().splitlines(keepends=True)[:-1]))
    with pytest.warns(DataWarning, match="beyond the 502 subjects"):
        read_plink(prefix, snps=["rs4988235"])


def test_selection_checks_padding_on_a_sample_of_many_subjects(tmp_path):
    rng = np.random.default_rng(7)
    values = rng.integers(0, 3, size=(2106, 30)).astype(float)
    _write_with_fill(tmp_path / "big", values, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        table = read_plink(tmp_path / "big", snps=["rs3", "rs7"])
    np.testing.assert_array_equal(table.values, values[:, [3, 7]])
    fam = tmp_path / "big.fam"
    fam.write_text("".join(fam.read_text().splitlines(keepends=True)[:-1]))   # 2105 listed
    with pytest.warns(DataWarning, match="beyond the 2105 subjects.*vary"):
        read_plink(tmp_path / "big", snps=["rs3"])
