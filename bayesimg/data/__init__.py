"""Data layer: read, validate, align, group and simulate data for bayesimg models.

    from bayesimg.data import read_plink, read_table, make_dataset, group_snps
    genotypes = read_plink("study.bed")
    phenotypes = read_table("rois.csv", id_column="IID")
    data = group_snps(make_dataset(genotypes, phenotypes))

or ``load_demo()`` for the bundled demo, or ``simulate_gsmtr()`` for data with a
known truth.
"""

from bayesimg.data.base import SubjectData
from bayesimg.data.dataset import SNP_COLUMNS, Dataset
from bayesimg.data.demo import load_demo, load_demo_truth
from bayesimg.data.genes import group_snps, ld_prune, load_gene_table
from bayesimg.data.io import GenotypeTable, read_plink, read_table
from bayesimg.data.prepare import make_dataset
from bayesimg.data.simulate import (
    GSMTRTruth,
    simulate_genotypes,
    simulate_gsmtr,
    simulate_gsmtr_from_prior,
    tile_genotypes,
)
from bayesimg.data.views import MultiViewData, View, make_views

__all__ = [
    "SNP_COLUMNS",
    "Dataset",
    "MultiViewData",
    "GSMTRTruth",
    "GenotypeTable",
    "group_snps",
    "ld_prune",
    "load_demo",
    "load_demo_truth",
    "load_gene_table",
    "make_dataset",
    "read_plink",
    "read_table",
    "simulate_genotypes",
    "simulate_gsmtr",
    "simulate_gsmtr_from_prior",
    "SubjectData",
    "tile_genotypes",
    "View",
    "make_views",
]
