r"""Discoveries from a fit: inclusion probabilities, local false sign rates, credible sets and
the Bayesian-FDR table users act on.

Everything is computed from the posterior draws stored in the fit (its DataTree) and nothing
else, except an optional LD matrix for the credible sets when the fit carries no genotypes.

* **PIPs.** With selection indicators in the posterior (:class:`~bayesimg.models.SpikeSlabMTR`:
  ``gene_in``, ``snp_in``) the gene PIP is P(γ_g = 1 | Y), the SNP PIP P(δ_j = 1 | Y) and the
  SNP×ROI PIP P(w_jk ≠ 0 | Y), each the fraction of draws.  Fits without indicators
  (GroupSparseMTR: continuous shrinkage) have no PIPs: NaN.
* **lfsr** (Stephens 2017, Biostatistics 18:275): lfsr_jk = min(P(w_jk ≥ 0), P(w_jk ≤ 0)),
  the probability of getting the sign wrong when the sign of the posterior is reported; a
  point mass at zero counts on both sides, so an effect that is often excluded has a large
  lfsr whatever its sign when included.
* **Credible sets** (SuSiE's notion, Wang et al. 2020, JRSS-B): a set of SNPs that holds at
  least one included SNP of one signal with posterior probability ≥ ``coverage``, computed
  from the joint draws.  Greedy construction: take the remaining SNP of highest PIP as lead;
  candidates are the remaining SNPs in LD with it, r² ≥ :data:`CS_LD_R2` = 0.25 (|r| ≥ 0.5,
  the purity SuSiE asks of a set), that are alternatives to it rather than a second signal
  (included in at most :data:`CS_MAX_CO_INCLUSION` = 25% of the draws that include the lead,
  unless a near-copy of it, r² ≥ :data:`CS_SAME_SIGNAL_R2` = 0.8: in a high-LD block the
  sampler often splits one signal between near-copies) and that tag the lead at least as
  well as any other SNP of PIP ≥ 0.05 outside the candidates (else they are that SNP's
  proxies), added in PIP order — each only if its |r| with every member is ≥ ``min_purity``,
  so the set stays pure — until P(at least one of the set included) ≥ ``coverage``.  The
  set's purity is the smallest |r| between any two of its SNPs; sets with purity <
  ``min_purity`` are dropped (as SuSiE does) and leads that cannot reach the coverage form
  none.  The candidates left after the coverage is reached that keep the set pure extend it
  to its **signal block** (the set plus every other pure alternative to its lead): in a
  block of 40–100 near-copies the sampler spreads one signal thinly over all of them, the
  95% set stops at coverage ≈ 0.95, and the draws where the signal sits on a copy outside it
  would put a zero on both signs (lfsr ≥ 1 − coverage ≈ 0.05, never callable at α = 0.05).
  A block's SNPs are not reused.  LD is the correlation of
  the genotypes in the fit's ``constant_data`` (or an ``ld`` matrix passed in).
* **Discoveries at Bayesian FDR α** (Müller, Parmigiani, Robert & Rousseau 2004, JASA;
  Stephens 2017): the units are (credible set, ROI) for every credible set — the set's
  effect on ROI k is the sum of the effects of its signal block's SNPs in each draw (each
  signed by the sign of its correlation with the lead SNP, so all are on the lead's
  allele), so LD proxies sharing one signal are one discovery, not ten — and (SNP, ROI)
  for every SNP outside the sets.  The units are sorted by lfsr and the largest leading
  group whose mean lfsr ≤ α is reported: its expected false sign (or false discovery)
  proportion is at most α.

Effects and 95% equal-tailed intervals are in the phenotype's original units per copy of the
counted allele when the fit carries the standardisation constants (``phenotype_scale``,
``genotype_scale`` in ``constant_data``); ``DataFrame.attrs["units"]`` says which.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from bayesimg.errors import ModelSpecError
from bayesimg.report._tree import as_tree

__all__ = ["CS_LD_R2", "credible_sets", "discoveries", "inclusion_probabilities"]

#: r² with the lead SNP a credible-set candidate needs (|r| ≥ 0.5)
CS_LD_R2 = 0.25
#: a candidate in together with the lead in more than this fraction of the lead's draws is
#: a second signal, not an alternative to the lead
CS_MAX_CO_INCLUSION = 0.25
#: ... unless it is in r² ≥ this with the lead: near-copies of the lead that are in together
#: with it share one signal's effect between them (the sampler splits it in a high-LD block)
CS_SAME_SIGNAL_R2 = 0.8
#: leads below this PIP start no credible set
CS_MIN_LEAD_PIP = 0.05

DISCOVERY_COLUMNS = ["gene", "snp", "phenotype", "effect", "lower", "upper", "pip", "lfsr",
                     "credible_set", "cs_purity", "cs_snps"]


# ---------------------------------------------------------------------------- draws
def _flat(da: xr.DataArray) -> np.ndarray:
    v = np.asarray(da.values)
    return v.reshape((-1,) + v.shape[2:])


def _coefficients(tree: xr.DataTree) -> xr.DataArray:
    post = tree["posterior"].dataset
    site = str(tree.attrs.get("association_site") or "W")
    if site not in post or post[site].dims[2:] != ("snp", "phenotype"):
        raise ModelSpecError(
            "discoveries need SNP × phenotype coefficients (a 'W' with dims snp, phenotype) "
            "in the posterior; this fit has none")
    return post[site]


def _constant(tree: xr.DataTree, name: str):
    if "constant_data" in tree.children and name in tree["constant_data"].dataset:
        return tree["constant_data"].dataset[name]
    return None


def _lfsr(draws: np.ndarray) -> np.ndarray:
    return np.minimum(np.mean(draws >= 0, axis=0), np.mean(draws <= 0, axis=0))


def inclusion_probabilities(fit: Any) -> xr.Dataset:
    """Gene PIP, SNP PIP, SNP×ROI PIP and lfsr, labelled.

    Returns
    -------
    xarray.Dataset
        ``gene_pip`` (gene), ``snp_pip`` (snp), ``snp_roi_pip`` and ``lfsr`` (snp,
        phenotype).  PIPs are NaN for fits without selection indicators.
    """
    tree = as_tree(fit)
    post = tree["posterior"].dataset
    W = _coefficients(tree)
    draws = _flat(W)
    has_pip = "snp_in" in post
    coords = {"snp": W.coords["snp"].values, "phenotype": W.coords["phenotype"].values}
    nan_sp = np.full(draws.shape[1:], np.nan)
    out = {
        "snp_roi_pip": (("snp", "phenotype"), np.mean(draws != 0, axis=0) if has_pip else nan_sp),
        "lfsr": (("snp", "phenotype"), _lfsr(draws)),
        "snp_pip": (("snp",), _flat(post["snp_in"]).mean(axis=0) if has_pip
                    else np.full(draws.shape[1], np.nan)),
    }
    if "gene_in" in post:
        out["gene_pip"] = (("gene",), _flat(post["gene_in"]).mean(axis=0))
        coords["gene"] = post["gene_in"].coords["gene"].values
    elif "gene" in post.coords:
        coords["gene"] = post.coords["gene"].values
        out["gene_pip"] = (("gene",), np.full(len(coords["gene"]), np.nan))
    ds = xr.Dataset(out, coords=coords)
    ds.attrs["pip_defined"] = int(has_pip)
    return ds


# ---------------------------------------------------------------------------- LD
class _LD:
    """Correlations between SNPs, from genotypes (rows computed on demand) or a matrix."""

    def __init__(self, tree: xr.DataTree, ld, snps: np.ndarray):
        self.matrix = None
        self.X = None
        if ld is not None:
            if hasattr(ld, "genotypes"):  # a Dataset
                self._from_genotypes(np.asarray(ld.genotypes, float), ld.snp_names, snps)
            else:
                R = np.asarray(ld, dtype=float)
                if R.shape != (len(snps), len(snps)):
                    raise ModelSpecError(
                        f"ld must be a {len(snps)}×{len(snps)} correlation matrix of the fit's "
                        f"SNPs, got shape {R.shape}")
                self.matrix = R
        else:
            X = _constant(tree, "X")
            if X is not None:
                self._from_genotypes(np.asarray(X.values, float), X.coords["snp"].values, snps)

    def _from_genotypes(self, X, names, snps):
        index = {str(s): i for i, s in enumerate(map(str, names))}
        X = X[:, [index[str(s)] for s in snps]]
        X = X - X.mean(axis=0)
        norm = np.linalg.norm(X, axis=0)
        self.X = X / np.where(norm > 0, norm, 1.0)

    @property
    def available(self) -> bool:
        return self.matrix is not None or self.X is not None

    def row(self, j: int) -> np.ndarray:
        if self.matrix is not None:
            return self.matrix[j]
        return self.X[:, j] @ self.X

    def cross(self, rows, cols) -> np.ndarray:
        rows, cols = np.asarray(rows), np.asarray(cols)
        if self.matrix is not None:
            return self.matrix[np.ix_(rows, cols)]
        return self.X[:, rows].T @ self.X[:, cols]

    def block(self, idx) -> np.ndarray:
        idx = np.asarray(idx)
        if self.matrix is not None:
            return self.matrix[np.ix_(idx, idx)]
        return self.X[:, idx].T @ self.X[:, idx]


def _credible_sets(tree, coverage, min_purity, ld) -> tuple[list[dict], xr.Dataset]:
    probs = inclusion_probabilities(tree)
    if not probs.attrs["pip_defined"]:
        return [], probs
    snps = probs.coords["snp"].values
    corr = _LD(tree, ld, snps)
    if not corr.available:
        warnings.warn("no credible sets: the fit carries no genotypes (constant_data X) and no "
                      "ld= matrix was given", stacklevel=3)
        return [], probs
    inc = _flat(tree["posterior"].dataset["snp_in"]).astype(bool)
    pip = probs["snp_pip"].values
    order = np.argsort(-pip, kind="stable")
    strong = np.flatnonzero(pip >= CS_MIN_LEAD_PIP)
    free = np.ones(len(pip), bool)
    sets = []
    for lead in order:
        if pip[lead] < CS_MIN_LEAD_PIP:
            break
        if not free[lead]:
            continue
        r_lead = corr.row(lead)
        lead_in = inc[:, lead]
        # alternatives to the lead: in LD with it, and rarely in together with it (a SNP
        # often in beside the lead carries a second signal, not this one)
        co_in = inc[lead_in].mean(axis=0) if lead_in.any() else np.zeros(len(pip))
        cands = [j for j in order if j != lead and free[j] and pip[j] > 0
                 and r_lead[j] ** 2 >= CS_LD_R2
                 and (co_in[j] <= CS_MAX_CO_INCLUSION or r_lead[j] ** 2 >= CS_SAME_SIGNAL_R2)]
        # ... and tag the lead better than any other SNP with a signal (else they are that
        # SNP's proxies: a high-PIP SNP left out above, or a later lead)
        others = np.setdiff1d(strong, [lead, *cands])
        if cands and others.size:
            r_other = corr.cross(cands, others)
            cands = [j for j, row in zip(cands, r_other, strict=True)
                     if np.max(row ** 2) <= r_lead[j] ** 2]
        # added in PIP order, each only if it keeps the set pure (|r| ≥ min_purity with every
        # member): in a long LD block the set stays a block of near-copies of the lead
        members, covered, reached = [lead], inc[:, lead].copy(), inc[:, lead].mean()
        n_set = None
        for j in cands:
            if reached >= coverage and n_set is None:
                n_set = len(members)          # the credible set ends here ...
            if np.min(np.abs(corr.cross([j], members))) < min_purity:
                continue
            members.append(j)                 # ... its signal block goes on
            covered |= inc[:, j]
            if n_set is None:
                reached = covered.mean()
        n_set = len(members) if n_set is None else n_set
        if reached < coverage:
            continue
        purity = float(np.min(np.abs(corr.block(members[:n_set])))) if n_set > 1 else 1.0
        free[members] = False
        if purity < min_purity:
            continue
        block_purity = (float(np.min(np.abs(corr.block(members)))) if len(members) > 1
                        else 1.0)
        # a proxy counted on the other allele (r < 0) carries the signal with the other sign
        signs = np.where(r_lead[members] < 0, -1.0, 1.0)
        sets.append({"members": members[:n_set], "block": members, "coverage": float(reached),
                     "purity": purity, "block_purity": block_purity,
                     "block_coverage": float(covered.mean()), "signs": signs})
    for k, s in enumerate(sets, start=1):
        s["name"] = f"CS{k}"
    return sets, probs


def credible_sets(fit: Any, coverage: float = 0.95, min_purity: float = 0.5, *,
                  ld=None) -> pd.DataFrame:
    """95% credible sets of SNPs, one row per signal (see the module docstring).

    Parameters
    ----------
    coverage : float
        Posterior probability that the set holds at least one included SNP.
    min_purity : float
        Sets whose smallest |r| between two members is lower are dropped.
    ld : array (d, d), Dataset or None
        SNP correlations (or a dataset with the genotypes); default: the genotypes in the
        fit's ``constant_data``.

    Returns
    -------
    pandas.DataFrame
        ``credible_set, lead_snp, gene, size, coverage, purity, lead_pip, snps`` (the
        members in PIP order, comma-separated), and the set's signal block (the unit
        :func:`discoveries` calls): ``block_size``, ``block_coverage`` (P(some SNP of the
        block included)), ``block_purity``.  Empty for fits without indicators.
    """
    _check_fraction("coverage", coverage)
    _check_fraction("min_purity", min_purity, closed=True)
    tree = as_tree(fit)
    sets, probs = _credible_sets(tree, coverage, min_purity, ld)
    snps = probs.coords["snp"].values
    genes = _snp_genes(tree, len(snps))
    pip = probs["snp_pip"].values
    rows = [{"credible_set": s["name"], "lead_snp": str(snps[s["members"][0]]),
             "gene": genes[s["members"][0]], "size": len(s["members"]),
             "coverage": s["coverage"], "purity": s["purity"],
             "lead_pip": float(pip[s["members"][0]]),
             "snps": ",".join(str(snps[j]) for j in s["members"]),
             "block_size": len(s["block"]), "block_coverage": s["block_coverage"],
             "block_purity": s["block_purity"]} for s in sets]
    return pd.DataFrame(rows, columns=["credible_set", "lead_snp", "gene", "size", "coverage",
                                       "purity", "lead_pip", "snps", "block_size",
                                       "block_coverage", "block_purity"])


# ---------------------------------------------------------------------------- discoveries
def _snp_genes(tree, d) -> np.ndarray:
    genes = _constant(tree, "snp_gene")
    if genes is None:
        return np.full(d, "", dtype=object)
    return np.asarray(genes.values, dtype=str).astype(object)


def _units(tree, W) -> tuple[np.ndarray, np.ndarray, str]:
    """Per-phenotype multipliers and per-SNP divisors taking effects to original units."""
    ps, gs = _constant(tree, "phenotype_scale"), _constant(tree, "genotype_scale")
    c, d = W.sizes["phenotype"], W.sizes["snp"]
    if ps is None:
        return np.ones(c), np.ones(d), ("model units (standardised phenotype per unit of the "
                                        "genotype column); the fit carries no "
                                        "standardisation constants")
    gs_v = np.ones(d) if gs is None else np.asarray(gs.values, dtype=float)
    return (np.asarray(ps.values, dtype=float), gs_v,
            "original units of each phenotype per copy of the counted allele (a1); the "
            "dataset's standardisation undone")


def discoveries(fit: Any, fdr: float = 0.05, *, coverage: float = 0.95,
                min_purity: float = 0.5, ld=None) -> pd.DataFrame:
    """The SNP (or credible set) × ROI effects selected at Bayesian FDR ``fdr``.

    Returns
    -------
    pandas.DataFrame
        One row per discovery, by increasing lfsr: ``gene, snp, phenotype, effect, lower,
        upper, pip, lfsr, credible_set, cs_purity, cs_snps``.  For a credible set ``snp`` is
        its lead SNP, ``effect`` the posterior mean of the summed effect of the set's signal
        block and ``pip`` P(some SNP of the block affects the ROI); ``cs_snps`` are the
        block's SNPs (comma-separated) and ``cs_purity`` the block's purity;
        ``credible_set`` and ``cs_snps`` are None and ``cs_purity`` NaN for single SNPs.
        ``effect``, ``lower``, ``upper`` (95% equal-tailed interval) are in the units named
        by ``attrs["units"]``.  ``attrs`` also hold ``fdr``,
        ``n_units`` (units ranked), ``expected_false`` (sum of the selected lfsr) and
        ``pip_defined``.
    """
    _check_fraction("fdr", fdr)
    tree = as_tree(fit)
    W = _coefficients(tree)
    draws = _flat(W)                                          # (S, d, c)
    sets, probs = _credible_sets(tree, coverage, min_purity, ld)
    snps = W.coords["snp"].values
    phen = W.coords["phenotype"].values
    genes = _snp_genes(tree, len(snps))
    mult, div, units = _units(tree, W)
    original = draws * mult[None, None, :] / div[None, :, None]
    has_pip = bool(probs.attrs["pip_defined"])
    snp_roi_pip = probs["snp_roi_pip"].values
    lfsr = probs["lfsr"].values

    rows = []
    in_set = np.zeros(len(snps), bool)
    for s in sets:
        members = s["block"]
        in_set[members] = True
        # the set's effect, on the lead SNP's allele: members signed by their LD with the lead
        summed = np.einsum("sjc,j->sc", original[:, members, :], s["signs"])
        nonzero = np.any(draws[:, members, :] != 0, axis=1).mean(axis=0)
        set_lfsr = _lfsr(summed)
        for k in range(len(phen)):
            rows.append((members[0], k, summed[:, k], float(nonzero[k]), float(set_lfsr[k]),
                         s["name"], s["block_purity"], ",".join(str(snps[j]) for j in members)))
    for j in np.flatnonzero(~in_set):
        for k in range(len(phen)):
            rows.append((j, k, None, float(snp_roi_pip[j, k]) if has_pip else np.nan,
                         float(lfsr[j, k]), None, np.nan, None))
    order = np.argsort([r[4] for r in rows], kind="stable")
    ranked = np.asarray([rows[i][4] for i in order])
    running = np.cumsum(ranked) / np.arange(1, len(ranked) + 1)
    n_keep = int(np.sum(running <= fdr))
    out = []
    for i in order[:n_keep]:
        j, k, summed, pip, lf, cs, purity, members = rows[i]
        x = original[:, j, k] if summed is None else summed
        lo, hi = np.quantile(x, [0.025, 0.975])
        out.append({"gene": genes[j], "snp": str(snps[j]), "phenotype": str(phen[k]),
                    "effect": float(x.mean()), "lower": float(lo), "upper": float(hi),
                    "pip": pip, "lfsr": lf, "credible_set": cs, "cs_purity": purity,
                    "cs_snps": members})
    df = pd.DataFrame(out, columns=DISCOVERY_COLUMNS)
    df.attrs.update({"units": units, "fdr": float(fdr), "n_units": len(rows),
                     "expected_false": float(np.sum(ranked[:n_keep])),
                     "pip_defined": has_pip, "interval": "95% equal-tailed",
                     "selection": "Bayesian FDR on lfsr (Müller et al. 2004; Stephens 2017)",
                     "credible_sets": len(sets)})
    return df


def _check_fraction(name: str, value: float, closed: bool = False) -> None:
    ok = isinstance(value, float | int) and (0.0 <= value <= 1.0 if closed
                                             else 0.0 < value < 1.0)
    if not ok:
        raise ModelSpecError(f"{name} must be a number in {'[0, 1]' if closed else '(0, 1)'}, "
                             f"got {value!r}")
