"""Integrated LOO for L2R2: U, Γ and the subject intercepts integrated out given A, Σ, ω.

1. The closed form (Helmert rotation of each subject's visits + the grouped block
   hat-matrix identity) equals log p(y_i | y_{-i}, θ) computed with scipy's multivariate
   normal on the whole vector of visits (log p(y) − log p(y_{-i})), with subjects of 1, 2
   and 3 visits, time-varying covariates and SNP × time terms.
2. (in ``test_l2r2.py``'s recovery test, on its fit) ``fit.loo()`` is integrated by
   default and names it, the hook (which rebuilds the visit design from the fit) equals
   the dense conditional at stored draws, ``method="psis"`` stays available.
3. ``slow``: brute-force exact LOO (every subject refitted without its visits) against
   integrated LOO: elpd within 0.5 of its SE.
"""

from __future__ import annotations

import numpy as np
import pytest
from _glrr_helpers import l2r2_loo_direct
from _loo_helpers import exact_loo_by_refits

from bayesimg.data.simulate_l2r2 import simulate_l2r2
from bayesimg.models import L2R2
from bayesimg.models.core.predict import gaussian_loo_given_layers
from bayesimg.models.glrr.longitudinal_loo import helmert, rotate_visits


def test_helmert_is_orthonormal_with_the_mean_first():
    for T in (1, 2, 4):
        H = helmert(T)
        np.testing.assert_allclose(H @ H.T, np.eye(T), atol=1e-12)
        np.testing.assert_allclose(H[0], np.full(T, 1 / np.sqrt(T)))


@pytest.mark.parametrize("interactions", [False, True])
def test_integrated_form_equals_the_dense_gaussian_conditional(interactions):
    rng = np.random.default_rng(int(interactions))
    n, d, c, R, S = 9, 4, 3, 2, 2
    counts = np.array([1, 3, 2, 3, 1, 2, 3, 2, 1])
    subject = np.repeat(np.arange(n), counts)
    G = rng.standard_normal((n, d))[subject]
    t = rng.standard_normal(subject.size)
    X = np.hstack([G, t[:, None] * G]) if interactions else G
    Z = np.column_stack([t, rng.standard_normal(subject.size)])
    Y = rng.standard_normal((subject.size, c))
    A = rng.standard_normal((S, R, c))
    L = 0.5 * rng.standard_normal((S, c, c))
    Sig = L @ np.swapaxes(L, 1, 2) + 0.5 * np.eye(c)
    omega = rng.uniform(0.2, 1.5, (S, c))
    s_u = rng.uniform(0.1, 1.0, (S, X.shape[1], R))
    Xr, Zr, Yr, cls, uniq = rotate_visits(subject, X, Z, Y)
    noise = np.stack([np.concatenate([Sig[s][None], Sig[s][None] + uniq[:, None, None]
                                      * np.diag(omega[s])[None]]) for s in range(S)])
    got = gaussian_loo_given_layers(Xr, Zr, Yr, A, noise, s_u, 1.5, noise_class=cls,
                                    subject=subject)
    assert got.shape == (S, n)
    for s in range(S):
        direct = l2r2_loo_direct(X, Z, Y, subject, A[s], Sig[s], omega[s], s_u[s], 1.5)
        np.testing.assert_allclose(got[s], direct, atol=1e-8)


@pytest.mark.slow
def test_l2r2_integrated_loo_matches_exact_loo_by_refits():
    """Brute force: every subject (all its visits) refitted out (Laplace SNP prior, so the
    mixing variances drawn from their conditional are exercised too)."""
    data, _ = simulate_l2r2(n_subjects=30, n_snps=5, n_phenotypes=3, rank=2,
                            singular_values=[10.0, 5.0], min_visits=1, max_visits=3, seed=5)
    model = L2R2(rank=2, noise_factors=1)
    opts = dict(chains=2, warmup=200, draws=400, seed=0)
    fit, exact, integ = exact_loo_by_refits(model, data, opts)
    assert integ.method == "integrated"
    psis = fit.loo(method="psis")
    print(f"L2R2 exact LOO {exact.sum():.2f}; integrated {integ.elpd:.2f} (se {integ.se:.2f}, "
          f"{(integ.elpd - exact.sum()) / integ.se:+.2f} SE, k̂ > 0.7: "
          f"{int(np.sum(integ.pareto_k > 0.7))}); PSIS {psis.elpd:.2f} "
          f"({(psis.elpd - exact.sum()) / integ.se:+.2f} SE, k̂ > 0.7: "
          f"{int(np.sum(psis.pareto_k > 0.7))})")
    assert abs(integ.elpd - exact.sum()) < 0.5 * integ.se
