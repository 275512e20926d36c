r"""Semi-synthetic discovery scenarios on the bundled real genotypes (known causal SNPs).

:func:`simulate_discovery` plants SNP → ROI effects on the real 1000 Genomes
genotypes of the bundled demo (503 Europeans, real LD, MAF ≥ 0.05) and simulates
eight ROI phenotypes (named like the demo's) with the demo's age and sex as
covariates:

    y_j = Σ_i x_i w_ij + Z γ_j + e_j,      Var(y_j) = 1 by construction,

so every effect ``w_ij`` is **per allele, in SD units of the phenotype**, and the
proportion of variance a causal pair explains is ``pve_ij = w_ij² Var(x_i)``.
The phenotypes are centred (not rescaled: their variance is already ≈ 1, and the
truth stays exactly the generating W).  The covariates explain about 4% of each
phenotype, the genetic part 2–10% of each ROI that has a causal SNP (an ROI whose
planted effects would exceed 10% is scaled down to 10%), the noise the rest.

Causal SNPs are drawn at random among the panel's SNPs, never two in r² ≥ 0.5 with
each other (so every causal signal is a separate LD block and the one scoring rule of
:func:`bayesimg.metrics.score_discoveries` is unambiguous); signs are random.

Scenarios (``SCENARIOS``; sizes are per replicate)

``"sparse_strong"``
    4 causal SNPs, each acting on 1–2 ROIs, each pair explaining 4–6% of the ROI
    (|w| ≈ 0.3–0.55 SD per allele; a marginal z of about 4.5–5.5 at n = 503).
    Panel: the demo's SNPs pruned at r² 0.8 within genes.  Independent noise.
``"many_weak"``
    12 causal SNPs, each on 1–3 ROIs, each pair explaining 0.6–1.2% (z ≈ 1.7–2.5):
    a polygenic background that no single test resolves.  Pruned panel,
    independent noise.
``"shared"``
    4 causal SNPs with pleiotropic effects on 6–8 of the 8 ROIs, one sign per SNP
    and magnitudes within ±20% of a common value, each pair explaining 0.8–2.9%
    (1.2–2% before the ±20%; z ≈ 2–3.8 per ROI: weak per test, strong when pooled
    across ROIs).
    Pruned panel, independent noise.
``"high_ld"``
    4 causal SNPs on 1–2 ROIs each, 4–6% per pair, every causal SNP with at least
    3 neighbours at r² ≥ 0.8 *in the panel*: the panel is the unpruned set of SNPs
    of the genes in ``HIGH_LD_GENES`` (LD proxies compete with the causal SNP).
    Independent noise.
``"ar_noise"``
    5 causal SNPs on 1–3 ROIs each, 3–5% per pair, with residuals correlated
    across ROIs as AR(1) in the ROI order, corr(e_j, e_k) = 0.6^|j−k| —
    misspecified for every model that assumes independent noise across ROIs.
    Pruned panel.

Randomness comes from ``numpy.random.default_rng(seed)`` only: equal
``(scenario, seed)`` give identical data and truth.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence

import numpy as np
import pandas as pd

from bayesimg.data.dataset import Dataset
from bayesimg.data.simulate import _centred_genotype_dataset
from bayesimg.errors import DataValidationError

__all__ = ["DiscoveryTruth", "HIGH_LD_GENES", "SCENARIOS", "discovery_panel", "ld_r2",
           "simulate_discovery"]

#: Genes of the unpruned "high_ld" panel (343 SNPs at MAF ≥ 0.05).
HIGH_LD_GENES = ("LCT", "MCM6", "AGT", "DARS", "PLEKHA3")

#: The scenarios and their settings (see the module docstring).
SCENARIOS: dict[str, dict] = {
    "sparse_strong": dict(n_causal=4, rois=(1, 2), pve=(0.04, 0.06), shared=False,
                          panel="pruned", noise_rho=0.0),
    "many_weak": dict(n_causal=12, rois=(1, 3), pve=(0.006, 0.012), shared=False,
                      panel="pruned", noise_rho=0.0),
    "shared": dict(n_causal=4, rois=(6, 8), pve=(0.012, 0.02), shared=True,
                   panel="pruned", noise_rho=0.0),
    "high_ld": dict(n_causal=4, rois=(1, 2), pve=(0.04, 0.06), shared=False,
                    panel="high_ld", noise_rho=0.0, min_neighbours=3, neighbour_r2=0.8),
    "ar_noise": dict(n_causal=5, rois=(1, 3), pve=(0.03, 0.05), shared=False,
                     panel="pruned", noise_rho=0.6),
}

#: Share of each phenotype's variance explained by the covariates (age, sex).
COVARIATE_VARIANCE = 0.04
#: Upper bound on the planted genetic variance of one ROI.
MAX_ROI_H2 = 0.10
#: Causal SNPs are never this correlated with each other.
CAUSAL_MAX_R2 = 0.5


@dataclasses.dataclass(frozen=True, eq=False)
class DiscoveryTruth:
    """What generated a :func:`simulate_discovery` dataset.

    Attributes
    ----------
    scenario : str
    seed : int
    effects : pandas.DataFrame
        One row per causal (SNP, phenotype) pair: ``snp, gene, phenotype,
        effect`` (per allele, phenotype SD units; the dataset's units) and ``pve``
        (share of the phenotype's variance that pair explains).
    W : pandas.DataFrame
        The full (snp × phenotype) effect matrix (zeros outside ``effects``).
    ld_r2 : pandas.DataFrame
        Squared correlations between the panel's SNPs (snp × snp), as the scoring
        rule uses them.
    h2 : pandas.Series
        Realised genetic variance share Var(X w_j) / Var(y_j) per phenotype.
    noise_cov : pandas.DataFrame
        Covariance of the residuals across phenotypes.
    gamma : pandas.DataFrame
        Covariate effects (covariate × phenotype).
    """

    scenario: str
    seed: int
    effects: pd.DataFrame
    W: pd.DataFrame
    ld_r2: pd.DataFrame
    h2: pd.Series
    noise_cov: pd.DataFrame
    gamma: pd.DataFrame

    @property
    def causal_snps(self) -> list[str]:
        """The SNPs with at least one nonzero effect (panel order)."""
        active = self.W.index[(self.W.to_numpy() != 0).any(axis=1)]
        return [str(s) for s in active]

    @property
    def causal_pairs(self) -> set[tuple[str, str]]:
        """The causal (snp, phenotype) pairs."""
        return set(zip(self.effects["snp"], self.effects["phenotype"], strict=True))


def ld_r2(dataset: Dataset) -> pd.DataFrame:
    """Squared Pearson correlations of the dataset's SNPs (snp × snp DataFrame)."""
    X = np.asarray(dataset.genotypes, dtype=float)
    X = X - X.mean(axis=0)
    sd = np.sqrt(np.sum(X * X, axis=0))
    R = (X.T @ X) / np.outer(sd, sd)
    names = pd.Index(dataset.snp_names, name="snp")
    return pd.DataFrame(np.clip(R * R, 0.0, 1.0), index=names, columns=names)


@functools.lru_cache(maxsize=4)
def _cached_panel(kind: str) -> Dataset:
    from bayesimg.data.demo import load_demo
    if kind == "pruned":
        return load_demo(min_maf=0.05, ld_prune_r2=0.8)
    if kind == "high_ld":
        return load_demo(min_maf=0.05, genes=HIGH_LD_GENES)
    raise DataValidationError(f"unknown panel {kind!r}; choose 'pruned' or 'high_ld'")


def discovery_panel(scenario: str) -> Dataset:
    """The genotype panel of a scenario: the demo at MAF ≥ 0.05, with its covariates.

    ``"high_ld"``: every SNP of ``HIGH_LD_GENES`` (no LD pruning); the other
    scenarios: all 15 demo genes pruned at r² 0.8 within genes (339 SNPs).
    """
    return _cached_panel(_spec(scenario)["panel"])


def _spec(scenario: str) -> dict:
    if scenario not in SCENARIOS:
        raise DataValidationError(
            f"unknown scenario {scenario!r}; choose among {sorted(SCENARIOS)}")
    return SCENARIOS[scenario]


def _choose_causal(rng, r2: np.ndarray, n_causal: int, eligible: np.ndarray) -> list[int]:
    """Random SNPs among ``eligible``, pairwise r² < CAUSAL_MAX_R2."""
    chosen: list[int] = []
    for j in rng.permutation(np.flatnonzero(eligible)):
        if all(r2[j, k] < CAUSAL_MAX_R2 for k in chosen):
            chosen.append(int(j))
            if len(chosen) == n_causal:
                return sorted(chosen)
    raise DataValidationError(
        f"the panel holds only {len(chosen)} eligible SNPs with pairwise r² < "
        f"{CAUSAL_MAX_R2}; {n_causal} needed")


def simulate_discovery(scenario: str, seed: int = 0, *, genotypes: Dataset | None = None,
                       phenotype_names: Sequence[str] | None = None,
                       ) -> tuple[Dataset, DiscoveryTruth]:
    """One replicate of a discovery scenario on real genotypes (see the module docstring).

    Parameters
    ----------
    scenario : {"sparse_strong", "many_weak", "shared", "high_ld", "ar_noise"}
    seed : int
        Seed of ``numpy.random.default_rng``: the causal SNPs, effects, covariate
        effects and noise all follow from it.
    genotypes : Dataset, optional
        A gene-grouped panel to use instead of :func:`discovery_panel` (tests use
        a small one); its covariates are kept (none if it has none).
    phenotype_names : sequence of str, optional
        Names of the simulated ROIs (default: the demo's 8 ROI names, or
        ``roi1…roi8`` when the panel has no phenotype names).

    Returns
    -------
    (Dataset, DiscoveryTruth)
        Genotypes centred allele counts (as loaded), phenotypes centred with
        variance ≈ 1, the panel's covariates; ``truth.effects`` lists the causal
        (snp, phenotype, effect) triples.
    """
    spec = _spec(scenario)
    panel = discovery_panel(scenario) if genotypes is None else genotypes
    if panel.genotypes is None or panel.n_snps == 0:
        raise DataValidationError("the genotype panel has no SNPs")
    if phenotype_names is None:
        phenotype_names = (panel.phenotype_names if panel.phenotype_names is not None
                           else [f"roi{j + 1}" for j in range(8)])
    names = np.asarray([str(p) for p in phenotype_names], dtype=str)
    c = len(names)
    rng = np.random.default_rng(seed)
    panel = _centred_genotype_dataset(panel, 0, 0, rng, f"discovery_{scenario}_{seed}")
    X = np.asarray(panel.genotypes, dtype=float)
    n, d = X.shape
    r2 = ld_r2(panel)
    r2_values = r2.to_numpy()
    var_x = X.var(axis=0)

    eligible = np.ones(d, bool)
    if spec.get("min_neighbours"):
        genes = panel.snps["gene"].astype(str).to_numpy()
        same_gene = genes[:, None] == genes[None, :]
        high = (r2_values >= spec["neighbour_r2"]) & same_gene & ~np.eye(d, dtype=bool)
        eligible = high.sum(axis=1) >= spec["min_neighbours"]
    causal = _choose_causal(rng, r2_values, spec["n_causal"], eligible)

    W = np.zeros((d, c))
    lo_roi, hi_roi = spec["rois"]
    for j in causal:
        k = int(rng.integers(min(lo_roi, c), min(hi_roi, c) + 1))
        targets = np.sort(rng.choice(c, size=k, replace=False))
        if spec["shared"]:
            sign = rng.choice([-1.0, 1.0])
            base = rng.uniform(*spec["pve"])
            pve = base * rng.uniform(0.8, 1.2, size=k) ** 2
            signs = np.full(k, sign)
        else:
            pve = rng.uniform(*spec["pve"], size=k)
            signs = rng.choice([-1.0, 1.0], size=k)
        W[j, targets] = signs * np.sqrt(pve / var_x[j])

    G = X @ W
    var_g = G.var(axis=0)
    scale = np.where(var_g > MAX_ROI_H2, np.sqrt(MAX_ROI_H2 / np.maximum(var_g, 1e-300)), 1.0)
    W = W * scale[None, :]
    G = X @ W
    var_g = G.var(axis=0)

    Z = panel.covariates
    if Z is not None and Z.shape[1] > 0:
        Zc = Z - Z.mean(axis=0)
        gamma = rng.standard_normal((Zc.shape[1], c))
        cov_part = Zc @ gamma
        cov_part *= np.sqrt(COVARIATE_VARIANCE / np.maximum(cov_part.var(axis=0), 1e-300))
        gamma = np.linalg.lstsq(Zc, cov_part, rcond=None)[0]
        z_names = np.asarray(panel.covariate_names, dtype=str)
    else:
        cov_part = np.zeros((n, c))
        gamma = np.zeros((0, c))
        z_names = np.array([], dtype=str)
    noise_var = 1.0 - var_g - cov_part.var(axis=0)
    rho = spec["noise_rho"]
    corr = rho ** np.abs(np.subtract.outer(np.arange(c), np.arange(c)))
    sd = np.sqrt(noise_var)
    noise_cov = corr * np.outer(sd, sd)
    E = rng.standard_normal((n, c)) @ np.linalg.cholesky(noise_cov).T
    Y = G + cov_part + E
    centre = Y.mean(axis=0)
    Y = Y - centre

    snp_names = panel.snp_names
    nz = np.argwhere(W != 0)
    gene_of = panel.snps["gene"].astype(str).to_numpy()
    effects = pd.DataFrame({
        "snp": [str(snp_names[i]) for i, _ in nz],
        "gene": [str(gene_of[i]) for i, _ in nz],
        "phenotype": [str(names[j]) for _, j in nz],
        "effect": [float(W[i, j]) for i, j in nz],
        "pve": [float(W[i, j] ** 2 * var_x[i]) for i, j in nz],
    })
    prep = dict(panel.preprocessing)
    prep.update({
        "phenotypes_standardized": False,
        "phenotype_center": centre,
        "phenotype_scale": np.ones(c),
        "simulated": {"simulator": "simulate_discovery", "scenario": scenario,
                      "seed": int(seed)},
    })
    dataset = dataclasses.replace(panel, phenotypes=Y, phenotype_names=names,
                                  preprocessing=prep)
    pheno_index = pd.Index(names, name="phenotype")
    truth = DiscoveryTruth(
        scenario=scenario, seed=int(seed), effects=effects,
        W=pd.DataFrame(W, index=pd.Index(snp_names, name="snp"), columns=pheno_index),
        ld_r2=r2,
        h2=pd.Series(var_g / Y.var(axis=0), index=pheno_index, name="h2"),
        noise_cov=pd.DataFrame(noise_cov, index=pheno_index, columns=pheno_index),
        gamma=pd.DataFrame(gamma, index=pd.Index(z_names, name="covariate"),
                           columns=pheno_index))
    return dataset, truth
