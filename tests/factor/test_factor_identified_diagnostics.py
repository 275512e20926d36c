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
    assert "every active factor's variance shares converged" in line, line


def test_not_converged_line_names_variables_and_factor():
    labels = ["Z[s1, F1]", "Z[s2, F1]", "W_a[g1, F2]", "mu_a[g1]"]
    rhat = np.array([1.2, 1.001, 1.03, 1.0])
    ess = np.array([8.0, 500.0, 300.0, 900.0])
    line = _not_converged_line(labels, rhat, ess, n_draws=500)
    assert line.startswith("Not converged: Z (1, worst Z[s1, F1]: R-hat up to 1.200, ESS "
                           "down to 8)")
    assert "W_a" in line and "mu_a" not in line
    assert "50x longer" in line and "~25000 draws" in line


def _sparse_draws(angles, rng, S=600):
    """Chains of draws of one planted sparse (Z, W) (3 factors, disjoint supports),
    each chain rotated by its own random orthogonal matrix, with small draw noise."""
    n, sizes = 80, (30, 20)
    Z0 = rng.standard_normal((n, 3))
    W0 = np.zeros((sum(sizes), 3))
    for k in range(3):
        W0[k * 16:(k + 1) * 16, k] = rng.uniform(0.5, 1.5, 16) * rng.choice([-1, 1], 16)
    Z, W = [], []
    for seed in angles:
        R = np.linalg.qr(np.random.default_rng(seed).standard_normal((3, 3)))[0]
        Z.append([(Z0 + 0.05 * rng.standard_normal((n, 3))) @ R for _ in range(S)])
        W.append([(W0 + 0.02 * rng.standard_normal(W0.shape)) @ R for _ in range(S)])
    Z, W = np.asarray(Z), np.asarray(W)
    out = {"Z": Z, "W_a": W[:, :, :sizes[0]], "W_b": W[:, :, sizes[0]:],
           "tau_a": np.full((len(angles), S, sizes[0]), 4.0),
           "tau_b": np.full((len(angles), S, sizes[1]), 4.0),
           "alpha": np.ones((len(angles), S, 2, 3))}
    return out, Z0, W0


def test_identification_is_exact_and_rotation_invariant():
    """Varimax identification keeps ZWᵀ draw by draw, gives the same draw for every
    rotation of it, and puts two chains stuck at different rotations of a sparse
    solution back on the planted axes, so the one-line verdict is 'converged'."""
    from bayesimg.models.factor.align import align_factor_draws
    from bayesimg.models.factor.identify import identify_draws

    rng = np.random.default_rng(3)
    samples, Z0, W0 = _sparse_draws([10, 11], rng)
    ident = identify_draws(samples, LAYOUT)
    W = np.concatenate([samples["W_a"], samples["W_b"]], axis=2)
    Wi = np.concatenate([ident["W_a"], ident["W_b"]], axis=2)
    np.testing.assert_allclose(np.einsum("csnk,cspk->csnp", ident["Z"], Wi),
                               np.einsum("csnk,cspk->csnp", samples["Z"], W), atol=1e-10)
    # the same draw under a further rotation is identified to the same draw
    R = np.linalg.qr(rng.standard_normal((3, 3)))[0]
    rotated = dict(samples, Z=samples["Z"] @ R, W_a=samples["W_a"] @ R, W_b=samples["W_b"] @ R)
    again = identify_draws(rotated, LAYOUT)
    a = Wi[0, 0]
    b = np.concatenate([again["W_a"][0, 0], again["W_b"][0, 0]])
    cos = np.abs((a / np.linalg.norm(a, axis=0)).T @ (b / np.linalg.norm(b, axis=0)))
    assert np.all(np.sort(cos.max(axis=1)) > 0.999), cos
    # both chains land on the planted axes (up to sign and order)
    aligned, info = align_factor_draws(samples, LAYOUT, warn=False)
    Wm = np.concatenate([aligned["W_a"], aligned["W_b"]], axis=2).mean(axis=(0, 1))
    c = np.abs((Wm / np.linalg.norm(Wm, axis=0)).T @ (W0 / np.linalg.norm(W0, axis=0)))
    assert np.all(c.max(axis=0) > 0.99), c
    assert info["factor_agreement"] and min(info["factor_agreement"].values()) > 0.99
    line = info["convergence_summary"]
    assert line.startswith("factor subspace converged"), line
    assert "every active factor's variance shares, loadings and scores converged" in line, line
