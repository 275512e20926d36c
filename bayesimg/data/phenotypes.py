"""Imaging phenotypes as they come: FreeSurfer and ENIGMA tables, left/right pairs, visits.

* :func:`read_freesurfer_table` — ``aparcstats2table`` / ``asegstats2table`` output
  (first column header ``lh.aparc.thickness``, ``Measure:volume`` …), one or several
  tables joined on subject, units in ``attrs["units"]``.
* :func:`read_enigma_table` — ENIGMA cortical (``*_thickavg``, ``*_surfavg``) and
  subcortical (``LandRvolumes.csv``: ``Lthal``, ``Rhippo`` …) CSVs.
* :func:`pair_hemispheres` — left/right pairs of measures parsed from their names
  (``lh_``/``rh_``, ``Left-``/``Right-``, ``L_``/``R_``, ``lhCortexVol``, ENIGMA's
  ``Lthal``/``Rthal``, suffixes ``_L``/``_R``) for bilateral models.
* :func:`read_visits` — long tables of repeated measures (subject, visit, age/time),
  with site and scanner columns kept categorical; :func:`baseline_visits` takes one
  visit per subject for :func:`~bayesimg.data.make_dataset`.

Missing values (``NA``, ``NaN``, ``N/A``, empty) are kept as NaN and announced with a
:class:`~bayesimg.errors.DataWarning`; nothing is dropped silently.  Errors name the
file, the column and the subject.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from bayesimg.data.io import (
    _first_duplicate,
    _read_raw_table,
    _subject_ids,
    _to_numeric,
    is_site_column,
)
from bayesimg.errors import LIBRARY_FILES, DataValidationError, DataWarning, InputFileError

__all__ = ["read_freesurfer_table", "read_enigma_table", "pair_hemispheres", "read_visits",
           "baseline_visits"]

_NA_TOKENS = {"", "na", "nan", "n/a", "null", "none"}

#: FreeSurfer measures (aparcstats2table --meas, asegstats2table --meas) → units
_FS_UNITS = {"thickness": "mm", "thicknessstd": "mm", "area": "mm^2", "volume": "mm^3",
             "meancurv": "1/mm", "gauscurv": "1/mm^2", "foldind": "1", "curvind": "1",
             "mean": "MR intensity", "std": "MR intensity", "max": "MR intensity",
             "min": "MR intensity", "range": "MR intensity", "snr": "1"}


# --------------------------------------------------------------------------- shared
def _sniff_separator(path: Path) -> str:
    opener = open
    if path.suffix.lower() == ".gz":
        import gzip
        opener = gzip.open
    try:
        with opener(path, "rt", encoding="utf-8") as fh:
            header = fh.readline()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputFileError(f"cannot read the table: {exc}", path=str(path)) from None
    if not header.strip():
        raise InputFileError("the table is empty", path=str(path))
    for sep in ("\t", ",", ";"):
        if sep in header:
            return sep
    return r"\s+"


def _measure_table(path: Path, id_column: str | None, what: str) -> tuple[pd.DataFrame, str]:
    """Numeric subject × measure table from a text file; NA kept as NaN and announced."""
    source = str(path)
    if not path.is_file():
        raise InputFileError(f"{what} table not found", path=source)
    raw = _read_raw_table(path, _sniff_separator(path))
    raw.columns = [str(c).strip() for c in raw.columns]
    if raw.shape[1] < 2:
        raise InputFileError(f"the {what} table has fewer than two columns (an ID column and "
                             "a measure); is it the right file?", path=source)
    if id_column is None:
        id_column = raw.columns[0]
    elif id_column not in raw.columns:
        raise DataValidationError(
            f"ID column not found; the table starts with columns {list(raw.columns)[:5]}",
            source=source, column=id_column)
    ids = _subject_ids(raw[id_column], source, id_column)
    out, n_na, first_na = {}, 0, None
    for col in raw.columns:
        if col == id_column:
            continue
        text = raw[col].map(lambda v: None if pd.isna(v) or str(v).strip().lower()
                            in _NA_TOKENS else str(v).strip())
        numeric, bad = _to_numeric(text.astype(object))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DataValidationError(
                f"non-numeric value {raw[col].iloc[i]!r} in a {what} measure "
                f"({int(bad.sum())} such values; missing values must read NA, NaN or empty)",
                source=source, column=col, subject=str(ids[i]))
        missing = text.isna().to_numpy()
        if missing.any():
            n_na += int(missing.sum())
            first_na = first_na or (col, str(ids[int(np.argmax(missing))]))
        out[col] = numeric.to_numpy(dtype=np.float64)
    table = pd.DataFrame(out, index=pd.Index(ids, name="subject"))
    if n_na:
        n_cols = int(table.isna().any().sum())
        warnings.warn(
            f"{n_na} missing values (NA/empty) in {n_cols} columns of the {what} table, kept "
            f"as NaN (e.g. column {first_na[0]!r}, subject {first_na[1]!r}); make_dataset "
            f"refuses them unless drop_missing_phenotypes=True [file {source!r}]",
            DataWarning, skip_file_prefixes=LIBRARY_FILES)
    table.attrs["source"] = source
    table.attrs["id_column"] = id_column
    return table, id_column


def _join(tables: list[pd.DataFrame], what: str) -> pd.DataFrame:
    """Inner join on subject, announcing subjects missing from some table."""
    first = tables[0]
    common = first.index
    for t in tables[1:]:
        common = common.intersection(t.index, sort=False)
    keep = set(common)
    dropped = {t.attrs["source"]: [s for s in t.index if s not in keep] for t in tables}
    lost = {src: ids for src, ids in dropped.items() if ids}
    if lost:
        detail = "; ".join(f"{len(ids)} only in {Path(src).name} (e.g. {ids[0]!r})"
                           for src, ids in lost.items())
        warnings.warn(
            f"joining the {what} tables kept the {len(common)} subjects present in all of "
            f"them and dropped {detail}", DataWarning, skip_file_prefixes=LIBRARY_FILES)
    for t in tables[1:]:
        clash = [c for c in t.columns if c in first.columns]
        if clash:
            raise DataValidationError(f"column appears in two of the {what} tables",
                                      source=t.attrs["source"], column=clash[0])
    joined = pd.concat([t.loc[common] for t in tables], axis=1)
    joined.index.name = "subject"
    return joined


# --------------------------------------------------------------------------- FreeSurfer
def _freesurfer_kind(header: str, source: str) -> dict:
    aparc = re.fullmatch(r"(lh|rh)\.(.+)\.([A-Za-z]+)", header)
    if aparc:
        return {"tool": "aparcstats2table", "hemisphere": aparc.group(1),
                "parcellation": aparc.group(2), "measure": aparc.group(3).lower()}
    aseg = re.fullmatch(r"Measure:([A-Za-z_]+)", header)
    if aseg:
        return {"tool": "asegstats2table", "hemisphere": None, "parcellation": "aseg",
                "measure": aseg.group(1).lower()}
    raise InputFileError(
        f"not an aparcstats2table/asegstats2table output: its first column header is "
        f"{header!r}, expected e.g. 'lh.aparc.thickness' or 'Measure:volume'", path=source)


def _freesurfer_unit(column: str, measure: str) -> str:
    if "-to-eTIV" in column or "SurfaceHoles" in column:
        return "1"                               # ratios and hole counts
    if column in ("eTIV", "BrainSegVolNotVent", "EstimatedTotalIntraCranialVol") or \
            column.endswith("Vol"):
        return "mm^3"
    if "MeanThickness" in column:
        return "mm"
    if "WhiteSurfArea" in column:
        return "mm^2"
    return _FS_UNITS.get(measure, "")


def read_freesurfer_table(path: str | os.PathLike | Sequence[str | os.PathLike]
                          ) -> pd.DataFrame:
    """Read FreeSurfer ``aparcstats2table`` / ``asegstats2table`` output.

    Parameters
    ----------
    path : str or path, or a sequence of them
        One table (tab-, comma-, semicolon- or space-delimited, as the tools'
        ``--delimiter`` writes), or several (e.g. the ``lh`` and ``rh`` tables)
        joined on subject: subjects missing from one of them are dropped with a
        :class:`~bayesimg.errors.DataWarning` naming them.

    Returns
    -------
    pandas.DataFrame
        Index: subject IDs (the first column: FreeSurfer's subject directory names),
        named ``subject``; one float64 column per measure, NaN where the table says
        ``NA``/``NaN``/empty (announced by a DataWarning).  ``attrs``: ``source``,
        ``table`` (the first header, e.g. ``lh.aparc.thickness``), ``hemisphere``
        (``lh``, ``rh``, or ``None``), ``parcellation`` (``aparc``, ``aseg`` …),
        ``measure`` (``thickness``, ``volume`` …) and ``units``: column → unit
        (``mm``, ``mm^2``, ``mm^3``, ``1/mm`` …; ``1`` for ratios such as
        ``BrainSegVol-to-eTIV`` and counts such as ``SurfaceHoles``).  For several
        tables these are lists (``units``: the merged dict; ``sources``: the files,
        ``source``: them joined by ``"; "``).

    Raises
    ------
    InputFileError
        A missing or unreadable file, or a first column header that is not the
        tools' (``lh.<parc>.<measure>`` or ``Measure:<measure>``).
    DataValidationError
        An empty or duplicated subject ID, or a non-numeric value (the column and
        subject are named); a column in two of the tables joined.

    Examples
    --------
    >>> from bayesimg.data import read_freesurfer_table, pair_hemispheres
    >>> thick = read_freesurfer_table(["lh.aparc_table_thickness.tsv",
    ...                                "rh.aparc_table_thickness.tsv"])  # doctest: +SKIP
    >>> thick.attrs["units"]["lh_bankssts_thickness"]                     # doctest: +SKIP
    'mm'
    >>> pairs = pair_hemispheres(thick.columns)                          # doctest: +SKIP
    """
    if isinstance(path, str | os.PathLike):
        paths = [Path(path)]
    else:
        paths = [Path(p) for p in path]
        if not paths:
            raise DataValidationError("no FreeSurfer table given")
    tables = []
    for p in paths:
        table, header = _measure_table(p, None, "FreeSurfer")
        kind = _freesurfer_kind(header, str(p))
        table.attrs.update({"table": header, **{k: kind[k] for k in
                                                ("hemisphere", "parcellation", "measure")}})
        table.attrs["units"] = {c: _freesurfer_unit(c, kind["measure"])
                                for c in table.columns}
        tables.append(table)
    if len(tables) == 1:
        return tables[0]
    joined = _join(tables, "FreeSurfer")
    for key in ("table", "hemisphere", "parcellation", "measure"):
        joined.attrs[key] = [t.attrs[key] for t in tables]
    joined.attrs["sources"] = [t.attrs["source"] for t in tables]
    joined.attrs["source"] = "; ".join(joined.attrs["sources"])   # for error messages
    joined.attrs["units"] = {k: v for t in tables for k, v in t.attrs["units"].items()}
    return joined


# --------------------------------------------------------------------------- ENIGMA
def _enigma_unit(column: str) -> str:
    low = column.lower()
    if low.endswith("_thickavg") or low.endswith("thickness") or low.endswith("_thickstd"):
        return "mm"
    if low.endswith("_surfavg") or low.endswith("surfarea"):
        return "mm^2"
    return "mm^3"          # subcortical volumes (LandRvolumes.csv) and ICV


def read_enigma_table(path: str | os.PathLike, *, id_column: str | None = None
                      ) -> pd.DataFrame:
    """Read an ENIGMA cortical or subcortical measures CSV.

    The ENIGMA protocols write ``CorticalMeasuresENIGMA_ThickAvg.csv``
    (``SubjID, L_bankssts_thickavg, …, LThickness, RThickness, ICV``),
    ``CorticalMeasuresENIGMA_SurfAvg.csv`` (``…_surfavg``, ``LSurfArea``,
    ``RSurfArea``) and ``LandRvolumes.csv`` (``SubjID, LLatVent, RLatVent, Lthal,
    Rthal, …, ICV``).  Missing values written ``NA`` (or empty) become NaN with a
    :class:`~bayesimg.errors.DataWarning`.

    Parameters
    ----------
    path : str or path
        The CSV (a tab-separated export is recognised too).
    id_column : str, optional
        Subject ID column; default ``SubjID`` when present, else the first column.

    Returns
    -------
    pandas.DataFrame
        Indexed by subject (``subject``), float64 measures; ``attrs``: ``source``,
        ``id_column``, ``measure`` (``thickness``, ``area``, ``volume`` or
        ``mixed``) and ``units`` (``*_thickavg``, ``*Thickness`` → ``mm``;
        ``*_surfavg``, ``*SurfArea`` → ``mm^2``; volumes and ``ICV`` → ``mm^3``).

    Raises
    ------
    InputFileError, DataValidationError
        As :func:`read_freesurfer_table`.

    Examples
    --------
    >>> from bayesimg.data import read_enigma_table, pair_hemispheres
    >>> sub = read_enigma_table("LandRvolumes.csv")            # doctest: +SKIP
    >>> pair_hemispheres(sub.columns)                           # doctest: +SKIP
          left   right  region
    0  LLatVent  RLatVent  LatVent
    1    Lthal    Rthal     thal
    …
    """
    path = Path(path)
    if id_column is None and path.is_file():
        sep = _sniff_separator(path)
        header = pd.read_csv(path, sep=sep, nrows=0, engine="python").columns
        id_column = "SubjID" if "SubjID" in [str(c).strip() for c in header] else None
    table, _ = _measure_table(path, id_column, "ENIGMA")
    units = {c: _enigma_unit(c) for c in table.columns}
    table.attrs["units"] = units
    kinds = {"mm": "thickness", "mm^2": "area", "mm^3": "volume"}
    measured = {kinds[u] for c, u in units.items() if c.upper() != "ICV"}
    table.attrs["measure"] = measured.pop() if len(measured) == 1 else "mixed"
    return table


# --------------------------------------------------------------------------- pairs
#: (family, pattern, side group, region group, left token): the first that matches wins
_PAIR_RULES = (
    ("lh_", re.compile(r"(lh|rh)[_.](.+)"), 1, 2, "lh"),
    ("Left-", re.compile(r"(left|right)[-_ ](.+)", re.IGNORECASE), 1, 2, "left"),
    ("L_", re.compile(r"(L|R)_(.+)"), 1, 2, "L"),
    ("lhX", re.compile(r"(lh|rh)([A-Z].*)"), 1, 2, "lh"),
    ("_L", re.compile(r"(.+?)[-_.](L|R|lh|rh|left|right)", re.IGNORECASE), 2, 1, None),
)
#: ENIGMA subcortical names (Lthal/Rthal, LLatVent/RLatVent): paired only when both exist
_BARE_LR = re.compile(r"([LR])([A-Za-z].*)")


def _side(token: str, left_token: str | None) -> str:
    token = token.lower()
    if left_token is not None:
        return "left" if token == left_token.lower() else "right"
    return "left" if token in ("l", "lh", "left") else "right"


def pair_hemispheres(columns: Sequence[str]) -> pd.DataFrame:
    """Left/right pairs of measures, parsed from their names.

    Recognised (the first rule that matches a name wins; left and right must follow
    the same rule and leave the same region name):

    ========================  =================================================
    ``lh_X`` / ``rh_X``       aparcstats2table (``lh_bankssts_thickness``); also
                              ``lh.X``
    ``Left-X`` / ``Right-X``  asegstats2table (``Left-Hippocampus``); also
                              ``Left_X``, any case
    ``L_X`` / ``R_X``         ENIGMA cortical (``L_bankssts_thickavg``)
    ``lhX`` / ``rhX``         FreeSurfer globals (``lhCortexVol``)
    ``X_L`` / ``X_R``         suffixes ``_L``, ``_R``, ``_lh``, ``_rh``,
                              ``_left``, ``_right`` (also after ``-`` or ``.``)
    ``LX`` / ``RX``           ENIGMA subcortical (``Lthal``/``Rthal``), only when
                              both names exist
    ========================  =================================================

    Parameters
    ----------
    columns : sequence of str
        Measure names, e.g. ``table.columns``.

    Returns
    -------
    pandas.DataFrame
        Columns ``left``, ``right``, ``region`` (the name without its side), one row
        per pair, in the order of the left measures.  ``attrs["unpaired"]``: names
        that carry a side but have no partner (announced by a
        :class:`~bayesimg.errors.DataWarning`); ``attrs["midline"]``: names with no
        side (``3rd-Ventricle``, ``CSF``, ``ICV`` …).

    Raises
    ------
    DataValidationError
        A name appears twice.

    Examples
    --------
    >>> pair_hemispheres(["Left-Hippocampus", "Right-Hippocampus", "CSF",
    ...                   "lh_insula_thickness", "rh_insula_thickness"])
                      left                right            region
    0     Left-Hippocampus    Right-Hippocampus       Hippocampus
    1  lh_insula_thickness  rh_insula_thickness  insula_thickness
    """
    names = [str(c) for c in columns]
    dup = _first_duplicate(pd.Series(names, dtype=object))
    if dup is not None:
        raise DataValidationError("measure name appears more than once", column=dup)
    sides: dict[tuple[str, str], dict[str, str]] = {}
    order: list[tuple[str, str]] = []
    lateral, rest = [], []
    for name in names:
        for family, pattern, side_group, region_group, left_token in _PAIR_RULES:
            match = pattern.fullmatch(name)
            if match:
                side = _side(match.group(side_group), left_token)
                key = (family, match.group(region_group))
                if key not in sides:
                    sides[key] = {}
                    order.append(key)
                if side in sides[key]:
                    raise DataValidationError(
                        f"two {side} measures of region {key[1]!r}: "
                        f"{sides[key][side]!r} and {name!r}", column=name)
                sides[key][side] = name
                lateral.append(name)
                break
        else:
            rest.append(name)
    bare = {n: _BARE_LR.fullmatch(n) for n in rest}
    present = set(rest)
    midline = []
    for name in rest:
        match = bare[name]
        partner = None if match is None else ("R" if match.group(1) == "L" else "L") + \
            match.group(2)
        if partner is not None and partner in present:
            key = ("LX", match.group(2))
            if key not in sides:
                sides[key] = {}
                order.append(key)
            sides[key]["left" if match.group(1) == "L" else "right"] = name
        else:
            midline.append(name)
    rows, unpaired = [], []
    for key in order:
        pair = sides[key]
        if "left" in pair and "right" in pair:
            rows.append((pair["left"], pair["right"], key[1]))
        else:
            unpaired.extend(pair.values())
    rows.sort(key=lambda r: names.index(r[0]))
    pairs = pd.DataFrame(rows, columns=["left", "right", "region"], dtype=object)
    pairs.attrs["unpaired"] = unpaired
    pairs.attrs["midline"] = midline
    if unpaired:
        warnings.warn(
            f"{len(unpaired)} left/right measures have no partner on the other side and are "
            f"not paired (e.g. {unpaired[0]!r}); see attrs['unpaired']", DataWarning,
            skip_file_prefixes=LIBRARY_FILES)
    return pairs


# --------------------------------------------------------------------------- visits
def read_visits(path: str | os.PathLike | pd.DataFrame, *, subject: str = "subject",
                visit: str = "visit", time: str | None = None,
                columns: Sequence[str] | None = None,
                categorical: Sequence[str] | None = None,
                sep: str | None = None) -> pd.DataFrame:
    """Read a long table of repeated measures: one row per (subject, visit).

    Parameters
    ----------
    path : str, path or pandas.DataFrame
        CSV/TSV/parquet (as :func:`~bayesimg.data.read_table`) or a frame.
    subject, visit : str
        Columns of subject IDs and visit labels (``bl``, ``m12``, ``2`` …).
    time : str, optional
        Numeric column of when each visit happened (age, years since baseline);
        every row needs one.  Visits are then ordered by it within a subject.
    columns : sequence of str, optional
        Other columns to keep (default: all).
    categorical : sequence of str, optional
        Columns kept as text.  Default: columns with no numeric value, and
        site/scanner columns (``site``, ``SITE_ID``, ``scanner``, ``center`` …)
        even when coded with numbers, so that
        :func:`~bayesimg.data.make_dataset` one-hot encodes them as covariates
        instead of treating site 3 as three times site 1.
    sep : str, optional
        Field separator overriding the extension's.

    Returns
    -------
    pandas.DataFrame
        Columns ``subject`` and ``visit`` (str, renamed from the given names), then
        ``time`` (float64) when given, then the other columns (float64, or str for
        categorical ones; NaN/None where empty); rows sorted by subject (order of
        first appearance) and time.  ``attrs``: ``source``, ``columns`` (the
        original names of subject/visit/time), ``categorical``, ``n_subjects``,
        ``visits_per_subject`` (min, max).

    Raises
    ------
    InputFileError
        A missing, empty or unparsable file.
    DataValidationError
        A missing column, an empty subject or visit, a (subject, visit) pair on
        two rows (naming both), a missing or non-numeric time, or a non-numeric
        value in a numeric column.

    Examples
    --------
    >>> import pandas as pd
    >>> from bayesimg.data import read_visits
    >>> frame = pd.DataFrame({"RID": ["a", "a", "b"], "VISCODE": ["bl", "m12", "bl"],
    ...                       "AGE": [70.1, 71.1, 65.0], "SITE": [3, 3, 11]})
    >>> long = read_visits(frame, subject="RID", visit="VISCODE", time="AGE")
    >>> list(long.columns), long.attrs["categorical"]
    (['subject', 'visit', 'time', 'SITE'], ['SITE'])
    """
    if isinstance(path, pd.DataFrame):
        raw = path.reset_index(drop=not any(n is not None for n in path.index.names))
        raw = raw.astype(object).where(raw.notna(), None)
        raw = raw.map(lambda v: v if v is None or isinstance(v, str) else str(v))
        source = path.attrs.get("source", "visits table")
    else:
        path = Path(path)
        source = str(path)
        if not path.is_file():
            raise InputFileError("visits table not found", path=source)
        raw = _read_raw_table(path, sep)
    raw.columns = [str(c).strip() for c in raw.columns]
    keys = [subject, visit] + ([time] if time is not None else [])
    for col in keys:
        if col not in raw.columns:
            raise DataValidationError(
                f"column not found; the table has columns {list(raw.columns)[:20]}",
                source=source, column=col)
    if len(set(keys)) != len(keys):
        raise DataValidationError("subject, visit and time must be different columns",
                                  source=source)
    others = [c for c in raw.columns if c not in keys] if columns is None else \
        [str(c) for c in columns]
    for col in others:
        if col not in raw.columns:
            raise DataValidationError("column not found", source=source, column=col)
        if col in keys:
            raise DataValidationError("a key column cannot also be a value column",
                                      source=source, column=col)

    def text(col):
        return raw[col].map(lambda v: "" if pd.isna(v) else str(v).strip())

    subj, vis = text(subject), text(visit)
    for col, values in ((subject, subj), (visit, vis)):
        empty = (values == "").to_numpy()
        if empty.any():
            row = int(np.argmax(empty))
            raise DataValidationError(
                f"empty {'subject ID' if col == subject else 'visit'} on data row {row + 1}",
                source=source, column=col,
                subject=None if col == subject else subj.iloc[row])
    pair = subj + "\x00" + vis
    dup = pair.duplicated(keep=False).to_numpy()
    if dup.any():
        i = int(np.argmax(dup))
        rows = np.flatnonzero((pair == pair.iloc[i]).to_numpy()) + 1
        raise DataValidationError(
            f"visit {vis.iloc[i]!r} of subject {subj.iloc[i]!r} appears on {len(rows)} rows "
            f"(data rows {', '.join(map(str, rows[:5]))}): each (subject, visit) must be "
            f"one row ({int(dup.sum())} rows are such duplicates)", source=source,
            column=visit, subject=subj.iloc[i])
    out = {"subject": subj.to_numpy(dtype=object), "visit": vis.to_numpy(dtype=object)}
    if time is not None:
        numeric, bad = _to_numeric(raw[time])
        missing = numeric.isna().to_numpy() & ~bad
        for mask, why in ((bad, "non-numeric"), (missing, "missing")):
            if mask.any():
                i = int(np.argmax(mask))
                raise DataValidationError(
                    f"{why} time {raw[time].iloc[i]!r} at visit {vis.iloc[i]!r} "
                    f"({int(mask.sum())} such rows); every visit needs a numeric time",
                    source=source, column=time, subject=subj.iloc[i])
        if not np.isfinite(numeric.to_numpy()).all():
            i = int(np.argmax(~np.isfinite(numeric.to_numpy())))
            raise DataValidationError("infinite time", source=source, column=time,
                                      subject=subj.iloc[i])
        out["time"] = numeric.to_numpy(dtype=np.float64)
    chosen_categorical = []
    for col in others:
        values = raw[col]
        empty = values.map(lambda v: pd.isna(v) or not str(v).strip()).to_numpy(dtype=bool)
        numeric, bad = _to_numeric(values)
        n_filled = int((~empty).sum())
        is_cat = (col in categorical) if categorical is not None else (
            (n_filled > 0 and bad.sum() == n_filled) or is_site_column(col))
        if is_cat:
            chosen_categorical.append(col)
            out[col] = np.array([None if e else str(v).strip()
                                 for v, e in zip(values, empty, strict=True)], dtype=object)
            continue
        if bad.any():
            i = int(np.argmax(bad))
            raise DataValidationError(
                f"non-numeric value {values.iloc[i]!r} in a numeric column at visit "
                f"{vis.iloc[i]!r} (pass categorical=[{col!r}] if it is categorical)",
                source=source, column=col, subject=subj.iloc[i])
        out[col] = numeric.to_numpy(dtype=np.float64)
    table = pd.DataFrame(out)
    first_seen = pd.Index(pd.unique(table["subject"]))
    table["_order"] = first_seen.get_indexer(table["subject"])
    sort = ["_order"] + (["time"] if time is not None else [])
    table = table.sort_values(sort, kind="stable").drop(columns="_order")
    table = table.reset_index(drop=True)
    counts = table.groupby("subject", sort=False).size()
    table.attrs.update({
        "source": source, "columns": {"subject": subject, "visit": visit, "time": time},
        "categorical": chosen_categorical, "n_subjects": int(len(counts)),
        "visits_per_subject": (int(counts.min()), int(counts.max()))})
    return table


def baseline_visits(visits: pd.DataFrame, visit: str | None = None) -> pd.DataFrame:
    """One row per subject from a :func:`read_visits` table, indexed by subject.

    Parameters
    ----------
    visits : pandas.DataFrame
        From :func:`read_visits`.
    visit : str, optional
        Take this visit label (subjects without it are dropped with a
        :class:`~bayesimg.errors.DataWarning`); default each subject's first visit
        (earliest ``time`` when the table has one).

    Returns
    -------
    pandas.DataFrame
        Indexed by subject, ready for :func:`~bayesimg.data.make_dataset` as
        phenotypes or covariates (categorical columns stay text and are one-hot
        encoded there).

    Examples
    --------
    >>> import pandas as pd
    >>> from bayesimg.data import read_visits, baseline_visits
    >>> long = read_visits(pd.DataFrame({"subject": ["a", "a", "b"],
    ...                                  "visit": ["bl", "m12", "bl"], "y": [1.0, 2.0, 3.0]}))
    >>> baseline_visits(long)["y"].tolist()
    [1.0, 3.0]
    """
    for col in ("subject", "visit"):
        if col not in visits.columns:
            raise DataValidationError(f"not a read_visits table (no {col!r} column)",
                                      source=visits.attrs.get("source"), column=col)
    if visit is None:
        chosen = visits.groupby("subject", sort=False).head(1)
    else:
        chosen = visits[visits["visit"] == str(visit)]
        missing = [s for s in pd.unique(visits["subject"]) if s not in set(chosen["subject"])]
        if not len(chosen):
            raise DataValidationError(f"no subject has a visit {visit!r}",
                                      source=visits.attrs.get("source"), column="visit")
        if missing:
            warnings.warn(
                f"{len(missing)} subjects have no visit {visit!r} and are left out "
                f"(e.g. {missing[0]!r})", DataWarning, skip_file_prefixes=LIBRARY_FILES)
    out = chosen.set_index("subject")
    out.attrs = dict(visits.attrs)
    return out
