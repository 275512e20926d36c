"""Frequentist baselines for SNP → phenotype discovery: the mass-univariate scan.

:func:`ols_scan` fits, for every SNP j and phenotype k, the ordinary least-squares
regression ``y_k = a + Z γ + x_j β + e`` (intercept, the dataset's covariates Z,
one SNP) and returns β̂, its 95% confidence interval and the two-sided t-test p-value
(n − r − 2 degrees of freedom).  By Frisch–Waugh–Lovell all d × c regressions come
from one projection: Y and X are residualised on [1, Z] once, then
β̂ = x̃ᵀỹ / x̃ᵀx̃ and RSS = ỹᵀỹ − β̂² x̃ᵀx̃.

:func:`bh_adjust` gives Benjamini–Hochberg (1995) adjusted p-values and
:func:`scan_discoveries` keeps the tests called at level α after Bonferroni or
Benjamini–Hochberg over all d × c tests — the table has the shape of a model's
``discoveries`` table (``gene, snp, phenotype, effect, lower, upper``) plus ``p``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from bayesimg.data.dataset import Dataset
from bayesimg.errors import DataValidationError

__all__ = ["bh_adjust", "ols_scan", "scan_discoveries"]

CORRECTIONS = ("bonferroni", "bh")


def ols_scan(data: Dataset, *, covariates: bool = True, level: float = 0.95,
             original_units: bool = True) -> pd.DataFrame:
    """Per-SNP × per-phenotype OLS with the covariates (see the module docstring).

    Parameters
    ----------
    data : Dataset
        Genotypes and phenotypes (covariates used when present and ``covariates``).
    covariates : bool
        Adjust for the dataset's covariates.
    level : float
        Confidence level of the intervals.
    original_units : bool
        Report effects per allele in the phenotype's original units (undoing the
        dataset's genotype and phenotype scaling recorded in ``preprocessing``);
        otherwise in the dataset's units.

    Returns
    -------
    pandas.DataFrame
        One row per (SNP, phenotype), SNP-major: ``gene, snp, phenotype, effect,
        lower, upper, se, t, p``.
    """
    if data.genotypes is None or data.phenotypes is None:
        raise DataValidationError("ols_scan needs genotypes and phenotypes")
    X = np.asarray(data.genotypes, dtype=float)
    Y = np.asarray(data.phenotypes, dtype=float)
    n = X.shape[0]
    design = [np.ones((n, 1))]
    if covariates and data.covariates is not None:
        design.append(np.asarray(data.covariates, dtype=float))
    Q, _ = np.linalg.qr(np.hstack(design))
    df = n - Q.shape[1] - 1
    if df < 1:
        raise DataValidationError(f"too few subjects ({n}) for the covariates and one SNP")
    Xr = X - Q @ (Q.T @ X)
    Yr = Y - Q @ (Q.T @ Y)
    sxx = np.sum(Xr * Xr, axis=0)
    if np.any(sxx <= 1e-12 * n):
        bad = data.snp_names[np.flatnonzero(sxx <= 1e-12 * n)[0]]
        raise DataValidationError("a SNP is constant after adjusting for the covariates",
                                  column=str(bad))
    beta = (Xr.T @ Yr) / sxx[:, None]                                   # d × c
    rss = np.sum(Yr * Yr, axis=0)[None, :] - beta ** 2 * sxx[:, None]
    se = np.sqrt(np.maximum(rss, 0.0) / df / sxx[:, None])
    with np.errstate(divide="ignore", invalid="ignore"):
        t = beta / se
    p = 2.0 * stats.t.sf(np.abs(t), df)
    half = stats.t.ppf(0.5 + level / 2.0, df) * se
    factor = np.ones_like(beta)
    if original_units:
        prep = data.preprocessing
        g_scale = np.asarray(prep.get("genotype_scale", 1.0), dtype=float)
        p_scale = np.asarray(prep.get("phenotype_scale", 1.0), dtype=float)
        factor = np.broadcast_to(p_scale, (beta.shape[1],))[None, :] / \
            np.broadcast_to(g_scale, (beta.shape[0],))[:, None]
    d, c = beta.shape
    genes = (data.snps["gene"].astype(str).to_numpy() if data.snps is not None
             else np.full(d, "", dtype=object))
    return pd.DataFrame({
        "gene": np.repeat(genes, c),
        "snp": np.repeat(data.snp_names, c),
        "phenotype": np.tile(np.asarray(data.phenotype_names, dtype=str), d),
        "effect": (beta * factor).ravel(),
        "lower": ((beta - half) * factor).ravel(),
        "upper": ((beta + half) * factor).ravel(),
        "se": (se * factor).ravel(),
        "t": t.ravel(),
        "p": p.ravel(),
    })


def bh_adjust(p) -> np.ndarray:
    """Benjamini–Hochberg adjusted p-values (q-values of the step-up procedure)."""
    p = np.asarray(p, dtype=float)
    flat = p.ravel()
    m = flat.size
    if m == 0:
        return p.copy()
    order = np.argsort(flat, kind="stable")
    ranked = flat[order] * m / np.arange(1, m + 1)
    q_sorted = np.minimum.accumulate(ranked[::-1])[::-1]
    q = np.empty(m)
    q[order] = np.minimum(q_sorted, 1.0)
    return q.reshape(p.shape)


def scan_discoveries(scan: pd.DataFrame, correction: str = "bh",
                     alpha: float = 0.05) -> pd.DataFrame:
    """The rows of an :func:`ols_scan` table called at level ``alpha``.

    ``correction="bonferroni"`` calls p ≤ α / m, ``"bh"`` calls BH-adjusted p ≤ α,
    m = all tests of the table.  The result has the column ``p_adjusted`` and is sorted
    by p.
    """
    if correction not in CORRECTIONS:
        raise ValueError(f"correction must be one of {CORRECTIONS}, got {correction!r}")
    p = scan["p"].to_numpy(dtype=float)
    adjusted = (np.minimum(p * len(p), 1.0) if correction == "bonferroni"
                else bh_adjust(p))
    out = scan.assign(p_adjusted=adjusted)
    return out[adjusted <= alpha].sort_values("p", kind="stable").reset_index(drop=True)
