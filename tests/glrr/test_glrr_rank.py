"""Rank selection in a clear case (true rank 2, signal singular values 40 and 25, noise
edge ≈ 9): by the shrinkage prior (GLRR with rank bound 4: the posterior mode of
``effective_rank``) and by PSIS-LOO / WAIC across R = 1, 2, 3 through the shared
``select_hyperparameter`` + ``compare`` (one-standard-error rule, ``choose_rank``).
Rank 1 must be clearly worse (elpd difference > 4 of its SEs); ranks above 2 add nothing,
so the one-SE rule picks 2.  The IC test fits three models (≈ 70 s of CPU) and is marked
``slow`` (run ``pytest -m slow tests/glrr/test_glrr_rank.py``; it passed when written);
``benchmarks/glrr.py --rank-grid 4 5 6`` runs the same selection on the benchmark data."""

from __future__ import annotations

import numpy as np
import pytest
from _glrr_helpers import draws
from _gsmtr_helpers import centre_by_rotation

import bayesimg
from bayesimg.data.simulate_glrr import simulate_glrr
from bayesimg.models import GLRR
from bayesimg.models.glrr import choose_rank

MCMC = dict(chains=2, warmup=300, draws=300, progress=False, seed=0)


@pytest.fixture(scope="module")
def case():
    data, truth = simulate_glrr(n_subjects=200, n_snps=12, n_phenotypes=5, rank=2,
                                singular_values=[40, 25], n_active_snps=4, noise_factors=1,
                                seed=4)
    return centre_by_rotation(data), truth


def test_shrinkage_switches_off_extra_ranks(case):
    data, _ = case
    fit = bayesimg.fit(GLRR(rank=4, noise_factors=1), data, method="nuts", **MCMC)
    eff = draws(fit, "effective_rank").astype(int)
    counts = np.bincount(eff, minlength=5)
    assert counts.argmax() == 2, counts
    assert counts[2] / counts.sum() > 0.8, counts
    s = draws(fit, "signal_singular_values")
    assert np.median(s[:, 2]) < 0.5 * np.median(s[:, 1])      # third layer shrunk


@pytest.fixture(scope="module")
def grid(case):
    data, _ = case
    return bayesimg.select_hyperparameter(
        GLRR(noise_factors=1), data, [{"rank": r} for r in (1, 2, 3)], ic="loo", **MCMC)


@pytest.mark.slow
@pytest.mark.parametrize("ic", ["loo", "waic"])
def test_information_criteria_pick_true_rank(grid, ic):
    _, table, fits = grid
    if ic == "waic":
        table = bayesimg.compare(fits, ic="waic")
    assert choose_rank(table) == 2, table
    row = table.loc["rank=1"]
    assert row["elpd_diff"] > 4 * row["dse"], table
