"""The bundled demo: real 1000 Genomes genotypes with a simulated imaging panel.

503 European individuals of 1000 Genomes phase 3, genotyped at three regions
(LCT on chr2, AGT on chr1, TTN on chr2; GRCh37), with eight simulated ROI
measures, simulated age and sex, and planted SNP effects whose truth is
bundled too.  ``datasets/demo_1000g/SOURCE.md`` gives the origin, the licences and
what is simulated; ``scripts/build_demo_phenotypes.py`` rebuilds the simulated
files.
"""

from __future__ import annotations

import contextlib
import importlib.resources
import warnings
from collections.abc import Sequence

import pandas as pd

from bayesimg.data.dataset import Dataset
from bayesimg.data.genes import group_snps, ld_prune, load_gene_table
from bayesimg.data.io import concat_genotype_tables, read_plink, read_table
from bayesimg.data.prepare import make_dataset, take_snps
from bayesimg.errors import DataValidationError, DataWarning

__all__ = ["load_demo", "load_demo_truth", "DEMO_REGIONS"]

#: Genotyped regions bundled with the demo.
DEMO_REGIONS = ("LCT", "AGT", "TTN")


@contextlib.contextmanager
def _demo_dir():
    resource = importlib.resources.files("bayesimg.data") / "datasets" / "demo_1000g"
    with importlib.resources.as_file(resource) as path:
        yield path


def load_demo(regions: Sequence[str] = DEMO_REGIONS, *, window: int = 10_000,
              ld_prune_r2: float | None = None, standardize_phenotypes: bool = True,
              genes: Sequence[str] | None = None, covariates: bool = True,
              min_maf: float = 0.0) -> Dataset:
    """Load the demo dataset, grouped into protein-coding genes.

    Genotypes are read from the bundled PLINK files, aligned with the simulated
    phenotypes and covariates, checked and centred (:func:`make_dataset`'s
    defaults; 3 TTN SNPs with more than 5% missing calls are dropped and a few
    missing calls mean-imputed), then grouped into hg19 protein-coding genes
    ±``window`` bp (:func:`group_snps`; SNPs outside every gene are dropped).
    Everything removed is listed in ``Dataset.preprocessing``; the routine
    :class:`~bayesimg.errors.DataWarning` messages about it are not shown.

    Parameters
    ----------
    regions : sequence of {"LCT", "AGT", "TTN"}
        Genotyped regions to include.
    window : int
        Gene window in base pairs.
    ld_prune_r2 : float, optional
        If given, prune SNPs within each gene at this r² (:func:`ld_prune`).
        The planted SNPs of :func:`load_demo_truth` are always kept, so the
        truth stays valid; their LD partners are pruned instead.
    standardize_phenotypes : bool
        Centre and scale the phenotypes (the truth's ``effect_std`` column is on
        this scale; ``effect`` is on the original scale).
    genes : sequence of str, optional
        Keep only these genes (e.g. ``["MCM6", "AGT", "TTN"]``) for a small model.
    covariates : bool
        Include age and sex (sex one-hot encoded as ``sex[M]``).
    min_maf : float
        Drop SNPs with a smaller minor-allele frequency (the demo job uses 0.05).

    Returns
    -------
    Dataset
        503 subjects × SNPs of the chosen regions, 8 phenotypes, 2 covariates.
    """
    regions = [str(r).upper() for r in regions]
    unknown = [r for r in regions if r not in DEMO_REGIONS]
    if unknown or not regions:
        raise DataValidationError(
            f"unknown demo region(s) {unknown}; choose among {DEMO_REGIONS}")
    with _demo_dir() as folder, warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        genotypes = concat_genotype_tables([read_plink(folder / r) for r in regions])
        phenotypes = read_table(folder / "phenotypes.csv", id_column="IID")
        covs = read_table(folder / "covariates.csv", id_column="IID") if covariates else None
        dataset = make_dataset(genotypes, phenotypes, covs, min_maf=min_maf,
                               standardize_phenotypes=standardize_phenotypes,
                               name="demo_1000g")
        dataset = group_snps(dataset, load_gene_table("hg19"), window=window)
    if genes is not None:
        wanted = [str(g) for g in genes]
        present = set(dataset.snps["gene"])
        missing = [g for g in wanted if g not in present]
        if missing:
            raise DataValidationError(
                f"gene(s) {missing} not in the demo regions {regions}; available: "
                f"{list(dataset.gene_names)}")
        dataset = take_snps(dataset, dataset.snps["gene"].isin(wanted).to_numpy())
    if ld_prune_r2 is not None:
        dataset = ld_prune(dataset, r2=ld_prune_r2, within="gene",
                           keep=load_demo_truth()["snp"].unique())
    return dataset


def load_demo_truth() -> pd.DataFrame:
    """The planted effects of the demo.

    Returns
    -------
    pandas.DataFrame
        One row per nonzero effect: ``snp, gene, a1, phenotype, effect``
        (per copy of allele ``a1``, in the phenotype's original units) and
        ``effect_std`` (divided by the phenotype's sample SD: the scale of
        ``load_demo(standardize_phenotypes=True)``).  Every other SNP ×
        phenotype effect is zero.
    """
    with _demo_dir() as folder:
        return pd.read_csv(folder / "truth.csv", dtype={"snp": str, "gene": str, "a1": str,
                                                        "phenotype": str})
