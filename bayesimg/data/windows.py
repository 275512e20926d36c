"""Split a gene-grouped dataset into consecutive windows of whole genes.

A genome-wide scan fits one model per window (e.g. with ``bayesimg.fit_many``).
:func:`gene_windows` cuts the genes, in their order along each chromosome, into
the **fewest** windows of at most ``max_snps`` SNPs, never splitting a gene and
never mixing chromosomes, and among those partitions picks the one whose SNP
counts are most even (least sum of squares), so that windows cost about the same.

Why not windows of one shape
    A compiled sampler (e.g. GSMTR's Gibbs kernel) is specialised to the number
    of SNPs *and* the number of genes of its data, so two windows share a
    compiled program only when both counts agree.  Consecutive windows of whole
    genes rarely agree in both (gene sizes vary from 1 to ~100 SNPs), and padding
    with dummy SNPs or genes would change the model.  On the bundled chr2 panel
    (4,524 SNPs in 901 genes) even a search that chose cut points to reuse shapes
    needed 30 distinct shapes for 53 windows of ≤ 100 SNPs.  So windows here
    differ in shape and each compiles once; the number of compilations is the
    number of windows, which is what this function minimises for a given
    ``max_snps``: raise ``max_snps`` to compile less (each window then costs
    more per sweep, ~d³/3 for d SNPs), lower it for more, cheaper windows.
    :func:`describe_windows` reports the SNP and gene counts.

A gene with more than ``max_snps`` SNPs gets a window of its own.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from bayesimg.data.dataset import Dataset
from bayesimg.data.genes import normalize_chrom
from bayesimg.data.prepare import take_snps
from bayesimg.errors import DataValidationError

__all__ = ["gene_windows", "describe_windows"]


def _gene_blocks(dataset: Dataset) -> pd.DataFrame:
    """One row per gene, in SNP order: gene, chrom, first SNP column, size."""
    if dataset.genotypes is None or dataset.snps is None:
        raise DataValidationError("gene_windows needs a dataset with genotypes")
    n_genes = len(dataset.gene_names)  # a named error if the SNPs are not grouped
    labels = dataset.snps["gene"].astype(str).to_numpy()
    starts = np.flatnonzero(np.r_[True, labels[1:] != labels[:-1]])
    genes = labels[starts]
    if len(genes) != n_genes:
        gene = pd.Series(genes)[pd.Series(genes).duplicated()].iloc[0]
        raise DataValidationError(
            "the SNPs of a gene are not contiguous; order them gene by gene first "
            "(bayesimg.data.group_snps does)", column=str(gene))
    chroms = [normalize_chrom(c) for c in dataset.snps["chrom"].iloc[starts]]
    sizes = np.diff(np.r_[starts, len(labels)])
    gene_chroms = pd.Series([normalize_chrom(c) for c in dataset.snps["chrom"]]).groupby(
        labels, sort=False).nunique()
    if (gene_chroms > 1).any():
        raise DataValidationError("a gene's SNPs lie on several chromosomes",
                                  column=str(gene_chroms[gene_chroms > 1].index[0]))
    return pd.DataFrame({"gene": genes, "chrom": chroms, "start": starts, "size": sizes})


def _min_windows(sizes: np.ndarray, cap: int) -> int:
    """Fewest consecutive windows of total size ≤ cap (greedy packing is optimal)."""
    count, load = 1, 0
    for s in sizes:
        if load + s > cap:
            count, load = count + 1, 0
        load += s
    return count


def _balanced_cuts(sizes: np.ndarray, cap: int) -> list[int]:
    """Cut points (gene indices, ending at len(sizes)) of the fewest windows ≤ cap,
    the most even ones: least Σ (window size)², found by dynamic programming."""
    n_windows = _min_windows(sizes, cap)
    bounds = np.r_[0, np.cumsum(sizes)].astype(np.float64)
    g = len(sizes)
    lowest = np.searchsorted(bounds, bounds - cap, side="left")  # first feasible start
    cost = np.where(bounds <= cap, bounds ** 2, np.inf)
    cost[0] = np.inf  # a window holds at least one gene
    back = np.zeros((n_windows, g + 1), dtype=np.int64)
    for w in range(1, n_windows):
        new = np.full(g + 1, np.inf)
        for j in range(w + 1, g + 1):
            i = np.arange(max(lowest[j], w), j)
            if i.size == 0:
                continue
            total = cost[i] + (bounds[j] - bounds[i]) ** 2
            k = int(np.argmin(total))
            new[j], back[w, j] = total[k], i[k]
        cost = new
    cuts, j = [g], g
    for w in range(n_windows - 1, 0, -1):
        j = int(back[w, j])
        cuts.append(j)
    return sorted(cuts)


def _window_ranges(blocks: pd.DataFrame, max_snps: int) -> list[tuple[int, int]]:
    """(first gene, last gene + 1) row ranges of ``blocks``, in order."""
    ranges: list[tuple[int, int]] = []
    sizes = blocks["size"].to_numpy()
    chroms = blocks["chrom"].to_numpy()
    # runs of genes on one chromosome, each oversized gene alone
    edges = np.flatnonzero((chroms[1:] != chroms[:-1]) | (sizes[1:] > max_snps)
                           | (sizes[:-1] > max_snps)) + 1
    for lo, hi in zip(np.r_[0, edges], np.r_[edges, len(blocks)], strict=True):
        if sizes[lo] > max_snps:
            ranges.append((int(lo), int(hi)))
            continue
        start = int(lo)
        for cut in _balanced_cuts(sizes[lo:hi], max_snps):
            ranges.append((start, int(lo) + cut))
            start = int(lo) + cut
    return ranges


def gene_windows(dataset: Dataset, max_snps: int = 250) -> dict[str, Dataset]:
    """Consecutive windows of whole genes, each a :class:`Dataset`.

    Parameters
    ----------
    dataset : Dataset
        Grouped into genes with each gene's SNPs contiguous (as
        :func:`~bayesimg.data.group_snps` leaves them); genes in chromosome order.
    max_snps : int
        Most SNPs in a window (a larger gene forms a window alone).  The windows
        are the fewest possible under this cap, with SNP counts as even as
        possible; see the module docstring for why their shapes differ.

    Returns
    -------
    dict of str to Dataset
        In genome order, named ``chr<chrom>:<first gene>-<last gene>``
        (``chr<chrom>:<gene>`` for a one-gene window); each window's
        ``name`` is its key, its phenotypes and covariates are the dataset's,
        and ``preprocessing["window"]`` records its index, chromosome, genes
        and SNP count (:func:`describe_windows` tabulates them).  Every SNP is in
        exactly one window.

    Raises
    ------
    DataValidationError
        Ungrouped SNPs, a gene whose SNPs are not contiguous, or ``max_snps < 1``.
    """
    if int(max_snps) != max_snps or max_snps < 1:
        raise DataValidationError(f"max_snps must be a positive integer, got {max_snps!r}")
    blocks = _gene_blocks(dataset)
    ranges = _window_ranges(blocks, int(max_snps))
    windows: dict[str, Dataset] = {}
    positions = dataset.snps["pos"].to_numpy()
    for index, (lo, hi) in enumerate(ranges):
        part = blocks.iloc[lo:hi]
        first, last = str(part["gene"].iloc[0]), str(part["gene"].iloc[-1])
        chrom = str(part["chrom"].iloc[0])
        name = f"chr{chrom}:{first}" if hi - lo == 1 else f"chr{chrom}:{first}-{last}"
        columns = np.arange(int(part["start"].iloc[0]),
                            int(part["start"].iloc[-1] + part["size"].iloc[-1]))
        record = {"index": index, "n_windows": len(ranges), "chrom": chrom,
                  "genes": [str(g) for g in part["gene"]], "n_genes": int(hi - lo),
                  "n_snps": int(columns.size), "max_snps": int(max_snps),
                  "first_pos": int(positions[columns].min()),
                  "last_pos": int(positions[columns].max())}
        window = take_snps(dataset, columns, {"window": record})
        windows[name] = dataclasses.replace(window, name=name)
    return windows


def describe_windows(windows: dict[str, Dataset]) -> pd.DataFrame:
    """One row per window of :func:`gene_windows`: its shape and span.

    Returns
    -------
    pandas.DataFrame
        Indexed by window name: ``chrom, first_gene, last_gene, n_genes, n_snps,
        first_pos, last_pos``.
    """
    rows = []
    for name, window in windows.items():
        rec = window.preprocessing.get("window")
        if rec is None:
            raise DataValidationError(f"{name!r} is not a window from gene_windows")
        rows.append({"window": name, "chrom": rec["chrom"], "first_gene": rec["genes"][0],
                     "last_gene": rec["genes"][-1], "n_genes": rec["n_genes"],
                     "n_snps": rec["n_snps"], "first_pos": rec["first_pos"],
                     "last_pos": rec["last_pos"]})
    return pd.DataFrame(rows).set_index("window")
