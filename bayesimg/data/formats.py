"""Genotype files beyond PLINK 1: PLINK 2 ``.pgen/.pvar/.psam`` and BGEN (v1.1–1.3).

Both readers return the same :class:`~bayesimg.data.GenotypeTable` as
:func:`~bayesimg.data.read_plink` (subjects × SNPs, float64 counts of allele
``a1``, NaN where missing) and read **only the variants asked for**: pass
``region=("2", start, end)`` and/or ``snps=[...]`` and the genotypes are decoded
variant block by variant block (``block_size`` variants at a time) straight into
the output, so a whole chromosome never has to be held in memory — only the
selected variants are.  The variant list (``.pvar``, or the BGEN variant headers)
is scanned in chunks to find them.

Hard calls are returned exactly (0, 1, 2); imputed dosages (a ``.pgen`` dosage
track, BGEN genotype probabilities) as expected allele counts in [0, 2]
(``GenotypeTable.kind`` says which was found).

The readers need the optional packages of ``pip install "bayesimg[formats]"``:
``pgenlib`` (the PLINK 2 authors' own reader/writer) and ``bgen`` (a maintained
C++ BGEN reader/writer that uses a bgenix ``.bgi`` index when one exists).

Which allele is counted
    PLINK 2 and BGEN files from PLINK 2 / UK Biobank list REF first; the readers
    count the ALT allele (``.pvar`` column ALT, the second BGEN allele), which is
    the A1 allele of a ``.bim`` converted by PLINK 2 — so a fileset converted from
    ``.bed`` reads as :func:`read_plink` reads the ``.bed``.  ``count="minor"``
    counts the minor allele instead, as in :func:`read_plink`.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from bayesimg.data.io import GenotypeTable, _count_minor_allele, check_genotype_values
from bayesimg.errors import LIBRARY_FILES, DataValidationError, DataWarning, InputFileError

__all__ = ["read_pgen", "read_bgen"]

#: values this close outside [0, 2] (float32 rounding of BGEN dosages) are clipped
_DOSAGE_ROUNDING = 1e-5
_PVAR_CHUNK = 200_000


# --------------------------------------------------------------------------- helpers
def _need(module: str, path: Path):
    try:
        return __import__(module)
    except ImportError:
        raise InputFileError(
            f"reading this file needs the package {module!r}: pip install "
            f"'bayesimg[formats]' (or pip install {module})", path=str(path)) from None


def _norm_chrom(chrom) -> str:
    text = str(chrom).strip()
    return text[3:] if text.lower().startswith("chr") else text


def _check_region(region, source: str):
    if region is None:
        return None
    try:
        chrom, start, end = region
        start = 0 if start is None else int(start)
        end = np.iinfo(np.int64).max if end is None else int(end)
    except (TypeError, ValueError):
        raise DataValidationError(
            f"region must be (chrom, start, end) with integer positions, got {region!r}",
            source=source) from None
    if start > end:
        raise DataValidationError(f"region start {start} is after its end {end}",
                                  source=source)
    return _norm_chrom(chrom), start, end


def _check_snps(snps, source: str) -> list[str] | None:
    if snps is None:
        return None
    if isinstance(snps, str):
        snps = [snps]
    wanted = [str(s).strip() for s in snps]
    if not wanted:
        raise DataValidationError("snps= is empty: name at least one SNP", source=source)
    return wanted


def _report_selection(wanted: list[str] | None, found: set[str], region, source: str,
                      n_selected: int) -> None:
    if wanted is not None:
        absent = [s for s in dict.fromkeys(wanted) if s not in found]
        if absent and len(absent) < len(set(wanted)):
            where = "" if region is None else f" within region {region!r}"
            warnings.warn(
                f"{len(absent)} of the {len(set(wanted))} SNPs asked for are not in the file"
                f"{where} and are left out (e.g. {absent[0]!r}) [file {source!r}]",
                DataWarning, skip_file_prefixes=LIBRARY_FILES)
    if n_selected == 0:
        asked = []
        if wanted is not None:
            asked.append(f"SNPs {wanted[:3]}{'…' if len(wanted) > 3 else ''}")
        if region is not None:
            asked.append(f"region {region!r}")
        raise DataValidationError(
            f"no variant of the file matches {' and '.join(asked) or 'the selection'}",
            source=source)


def _select_subjects(all_ids: np.ndarray, subjects, source: str) -> np.ndarray | None:
    """Sorted row positions of ``subjects`` (file order kept), or None for all."""
    if subjects is None:
        return None
    wanted = [str(s).strip() for s in ([subjects] if isinstance(subjects, str) else subjects)]
    index = pd.Index(all_ids)
    pos = index.get_indexer(wanted)
    absent = [w for w, p in zip(wanted, pos, strict=True) if p < 0]
    if len(absent) == len(wanted):
        raise DataValidationError(
            f"none of the {len(wanted)} subjects asked for is in the file", source=source,
            subject=absent[0])
    if absent:
        warnings.warn(
            f"{len(absent)} of the {len(wanted)} subjects asked for are not in the file "
            f"and are left out (e.g. {absent[0]!r}) [file {source!r}]", DataWarning,
            skip_file_prefixes=LIBRARY_FILES)
    return np.unique(pos[pos >= 0])


def _finish(values: np.ndarray, subjects: np.ndarray, snps: pd.DataFrame, source: str,
            count: str) -> GenotypeTable:
    dup = snps["snp"][snps["snp"].duplicated()]
    if len(dup):
        raise DataValidationError(
            "SNP ID appears more than once among the selected variants (narrow the region "
            "or rename the variants)", source=source, column=str(dup.iloc[0]))
    near = (values < 0) & (values > -_DOSAGE_ROUNDING)
    values[near] = 0.0
    near = (values > 2) & (values < 2 + _DOSAGE_ROUNDING)
    values[near] = 2.0
    kind = check_genotype_values(values, source=source, snp_names=snps["snp"],
                                 subjects=subjects)
    if count == "minor":
        values, snps = _count_minor_allele(values, snps)
    return GenotypeTable(subjects=subjects, values=values, snps=snps.reset_index(drop=True),
                         source=source, kind=kind)


def _check_count(count: str) -> None:
    if count not in {"a1", "minor"}:
        raise DataValidationError(f"count must be 'a1' or 'minor', got {count!r}")


def _check_block(block_size) -> int:
    if not isinstance(block_size, int | np.integer) or block_size < 1:
        raise DataValidationError(f"block_size must be a positive integer, got {block_size!r}")
    return int(block_size)


# --------------------------------------------------------------------------- PLINK 2
def _pgen_paths(path: str | os.PathLike) -> tuple[Path, Path, Path]:
    """The .pgen, .pvar (else a .bim) and .psam (else a .fam) of a fileset, as PLINK 2
    accepts them."""
    path = Path(path)
    if path.suffix.lower() in {".pgen", ".pvar", ".psam", ".bim", ".fam"}:
        path = path.with_suffix("")
    pvar, psam = Path(f"{path}.pvar"), Path(f"{path}.psam")
    if not pvar.is_file() and Path(f"{path}.bim").is_file():
        pvar = Path(f"{path}.bim")
    if not psam.is_file() and Path(f"{path}.fam").is_file():
        psam = Path(f"{path}.fam")
    return Path(f"{path}.pgen"), pvar, psam


def _read_psam(path: Path) -> np.ndarray:
    """Subject IDs (IID) of a .psam (header ``#FID IID …``/``#IID …``) or .fam-style file."""
    try:
        with open(path, encoding="utf-8") as fh:
            lines = [line for line in fh if line.strip() and not line.startswith("##")]
    except (OSError, UnicodeDecodeError) as exc:
        raise InputFileError(f"cannot read the .psam file: {exc}", path=str(path)) from None
    if not lines:
        raise InputFileError("the .psam file is empty", path=str(path))
    first = lines[0].split()
    if first[0].lstrip("#").upper() in {"FID", "IID"}:
        header = [h.lstrip("#").upper() for h in first]
        if "IID" not in header:
            raise InputFileError("the .psam header has no IID column", path=str(path))
        col, rows, offset = header.index("IID"), lines[1:], 2
    else:                        # no header: .fam columns FID IID PAT MAT SEX PHENO
        col, rows, offset = 1, lines, 1
    ids = []
    for i, line in enumerate(rows):
        fields = line.split()
        if len(fields) <= col:
            raise InputFileError(f"line {i + offset} of the .psam file has no IID field "
                                 "(truncated or malformed file)", path=str(path))
        ids.append(fields[col])
    ids = np.asarray(ids, dtype=object)
    dup = pd.Index(ids)[pd.Index(ids).duplicated()]
    if len(dup):
        raise DataValidationError(f"subject ID (IID) {dup[0]!r} appears more than once",
                                  source=str(path), subject=str(dup[0]))
    return ids


def _pvar_layout(path: Path) -> tuple[int, list[str] | None]:
    """Lines to skip before the data and the column names (None: .bim-style, no header)."""
    skip = 0
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.startswith("##"):
                skip += 1
                continue
            if line.startswith("#"):
                return skip + 1, [c.lstrip("#").upper() for c in line.split()]
            return skip, None
    raise InputFileError("the .pvar file holds no variant", path=str(path))


def _pvar_chunks(path: Path) -> Iterator[pd.DataFrame]:
    """The .pvar as chunks of (chrom, pos, snp, a1=ALT, a2=REF) strings."""
    skip, header = _pvar_layout(path)
    if header is None:
        with open(path, encoding="utf-8") as fh:
            for _ in range(skip):
                fh.readline()
            n_fields = len(fh.readline().split())
        if n_fields == 6:
            names, use = ["CHROM", "ID", "CM", "POS", "ALT", "REF"], None
        elif n_fields == 5:
            names, use = ["CHROM", "ID", "POS", "ALT", "REF"], None
        else:
            raise InputFileError(
                f"the .pvar file has no '#CHROM' header and {n_fields} columns; a "
                "headerless .pvar must have the 5 or 6 columns of a .bim", path=str(path))
    else:
        need = ["CHROM", "POS", "ID", "REF", "ALT"]
        missing = [c for c in need if c not in header]
        if missing:
            raise InputFileError(f"the .pvar header lacks column(s) {missing}",
                                 path=str(path))
        names, use = header, need
    try:
        reader = pd.read_csv(path, sep=r"\s+", header=None, names=names, usecols=use,
                             skiprows=skip, dtype=str, keep_default_na=False,
                             chunksize=_PVAR_CHUNK, engine="c")
        start = 0
        for chunk in reader:
            if chunk.isna().any(axis=None):
                row = start + int(np.flatnonzero(chunk.isna().any(axis=1).to_numpy())[0])
                raise InputFileError(f"variant {row + 1} of the .pvar file has missing "
                                     "fields (truncated or malformed file)", path=str(path))
            pos = pd.to_numeric(chunk["POS"], errors="coerce")
            if pos.isna().any() or (pos < 0).any():
                i = int(np.flatnonzero((pos.isna() | (pos < 0)).to_numpy())[0])
                raise DataValidationError(
                    f"variant position {chunk['POS'].iloc[i]!r} is not a non-negative integer",
                    source=str(path), column=str(chunk["ID"].iloc[i]))
            ids = chunk["ID"].to_numpy(dtype=object)
            unnamed = ids == "."
            if unnamed.any():
                made = (chunk["CHROM"] + ":" + chunk["POS"] + ":" + chunk["REF"] + ":"
                        + chunk["ALT"]).to_numpy(dtype=object)
                ids = np.where(unnamed, made, ids)
            yield pd.DataFrame({"snp": ids, "chrom": chunk["CHROM"].to_numpy(dtype=object),
                                "pos": pos.to_numpy(dtype=np.int64),
                                "a1": chunk["ALT"].to_numpy(dtype=object),
                                "a2": chunk["REF"].to_numpy(dtype=object)},
                               index=np.arange(start, start + len(chunk)))
            start += len(chunk)
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        if isinstance(exc, DataValidationError):
            raise
        raise InputFileError(f"cannot parse the .pvar file: {exc}", path=str(path)) from None


def _select_variants(chunks: Iterable[pd.DataFrame], wanted, region, source: str):
    """Selected variants (file row numbers as index), every variant's allele count,
    the multi-allelic variants left out, and the IDs found."""
    keep, allele_counts, multi, found = [], [], [], set()
    wanted_set = None if wanted is None else set(wanted)
    for chunk in chunks:
        n_alleles = chunk["a1"].str.count(",").to_numpy() + 2
        allele_counts.append(n_alleles)
        mask = np.ones(len(chunk), bool)
        if region is not None:
            chrom, start, end = region
            mask &= (chunk["chrom"].map(_norm_chrom) == chrom).to_numpy()
            mask &= ((chunk["pos"] >= start) & (chunk["pos"] <= end)).to_numpy()
        if wanted_set is not None:
            mask &= chunk["snp"].isin(wanted_set).to_numpy()
            found.update(chunk["snp"][mask])
        biallelic = n_alleles == 2
        multi.extend(chunk["snp"][mask & ~biallelic])
        keep.append(chunk[mask & biallelic])
    table = pd.concat(keep) if keep else pd.DataFrame(columns=["snp"])
    counts = np.concatenate(allele_counts) if allele_counts else np.zeros(0, np.int64)
    return table, counts, multi, found


def _warn_multiallelic(multi: list[str], source: str) -> None:
    if multi:
        warnings.warn(
            f"{len(multi)} selected multi-allelic variants are left out (e.g. {multi[0]!r}): "
            "a GenotypeTable holds counts of one allele per biallelic SNP; split them "
            f"first (plink2 --make-pgen multiallelics=-) [file {source!r}]", DataWarning,
            skip_file_prefixes=LIBRARY_FILES)


def read_pgen(path: str | os.PathLike, *, snps: Sequence[str] | None = None,
              region: tuple | None = None, subjects: Sequence[str] | None = None,
              count: str = "a1", block_size: int = 1024) -> GenotypeTable:
    """Read a PLINK 2 fileset (``.pgen`` + ``.pvar`` + ``.psam``), variants selected.

    Parameters
    ----------
    path : str or path
        The common prefix (``data/chr2``) or the path of any of the three files.
        As in PLINK 2, a ``.bim`` stands in for a missing ``.pvar`` and a ``.fam``
        for a missing ``.psam``.
    snps : sequence of str, optional
        Variant IDs (``.pvar`` column ID; an ID of ``.`` reads as
        ``chrom:pos:ref:alt``) to read.  IDs not in the file are left out with a
        :class:`~bayesimg.errors.DataWarning` (an error if none is found).
    region : (chrom, start, end), optional
        Only variants on ``chrom`` (``"2"`` and ``"chr2"`` are the same) with
        ``start <= pos <= end`` (1-based, inclusive; ``None`` for an open end).
        With ``snps`` too, the variants must satisfy both.
    subjects : sequence of str, optional
        Subject IDs (IID) to read (others are not decoded); file order is kept.
    count : {"a1", "minor"}
        ``"a1"`` counts the ALT allele (reported as ``a1``; REF is ``a2``);
        ``"minor"`` flips SNPs whose ALT frequency exceeds 0.5.
    block_size : int
        Variants decoded per call to pgenlib (memory: ``block_size × n`` float64).

    Returns
    -------
    GenotypeTable
        ALT counts as float64 (dosages where the ``.pgen`` stores them, hard calls
        otherwise; NaN for missing), subject IDs from the ``.psam`` IID column.

    Raises
    ------
    InputFileError
        A missing, empty, unparsable or inconsistent file (e.g. the ``.pgen`` holds
        another number of subjects or variants than the ``.psam``/``.pvar``), or
        ``pgenlib`` is not installed.
    DataValidationError
        Duplicated subject IDs, a bad position, a bad ``region``, or a selection
        that matches no variant.

    Examples
    --------
    >>> from bayesimg.data import read_pgen                      # doctest: +SKIP
    >>> lct = read_pgen("ukb_chr2", region=("2", 136_400_000, 136_700_000))
    >>> two = read_pgen("ukb_chr2", snps=["rs4988235", "rs182549"])
    """
    _check_count(count)
    block_size = _check_block(block_size)
    pgen, pvar, psam = _pgen_paths(path)
    for file, what in ((pgen, ".pgen"), (pvar, ".pvar"), (psam, ".psam")):
        if not file.is_file():
            raise InputFileError(f"PLINK 2 {what} file not found", path=str(file))
    source = str(pgen)
    region = _check_region(region, source)
    wanted = _check_snps(snps, source)
    pgenlib = _need("pgenlib", pgen)

    all_subjects = _read_psam(psam)
    table, allele_counts, multi, found = _select_variants(_pvar_chunks(pvar), wanted,
                                                          region, source)
    _warn_multiallelic(multi, source)
    _report_selection(wanted, found, region, source, len(table))
    rows = _select_subjects(all_subjects, subjects, source)
    subject_ids = all_subjects if rows is None else all_subjects[rows]

    offsets = None
    if np.any(allele_counts != 2):
        offsets = np.concatenate([[0], np.cumsum(allele_counts)]).astype(np.uintp)
    index = table.index.to_numpy(dtype=np.uint32)
    values = np.empty((len(subject_ids), len(index)), dtype=np.float64)
    try:
        reader = pgenlib.PgenReader(
            os.fsencode(pgen), raw_sample_ct=len(all_subjects),
            variant_ct=len(allele_counts), allele_idx_offsets=offsets,
            sample_subset=None if rows is None else rows.astype(np.uint32))
    except Exception as exc:  # pgenlib raises RuntimeError with the reason
        raise InputFileError(
            f"pgenlib cannot open the .pgen with {len(all_subjects)} subjects ({psam.name}) "
            f"and {len(allele_counts)} variants ({pvar.name}): {exc}; do the three files "
            "belong together?", path=source) from None
    with reader:
        buffer = np.empty((min(block_size, max(len(index), 1)), len(subject_ids)), np.float64)
        for lo in range(0, len(index), block_size):
            block = index[lo:lo + block_size]
            out = buffer[:len(block)]
            try:
                reader.read_dosages_list(np.ascontiguousarray(block), out)
            except Exception as exc:
                raise InputFileError(f"pgenlib could not read variants {int(block[0])}–"
                                     f"{int(block[-1])}: {exc}", path=source) from None
            values[:, lo:lo + len(block)] = out.T
    values[values == -9.0] = np.nan
    snp_table = table.reset_index(drop=True).assign(gene=None)
    snp_table["gene"] = snp_table["gene"].astype(object)
    return _finish(values, np.asarray(subject_ids, dtype=object), snp_table, source, count)


# --------------------------------------------------------------------------- BGEN
def _read_sample_file(path: Path) -> np.ndarray:
    """Subject IDs of an Oxford ``.sample`` file (ID_2, else ID_1)."""
    if not path.is_file():
        raise InputFileError("BGEN .sample file not found", path=str(path))
    try:
        lines = [line.split() for line in path.read_text(encoding="utf-8").splitlines()
                 if line.strip()]
    except (OSError, UnicodeDecodeError) as exc:
        raise InputFileError(f"cannot read the .sample file: {exc}", path=str(path)) from None
    if len(lines) < 2 or lines[0][0].upper() != "ID_1":
        raise InputFileError("not an Oxford .sample file (the first line must start with "
                             "ID_1 and the second give the column types)", path=str(path))
    header = [h.upper() for h in lines[0]]
    col = header.index("ID_2") if "ID_2" in header else 0
    ids = []
    for i, fields in enumerate(lines[2:]):
        if len(fields) <= col:
            raise InputFileError(f"line {i + 3} of the .sample file has no {header[col]}",
                                 path=str(path))
        ids.append(fields[col])
    return np.asarray(ids, dtype=object)


def _bgen_variants(reader, region, index_file: Path) -> Iterator:
    """Variants of the region through the bgenix index when there is one, else all."""
    if region is not None and index_file.is_file():
        chrom, start, end = region
        for name in (chrom, f"chr{chrom}"):
            hits = list(reader.fetch(name, start, end))
            if hits:
                yield from hits
                return
        return
    yield from reader


def read_bgen(path: str | os.PathLike, *, sample: str | os.PathLike | None = None,
              snps: Sequence[str] | None = None, region: tuple | None = None,
              subjects: Sequence[str] | None = None, count: str = "a1") -> GenotypeTable:
    """Read a BGEN file (v1.1, 1.2, 1.3; zlib or zstd), variants selected.

    Genotype probabilities become expected counts of the second allele
    (``P(het) + 2·P(hom 2nd)``): exact 0, 1, 2 for hard calls, dosages in [0, 2]
    for imputed data.  Variants are visited one at a time and only the selected
    ones are decoded; with a bgenix index (``file.bgen.bgi``) a ``region`` jumps
    straight to its variants.

    Parameters
    ----------
    path : str or path
        The ``.bgen`` file.
    sample : str or path, optional
        Oxford ``.sample`` file (subject IDs from ID_2, else ID_1).  Default: the
        IDs stored in the BGEN, else ``<path without .bgen>.sample``.
    snps : sequence of str, optional
        Variant IDs to read, matched against the rsID and the variant ID.
    region : (chrom, start, end), optional
        As in :func:`read_pgen` (1-based, inclusive; ``"chr2"`` equals ``"2"``).
    subjects : sequence of str, optional
        Subject IDs to keep (file order kept).
    count : {"a1", "minor"}
        ``"a1"``: the second allele (ALT in files from PLINK 2 and UK Biobank's
        "allele2"), reported as ``a1``; ``"minor"``: the minor allele.

    Returns
    -------
    GenotypeTable
        SNP IDs are the rsIDs (the variant ID where the rsID is empty or ``.``).

    Raises
    ------
    InputFileError
        A missing or unreadable file, no subject IDs anywhere, a ``.sample`` whose
        length differs from the BGEN's, or ``bgen`` not installed.
    DataValidationError
        Duplicated subject or SNP IDs, a bad ``region``, or a selection that
        matches no variant.

    Examples
    --------
    >>> from bayesimg.data import read_bgen                      # doctest: +SKIP
    >>> lct = read_bgen("ukb_imp_chr2_v3.bgen", sample="ukb.sample",
    ...                 region=("2", 136_400_000, 136_700_000))
    """
    _check_count(count)
    path = Path(path)
    source = str(path)
    if not path.is_file():
        raise InputFileError("BGEN file not found", path=source)
    region = _check_region(region, source)
    wanted = _check_snps(snps, source)
    wanted_set = None if wanted is None else set(wanted)
    bgen = _need("bgen", path)
    try:
        reader = bgen.BgenReader(str(path), delay_parsing=True)
    except Exception as exc:  # the C++ reader raises ValueError/RuntimeError with the reason
        raise InputFileError(f"cannot open the BGEN file: {exc}", path=source) from None
    with reader:
        n = reader.header.nsamples
        if sample is not None:
            all_subjects = _read_sample_file(Path(sample))
            sample_source = str(sample)
        elif reader.header.has_sample_ids:
            all_subjects, sample_source = np.asarray(reader.samples, dtype=object), source
        else:
            default = path.with_suffix(".sample")
            if not default.is_file():
                raise InputFileError(
                    "the BGEN file stores no subject IDs and no .sample file was given "
                    f"(pass sample=; {default.name} does not exist)", path=source)
            all_subjects, sample_source = _read_sample_file(default), str(default)
        if len(all_subjects) != n:
            raise InputFileError(
                f"the .sample file lists {len(all_subjects)} subjects but the BGEN holds "
                f"{n}; do they belong together?", path=sample_source)
        dup = pd.Index(all_subjects)[pd.Index(all_subjects).duplicated()]
        if len(dup):
            raise DataValidationError("subject ID appears more than once",
                                      source=sample_source, subject=str(dup[0]))
        rows = _select_subjects(all_subjects, subjects, source)
        subject_ids = all_subjects if rows is None else all_subjects[rows]

        columns, meta, found, multi = [], [], set(), []
        try:
            for var in _bgen_variants(reader, region, Path(f"{path}.bgi")):
                if region is not None:
                    chrom, start, end = region
                    if _norm_chrom(var.chrom) != chrom or not start <= var.pos <= end:
                        continue
                rsid, varid = str(var.rsid).strip(), str(var.varid).strip()
                if wanted_set is not None:
                    hit = {rsid, varid} & wanted_set
                    if not hit:
                        continue
                    found.update(hit)
                name = rsid if rsid not in ("", ".") else (
                    varid if varid not in ("", ".") else None)
                alleles = list(var.alleles)
                if len(alleles) != 2:
                    multi.append(name or f"{var.chrom}:{var.pos}")
                    continue
                if name is None:
                    name = f"{var.chrom}:{var.pos}:{alleles[0]}:{alleles[1]}"
                dosage = np.asarray(var.alt_dosage, dtype=np.float64)
                columns.append(dosage if rows is None else dosage[rows])
                meta.append((name, str(var.chrom), int(var.pos), alleles[1], alleles[0]))
        except (ValueError, RuntimeError, OSError, IndexError) as exc:
            raise InputFileError(f"cannot read the BGEN variants: {exc}", path=source) from None
    _warn_multiallelic(multi, source)
    _report_selection(wanted, found, region, source, len(columns))
    snp_table = pd.DataFrame(meta, columns=["snp", "chrom", "pos", "a1", "a2"])
    snp_table["pos"] = snp_table["pos"].astype(np.int64)
    snp_table["gene"] = pd.Series([None] * len(snp_table), dtype=object)
    values = np.column_stack(columns) if columns else np.empty((len(subject_ids), 0))
    return _finish(np.ascontiguousarray(values), np.asarray(subject_ids, dtype=object),
                   snp_table, source, count)
