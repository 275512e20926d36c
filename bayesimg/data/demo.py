"""The bundled demo: real 1000 Genomes genotypes with a simulated imaging panel.

503 European individuals of 1000 Genomes phase 3, genotyped at three regions
(LCT on chr2, AGT on chr1, TTN on chr2; GRCh37), with eight simulated ROI
measures, simulated age and sex, and planted SNP effects whose truth is
bundled too.  ``datasets/demo_1000g/SOURCE.md`` gives the origin, the licences and
what is simulated; ``scripts/build_demo_phenotypes.py`` rebuilds the simulated
files.

The same individuals are also bundled at 10,025 LD-thinned SNPs across the
whole of chromosome 2 (:func:`load_chr2_panel`, genotypes only: simulate
phenotypes on them with e.g. :func:`~bayesimg.data.simulate_gsmtr`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.resources
import warnings
from collections.abc import Sequence

import pandas as pd

from bayesimg.data.dataset import Dataset
from bayesimg.data.genes import group_snps, ld_prune, load_gene_table
from bayesimg.data.io import concat_genotype_tables, read_plink, read_table
from bayesimg.data.prepare import make_dataset, take_snps
from bayesimg.errors import DataValidationError, DataWarning

__all__ = ["load_demo", "load_demo_truth", "load_chr2_panel", "load_chr2_populations",
           "DEMO_REGIONS", "CHR2_POPULATIONS"]

#: Genotyped regions bundled with the demo.
DEMO_REGIONS = ("LCT", "AGT", "TTN")

#: 1000 Genomes populations of the bundled individuals (all European).
CHR2_POPULATIONS = ("CEU", "FIN", "GBR", "IBS", "TSI")


@contextlib.contextmanager
def _demo_dir():
    resource = importlib.resources.files("bayesimg.data") / "datasets" / "demo_1000g"
    with importlib.resources.as_file(resource) as path:
        yield path


@contextlib.contextmanager
def _quiet_demo_dir():
    """The bundled folder, with the routine DataWarnings of reading it silenced."""
    with _demo_dir() as folder, warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        yield folder


def _group_genes(dataset: Dataset, gene_table, window: int) -> Dataset:
    """Group into genes: ``"hg19"``/``"GRCh37"`` = the bundled protein-coding table."""
    if isinstance(gene_table, str) and gene_table.lower() in ("hg19", "grch37"):
        gene_table = load_gene_table(gene_table)
    return group_snps(dataset, gene_table, window=window)


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
    with _quiet_demo_dir() as folder:
        genotypes = concat_genotype_tables([read_plink(folder / r) for r in regions])
        phenotypes = read_table(folder / "phenotypes.csv", id_column="IID")
        covs = read_table(folder / "covariates.csv", id_column="IID") if covariates else None
        dataset = make_dataset(genotypes, phenotypes, covs, min_maf=min_maf,
                               standardize_phenotypes=standardize_phenotypes,
                               name="demo_1000g")
        dataset = _group_genes(dataset, "hg19", window)
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


def load_chr2_populations() -> pd.Series:
    """The 1000 Genomes population of each bundled individual.

    Returns
    -------
    pandas.Series
        Population code (one of :data:`CHR2_POPULATIONS`: CEU 99, FIN 99,
        GBR 91, IBS 107, TSI 107) indexed by subject ID (the .fam IID), in the
        order of the bundled .fam files.
    """
    with _demo_dir() as folder:
        table = pd.read_csv(folder / "chr2.population.tsv", sep="\t", dtype=str)
    return pd.Series(table["population"].to_numpy(), name="population",
                     index=pd.Index(table["iid"].to_numpy(), name="IID"))


def _chosen_populations(population: str | Sequence[str] | None) -> list[str]:
    if population is None:
        return list(CHR2_POPULATIONS)
    wanted = [population] if isinstance(population, str) else list(population)
    wanted = [str(p).upper() for p in wanted]
    unknown = [p for p in wanted if p not in CHR2_POPULATIONS]
    if unknown or not wanted:
        raise DataValidationError(
            f"unknown 1000 Genomes population(s) {unknown}; the bundled individuals "
            f"belong to {CHR2_POPULATIONS}")
    return wanted


def load_chr2_panel(*, population: str | Sequence[str] | None = None,
                    min_maf: float = 0.05, gene_table="hg19",
                    window: int = 10_000) -> Dataset:
    """Genotypes of the bundled chromosome-2 panel, grouped into genes.

    10,025 LD-thinned SNPs spread over chromosome 2 (GRCh37) for the 503
    European individuals of the demo (1000 Genomes phase 3; origin and licence
    in ``datasets/demo_1000g/SOURCE.md``).  There are no phenotypes: simulate
    them, e.g. ``simulate_gsmtr(load_chr2_panel(), ...)``.

    The genotypes are checked and centred by :func:`make_dataset` (defaults:
    SNPs with more than 5% missing calls dropped — 31 of them — and other
    missing calls mean-imputed), filtered by minor-allele frequency among the
    chosen individuals, then grouped into hg19 protein-coding genes
    ±``window`` bp (:func:`group_snps`; SNPs outside every gene window are
    dropped, and a SNP in several windows goes to the nearest gene).  With the
    defaults: 4,524 SNPs in 901 genes.  (Counting a SNP once per gene window
    it falls in instead, as ``datasets/demo_1000g/SOURCE.md`` explains, gives
    5,105 SNP–gene pairs in 1,001 genes.)  Everything removed is listed in
    ``Dataset.preprocessing``; the routine
    :class:`~bayesimg.errors.DataWarning` messages about it are not shown.

    Parameters
    ----------
    population : str or sequence of str, optional
        Keep only individuals of these 1000 Genomes populations (codes of
        :data:`CHR2_POPULATIONS`, case-insensitive); default all 503.  The
        MAF filter and the centring use the kept individuals only.
    min_maf : float
        Drop SNPs with a smaller minor-allele frequency (every SNP has MAF ≥ 0.05
        in all 503; within one population some fall below).
    gene_table : "hg19", None, DataFrame, dict or path
        ``"hg19"`` (or ``"GRCh37"``): the bundled protein-coding gene table;
        ``None``: no grouping (all SNPs kept, ``snps["gene"]`` empty); anything
        else is passed to :func:`group_snps` as its ``genes`` argument.
    window : int
        Gene window in base pairs.

    Returns
    -------
    Dataset
        Named ``"chr2_1000g"``: subjects × SNPs in position order within genes,
        genes in chromosome order; ``phenotypes`` is ``None``.

    Raises
    ------
    DataValidationError
        An unknown population code.
    """
    wanted = _chosen_populations(population)
    populations = load_chr2_populations()
    with _quiet_demo_dir() as folder:
        # every SNP block of chr2.bed carries the 2-bit "missing" code 01 in its one
        # padding slot (SOURCE.md); read_plink recognises that fill and stays quiet
        genotypes = read_plink(folder / "chr2")
        keep = populations.reindex(genotypes.subjects).isin(wanted).to_numpy()
        if not keep.all():
            genotypes = dataclasses.replace(genotypes, subjects=genotypes.subjects[keep],
                                            values=genotypes.values[keep])
        dataset = make_dataset(genotypes, min_maf=min_maf, name="chr2_1000g")
        if gene_table is not None:
            dataset = _group_genes(dataset, gene_table, window)
    return dataset
