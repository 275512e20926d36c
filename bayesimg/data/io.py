"""Reading genotypes (PLINK .bed/.bim/.fam) and subject tables (CSV, TSV, parquet).

Readers validate what they read and raise :class:`~bayesimg.errors.InputFileError`
(missing, truncated or unparsable file) or
:class:`~bayesimg.errors.DataValidationError` (duplicated IDs, non-numeric values,
empty columns) with the file, column and subject at fault in the message.
They do no alignment, imputation or scaling: that is :func:`bayesimg.data.make_dataset`'s job.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from bayesimg.data.dataset import SNP_COLUMNS
from bayesimg.errors import LIBRARY_FILES, DataValidationError, DataWarning, InputFileError

__all__ = ["GenotypeTable", "read_plink", "read_table", "read_dosage_table",
           "check_genotype_values", "concat_genotype_tables"]

_BED_MAGIC = bytes([0x6C, 0x1B, 0x01])
_TABLE_SEPARATORS = {".csv": ",", ".tsv": "\t", ".txt": "\t", ".tab": "\t"}
_PARQUET_SUFFIXES = {".parquet", ".pq"}


# --------------------------------------------------------------------------- genotypes
@dataclasses.dataclass(frozen=True, eq=False)
class GenotypeTable:
    """Raw genotypes as read from a file or simulated, before alignment.

    Attributes
    ----------
    subjects : numpy.ndarray
        ``(n,)`` subject IDs (str; the IID column of a .fam file).
    values : numpy.ndarray
        ``(n, d)`` float64 counts of allele ``a1``: hard calls (0, 1, 2) or imputed
        dosages (expected counts in [0, 2]), NaN where missing.
    snps : pandas.DataFrame
        One row per SNP with columns ``snp, chrom, pos, a1, a2, gene``
        (``gene`` is ``None`` unless a simulator or a caller set it).
    source : str or None
        Where the values came from (a file path, or ``None`` for in-memory data).
    kind : {"hard calls", "dosages"} or None
        What the reader found (``None``: not said, e.g. simulated data).
        :func:`~bayesimg.data.make_dataset` checks the values whatever this says.
    """

    subjects: np.ndarray
    values: np.ndarray
    snps: pd.DataFrame
    source: str | None = None
    kind: str | None = None

    def __post_init__(self):
        if not isinstance(self.values, np.ndarray):
            object.__setattr__(self, "values", np.asarray(self.values))
        n, d = len(self.subjects), len(self.snps)
        if np.shape(self.values) != (n, d):
            raise DataValidationError(
                f"genotype values have shape {np.shape(self.values)}, expected ({n}, {d}) "
                f"for {n} subjects and {d} SNPs", source=self.source)
        missing = [c for c in SNP_COLUMNS if c not in self.snps.columns]
        if missing:
            raise DataValidationError(
                f"the SNP table lacks columns {missing}", source=self.source)

    @property
    def n_subjects(self) -> int:
        """Number of subjects (rows)."""
        return len(self.subjects)

    @property
    def n_snps(self) -> int:
        """Number of SNPs (columns)."""
        return len(self.snps)

    def __repr__(self) -> str:
        where = f" from {self.source!r}" if self.source else ""
        return f"GenotypeTable({self.n_subjects} subjects × {self.n_snps} SNPs{where})"


def _plink_paths(path_prefix_or_bed: str | os.PathLike) -> tuple[Path, Path, Path]:
    path = Path(path_prefix_or_bed)
    if path.suffix.lower() in {".bed", ".bim", ".fam"}:
        path = path.with_suffix("")
    return (Path(f"{path}.bed"), Path(f"{path}.bim"), Path(f"{path}.fam"))


def _read_whitespace_table(path: Path, n_columns: int, what: str) -> pd.DataFrame:
    """Read a headerless whitespace-separated PLINK text file as strings."""
    try:
        table = pd.read_csv(path, sep=r"\s+", header=None, dtype=str,
                            keep_default_na=False, engine="python")
    except pd.errors.EmptyDataError:
        raise InputFileError(f"the {what} file is empty", path=str(path)) from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise InputFileError(f"cannot parse the {what} file: {exc}", path=str(path)) from None
    if table.shape[1] != n_columns:
        raise InputFileError(
            f"the {what} file has {table.shape[1]} columns, expected {n_columns}",
            path=str(path))
    short = table.isna().any(axis=1).to_numpy()
    if short.any():
        # the parser pads a short (truncated or ragged) line with NaN
        row = int(np.flatnonzero(short)[0])
        raise InputFileError(
            f"entry {row + 1} of the {what} file has fewer than {n_columns} fields "
            "(truncated or malformed file)", path=str(path))
    return table


def _first_duplicate(values: pd.Series) -> str | None:
    dup = values[values.duplicated()]
    return None if dup.empty else str(dup.iloc[0])


def _read_fam(path: Path) -> np.ndarray:
    fam = _read_whitespace_table(path, 6, ".fam")
    iids = fam[1].str.strip()
    dup = _first_duplicate(iids)
    if dup is not None:
        raise DataValidationError(
            f"subject ID (IID) {dup!r} appears {int((iids == dup).sum())} times",
            source=str(path), subject=dup)
    return np.asarray(iids, dtype=str)


def _read_bim(path: Path) -> pd.DataFrame:
    bim = _read_whitespace_table(path, 6, ".bim")
    snp_ids = bim[1].str.strip()
    dup = _first_duplicate(snp_ids)
    if dup is not None:
        raise DataValidationError(
            f"SNP ID {dup!r} appears {int((snp_ids == dup).sum())} times",
            source=str(path), column=dup)
    pos = pd.to_numeric(bim[3], errors="coerce")
    bad = pos.isna() | (pos < 0) | (pos != np.floor(pos)) | (pos >= 2.0**62)
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataValidationError(
            f"SNP position {bim[3].iloc[i]!r} is not a non-negative integer",
            source=str(path), column=str(snp_ids.iloc[i]))
    return pd.DataFrame({
        "snp": np.asarray(snp_ids, dtype=object),
        "chrom": np.asarray(bim[0].str.strip(), dtype=object),
        "pos": pos.to_numpy(dtype=np.int64),
        "a1": np.asarray(bim[4], dtype=object),
        "a2": np.asarray(bim[5], dtype=object),
        "gene": pd.Series([None] * len(bim), dtype=object),
    })


def _check_bed_file(path: Path, n_subjects: int, n_snps: int, fam: Path, bim: Path) -> None:
    expected = 3 + n_snps * math.ceil(n_subjects / 4)
    size = os.path.getsize(path)
    with open(path, "rb") as fh:
        magic = fh.read(3)
    if magic[:2] != _BED_MAGIC[:2]:
        raise InputFileError("not a PLINK 1 .bed file (wrong magic bytes)", path=str(path))
    if magic[2:3] != _BED_MAGIC[2:3]:
        raise InputFileError(
            "the .bed file is in individual-major mode; only SNP-major .bed files are "
            "supported (re-write it with `plink --make-bed`)", path=str(path))
    if size != expected:
        kind = "truncated" if size < expected else "longer than expected"
        raise InputFileError(
            f"the .bed file is {kind}: {size} bytes, but {n_subjects} subjects in "
            f"{fam.name} and {n_snps} SNPs in {bim.name} need {expected} bytes "
            f"(do the .bed, .bim and .fam files belong together?)", path=str(path))


def read_plink(path_prefix_or_bed: str | os.PathLike, *, count: str = "a1",
               snps: Sequence[str] | None = None,
               region: tuple | None = None) -> GenotypeTable:
    """Read a PLINK 1 binary fileset (.bed + .bim + .fam).

    Parameters
    ----------
    path_prefix_or_bed : str or path
        The common prefix (``data/LCT``) or the path of any of the three files.
    count : {"a1", "minor"}
        Which allele is counted.  ``"a1"`` (default) counts the allele in column 5
        of the .bim (PLINK's A1, usually but not always the minor allele).
        ``"minor"`` flips SNPs whose A1 frequency exceeds 0.5 so that the minor
        allele is counted, swapping ``a1``/``a2`` in the SNP table to match.
    snps : sequence of str, optional
        SNP IDs (.bim column 2) to read; IDs not in the file are left out with a
        :class:`~bayesimg.errors.DataWarning` (an error when none is found).
    region : (chrom, start, end), optional
        Only SNPs on ``chrom`` (``"2"`` equals ``"chr2"``) with ``start <= pos <=
        end``.  With ``snps`` and/or ``region`` only those SNPs' genotypes are
        decoded (as :func:`~bayesimg.data.read_pgen` and
        :func:`~bayesimg.data.read_bgen` do).

    Returns
    -------
    GenotypeTable
        Counts of allele ``a1`` as float64, NaN for missing calls; subject IDs
        are the IID column of the .fam.

    Raises
    ------
    InputFileError
        A file is missing, empty, unparsable, not SNP-major, or the .bed size is
        inconsistent with the numbers of subjects (.fam) and SNPs (.bim).
    DataValidationError
        Duplicated subject (IID) or SNP IDs, or a non-integer position.
    """
    if count not in {"a1", "minor"}:
        raise DataValidationError(f"count must be 'a1' or 'minor', got {count!r}")
    bed, bim, fam = _plink_paths(path_prefix_or_bed)
    for path, what in ((bed, ".bed"), (bim, ".bim"), (fam, ".fam")):
        if not path.is_file():
            raise InputFileError(f"PLINK {what} file not found", path=str(path))
    subjects = _read_fam(fam)
    table = _read_bim(bim)
    _check_bed_file(bed, len(subjects), len(table), fam, bim)
    columns = _selected_snps(table, snps, region, str(bed))
    snps = table if columns is None else table.iloc[columns].reset_index(drop=True)

    from bed_reader import open_bed

    try:
        with open_bed(bed, iid_count=len(subjects), sid_count=len(table),
                      count_A1=True, num_threads=1) as reader:
            values = reader.read(index=None if columns is None else np.s_[:, columns],
                                 dtype="float64", order="C")
    except Exception as exc:  # bed-reader raises plain ValueError/OSError subclasses
        raise InputFileError(f"bed-reader could not read the file: {exc}",
                             path=str(bed)) from exc

    if columns is None:
        _warn_if_fam_mismatch(bed, fam, values, subjects, table)
    else:   # the check needs the file's first SNP blocks, whatever was selected
        rows, reference = _padding_reference(bed, len(subjects), len(table))
        _warn_if_fam_mismatch(bed, fam, reference, subjects[rows], table,
                              n_subjects=len(subjects))
    if count == "minor":
        values, snps = _count_minor_allele(values, snps)
    return GenotypeTable(subjects=subjects, values=values, snps=snps, source=str(bed),
                         kind="hard calls")


def _selected_snps(table: pd.DataFrame, snps, region, source: str) -> np.ndarray | None:
    """Positions in the .bim of the SNPs asked for (None: all)."""
    if snps is None and region is None:
        return None
    from bayesimg.data.formats import (
        _check_region,
        _check_snps,
        _norm_chrom,
        _report_selection,
    )

    region = _check_region(region, source)
    wanted = _check_snps(snps, source)
    mask = np.ones(len(table), bool)
    if region is not None:
        chrom, start, end = region
        mask &= (table["chrom"].map(_norm_chrom) == chrom).to_numpy()
        mask &= ((table["pos"] >= start) & (table["pos"] <= end)).to_numpy()
    found: set[str] = set()
    if wanted is not None:
        mask &= table["snp"].isin(set(wanted)).to_numpy()
        found = set(table["snp"][mask])
    _report_selection(wanted, found, region, source, int(mask.sum()))
    return np.flatnonzero(mask)


#: SNP blocks whose padding bits are inspected (a strided read of one byte each)
_PADDING_CHECK_SNPS = 4096

#: a pattern is taken for a writer's padding (not a subject) below this probability
_PADDING_P = 1e-4

#: the value read_plink gives each 2-bit .bed code (count of a1): 00, 01, 10, 11
_CODE_VALUES = (2.0, np.nan, 1.0, 0.0)
_CODE_NAMES = ("homozygous a1 (code 00)", "missing (code 01)", "heterozygous (code 10)",
               "homozygous a2 (code 11)")


def _log_prob_constant(reference: np.ndarray, value: float) -> float:
    """log P(a subject drawn like ``reference``'s rows shows ``value`` at every SNP).

    Per-SNP frequencies of ``value`` among the reference subjects (NaN = missing),
    with a half-count added so that an unseen value is rare, not impossible.
    """
    if reference.shape[0] == 0:
        return 0.0
    if np.isnan(value):
        hits = np.isnan(reference).sum(axis=0)
        total = np.full(reference.shape[1], reference.shape[0])
    else:
        hits = (reference == value).sum(axis=0)
        total = (~np.isnan(reference)).sum(axis=0)
    return float(np.sum(np.log((hits + 0.5) / (total + 1.0))))


#: subjects sampled for the padding check when read_plink reads a selection of SNPs
_PADDING_REFERENCE_SUBJECTS = 2000


def _padding_reference(bed: Path, n: int, d: int) -> tuple[np.ndarray, np.ndarray]:
    """Genotypes of the file's first ``_PADDING_CHECK_SNPS`` SNPs for (at most
    ``_PADDING_REFERENCE_SUBJECTS``) evenly spaced subjects, the last 3 always included."""
    from bed_reader import open_bed

    rows = np.arange(n)
    if n > _PADDING_REFERENCE_SUBJECTS:
        rows = np.unique(np.concatenate([
            np.linspace(0, n - 4, _PADDING_REFERENCE_SUBJECTS - 3).astype(int),
            np.arange(n - 3, n)]))
    m = min(d, _PADDING_CHECK_SNPS)
    with open_bed(bed, iid_count=n, sid_count=d, count_A1=True, num_threads=1) as reader:
        values = reader.read(index=np.s_[rows, :m], dtype="float64", order="C")
    return rows, values


def _warn_if_fam_mismatch(bed: Path, fam: Path, values: np.ndarray, subjects: np.ndarray,
                          snps: pd.DataFrame, *, n_subjects: int | None = None) -> None:
    """Warn when the .fam probably lists more or fewer subjects than the .bed holds.

    A .bed stores ``ceil(n / 4)`` bytes per SNP: a .fam whose length changes that
    number fails the size check of :func:`read_plink` (an error).  A .fam that
    differs by less than the padding of the last byte passes it; two symptoms
    remain, checked on the first ``_PADDING_CHECK_SNPS`` SNPs of the file (``values``:
    their genotypes, for all subjects or, when ``n_subjects`` says there are more, a
    sample of them ending with the last 3; ``snps``: the .bim table):

    * .fam too short: an unused 2-bit slot of the last byte holds genotypes.
      Writers fill the slots with one constant code: PLINK and bed-reader with
      ``00``, others (the 1000 Genomes files bundled with bayesimg, from the R
      package gaston) with ``01`` ("missing").  A slot that holds the same code
      at every SNP block is such a fill when a real subject is improbable
      (< ``_PADDING_P``) to show that code everywhere, given the listed subjects'
      genotype frequencies; a slot whose codes vary from SNP to SNP holds a
      subject the .fam does not list.
    * .fam too long: the last listed subject(s) read one constant value at every
      SNP (homozygous a1 for ``00`` fill, missing for ``01`` fill), i.e. they *are*
      the padding, and that pattern is improbable given the other subjects.
    """
    n_rows, d = values.shape
    n = n_rows if n_subjects is None else n_subjects
    if n == 0 or d == 0:
        return
    m = min(d, _PADDING_CHECK_SNPS)
    if n % 4:
        bytes_per_snp = math.ceil(n / 4)
        last = np.asarray(np.memmap(bed, dtype=np.uint8, mode="r", offset=3,
                                    shape=(len(snps), bytes_per_snp))[:m, -1])
        for slot in range(n % 4, 4):
            codes = (last >> (2 * slot)) & 3
            first = int(codes[0])
            varies = bool(np.any(codes != first))
            if not varies and (first == 0 or _log_prob_constant(
                    values[:, :m], _CODE_VALUES[first]) < math.log(_PADDING_P)):
                continue   # a constant fill written by the .bed's writer
            j = int(np.flatnonzero(codes != 0)[0])
            why = ("its codes vary from SNP to SNP, as a subject's genotypes do" if varies
                   else f"it reads {_CODE_NAMES[first]} at all {m} SNP blocks checked, which "
                   "a real subject could also do")
            warnings.warn(
                f"the .bed file holds genotypes beyond the {n} subjects listed in "
                f"{fam.name}: padding slot {slot - n % 4 + 1} of the last byte is not "
                f"empty (first at SNP {snps['snp'].iloc[j]!r}; {why}): the .fam probably "
                "lists fewer subjects than the .bed was written for, so genotypes may be "
                "attributed to the wrong subjects; check that the .bed, .bim and .fam "
                f"files belong together [file {str(bed)!r}]",
                DataWarning, skip_file_prefixes=LIBRARY_FILES)
            return
    # trailing subjects reading one constant value at every SNP (a .bed pads at most
    # 3 subject slots, so at most 3 of them can be padding)
    tail, log_p, seen = 0, 0.0, []
    while tail < min(3, n_rows - 1):
        row = values[n_rows - 1 - tail]
        value = row[0]
        constant = np.all(np.isnan(row)) if np.isnan(value) else np.all(row == value)
        if not constant:
            break
        seen.append(value)
        tail += 1
    if tail == 0:
        return
    reference = values[: n_rows - tail, :m]
    log_p = sum(_log_prob_constant(reference, v) for v in seen)
    if log_p < math.log(_PADDING_P):
        who = ", ".join(repr(str(s)) for s in subjects[n_rows - tail:])
        what = ", ".join(sorted({"missing" if np.isnan(v) else
                                 {2.0: "homozygous a1", 1.0: "heterozygous",
                                  0.0: "homozygous a2"}[float(v)] for v in seen}))
        warnings.warn(
            f"the last {tail} subject(s) of {fam.name} ({who}) read as {what} at all {d} "
            "SNPs, which is what the padding of a .bed file looks like: the .fam probably "
            "lists more subjects than the .bed holds; check that the .bed, .bim and .fam "
            f"files belong together [file {str(bed)!r}]",
            DataWarning, skip_file_prefixes=LIBRARY_FILES)


def _count_minor_allele(values: np.ndarray, snps: pd.DataFrame):
    freq = np.nanmean(values, axis=0) / 2.0 if values.shape[0] else np.zeros(values.shape[1])
    flip = np.nan_to_num(freq, nan=0.0) > 0.5
    if not flip.any():
        return values, snps
    values = values.copy()
    values[:, flip] = 2.0 - values[:, flip]
    snps = snps.copy()
    a1 = snps["a1"].to_numpy(copy=True)
    snps.loc[flip, "a1"] = snps.loc[flip, "a2"]
    snps.loc[flip, "a2"] = a1[flip]
    return values, snps


def concat_genotype_tables(tables: Sequence[GenotypeTable]) -> GenotypeTable:
    """Join genotype tables that share subjects side by side (SNPs appended).

    Subjects are those of the first table; the others are re-ordered to match.

    Raises
    ------
    DataValidationError
        The tables do not hold the same subjects, or a SNP ID appears twice.
    """
    if not tables:
        raise DataValidationError("no genotype tables to concatenate")
    first = tables[0]
    order = pd.Index(first.subjects)
    blocks, snp_tables = [first.values], [first.snps]
    for table in tables[1:]:
        idx = pd.Index(table.subjects)
        missing = order.difference(idx)
        extra = idx.difference(order)
        if len(missing) or len(extra):
            who = missing[0] if len(missing) else extra[0]
            raise DataValidationError(
                f"genotype tables hold different subjects ({len(missing)} missing, "
                f"{len(extra)} extra compared with {first.source or 'the first table'})",
                source=table.source, subject=str(who))
        blocks.append(table.values[idx.get_indexer(order)])
        snp_tables.append(table.snps)
    snps = pd.concat(snp_tables, ignore_index=True)
    dup = _first_duplicate(snps["snp"])
    if dup is not None:
        raise DataValidationError("SNP ID appears in more than one genotype table",
                                  column=dup)
    sources = "; ".join(str(t.source) for t in tables if t.source)
    return GenotypeTable(subjects=first.subjects.copy(), values=np.hstack(blocks),
                         snps=snps, source=sources or None)


# --------------------------------------------------------------------------- tables
def _read_raw_table(path: Path, sep: str | None) -> pd.DataFrame:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in {".gz", ".bz2", ".xz", ".zip"}:
        suffixes = suffixes[:-1]
    suffix = suffixes[-1] if suffixes else ""
    try:
        if suffix in _PARQUET_SUFFIXES and sep is None:
            table = pd.read_parquet(path)
            # A stored (named) index, e.g. from DataFrame.to_parquet, becomes a column.
            if not isinstance(table.index, pd.RangeIndex) or table.index.name is not None:
                table = table.reset_index()
            return table
        if sep is None:
            if suffix not in _TABLE_SEPARATORS:
                raise InputFileError(
                    f"cannot tell the format from the extension {suffix or '(none)'!r}; "
                    "use .csv, .tsv, .txt or .parquet, or pass sep=", path=str(path))
            sep = _TABLE_SEPARATORS[suffix]
        table = pd.read_csv(path, sep=sep, dtype=str, skipinitialspace=True)
        # pandas renames a repeated header "x" to "x.1": refuse it instead
        header = pd.read_csv(path, sep=sep, header=None, nrows=1, dtype=str,
                             skipinitialspace=True).iloc[0]
        blank = [i for i, h in enumerate(header) if pd.isna(h) or not str(h).strip()]
        if blank == [0] and _is_row_numbers(table.iloc[:, 0]):
            # a row index saved by pandas (to_csv) or R (write.csv): not data
            warnings.warn(
                f"the first column has no name and holds the row numbers "
                f"{table.iloc[0, 0]}…{table.iloc[-1, 0]} (an index saved with the table): "
                f"it is ignored [file {str(path)!r}]", DataWarning,
                skip_file_prefixes=LIBRARY_FILES)
            table = table.iloc[:, 1:]
            header = header.iloc[1:]
            blank = []
        if blank:
            raise DataValidationError(
                f"column number {blank[0] + 1} has no name in the header (a stray "
                "separator?)", source=str(path))
        names = pd.Series([str(h).strip() for h in header])
        dup = _first_duplicate(names)
        if dup is not None:
            raise DataValidationError("the column name appears more than once in the header",
                                      source=str(path), column=dup)
        return table
    except pd.errors.EmptyDataError:
        raise InputFileError("the table is empty", path=str(path)) from None
    except (pd.errors.ParserError, UnicodeDecodeError, OSError, ValueError) as exc:
        if isinstance(exc, InputFileError | DataValidationError):
            raise
        raise InputFileError(f"cannot parse the table: {exc}", path=str(path)) from None


_SITE_NAME = re.compile(
    r"(?:^|[_\-. ])(site|scanner|center|centre|scan_site|manufacturer|protocol)"
    r"(?:$|[_\-. ]|id$|name$|code$)", re.IGNORECASE)


def is_site_column(name: str) -> bool:
    """Whether a column name says site or scanner (``site``, ``SITE_ID``, ``scanner``,
    ``center``, ``scanner_model`` …): such columns are categorical even when coded
    with numbers.

    >>> [is_site_column(c) for c in ("SITE_ID", "scanner", "site2", "age", "Center")]
    [True, True, False, False, True]
    """
    return _SITE_NAME.search(str(name)) is not None


def _is_row_numbers(column: pd.Series) -> bool:
    """Whether a text column reads 0, 1, 2, … or 1, 2, 3, … (a saved row index)."""
    try:
        numbers = column.astype(str).str.strip().astype(np.int64).to_numpy()
    except (ValueError, TypeError):
        return False
    return len(numbers) > 0 and numbers[0] in (0, 1) and bool(
        np.all(numbers == numbers[0] + np.arange(len(numbers))))


def _is_missing(values: pd.Series) -> np.ndarray:
    missing = values.isna().to_numpy(dtype=bool, copy=True)
    if values.dtype == object or pd.api.types.is_string_dtype(values.dtype):
        blank = values.map(lambda v: isinstance(v, str) and not v.strip())
        missing |= blank.to_numpy(dtype=bool)
    return missing


def _to_numeric(column: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """Numeric version of a column and the mask of non-empty entries that did not parse."""
    if pd.api.types.is_bool_dtype(column.dtype):
        return column.astype(np.float64), np.zeros(len(column), bool)
    if pd.api.types.is_numeric_dtype(column.dtype):
        return column.astype(np.float64), np.zeros(len(column), bool)
    stripped = column.astype(object).where(~_is_missing(column), None)
    stripped = stripped.map(lambda v: v.strip() if isinstance(v, str) else v)
    numeric = pd.to_numeric(stripped, errors="coerce").astype(np.float64)
    bad = numeric.isna().to_numpy() & stripped.notna().to_numpy()
    return numeric, bad


def read_table(path: str | os.PathLike, id_column: str | None = None,
               columns: Sequence[str] | None = None, sep: str | None = None,
               *, categorical: Sequence[str] | None = None) -> pd.DataFrame:
    """Read a subject table (CSV, TSV or parquet) indexed by subject ID.

    Parameters
    ----------
    path : str or path
        ``.csv`` (comma), ``.tsv``/``.txt``/``.tab`` (tab), ``.parquet``/``.pq``;
        text files may be compressed (``.gz`` etc.).
    id_column : str, optional
        Column holding subject IDs; default the first column.
    columns : sequence of str, optional
        Value columns to keep (default: every column but the ID column).
    sep : str, optional
        Field separator overriding the one implied by the extension.
    categorical : sequence of str, optional
        Columns kept as strings (e.g. ``sex``, ``site``).  Default ``None``
        treats as categorical every selected column in which *no* value is a
        number, and site/scanner columns (:func:`is_site_column`: ``site``,
        ``SITE_ID``, ``scanner`` …) even when coded with numbers, so that
        :func:`~bayesimg.data.make_dataset` one-hot encodes them; pass ``[]`` to
        require every value column to be numeric.

    Returns
    -------
    pandas.DataFrame
        Index: subject IDs as str (named after the ID column); numeric columns
        as float64 (NaN where empty), categorical columns as str.
        ``df.attrs["source"]`` holds the file path, used by later error messages.

    Raises
    ------
    InputFileError
        The file is missing, empty, or cannot be parsed.
    DataValidationError
        Unknown ID or value column, an empty or duplicated subject ID, a
        non-numeric value in a numeric column (the message names the column, the
        first offending subject and its value), or a column with no values.
    """
    path = Path(path)
    source = str(path)
    if not path.is_file():
        raise InputFileError("table file not found", path=source)
    raw = _read_raw_table(path, sep)
    raw.columns = [str(c).strip() for c in raw.columns]
    if raw.shape[1] < 2 and columns is None:
        raise DataValidationError(
            "the table has fewer than two columns (an ID column and a value column); "
            "is the separator right?", source=source)

    if id_column is None:
        id_column = raw.columns[0]
    if id_column not in raw.columns:
        raise DataValidationError(
            f"ID column not found; the table has columns {list(raw.columns)[:20]}",
            source=source, column=id_column)
    if columns is None:
        columns = [c for c in raw.columns if c != id_column]
    else:
        columns = [str(c) for c in columns]
        for col in columns:
            if col not in raw.columns:
                raise DataValidationError("column not found in the table",
                                          source=source, column=col)
            if col == id_column:
                raise DataValidationError("the ID column cannot also be a value column",
                                          source=source, column=col)

    ids = _subject_ids(raw[id_column], source, id_column)
    out = {}
    for col in columns:
        values = raw[col].reset_index(drop=True)
        empty = _is_missing(values)
        if empty.all():
            raise DataValidationError("the column has no values (all empty)",
                                      source=source, column=col)
        numeric, bad = _to_numeric(values)
        n_filled = int((~empty).sum())
        is_categorical = (col in categorical) if categorical is not None else (
            bad.sum() == n_filled or is_site_column(col))
        if is_categorical:
            text = values.astype(object).where(~empty, None)
            out[col] = np.array(
                [v.strip() if isinstance(v, str) else (None if v is None else str(v))
                 for v in text], dtype=object)
            continue
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DataValidationError(
                f"non-numeric value {values.iloc[i]!r} in a numeric column "
                f"({int(bad.sum())} such values; pass categorical=[{col!r}] if the "
                "column is categorical)", source=source, column=col, subject=ids[i])
        out[col] = numeric.to_numpy(dtype=np.float64)
    table = pd.DataFrame(out, index=pd.Index(ids, name=id_column, dtype=object))
    table.columns = pd.Index(columns, dtype=object)
    table.attrs["source"] = source
    return table


def _subject_ids(column: pd.Series, source: str, id_column: str) -> np.ndarray:
    missing = _is_missing(column)
    if missing.any():
        row = int(np.flatnonzero(missing)[0])
        raise DataValidationError(
            f"empty subject ID on data row {row + 1}", source=source, column=id_column)
    ids = column.astype(object).map(lambda v: str(v).strip())
    dup = _first_duplicate(ids)
    if dup is not None:
        raise DataValidationError(
            f"subject ID appears {int((ids == dup).sum())} times", source=source,
            column=id_column, subject=dup)
    return np.asarray(ids, dtype=object)


def check_genotype_values(values: np.ndarray, *, dosages: bool | None = None,
                          source: str | None = None, snp_names=None,
                          subjects=None) -> str:
    """Check genotype values and tell hard calls from dosages.

    Every observed (non-NaN) value must lie in [0, 2].  With ``dosages=False`` it
    must also be 0, 1 or 2 (a hard call).  Nothing is rounded or clipped.

    Parameters
    ----------
    values : numpy.ndarray
        ``(n, d)`` allele counts or dosages, NaN where missing.
    dosages : bool or None
        ``None``: detect; ``False``: hard calls required; ``True``: dosages declared.
    source, snp_names, subjects
        Used to name the file, SNP and subject of the first bad value.

    Returns
    -------
    str
        ``"hard calls"`` (every observed value is 0, 1 or 2, and ``dosages`` is not
        ``True``) or ``"dosages"``.

    Raises
    ------
    DataValidationError
        A value outside [0, 2] (or, with ``dosages=False``, any non-integer value);
        the message names the SNP column and the subject.

    Examples
    --------
    >>> import numpy as np
    >>> check_genotype_values(np.array([[0.0, 1.0], [2.0, np.nan]]))
    'hard calls'
    >>> check_genotype_values(np.array([[0.0, 1.42], [2.0, 0.07]]))
    'dosages'
    """
    X = np.asarray(values, dtype=np.float64)
    observed = ~np.isnan(X)

    def where(mask):
        row, col = np.argwhere(mask)[0]
        column = None if snp_names is None else str(np.asarray(snp_names)[col])
        subject = None if subjects is None else str(np.asarray(subjects)[row])
        return X[row, col], dict(source=source, column=column, subject=subject)

    outside = observed & ~((X >= 0.0) & (X <= 2.0))
    if outside.any():
        value, at = where(outside)
        raise DataValidationError(
            f"genotype value {float(value)!r} is not an allele count or dosage in [0, 2] "
            f"({int(outside.sum())} such values)", **at)
    fractional = observed & ~np.isin(X, (0.0, 1.0, 2.0))
    if fractional.any() and dosages is False:
        value, at = where(fractional)
        raise DataValidationError(
            f"genotype value {float(value)!r} is not an allele count 0, 1 or 2 "
            f"({int(fractional.sum())} such values); dosages=False asks for hard calls: "
            "pass dosages=None or True to accept imputed dosages", **at)
    return "dosages" if (dosages or fractional.any()) else "hard calls"


def read_dosage_table(path: str | os.PathLike, id_column: str | None = None, *,
                      dosages: bool | None = None) -> GenotypeTable:
    """Read genotypes stored as a subject × SNP table of allele counts or dosages.

    For data shipped as CSV/TSV/parquet instead of PLINK, BGEN or pgen (one ID
    column, one column per SNP holding a hard call 0, 1, 2, an imputed dosage in
    [0, 2], or empty for missing).  SNP coordinates are unknown (``chrom``/``pos``
    empty), so group SNPs with an explicit ``snp → gene`` mapping
    (:func:`~bayesimg.data.group_snps`).

    Parameters
    ----------
    path : str or path
        The table (see :func:`read_table` for the formats).
    id_column : str, optional
        Column of subject IDs (default: the first column).
    dosages : bool or None
        ``None`` (default) accepts hard calls and dosages and detects which
        (``table.kind``); ``False`` requires hard calls 0, 1, 2; ``True`` declares
        dosages.

    Returns
    -------
    GenotypeTable
        Values exactly as written (hard calls stay exact; nothing is rounded).

    Raises
    ------
    DataValidationError
        A value outside [0, 2] (or non-integer with ``dosages=False``), naming
        the SNP column and subject; or any :func:`read_table` error.

    Examples
    --------
    >>> table = read_dosage_table("imputed.csv")        # doctest: +SKIP
    >>> table.kind                                      # doctest: +SKIP
    'dosages'
    """
    table = read_table(path, id_column=id_column, categorical=[])
    values = table.to_numpy(dtype=np.float64)
    kind = check_genotype_values(values, dosages=dosages, source=str(path),
                                 snp_names=table.columns, subjects=table.index)
    snp_ids = [str(c) for c in table.columns]
    snps = pd.DataFrame({"snp": snp_ids, "chrom": [""] * len(snp_ids),
                         "pos": np.zeros(len(snp_ids), dtype=np.int64), "a1": [None] * len(snp_ids),
                         "a2": [None] * len(snp_ids), "gene": [None] * len(snp_ids)})
    return GenotypeTable(subjects=np.asarray(table.index, dtype=object), values=values,
                         snps=snps, source=str(path), kind=kind)
