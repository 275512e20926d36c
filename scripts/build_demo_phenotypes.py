"""Build the simulated imaging panel of the bundled demo (deterministic).

Reads only the bundled copies of the real 1000 Genomes genotypes in
``bayesimg/data/datasets/demo_1000g`` (LCT, AGT, TTN regions; 503 Europeans) and
writes, next to them:

* ``phenotypes.csv``  IID + 8 simulated ROI measures (volumes in mm³, thickness in mm)
* ``covariates.csv``  IID, age (years), sex ("F"/"M") — simulated
* ``truth.csv``       every planted nonzero SNP effect: snp, gene, a1, phenotype,
                      effect (per copy of allele a1, in the phenotype's units),
                      effect_std (the same divided by the phenotype's sample SD,
                      i.e. on the scale of ``load_demo()``'s standardised phenotypes)

The generating model, on a standardised scale, is

    y*_lj = Σ_i β_ij (x_li − x̄_i) + α_j (age_l − ā)/sd(age) + δ_j (male_l − p̄) + e_lj,
    e_l ~ N(0, R)  (R: unit-variance residual correlation between ROIs),

and the written phenotype is ``mean_j + sd_j · y*_lj`` (rounded), so the per-allele
effect on the written scale is ``sd_j · β_ij``.  x counts allele a1 of the .bim (as
``read_plink`` does).  Run from anywhere: ``python scripts/build_demo_phenotypes.py``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from bayesimg.data.genes import group_snps, load_gene_table
from bayesimg.data.io import concat_genotype_tables, read_plink
from bayesimg.data.prepare import make_dataset

SEED = 20240611
DEMO_DIR = Path(__file__).resolve().parents[1] / "bayesimg" / "data" / "datasets" / "demo_1000g"
REGIONS = ("LCT", "AGT", "TTN")

# Simulated ROI measures: name → (population mean, SD) in mm³ (volumes) or mm (thickness).
PHENOTYPES = {
    "Left_Hippocampus_vol": (4200.0, 450.0),
    "Right_Hippocampus_vol": (4350.0, 460.0),
    "Left_Amygdala_vol": (1600.0, 200.0),
    "Right_Amygdala_vol": (1700.0, 210.0),
    "Left_Entorhinal_thick": (3.30, 0.28),
    "Right_Entorhinal_thick": (3.35, 0.28),
    "Left_Lateral_Ventricle_vol": (12000.0, 3000.0),
    "Right_Lateral_Ventricle_vol": (11500.0, 2900.0),
}
DECIMALS = {"vol": 1, "thick": 4}

# Planted effects in residual-SD units per copy of allele a1: gene → snp → {phenotype: β}.
# rs4988235 (lactase persistence) lies in an MCM6 intron upstream of LCT, so grouping
# by gene coordinates puts it in MCM6; the LCT locus's active gene is therefore MCM6.
PLANTED = {
    "MCM6": {
        "rs4988235": {"Left_Hippocampus_vol": 0.35, "Right_Hippocampus_vol": 0.30,
                      "Left_Entorhinal_thick": 0.25},
    },
    "AGT": {
        "rs699": {"Left_Lateral_Ventricle_vol": 0.35, "Right_Lateral_Ventricle_vol": 0.30},
        "rs7079": {"Left_Entorhinal_thick": -0.30, "Right_Entorhinal_thick": -0.28,
                   "Right_Lateral_Ventricle_vol": 0.25},
    },
    "TTN": {
        "rs3829746": {"Left_Amygdala_vol": 0.38, "Right_Amygdala_vol": 0.32},
        "rs3769863": {"Right_Amygdala_vol": -0.28, "Left_Hippocampus_vol": -0.25},
    },
}

# Covariate effects in residual-SD units: per SD of age, and male versus female.
AGE_EFFECT = {"Hippocampus": -0.25, "Amygdala": -0.15, "Entorhinal": -0.20,
              "Lateral_Ventricle": 0.30}
SEX_EFFECT = {"Hippocampus": 0.30, "Amygdala": 0.30, "Entorhinal": 0.0,
              "Lateral_Ventricle": 0.20}


def _region_of(name: str) -> str:
    return next(key for key in AGE_EFFECT if key in name)


def residual_correlation(names: list[str]) -> np.ndarray:
    """0.2 between any two ROIs, 0.6 between left/right homologues, 0.35 within a side
    between hippocampus and amygdala."""
    c = len(names)
    R = np.full((c, c), 0.2)
    for i, a in enumerate(names):
        for j, b in enumerate(names):
            side_a, side_b = a.split("_")[0], b.split("_")[0]
            if _region_of(a) == _region_of(b):
                R[i, j] = 0.6
            elif side_a == side_b and {_region_of(a), _region_of(b)} == {"Hippocampus",
                                                                         "Amygdala"}:
                R[i, j] = 0.35
    np.fill_diagonal(R, 1.0)
    return R


def main() -> None:
    rng = np.random.default_rng(SEED)
    table = concat_genotype_tables([read_plink(DEMO_DIR / r) for r in REGIONS])
    grouped = group_snps(make_dataset(table, standardize_genotypes=None), window=10_000,
                         genes=load_gene_table("hg19"))
    snp_gene = dict(zip(grouped.snps["snp"], grouped.snps["gene"], strict=True))
    a1 = dict(zip(table.snps["snp"], table.snps["a1"], strict=True))
    names = list(PHENOTYPES)
    n = table.n_subjects

    # Genotypes of the planted SNPs (raw a1 counts) and their coefficients.
    planted = [(gene, snp, effects) for gene, snps in PLANTED.items()
               for snp, effects in snps.items()]
    columns = [list(table.snps["snp"]).index(snp) for _, snp, _ in planted]
    X = table.values[:, columns]
    assert not np.isnan(X).any(), "planted SNPs must have no missing calls"
    for gene, snp, _ in planted:
        assert snp_gene.get(snp) == gene, f"{snp} is grouped into {snp_gene.get(snp)}"
    beta = np.zeros((len(planted), len(names)))
    for k, (_, _, effects) in enumerate(planted):
        for pheno, b in effects.items():
            beta[k, names.index(pheno)] = b
    r2 = np.corrcoef(X.T) ** 2
    for k in range(len(planted)):
        for m in range(k):
            if planted[k][0] == planted[m][0]:
                assert r2[k, m] < 0.5, f"{planted[k][1]} and {planted[m][1]} in high LD"

    # Covariates (independent of genotypes).
    age = np.round(rng.uniform(45.0, 80.0, size=n), 1)
    male = rng.random(n) < 0.5
    age_z = (age - age.mean()) / age.std()
    alpha = np.array([AGE_EFFECT[_region_of(p)] for p in names])
    delta = np.array([SEX_EFFECT[_region_of(p)] for p in names])

    R = residual_correlation(names)
    noise = rng.standard_normal((n, len(names))) @ np.linalg.cholesky(R).T
    y_std = ((X - X.mean(axis=0)) @ beta + np.outer(age_z, alpha)
             + np.outer(male - male.mean(), delta) + noise)
    means = np.array([PHENOTYPES[p][0] for p in names])
    sds = np.array([PHENOTYPES[p][1] for p in names])
    Y = means + sds * y_std

    pheno = pd.DataFrame(Y, columns=names)
    for p in names:
        pheno[p] = pheno[p].round(DECIMALS[p.rsplit("_", 1)[1]])
    assert (pheno.to_numpy() > 0).all(), "a simulated ROI measure came out non-positive"
    pheno.insert(0, "IID", table.subjects)
    pheno.to_csv(DEMO_DIR / "phenotypes.csv", index=False)

    cov = pd.DataFrame({"IID": table.subjects, "age": age, "sex": np.where(male, "M", "F")})
    cov.to_csv(DEMO_DIR / "covariates.csv", index=False)

    sample_sd = pheno[names].to_numpy().std(axis=0)
    rows = []
    for k, (gene, snp, effects) in enumerate(planted):
        for pheno_name in effects:
            j = names.index(pheno_name)
            effect = sds[j] * beta[k, j]
            rows.append({"snp": snp, "gene": gene, "a1": a1[snp], "phenotype": pheno_name,
                         "effect": round(float(effect), 6),
                         "effect_std": round(float(effect / sample_sd[j]), 6)})
    pd.DataFrame(rows).to_csv(DEMO_DIR / "truth.csv", index=False)
    print(f"wrote phenotypes.csv, covariates.csv, truth.csv ({len(rows)} planted effects "
          f"of {len(planted)} SNPs in {len(PLANTED)} genes) to {DEMO_DIR}")


if __name__ == "__main__":
    main()
