"""Read data laid out as the R package bgsmtr's example (for side-by-side runs).

bgsmtr's example data (its ``bgsmtr_example_data``, exported as three CSV
files) is: ``snp_data.csv`` (subject × SNP minor-allele counts),
``snp_groups.csv`` (columns ``snp, gene``) and ``brain_measures.csv``
(subject × phenotype).  :func:`load_bgsmtr_layout` turns such a folder into a
:class:`~bayesimg.data.Dataset` preprocessed exactly as ``bgsmtr()`` does
internally, so both programs sample the same density:

* SNPs centred, not scaled (``t(scale(t(X), scale = FALSE))``);
* phenotypes centred and scaled with R's ``sd`` (``ddof = 1``), not the
  ``ddof = 0`` that :func:`~bayesimg.data.make_dataset` uses by default;
* SNPs kept in the file's order within genes, genes in order of first
  appearance (bgsmtr's ``unique(group)``).

The data is never bundled with bayesimg: pass the folder you hold.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np

from bayesimg.data.dataset import Dataset
from bayesimg.data.genes import group_snps
from bayesimg.data.io import read_dosage_table, read_table
from bayesimg.data.prepare import make_dataset
from bayesimg.errors import InputFileError


def load_bgsmtr_layout(folder: str | os.PathLike, *, genotypes: str = "snp_data.csv",
                       groups: str = "snp_groups.csv", phenotypes: str = "brain_measures.csv",
                       name: str | None = None) -> Dataset:
    """Dataset from a bgsmtr-style folder, preprocessed as ``bgsmtr()`` does."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputFileError("bgsmtr data folder not found", path=str(folder))
    geno = read_dosage_table(folder / genotypes)
    pheno = read_table(folder / phenotypes, categorical=[])
    mapping = read_table(folder / groups, categorical=["gene"])
    data = make_dataset(geno, pheno, max_snp_missing=0.0, standardize_genotypes="center",
                        name=name or folder.name)
    data = group_snps(data, dict(zip(mapping.index, mapping["gene"], strict=True)),
                      unassigned="drop")
    n = data.n_subjects
    to_r_sd = np.sqrt((n - 1) / n)   # (y − m)/sd₁ = (y − m)/sd₀ · √((n−1)/n)
    prep = dict(data.preprocessing)
    prep["phenotype_scale"] = np.asarray(prep["phenotype_scale"]) / to_r_sd
    prep["phenotype_ddof"] = 1
    return dataclasses.replace(data, phenotypes=data.phenotypes * to_r_sd, preprocessing=prep)


def read_bgsmtr_run(folder: str | os.PathLike) -> dict:
    """Draws saved by ``benchmarks/peers/run_bgsmtr.R`` from an installed bgsmtr.

    Returns a dict with ``W`` (draw, snp, phenotype), ``sigma2`` (draw,), the
    ``meta`` key/value pairs (λ, timings, versions) and ``snp_names`` /
    ``phenotype_names`` (the row and column order of ``W``).
    """
    folder = Path(folder)
    meta_path = folder / "meta.txt"
    if not meta_path.is_file():
        raise InputFileError("no bgsmtr run here (meta.txt missing)", path=str(folder))
    meta = {}
    for line in meta_path.read_text().splitlines():
        key, _, value = line.partition("=")
        meta[key] = value
    shape = (int(meta["draws"]), int(meta["snps"]), int(meta["phenotypes"]))
    flat = np.fromfile(folder / "W_draws.f64", dtype="<f8")
    if flat.size != np.prod(shape):
        raise InputFileError(f"W_draws.f64 holds {flat.size} values, meta.txt says {shape}",
                             path=str(folder))
    W = flat.reshape(shape, order="F")          # R arrays are column-major
    sigma2 = np.fromfile(folder / "sigma2_draws.f64", dtype="<f8")
    numeric = {}
    for key, value in meta.items():
        try:
            numeric[key] = float(value)
        except ValueError:
            numeric[key] = value
    return {"W": W, "sigma2": sigma2, "meta": numeric,
            "snp_names": meta["snp_names"].split(","),
            "phenotype_names": meta["phenotype_names"].split(",")}
