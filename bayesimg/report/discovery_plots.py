"""Plots of discoveries (matplotlib Figures, no pyplot; written atomically given ``path=``).

* :func:`plot_manhattan` — SNP PIP (or, for fits without inclusion indicators,
  1 − the smallest lfsr over the ROIs) along the genome, coloured by gene.
* :func:`plot_pip_heatmap` — SNP × ROI PIP (or 1 − lfsr) of the SNPs with the strongest
  signal.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from bayesimg.report._tree import as_tree
from bayesimg.report.discovery import _constant, inclusion_probabilities
from bayesimg.report.plots import _finish, _new_figure

__all__ = ["plot_manhattan", "plot_pip_heatmap"]

_GENE_COLOURS = ("#1f4e79", "#8fb3d9")


def _snp_order(tree, d: int) -> np.ndarray:
    """SNPs by chromosome and position when the fit carries them, else as stored."""
    chrom, pos = _constant(tree, "snp_chrom"), _constant(tree, "snp_pos")
    if chrom is None or pos is None:
        return np.arange(d)
    try:
        c = np.asarray(chrom.values, dtype=str)
        c_num = np.array([int(x) if x.isdigit() else 100 + ord(x[0]) for x in c])
        p = np.asarray(pos.values).astype(float)
    except (TypeError, ValueError):
        return np.arange(d)
    return np.lexsort((p, c_num))


def plot_manhattan(fit: Any, *, threshold: float | None = 0.95,
                   path: str | os.PathLike | None = None):
    """SNP PIP along the genome, genes in alternating colours.

    The y axis is the SNP PIP for fits with inclusion indicators (the fine-mapping
    convention of SuSiE's plots), and 1 − min over ROIs of lfsr for the others (GSMTR).
    ``threshold``: a horizontal line to draw.
    """
    tree = as_tree(fit)
    probs = inclusion_probabilities(tree)
    snps = probs.coords["snp"].values
    has_pip = bool(probs.attrs["pip_defined"])
    if has_pip:
        y, label = probs["snp_pip"].values, "SNP PIP"
    else:
        y, label = 1.0 - probs["lfsr"].values.min(axis=1), "1 − min lfsr over ROIs"
    order = _snp_order(tree, len(snps))
    genes = _constant(tree, "snp_gene")
    gene_of = np.asarray(genes.values, dtype=str)[order] if genes is not None else None
    fig = _new_figure(max(6.0, min(16.0, len(snps) / 40.0)), 3.6)
    ax = fig.add_subplot()
    x = np.arange(len(snps))
    if gene_of is not None:
        change = np.r_[True, gene_of[1:] != gene_of[:-1]]
        block = np.cumsum(change) - 1
        colours = np.asarray(_GENE_COLOURS)[block % 2]
        starts = np.flatnonzero(change)
        ends = np.r_[starts[1:], len(snps)]
        mids = (starts + ends - 1) / 2.0
        ax.set_xticks(mids)
        ax.set_xticklabels(gene_of[starts], rotation=90, fontsize=7)
    else:
        colours = _GENE_COLOURS[0]
        ax.set_xlabel("SNP")
    ax.scatter(x, y[order], s=10, c=colours)
    if threshold is not None:
        ax.axhline(threshold, color="#c0392b", lw=0.8, ls="--",
                   label=f"{'PIP' if has_pip else '1 − lfsr'} = {threshold:g}")
        ax.legend(loc="upper right", fontsize=8, frameon=False)
    top = np.argsort(-y)[:5]
    for j in top:
        if y[j] >= 0.5:
            ax.annotate(str(snps[j]), (np.flatnonzero(order == j)[0], y[j]), fontsize=7,
                        xytext=(2, 2), textcoords="offset points")
    ax.set_ylabel(label)
    ax.set_ylim(0, 1.05)
    ax.set_title(f"{tree.attrs.get('model', 'fit')}: "
                 f"{'SNP inclusion' if has_pip else 'sign certainty'} by gene")
    return _finish(fig, path)


def plot_pip_heatmap(fit: Any, *, top: int = 30, path: str | os.PathLike | None = None):
    """SNP × ROI PIP (1 − lfsr for fits without indicators) of the ``top`` SNPs with the
    largest value on any ROI; the cells show the value when ≥ 0.5."""
    tree = as_tree(fit)
    probs = inclusion_probabilities(tree)
    has_pip = bool(probs.attrs["pip_defined"])
    values = probs["snp_roi_pip"].values if has_pip else 1.0 - probs["lfsr"].values
    snps = probs.coords["snp"].values
    rois = probs.coords["phenotype"].values
    keep = np.argsort(-values.max(axis=1), kind="stable")[:top]
    shown = values[keep]
    fig = _new_figure(1.6 + 0.55 * len(rois), 1.2 + 0.25 * len(keep))
    ax = fig.add_subplot()
    im = ax.imshow(shown, vmin=0, vmax=1, cmap="Blues", aspect="auto")
    ax.set_yticks(np.arange(len(keep)))
    ax.set_yticklabels([str(snps[j]) for j in keep], fontsize=7)
    ax.set_xticks(np.arange(len(rois)))
    ax.set_xticklabels([str(r) for r in rois], rotation=60, ha="right", fontsize=7)
    for i in range(shown.shape[0]):
        for k in range(shown.shape[1]):
            if shown[i, k] >= 0.5:
                ax.text(k, i, f"{shown[i, k]:.2f}", ha="center", va="center", fontsize=6,
                        color="white" if shown[i, k] > 0.75 else "black")
    fig.colorbar(im, ax=ax, label="SNP × ROI PIP" if has_pip else "1 − lfsr", shrink=0.8)
    ax.set_title(f"{tree.attrs.get('model', 'fit')}: top {len(keep)} SNPs")
    return _finish(fig, path)
