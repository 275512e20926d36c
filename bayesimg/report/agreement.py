"""Do two samplers target the same posterior?  Differences of means in MCSE units.

For every scalar quantity with draws ``a`` and ``b`` from two independent runs
(different samplers, programs or seeds)::

    z = (mean(a) − mean(b)) / √(MCSE(a)² + MCSE(b)²)

where MCSE is the Monte Carlo standard error of the mean from the bulk
effective sample size (rank-free ``ess_mean``, as in ArviZ).  If both target
the same distribution, each z is approximately N(0, 1): about 5% exceed 1.96,
0.27% exceed 3, and the mean of z² is about 1.  A systematic difference shows
as a mean z² well above 1 and many large |z| — the test statistic used to
check that our Gibbs kernel, NUTS and bgsmtr sample the same GSMTR density.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from bayesimg import mcmc_stats as _mcmc_stats


def mcse_of_mean(x: np.ndarray) -> np.ndarray:
    """MCSE of the mean for draws ``x`` of shape (E, chain, draw)."""
    ess = _mcmc_stats.convergence_table(x, stats=("ess_mean",))["ess_mean"]
    return x.reshape(x.shape[0], -1).std(axis=1, ddof=1) / np.sqrt(ess)


def mean_agreement(a: np.ndarray, b: np.ndarray) -> dict:
    """z-scores of the difference of posterior means, element by element.

    Parameters
    ----------
    a, b : ndarray, shape (E, chain, draw)
        Draws of the same E quantities from two runs (chains/draws may differ).

    Returns
    -------
    dict
        ``z`` (E,), ``mean_a``, ``mean_b``, ``mcse_a``, ``mcse_b`` and scalars
        ``max_abs_z``, ``frac_abs_z_gt_3``, ``mean_z2`` and
        ``p_value_chi2`` (of Σz² against χ²_E: small means disagreement; the
        z are treated as independent, which is conservative only roughly).
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"different numbers of quantities: {a.shape[0]} vs {b.shape[0]}")
    mean_a = a.reshape(a.shape[0], -1).mean(axis=1)
    mean_b = b.reshape(b.shape[0], -1).mean(axis=1)
    mcse_a, mcse_b = mcse_of_mean(a), mcse_of_mean(b)
    z = (mean_a - mean_b) / np.sqrt(mcse_a**2 + mcse_b**2)
    finite = np.isfinite(z)
    z2 = z[finite] ** 2
    return {"z": z, "mean_a": mean_a, "mean_b": mean_b, "mcse_a": mcse_a, "mcse_b": mcse_b,
            "n": int(finite.sum()), "max_abs_z": float(np.abs(z[finite]).max()),
            "frac_abs_z_gt_3": float(np.mean(np.abs(z[finite]) > 3)),
            "mean_z2": float(z2.mean()),
            "p_value_chi2": float(stats.chi2.sf(z2.sum(), df=int(finite.sum())))}
