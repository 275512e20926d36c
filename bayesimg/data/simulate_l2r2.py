"""Simulated repeated measures from a planted longitudinal low-rank regression (L2R2 truth).

:func:`simulate_l2r2` takes the GLRR truth of :func:`~bayesimg.data.simulate_glrr` (a
rank-R B with sparse SNP rows, factor noise Σ = ΛΛᵀ + diag ψ) and turns each subject
into 1..``max_visits`` visits at times 0, 1, 2, … (years, jittered)::

    y_it = Bᵀx_i + t_it γ_time + b_i + ε_it,   b_i ~ N_c(0, diag ω),
    ε_it ~ N_c(0, Σ) independent over visits (``noise="iid"``), or an AR(1) process
    over a subject's visits, ε_it = ρ ε_i,t−1 + √(1 − ρ²) e_it, e ~ N(0, Σ)
    (``noise="ar1"``: within-subject serial correlation the random-intercept model
    does not have — the misspecified case).

Phenotypes are centred (not scaled), so ``truth.B`` is the exact coefficient matrix of
a model fitted to the returned data.  Randomness: ``numpy.random.default_rng(seed)``.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from bayesimg.data.dataset import Dataset
from bayesimg.data.io import GenotypeTable
from bayesimg.data.longitudinal import LongitudinalData, make_longitudinal
from bayesimg.data.phenotypes import read_visits
from bayesimg.data.simulate_glrr import GLRRTruth, simulate_glrr
from bayesimg.errors import DataValidationError

__all__ = ["L2R2Truth", "simulate_l2r2"]

NOISE = ("iid", "ar1")


@dataclasses.dataclass(frozen=True, eq=False)
class L2R2Truth:
    """Generating parameters: ``glrr`` (B, Σ, …), ``subject_var`` ω (c,), ``subject_effect``
    b (n × c), ``time_effect`` γ_time (c,), ``noise`` and ``ar1`` (ρ)."""

    glrr: GLRRTruth
    subject_var: np.ndarray
    subject_effect: np.ndarray
    time_effect: np.ndarray
    noise: str
    ar1: float

    @property
    def B(self) -> pd.DataFrame:
        return self.glrr.B


def simulate_l2r2(genotypes: Dataset | GenotypeTable | None = None, *,
                  n_subjects: int = 200, n_snps: int = 20, n_phenotypes: int = 6,
                  rank: int = 2, singular_values=None, max_visits: int = 4,
                  min_visits: int = 1, subject_sd: float = 0.8, time_effect_sd: float = 0.3,
                  noise_factors: int = 1, noise_sd: float = 0.7, noise: str = "iid",
                  ar1: float = 0.7, seed: int = 0) -> tuple[LongitudinalData, L2R2Truth]:
    """Repeated-measures data with a known L2R2 truth (see the module docstring).

    ``singular_values`` are those of the subject-level signal XB (n × c), as in
    :func:`~bayesimg.data.simulate_glrr` (default 12, 8, …); ``subject_sd``: ω_j =
    subject_sd² · U(0.5, 1.5); visits per subject uniform on [min_visits, max_visits].
    Returns ``(LongitudinalData, L2R2Truth)``.
    """
    if noise not in NOISE:
        raise DataValidationError(f"noise must be one of {NOISE}, got {noise!r}")
    if not 1 <= min_visits <= max_visits:
        raise DataValidationError(
            f"need 1 <= min_visits <= max_visits, got {min_visits}, {max_visits}")
    if not (subject_sd >= 0 and -1 < ar1 < 1):
        raise DataValidationError("subject_sd must be >= 0 and ar1 in (-1, 1)")
    if singular_values is None:
        singular_values = [12.0 - 4.0 * h for h in range(rank)]
    base, truth = simulate_glrr(genotypes, n_subjects=n_subjects, n_snps=n_snps,
                                n_phenotypes=n_phenotypes, rank=rank,
                                singular_values=singular_values, noise_factors=noise_factors,
                                noise_sd=noise_sd, noise_factor_sd=0.5 * noise_sd, seed=seed)
    rng = np.random.default_rng(seed + 7919)
    n, c = base.n_subjects, base.n_phenotypes
    X = base.genotypes
    mean_subject = X @ truth.B.to_numpy()
    omega = subject_sd**2 * rng.uniform(0.5, 1.5, size=c)
    b = rng.standard_normal((n, c)) * np.sqrt(omega)
    gamma_t = rng.normal(0.0, time_effect_sd, size=c)
    L = np.linalg.cholesky(truth.noise_cov.to_numpy())
    counts = rng.integers(min_visits, max_visits + 1, size=n)
    rows = []
    for i in range(n):
        times = np.arange(counts[i]) + rng.uniform(-0.15, 0.15, size=counts[i])
        times[0] = 0.0
        eps = rng.standard_normal((counts[i], c)) @ L.T
        if noise == "ar1":
            for t in range(1, counts[i]):
                eps[t] = ar1 * eps[t - 1] + np.sqrt(1.0 - ar1**2) * eps[t]
        y = mean_subject[i] + times[:, None] * gamma_t + b[i] + eps
        for t in range(counts[i]):
            rows.append({"subject": base.subjects[i], "visit": f"v{t + 1}",
                         "time": float(times[t]),
                         **dict(zip(base.phenotype_names, y[t], strict=True))})
    frame = pd.DataFrame(rows)
    visits = read_visits(frame, time="time")
    geno = dataclasses.replace(base, phenotypes=None, phenotype_names=None)
    data = make_longitudinal(geno, visits, phenotype_columns=list(base.phenotype_names),
                             standardize_phenotypes=False, name=f"simulated_l2r2_{noise}")
    return data, L2R2Truth(glrr=truth, subject_var=omega, subject_effect=b,
                           time_effect=gamma_t, noise=noise, ar1=float(ar1))
