"""Convergence verdicts on identified quantities (align.identified_*, report.diagnostics).

* ``longer_run_factor``: ESS scales linearly with the draws, excess R-hat as 1/draws;
* two chains that share the factor subspace but split it into factors by a different
  rotation: the one-line summary says the subspace converged and names the factors
  whose split did not — and a pair of chains on different subspaces is reported as
  such;
* the generic "Not converged" line names the variables and a run-length factor.
"""

from __future__ import annotations

import types

import numpy as np

from bayesimg.models.factor.align import (
    identified_convergence,
    identified_summaries,
    rotation_diagnostics,
)
from bayesimg.report.diagnostics import _not_converged_line, longer_run_factor

LAYOUT = types.SimpleNamespace(views=("a", "b"), sizes=(30, 20),
                               likelihoods=("gaussian", "gaussian"), outcome_kind=None)


def _rot(t):
    return np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])


def _samples(angles, rng, spread=0.0):
    """Chains whose draws are one planted (Z, W) rotated by ``angles[c]`` (+ noise)."""
    n, S = 60, 500
    Z0 = rng.standard_normal((n, 2))
    W0 = {"a": rng.standard_normal((30, 2)), "b": rng.standard_normal((20, 2))}
    Z, W = [], {"a": [], "b": []}
    for a in angles:
        Zc = {"a": [], "b": []}
        zs = []
        for _ in range(S):
            R = _rot(a + spread * rng.standard_normal())
            zs.append(Z0 @ R + 0.05 * rng.standard_normal((n, 2)))
            for v in W:
                Zc[v].append(W0[v] @ R)
        Z.append(zs)
        for v in W:
            W[v].append(Zc[v])
    out = {"Z": np.asarray(Z), "tau_a": np.full((len(angles), S, 30), 4.0),
           "tau_b": np.full((len(angles), S, 20), 4.0)}
    for v in W:
        out[f"W_{v}"] = np.asarray(W[v])
    return out


def test_longer_run_factor():
    assert longer_run_factor(1.0, 40.0) == 10.0
    assert abs(longer_run_factor(1.05, 4000.0) - 5.0) < 1e-9
    assert longer_run_factor(1.001, 1000.0) == 1.0


def test_rotation_within_converged_subspace_is_named():
    rng = np.random.default_rng(0)
    samples = _samples([0.0, 0.5], rng, spread=0.02)
    info = rotation_diagnostics(samples, LAYOUT)
    samples.update(identified_summaries(samples, LAYOUT, info))
    assert samples["variance_share"].shape == (2, 500, 2, 2)
    assert np.all(samples["variance_share"] >= 0)
    assert np.all(samples["variance_share"].sum(-1) <= 1)
    assert samples["subspace_cosine"].min() > 0.99
    line = identified_convergence(samples, info)
    assert line.startswith("factor subspace converged"), line
    assert "F1" in line and "rotation within" in line and "longer" in line


def test_agreeing_chains_give_converged_summary():
    rng = np.random.default_rng(1)
    samples = _samples([0.3, 0.3], rng, spread=0.02)
    info = rotation_diagnostics(samples, LAYOUT)
    samples.update(identified_summaries(samples, LAYOUT, info))
    line = identified_convergence(samples, info)
    assert line.startswith("factor subspace converged")
    assert line.endswith("variance shares converged"), line


def test_not_converged_line_names_variables_and_factor():
    labels = ["Z[s1, F1]", "Z[s2, F1]", "W_a[g1, F2]", "mu_a[g1]"]
    rhat = np.array([1.2, 1.001, 1.03, 1.0])
    ess = np.array([8.0, 500.0, 300.0, 900.0])
    line = _not_converged_line(labels, rhat, ess, n_draws=500)
    assert line.startswith("Not converged: Z (1, worst Z[s1, F1]: R-hat up to 1.200, ESS "
                           "down to 8)")
    assert "W_a" in line and "mu_a" not in line
    assert "50x longer" in line and "~25000 draws" in line
