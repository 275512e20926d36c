r"""Bi-level spike-and-slab multitask regression with effect-sharing patterns (SpikeSlabMTR).

The sibling of :class:`~bayesimg.models.gsmtr.GroupSparseMTR` for *discovery*: which SNPs
(and genes) affect which imaging phenotypes (ROIs), with posterior inclusion probabilities
(PIPs), local false sign rates and credible sets (:mod:`bayesimg.report.discovery`).  Same
data (:class:`~bayesimg.data.Dataset`: X n×d centred genotypes, Y n×c standardised
phenotypes, optional covariates Z n×r, SNP→gene groups) and the same drivers
(``bayesimg.fit(SpikeSlabMTR(), data, method="gibbs")``).

Why a point mass: bgsmtr's prior has one λ for all effects, so the λ that LOO prefers
(most SNPs are null) shrinks the true effects 4–8× and no interval excludes 0.  A
spike-and-slab separates the two: nulls are exactly 0, included effects are barely shrunk.

Model (row j of W, w_j ∈ R^c, is SNP j's effect on the c ROIs)::

    y_l = Wᵀx_l + Γᵀz_l + e_l,          e_l ~ N_c(0, Σ)
    γ_g ~ Bernoulli(π_gene)              gene g in            (g = 1 … G)
    δ_j | γ_g(j) ~ Bernoulli(γ_g π_snp)   SNP j in, given its gene (δ_j = 0 if γ_g = 0)
    w_j | δ_j = 1 ~ Σ_(p,t) ω_p ρ_t N(0, v_t² U_p),   w_j = 0 if δ_j = 0
      with the own-subset patterns on S_j, SNP j's own ROI subset (one S_j per SNP):
        "subsets":        U = D_(S_j) = diag(1_(S_j))  (independent effects on S_j)
        "shared_subsets": U = 1_(S_j)1_(S_j)ᵀ, i.e. w_j = β_j 1_(S_j), β_j ~ N(0, v_t²)
                          (one effect, one sign, on the ROIs of S_j; 0 elsewhere)
      S_j | φ_f ~ Π_k φ_f^(η_jk) (1 − φ_f)^(1 − η_jk) given S_j ≠ ∅  (η_jk = 1 ⟺ k ∈ S_j;
        φ_f the rate of the family f that SNP j uses)
      φ_subsets ~ Beta(1, c − 1), φ_shared_subsets ~ Beta(1, 1), each on a grid of 40
        values (prior mean 1/c for "subsets": one ROI per SNP expected; uniform for
        shared effects, which may span a few ROIs or all)
    π_gene ~ Beta(a_g, b_g),  π_snp ~ Beta(a_s, b_s)   (default Beta(1, 1) each),
    (ω_p) ~ Dirichlet(α) over patterns,  (ρ_t) ~ Dirichlet(α) over slab scales
    Σ ~ InvWishart(ν₀ = c + 2, Ψ₀ = I)   ("full"; prior mean I)
      or σ_k² ~ InvGamma((ν₀ − c + 1)/2, 1/2) independently ("diagonal": the IW's marginals)
    Γ ~ N(0, s_Γ²) entrywise (as GSMTR)

Weak polygenic signals and the prior of π_snp: given its gene is in, a SNP is in with
probability π_snp, so a SNP alone in a gene of m SNPs has prior weight ∝ π_snp (1 −
π_snp)^(m − 1).  π_snp is learned only from the genes that are in; with Beta(1, 1) and a
handful of weak signals it can settle high on a few small genes (discovery benchmark,
``many_weak``: 12 causal SNPs at z ≈ 2 in genes of 30–68 pruned SNPs; one replicate gave
π_snp ≈ 0.6, so a lone SNP in a gene of 50 had prior weight ∝ 0.4^49 ≈ 1e-19), and the weak
effects in large genes never enter (3 calls in 20 replicates).  ``snp_prior=(1, m̄ − 1)``
(m̄ = SNPs per gene; prior mean 1/m̄, one SNP per included gene) made 5 calls, none false,
in 5 ``many_weak`` replicates where Beta(1, 1) made none; it is not the default because it
costs power elsewhere: in the recovery test (3 genes, m̄ = 29) a planted 0.41-SD effect
was lost (lfsr 0.06 → 0.28; 4 of 7 planted pairs found instead of 6).

Why a product prior on the mixture weights (``mixture_prior="product"``, the default): with
one Dirichlet over all (pattern, scale) pairs (``"joint"``) the ~50 weights are learned from
the handful of included SNPs, so they stay near the prior's 1/K — each slab scale keeps a
quarter of the mass whatever the data say, and a null SNP enters cheaply through the
narrowest slab on a many-ROI pattern (SNP × ROI PIPs of 0.1–0.3 on nulls: overconfident
low bins in the discovery benchmark).  With ω_p ρ_t every included SNP informs the scale
weights whatever its pattern, so the slab adapts — to narrow slabs with many weak effects,
to wide ones with a few strong effects — and the pattern weights to the ROIs the effects
use.

The mixture components m are (pattern, scale) pairs, the mash / mr.mash construction
(Urbut et al. 2019, Nat Genet; Morgante et al. 2023, PLoS Genet; mvSuSiE, Zou et al.):
patterns U are ``"shared"`` (11ᵀ: the same effect on every ROI), ``"single"`` (e_k e_kᵀ for
each ROI k: an ROI-specific effect), ``"independent"`` (I: every ROI affected, effects
independent), ``"subsets"`` (U = D_(S_j) = diag(1_(S_j)): independent effects on the
ROIs of SNP j's own subset S_j, exactly zero on the others — any of the 2^c − 1 non-empty
subsets, with per-ROI inclusion at the learned rate φ) and any user vectors u (uuᵀ, e.g. a
bilateral left+right pattern); scales
v are a small grid in units of the standardised phenotype per unit of X
(default 0.1, 0.2, 0.4, 0.8 SD per allele: the smallest is about the standard error
of a per-allele effect at n = 500 and MAF 0.2 — a slab much narrower than that is
indistinguishable from the spike, so including a SNP in it costs nothing and PIPs drift
towards the prior).  The bi-level (gene, SNP-within-gene) indicator
prior is Xu & Ghosh's (2015, Bayesian Analysis) BSGS-SS and MBSGS's (Liquet et al. 2017);
learning π_gene and π_snp gives the multiplicity correction of Scott & Berger (2010).
Residual correlation across ROIs (imaging phenotypes are correlated) enters through Σ.

SNP×ROI inclusion: w_jk ≠ 0 exactly when δ_j = 1 and the chosen pattern has a nonzero
k-th diagonal, so P(w_jk ≠ 0 | Y) is read off the draws of W; the local false sign rate
lfsr_jk = min(P(w_jk ≥ 0), P(w_jk ≤ 0)) (Stephens 2017) counts the point mass on both sides.
Why every SNP carries its own subset: with a fixed list of subsets read off the
Bonferroni-significant SNPs (the ``"data"`` patterns of earlier versions), a causal SNP
below that threshold whose ROI subset was not listed could only enter on one ROI or on all
of them (the discovery benchmark: PIP 0.99 on its null ROIs), and a null SNP entering on
all ROIs put PIP 0.13–0.29 on each.  Here the subset is part of the state (per-ROI
inclusion inside the SNP's block), so every SNP can take the subset its data support, and
the subset prior P(S | φ) is the same for all SNPs (no use of the data in the prior).
``"single"`` (S = {k}) and ``"independent"`` (S = all) are special subsets, and ``"shared"``
(u = 1) is the all-ROI member of ``"shared_subsets"``, so the default is
``("subsets", "shared_subsets")``: a fixed pattern with its own weight ω gets more prior mass
than any one subset (ω against ω_f P(S | φ_f)), so a 2-ROI effect would be pulled onto one
ROI or onto all, and — measured on the discovery benchmark with ``("shared", "subsets")`` —
a one-sign effect on 6–7 of 8 ROIs took the one-coefficient all-ROI pattern rather than a
6–7-coefficient own subset, so its skipped ROIs inherited the SNP's PIP (empirical FDR
0.17 in the ``shared`` scenario).  ``"shared_subsets"`` gives such an effect one
coefficient on its own ROIs.  Its direction is 1_S: one sign on every ROI of S (the
phenotypes' own sign conventions); an effect of opposite signs across ROIs is the
``"subsets"`` family's.

Why subsets and not signed rank-1 data patterns (mash's u = the strongest SNP's z-scores):
a rank-1 pattern ties every ROI of its support to one coefficient β, so an ROI that entered
the support by chance (|z| ≥ 2 on one of 7 null ROIs: ~28% of causal SNPs) gets the sign
certainty of the real ROIs — lfsr ≈ 0 on a null ROI, and an empirical FDR of 0.2 measured on
the discovery benchmark.  With D_S the extra ROI is a free coefficient that pays its Occam
factor, and the sub-subsets of S compete with S, so P(w_jk ≠ 0) is the posterior
probability that ROI k is in.

Sampler: the exact blocked Gibbs kernel of :mod:`.spike_slab_gibbs` — for each SNP in turn
(δ_j, component, w_j) jointly from the single-SNP likelihood b̂_j = x_jᵀR₋ⱼ/x_jᵀx_j ~
N(w_j, Σ/x_jᵀx_j) with γ_g integrated out, then γ, π, Σ and Γ from their conjugate
conditionals.  The model has discrete indicators, so ``method="nuts"``, ``"svi"`` and
``"map"`` are refused with a :class:`~bayesimg.errors.ModelSpecError` (use ``"gibbs"``).

Deviation from a fully general mash prior (written down as the brief asks): patterns are
rank-1 (uuᵀ) or ROI-subset diagonals D_S (the identity included).  Those kinds have
closed-form Bayes factors at O(c) and O(c²) per SNP (Sherman–Morrison; one eigendecomposition
of Σ⁻¹ restricted to S per subset per sweep); a general full-rank U would need a
generalised eigenproblem per pattern per sweep.

Stored draws (named dims): ``W`` (snp, phenotype), ``snp_in`` δ (snp), ``gene_in`` γ
(gene), ``slab_component`` (snp; −1 when out), ``pi_gene``, ``pi_snp``, ``mixture_weights``
(component), ``roi_subset`` (snp, phenotype; S_j, the ROIs of SNP j's own-subset
pattern — meaningful where ``slab_component`` is a ``subsets@v`` or ``shared_subsets@v``
component; elsewhere it is the sampler's auxiliary draw), ``roi_rate`` φ_f
(subset_family),
``Sigma`` (phenotype, phenotype_2), ``gamma`` (covariate, phenotype).  The
per-subject log-likelihood is the full-Σ Gaussian density of the subject's c phenotypes.
``fit.loo()`` is integrated LOO (the included effects integrated out given the
configuration and Σ: :mod:`bayesimg.models.gsmtr.spike_slab_loo`).

Site random effects (a dataset with ``sites``; :mod:`bayesimg.models.core.site_effects`):
y_i gains u_{s(i)}, with u_{s,j} ~ N(0, τ_j²) and τ_j ~ HalfCauchy(0, ``site_scale``).
The Gibbs kernel draws Γ given u, then u given Γ under the full Σ (one c×c Gaussian per
site), then τ.  ``fit.loo()`` uses PSIS then: the integrated form is not extended to u.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.distributions import constraints

from bayesimg.data.dataset import Dataset
from bayesimg.errors import ModelSpecError
from bayesimg.models.core.base import Model
from bayesimg.models.core.checks import GenotypePhenotypeIO
from bayesimg.models.core.site_effects import (
    SITE_DIMS,
    SITE_HIDDEN,
    sample_site_effects,
    site_design,
)
from bayesimg.models.gsmtr.model import GroupSparseMTR

RESIDUALS = ("full", "diagonal")
MIXTURE_PRIORS = ("product", "joint")
NAMED_PATTERNS = ("shared", "single", "independent", "subsets", "shared_subsets")
#: the own-subset families (each SNP's own ROI subset S_j), in the kernel's order
OWN_SUBSET_PATTERNS = ("subsets", "shared_subsets")
#: ``"data"`` (the data-driven subset list of earlier versions) is read as ``"subsets"``
PATTERN_ALIASES = {"data": "subsets"}
DEFAULT_PATTERNS = ("subsets", "shared_subsets")
#: the pseudo-prior q_j of SNP j's ROI subset: ROI k in with probability
#: clip(logistic(PROPOSAL_SLOPE (|z_jk| − PROPOSAL_Z_MID)), PROPOSAL_FLOOR, 1 − PROPOSAL_FLOOR)
PROPOSAL_Z_MID = 2.0
PROPOSAL_SLOPE = 2.0
PROPOSAL_FLOOR = 0.05
#: φ, the per-ROI inclusion rate of the ``"subsets"`` family: uniform on this grid
ROI_RATE_GRID = tuple((i + 0.5) / 40 for i in range(40))
DEFAULT_SLAB_SCALES = (0.1, 0.2, 0.4, 0.8)


class SpikeSlabMTR(GenotypePhenotypeIO, Model):
    """Bi-level spike-and-slab multitask regression (see the module docstring).

    Parameters
    ----------
    patterns : sequence
        Effect-sharing patterns: ``"shared"``, ``"single"``, ``"independent"``,
        ``"subsets"``, ``"shared_subsets"`` and/or length-c vectors u (pattern uuᵀ).
        Default ``("subsets", "shared_subsets")`` (each SNP's own ROI subset with per-ROI
        inclusion: independent effects on it, or one shared effect; ``"data"`` is read as
        ``"subsets"``).
    slab_scales : sequence of float
        Grid of slab sds v (standardised-phenotype units per unit of X).
    residual : {"full", "diagonal"}
        Residual covariance across phenotypes: inverse-Wishart, or independent
        inverse-gamma variances.
    gene_prior, snp_prior : (float, float)
        Beta(a, b) priors on π_gene and π_snp (see the module docstring on weak
        polygenic signals and ``snp_prior``).
    dirichlet_alpha : float
        Dirichlet concentration of the mixture weights (of each of the two Dirichlets with
        ``mixture_prior="product"``).
    mixture_prior : {"product", "joint"}
        Mixture weights π_(p,t) = ω_p ρ_t (pattern weights times slab-scale weights), or
        one weight per (pattern, scale) pair.
    covariate_scale : float
        Prior sd of covariate coefficients Γ.
    """

    name = "spike_slab"
    observed = {"y": ("subject", "phenotype")}
    association_site = "W"
    trace_sites = ("pi_gene", "pi_snp")
    hidden_sites = SITE_HIDDEN

    def __init__(self, *, patterns: Sequence = DEFAULT_PATTERNS,
                 slab_scales: Sequence[float] = DEFAULT_SLAB_SCALES,
                 residual: str = "full", gene_prior: tuple[float, float] = (1.0, 1.0),
                 snp_prior: tuple[float, float] = (1.0, 1.0), dirichlet_alpha: float = 1.0,
                 covariate_scale: float = 10.0, mixture_prior: str = "product",
                 site_scale: float = 1.0):
        if residual not in RESIDUALS:
            raise ModelSpecError(f"residual must be one of {RESIDUALS}, got {residual!r}")
        if mixture_prior not in MIXTURE_PRIORS:
            raise ModelSpecError(
                f"mixture_prior must be one of {MIXTURE_PRIORS}, got {mixture_prior!r}")
        patterns = list(patterns) if not isinstance(patterns, str) else [patterns]
        if not patterns:
            raise ModelSpecError("patterns must name at least one effect-sharing pattern")
        clean = []
        for p in patterns:
            if isinstance(p, str):
                p = PATTERN_ALIASES.get(p, p)
                if p not in NAMED_PATTERNS:
                    raise ModelSpecError(
                        f"unknown pattern {p!r}; use {NAMED_PATTERNS} or length-c vectors")
                if p in clean:
                    raise ModelSpecError(f"pattern {p!r} given twice")
                clean.append(p)
            else:
                u = np.asarray(p, dtype=float)
                if u.ndim != 1 or not np.all(np.isfinite(u)) or not np.any(u != 0):
                    raise ModelSpecError(
                        "a pattern vector must be a finite, nonzero 1-D sequence, got "
                        f"{p!r}")
                clean.append(tuple(float(x) for x in u))
        scales = np.asarray(slab_scales, dtype=float)
        if scales.ndim != 1 or scales.size == 0 or not np.all(np.isfinite(scales)) \
                or np.any(scales <= 0):
            raise ModelSpecError(f"slab_scales must be positive numbers, got {slab_scales!r}")
        for label, prior in (("gene_prior", gene_prior), ("snp_prior", snp_prior)):
            if len(prior) != 2 or not all(np.isfinite(v) and v > 0 for v in prior):
                raise ModelSpecError(f"{label} must be Beta (a, b) with a, b > 0, got {prior!r}")
        if not (np.isfinite(dirichlet_alpha) and dirichlet_alpha > 0):
            raise ModelSpecError(f"dirichlet_alpha must be > 0, got {dirichlet_alpha!r}")
        if not (np.isfinite(covariate_scale) and covariate_scale > 0):
            raise ModelSpecError(f"covariate_scale must be > 0, got {covariate_scale!r}")
        self.patterns = tuple(clean)
        self.slab_scales = tuple(float(v) for v in scales)
        self.residual = residual
        self.gene_prior = tuple(map(float, gene_prior))
        self.snp_prior = tuple(map(float, snp_prior))
        self.dirichlet_alpha = float(dirichlet_alpha)
        self.covariate_scale = float(covariate_scale)
        if not (np.isfinite(site_scale) and site_scale > 0):
            raise ModelSpecError(f"site_scale must be a positive number, got {site_scale!r}")
        self.site_scale = float(site_scale)
        self.mixture_prior = mixture_prior

    # ------------------------------------------------------------ interface
    dims = {
        "W": ("snp", "phenotype"),
        "snp_in": ("snp",),
        "gene_in": ("gene",),
        "slab_component": ("snp",),
        "pi_gene": (),
        "pi_snp": (),
        "mixture_weights": ("component",),
        "roi_subset": ("snp", "phenotype"),
        "roi_rate": ("subset_family",),
        "Sigma": ("phenotype", "phenotype_2"),
        **SITE_DIMS,
        "gamma": ("covariate", "phenotype"),
    }

    def settings(self) -> dict[str, Any]:
        return {"patterns": [p if isinstance(p, str) else list(p) for p in self.patterns],
                "slab_scales": list(self.slab_scales), "residual": self.residual,
                "gene_prior": list(self.gene_prior),
                "snp_prior": list(self.snp_prior),
                "dirichlet_alpha": self.dirichlet_alpha,
                "covariate_scale": self.covariate_scale, "mixture_prior": self.mixture_prior,
                "site_scale": self.site_scale}

    def static_key(self, data: Dataset | None = None) -> tuple:
        return (type(self).__qualname__, self.residual, "independent" in self.patterns,
                self._own_families(), self.covariate_scale, self.mixture_prior,
                data is not None and getattr(data, "sites", None) is not None)

    def _own_families(self) -> tuple[str, ...]:
        """The own-subset families asked for, in the kernel's order."""
        return tuple(p for p in OWN_SUBSET_PATTERNS if p in self.patterns)

    def validate(self, data: Dataset) -> None:
        # the same data as GSMTR (genotypes, centred phenotypes, SNPs grouped into genes)
        GroupSparseMTR.validate(self, data)
        c = data.n_phenotypes
        for p in self.patterns:
            if not isinstance(p, str) and len(p) != c:
                raise ModelSpecError(
                    f"pattern vector {list(p)} has {len(p)} entries; the data have {c} "
                    "phenotypes")

    def coords(self, data: Dataset) -> dict[str, np.ndarray]:
        coords = GroupSparseMTR.coords(self, data)
        coords["phenotype_2"] = coords["phenotype"]
        coords["component"] = self.component_labels(data)
        if self._own_families():
            coords["subset_family"] = np.asarray(self._own_families(), dtype=str)
        return coords

    def _pattern_vectors(self, data: Dataset) -> tuple[np.ndarray, list[str]]:
        """Rank-1 pattern vectors (rows) and their labels."""
        c = data.n_phenotypes
        names = [str(p) for p in data.phenotype_names]
        rows, labels = [], []
        for p in self.patterns:
            if p == "shared":
                rows.append(np.ones(c))
                labels.append("shared")
            elif p == "single":
                rows.extend(np.eye(c))
                labels.extend(f"only:{name}" for name in names)
            elif p not in ("independent", *OWN_SUBSET_PATTERNS):
                rows.append(np.asarray(p, dtype=float))
                labels.append("vector:" + ",".join(f"{x:g}" for x in p))
        return np.asarray(rows, dtype=float).reshape(len(rows), c), labels

    def _subset_masks(self, data: Dataset) -> tuple[np.ndarray, list[str]]:
        """Fixed ROI-subset patterns (0/1 rows, U = diag(row)) and their labels: all ROIs
        (U = I) if ``"independent"`` is asked for.  (The ``"subsets"`` family is not a
        fixed list: each SNP carries its own subset, the last pattern.)"""
        c = data.n_phenotypes
        rows, labels = [], []
        if "independent" in self.patterns:
            rows.append(np.ones(c))
            labels.append("independent")
        return np.asarray(rows, dtype=float).reshape(len(rows), c), labels

    def _roi_rate_log_prior(self, c: int) -> np.ndarray:
        """(families, grid) log prior weights of each own-subset family's φ on
        :data:`ROI_RATE_GRID`, normalised over the grid: Beta(1, c − 1) for ``"subsets"``
        (prior mean 1/c: one ROI per SNP expected), uniform for ``"shared_subsets"`` (an
        effect shared across ROIs may span few or all of them)."""
        grid = np.asarray(ROI_RATE_GRID)
        rows = []
        for family in self._own_families():
            b = max(c, 2) - 1.0 if family == "subsets" else 1.0
            log_w = (b - 1.0) * np.log1p(-grid)
            rows.append(log_w - np.logaddexp.reduce(log_w))
        return np.asarray(rows).reshape(len(rows), grid.size)

    def _pattern_labels(self, data: Dataset) -> list[str]:
        labels = self._pattern_vectors(data)[1] + self._subset_masks(data)[1]
        return labels + list(self._own_families())

    def constant_data(self, data: Dataset):
        """X (and Z) as GSMTR, plus what the discovery report reads from the fit alone: each
        SNP's gene, chromosome and position, and the standardisation constants (effects in
        the phenotypes' original units)."""
        out = dict(super().constant_data(data))
        snps = data.snps
        out["snp_gene"] = (("snp",), np.asarray(snps["gene"].astype(str), dtype=str))
        for col in ("chrom", "pos"):
            if col in snps:
                out[f"snp_{col}"] = (("snp",), np.asarray(snps[col].astype(str), dtype=str))
        prep = data.preprocessing or {}
        for name, dim, size in (("phenotype_center", "phenotype", data.n_phenotypes),
                                ("phenotype_scale", "phenotype", data.n_phenotypes),
                                ("genotype_scale", "snp", data.n_snps)):
            value = prep.get(name)
            if name not in out and value is not None and np.shape(value) == (size,):
                out[name] = ((dim,), np.asarray(value, dtype=float))
        out.update(self._component_constants(data))
        return out

    # ------------------------------------------------------------ integrated LOO
    def _component_constants(self, data: Dataset):
        """Each mixture component's pattern (u or ROI mask), kind and slab scale, in the
        kernel's order: what integrated LOO reads from the fit (:mod:`.spike_slab_loo`)."""
        from bayesimg.models.gsmtr.spike_slab_loo import component_constants
        rank1, subsets = self._pattern_vectors(data)[0], self._subset_masks(data)[0]
        families = self._own_families()
        own = len(families)
        # the own-subset families: their rows are placeholders, each draw's S_j is
        # ``roi_subset`` (D_S for "subsets", u = 1_S for "shared_subsets")
        patterns = np.vstack([rank1, subsets, np.ones((own, data.n_phenotypes))])
        kinds = ([True] * len(rank1) + [False] * len(subsets)
                 + [f == "shared_subsets" for f in families])
        k = len(self.slab_scales)
        return component_constants(
            np.repeat(patterns, k, axis=0), np.repeat(kinds, k),
            np.tile(self.slab_scales, len(patterns)),
            np.repeat([False] * (len(patterns) - own) + [True] * own, k))

    def loo_given_hyperparameters(self, tree, *, draws, rng):
        """log p(y_i | y_{-i}, δ, component, Σ) with the included effects and Γ integrated
        out (:func:`bayesimg.models.gsmtr.spike_slab_loo.spike_slab_loo`)."""
        from bayesimg.models.core.site_effects import training_site_design
        from bayesimg.models.gsmtr.spike_slab_loo import spike_slab_loo
        if training_site_design(tree) is not None:
            return None          # with site random effects: plain PSIS (not integrated yet)
        return spike_slab_loo(tree, draws=draws, covariate_scale=self.covariate_scale)

    def component_labels(self, data: Dataset) -> np.ndarray:
        """``"<pattern>@<scale>"`` for every mixture component, in the kernel's order."""
        labels = self._pattern_labels(data)
        return np.asarray([f"{lab}@{v:g}" for lab in labels for v in self.slab_scales], dtype=str)

    def model_args(self, data: Dataset, method: str = "gibbs") -> dict[str, Any]:
        self.validate(data)
        gene_index = data.gene_index
        c = data.n_phenotypes
        rank1, _ = self._pattern_vectors(data)
        alpha = np.full(len(self.component_labels(data)), self.dirichlet_alpha)
        own = bool(self._own_families())
        return {
            "X": np.asarray(data.genotypes, dtype=float),
            "Y": np.asarray(data.phenotypes, dtype=float),
            "Z": None if data.covariates is None else np.asarray(data.covariates, dtype=float),
            "gene_index": gene_index,
            "gene_sizes": np.bincount(gene_index, minlength=len(data.gene_names)).astype(float),
            "patterns": rank1,
            "subsets": self._subset_masks(data)[0],
            "slab_scales": np.asarray(self.slab_scales),
            "dirichlet_alpha": alpha,
            "inclusion_prior": np.asarray(self.gene_prior + self.snp_prior),
            "sigma_prior_df": np.asarray(c + 2.0),
            "sigma_prior_scale": np.eye(c),
            "roi_proposal": roi_proposal(data) if own else None,
            "roi_rate_grid": np.asarray(ROI_RATE_GRID) if own else None,
            "roi_rate_log_prior": self._roi_rate_log_prior(c) if own else None,
            "H": site_design(data),
            "site_scale": np.asarray(self.site_scale),
        }

    def predictive_args(self, data: Dataset, method: str = "gibbs") -> dict[str, Any]:
        kwargs = self.model_args(data, method)
        kwargs["Y"] = None
        kwargs["n_phenotypes"] = data.n_phenotypes
        return kwargs

    # ------------------------------------------------------------ the model
    def numpyro_model(self, method: str = "gibbs"):
        """The likelihood with every stored site declared (for the per-subject log-likelihood
        and posterior predictive draws); the posterior is sampled by the Gibbs kernel only."""
        if method != "gibbs":
            raise ModelSpecError(
                f"SpikeSlabMTR has discrete inclusion indicators and no {method!r} form; "
                "use method='gibbs' (its exact blocked Gibbs sampler)")

        def spike_slab_model(X, Y, Z, gene_index, gene_sizes, patterns, subsets, slab_scales,
                             dirichlet_alpha, inclusion_prior, sigma_prior_df,
                             sigma_prior_scale, roi_proposal=None, roi_rate_grid=None,
                             roi_rate_log_prior=None, H=None, site_scale=1.0,
                             n_phenotypes=None):
            n, d = X.shape
            c = Y.shape[1] if Y is not None else n_phenotypes
            n_genes = gene_sizes.shape[0]

            def free(name, shape, support=constraints.real):
                return numpyro.sample(name, dist.ImproperUniform(support, (), shape))

            free("pi_gene", (), constraints.unit_interval)
            free("pi_snp", (), constraints.unit_interval)
            free("gene_in", (n_genes,), constraints.boolean)
            free("snp_in", (d,), constraints.boolean)
            free("slab_component", (d,), constraints.integer_greater_than(-2))
            free("mixture_weights", dirichlet_alpha.shape, constraints.simplex)
            W = free("W", (d, c))
            Sigma = free("Sigma", (c, c), constraints.positive_definite)
            mean = X @ W
            if Z is not None:
                mean = mean + Z @ free("gamma", (Z.shape[1], c))
            if H is not None:
                mean = mean + H @ sample_site_effects(H.shape[1], c, site_scale, centred=True)
            scale_tril = jnp.linalg.cholesky(Sigma)
            with numpyro.plate("subject", n):
                numpyro.sample("y", dist.MultivariateNormal(mean, scale_tril=scale_tril), obs=Y)

        return spike_slab_model

    def predict_draws(self, tree, new_data, *, draws, rng):
        """Phenotypes of new subjects: y = XW + ZΓ + ε, ε ~ N(0, Σ) (original units); with
        site effects, + u_s for a known site, + N(0, diag τ²) for an unseen one."""
        from bayesimg.models.core.predict import (
            flat_draws,
            regression_inputs,
            site_aware_predictive,
        )
        inputs = regression_inputs(tree, new_data)
        post = flat_draws(tree, ("W", "gamma", "Sigma", "site_effect", "site_sd"), draws)
        return site_aware_predictive(tree, new_data, inputs, post, post["W"], post["Sigma"],
                                     rng)

    def gibbs_kernel(self, data: Dataset):
        """Exact blocked Gibbs kernel (:mod:`bayesimg.models.gsmtr.spike_slab_gibbs`)."""
        from bayesimg.models.gsmtr.spike_slab_gibbs import SpikeSlabGibbs
        return SpikeSlabGibbs(residual=self.residual, covariate_scale=self.covariate_scale,
                              mixture_prior=self.mixture_prior,
                              own_families=self._own_families())


def marginal_z(data: Dataset) -> np.ndarray:
    """(d, c) z-scores of one-SNP-at-a-time regressions, covariates projected out."""
    X = np.asarray(data.genotypes, dtype=float)
    Y = np.asarray(data.phenotypes, dtype=float)
    if data.covariates is not None:
        Z = np.column_stack([np.ones(len(Y)), data.covariates])
        Q, _ = np.linalg.qr(Z)
        X = X - Q @ (Q.T @ X)
        Y = Y - Q @ (Q.T @ Y)
    xx = np.maximum(np.sum(X * X, axis=0), np.finfo(float).tiny)
    bhat = (X.T @ Y) / xx[:, None]
    return bhat * np.sqrt(xx)[:, None] / np.sqrt(np.mean(Y * Y, axis=0))[None, :]


def roi_proposal(data: Dataset) -> np.ndarray:
    """(d, c) probabilities p_jk of SNP j's pseudo-prior q_j over ROI subsets (independent
    Bernoulli(p_jk), conditioned on S ≠ ∅): large where the SNP's marginal |z_jk| is large.
    Read off the data once; only the sampler's mixing depends on it, not the posterior."""
    z = np.abs(marginal_z(data))
    p = 1.0 / (1.0 + np.exp(-PROPOSAL_SLOPE * (z - PROPOSAL_Z_MID)))
    return np.clip(p, PROPOSAL_FLOOR, 1.0 - PROPOSAL_FLOOR)
