"""Data layer: read, validate, align, group and simulate data for bayesimg models.

    from bayesimg.data import read_plink, read_table, make_dataset, group_snps
    genotypes = read_plink("study.bed")
    phenotypes = read_table("rois.csv", id_column="IID")
    data = group_snps(make_dataset(genotypes, phenotypes))

or ``load_demo()`` for the bundled demo (``load_chr2_panel()`` for its
chromosome-2 genotypes), or ``simulate_gsmtr()`` for data with a
known truth (``simulate_discovery()``: semi-synthetic discovery scenarios on
the demo's real genotypes).
"""

from bayesimg import _jax_setup

_jax_setup.configure()  # before anything below imports JAX

from bayesimg.data.base import SubjectData  # noqa: E402
from bayesimg.data.bgsmtr_layout import load_bgsmtr_layout  # noqa: E402
from bayesimg.data.dataset import SNP_COLUMNS, Dataset  # noqa: E402
from bayesimg.data.demo import (  # noqa: E402
    CHR2_POPULATIONS,
    load_chr2_panel,
    load_chr2_populations,
    load_demo,
    load_demo_truth,
)
from bayesimg.data.formats import read_bgen, read_pgen  # noqa: E402
from bayesimg.data.genes import group_snps, ld_prune, load_gene_table  # noqa: E402
from bayesimg.data.io import GenotypeTable, read_dosage_table, read_plink, read_table  # noqa: E402
from bayesimg.data.longitudinal import LongitudinalData, make_longitudinal  # noqa: E402
from bayesimg.data.phenotypes import (  # noqa: E402
    baseline_visits,
    pair_hemispheres,
    read_enigma_table,
    read_freesurfer_table,
    read_visits,
)
from bayesimg.data.prepare import make_dataset  # noqa: E402
from bayesimg.data.simulate import (  # noqa: E402
    GSMTRTruth,
    simulate_genotypes,
    simulate_gsmtr,
    simulate_gsmtr_from_prior,
    tile_genotypes,
)
from bayesimg.data.simulate_bnmix import simulate_bnmix  # noqa: E402
from bayesimg.data.simulate_discovery import DiscoveryTruth, simulate_discovery  # noqa: E402
from bayesimg.data.simulate_factor import simulate_factor  # noqa: E402
from bayesimg.data.simulate_glrr import simulate_glrr  # noqa: E402
from bayesimg.data.simulate_l2r2 import L2R2Truth, simulate_l2r2  # noqa: E402
from bayesimg.data.views import MultiViewData, View, make_views  # noqa: E402
from bayesimg.data.windows import describe_windows, gene_windows  # noqa: E402

__all__ = [
    "CHR2_POPULATIONS",
    "SNP_COLUMNS",
    "Dataset",
    "DiscoveryTruth",
    "MultiViewData",
    "GSMTRTruth",
    "GenotypeTable",
    "L2R2Truth",
    "LongitudinalData",
    "describe_windows",
    "gene_windows",
    "group_snps",
    "ld_prune",
    "load_chr2_panel",
    "load_chr2_populations",
    "load_demo",
    "load_demo_truth",
    "load_gene_table",
    "make_dataset",
    "make_longitudinal",
    "load_bgsmtr_layout",
    "baseline_visits",
    "pair_hemispheres",
    "read_bgen",
    "read_enigma_table",
    "read_freesurfer_table",
    "read_visits",
    "read_dosage_table",
    "read_pgen",
    "read_plink",
    "read_table",
    "simulate_genotypes",
    "simulate_bnmix",
    "simulate_discovery",
    "simulate_factor",
    "simulate_glrr",
    "simulate_l2r2",
    "simulate_gsmtr",
    "simulate_gsmtr_from_prior",
    "SubjectData",
    "tile_genotypes",
    "View",
    "make_views",
]
