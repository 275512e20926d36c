"""The two GSMTR parameterisations target the density of MODELS.md §1.

The joint of MODELS.md §1 (bgsmtr's target) is written out literally below
(numpy/scipy.special; its Gamma densities are checked against scipy.stats).  Its
(W, σ²)-marginal, obtained by integrating τ and ω out numerically with
``scipy.integrate.quad``, must differ from the ``"marginal"`` NumPyro
model's log density by a constant that depends on neither W, σ² nor λ; the
``"hierarchical"`` NumPyro model must equal the literal joint up to a constant
in (W, τ, ω, σ²); whitening must not change the density.

Tiny case: one gene of 2 SNPs, c = 2 phenotypes, n = 6 subjects.
"""

from __future__ import annotations

import numpy as np
import pytest
from _gsmtr_helpers import genotype_design, with_phenotypes
from numpyro.infer.util import log_density
from scipy import integrate, optimize, stats
from scipy.special import gammaln

import bayesimg  # noqa: F401  (float64 on CPU)
from bayesimg.models import GroupSparseMTR


# ----------------------------------------------------------------- the literal joint
def joint_logp(W, tau, omega, sigma2, X, Y, gene_index, lambda1, lambda2):
    """log p of MODELS.md §1, term by term (Gamma with *rate*, InvGamma(3, 1)).

    ``tau`` (…, K) and ``omega`` (…, d) may carry leading batch axes (for grids).
    """
    n, c = Y.shape
    d = W.shape[0]
    m = np.bincount(gene_index)
    row_sq = np.sum(W**2, axis=1)
    out = -(n * c / 2) * np.log(sigma2) - np.sum((Y - X @ W) ** 2) / (2 * sigma2)
    out += -(d * c / 2) * np.log(sigma2)
    out = out - np.sum(row_sq * (1 / tau[..., gene_index] + 1 / omega), axis=-1) / (2 * sigma2)
    out = out - np.sum(m * c / 2 * np.log(tau), axis=-1) - np.sum(c / 2 * np.log(omega), axis=-1)
    out = out + np.sum(_gamma_logpdf(tau, (m * c + 1) / 2, lambda1 / 2), axis=-1)
    out = out + np.sum(_gamma_logpdf(omega, (c + 1) / 2, lambda2 / 2), axis=-1)
    out = out - gammaln(3) - 4 * np.log(sigma2) - 1 / sigma2          # InvGamma(3, 1)
    return out if np.ndim(out) else float(out)


def _gamma_logpdf(x, shape, rate):
    return shape * np.log(rate) - gammaln(shape) + (shape - 1) * np.log(x) - rate * x


def _log_integral_1d(f):
    """log ∫_0^∞ exp(f(s)) ds, integrated in t = log s around the mode (robust for
    integrands that are sharply peaked or have an integrable s^{-1/2} spike at 0)."""
    g = lambda t: f(np.exp(t)) + t                              # noqa: E731
    mode = optimize.minimize_scalar(lambda t: -g(t), bounds=(-60, 60), method="bounded").x
    top = g(mode)
    val, err = integrate.quad(lambda t: np.exp(g(t) - top), mode - 60, mode + 60,
                              points=[mode], limit=500, epsabs=0, epsrel=1e-12)
    assert err < 1e-9 * val
    return top + np.log(val)


def integrated_joint(W, sigma2, X, Y, gene_index, lambda1, lambda2):
    """log ∫∫ exp(joint) dτ dω.

    The joint is additively separable in τ_1..τ_K, ω_1..ω_d (each appears in its own
    terms only), so the K + d dimensional integral is a product of 1-D integrals;
    each is taken with the other scales held at an arbitrary reference value.
    (:func:`test_separable_integral_matches_2d_quadrature` checks this against a
    genuine 2-D integral.)
    """
    d = W.shape[0]
    K = gene_index.max() + 1
    tau0, omega0 = np.ones(K), np.ones(d)
    args = (sigma2, X, Y, gene_index, lambda1, lambda2)
    ref = joint_logp(W, tau0, omega0, *args)
    total = ref
    for k in range(K):
        def f(s, k=k):
            tau = tau0.copy()
            tau[k] = s
            return joint_logp(W, tau, omega0, *args) - ref
        total += _log_integral_1d(f)
    for i in range(d):
        def f(s, i=i):
            omega = omega0.copy()
            omega[i] = s
            return joint_logp(W, tau0, omega, *args) - ref
        total += _log_integral_1d(f)
    return total


# ----------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def tiny():
    design = genotype_design(n=6, d=2, gene_size=2, seed=4)
    rng = np.random.default_rng(0)
    data = with_phenotypes(design, rng.standard_normal((6, 2)))
    return data


def _model_logp(model, data, params):
    args = model.model_args(data)
    lp, _ = log_density(model.numpyro_model("nuts"), (), args, params)
    return float(lp)


# (W, σ²) points: generic, a zero row (τ/ω integrals with an s^{-1/2} spike), and a
# whole zero gene.
POINTS = [
    (np.array([[0.3, -0.8], [1.1, 0.2]]), 0.7),
    (np.array([[-0.05, 0.4], [0.6, -1.3]]), 1.9),
    (np.array([[0.0, 0.0], [0.9, 0.5]]), 0.4),
    (np.array([[0.0, 0.0], [0.0, 0.0]]), 1.2),
    (np.array([[2.0, 1.5], [-1.0, 0.1]]), 0.25),
]
# The marginal model smooths norms as √(‖·‖² + 1e-12): at an exactly zero row or gene
# that adds √λ·1e-6/σ ≤ 1e-5 to the log density; elsewhere the change is < 1e-12.
# quad's relative error 1e-12 on O(10) log-integrals is negligible.
def _tol(W):
    zero_norms = np.sum(np.sum(W**2, axis=1) == 0) + (np.sum(W**2) == 0)
    return 1e-8 + 2e-5 * zero_norms


@pytest.mark.parametrize(("lambda1", "lambda2"), [(2.0, 3.0), (30.0, 0.5)])
def test_marginal_equals_integrated_joint(tiny, lambda1, lambda2):
    X, Y, gi = tiny.genotypes, tiny.phenotypes, tiny.gene_index
    model = GroupSparseMTR(lambda1, lambda2, whiten=False)
    marg = np.array([_model_logp(model, tiny, {"W": W, "sigma2": s2}) for W, s2 in POINTS])
    integ = np.array([integrated_joint(W, s2, X, Y, gi, lambda1, lambda2) for W, s2 in POINTS])
    diff = marg - integ
    # every pairwise difference, i.e. differences between (W, σ²) values, must agree
    tol = np.array([_tol(W) for W, _ in POINTS])
    assert np.all(np.abs(diff - diff[0]) <= tol + tol[0]), diff - diff[0]


def test_marginal_lambda_dependence_is_exact(tiny):
    """The (dc/2) log λ terms of the marginal form are the exact λ-dependence of the
    τ/ω normalising constants (needed for λ hyperpriors): the offset between the
    marginal model and the integrated joint is the same constant for every λ."""
    X, Y, gi = tiny.genotypes, tiny.phenotypes, tiny.gene_index
    W, s2 = POINTS[1]
    offsets = []
    for lam1, lam2 in [(0.3, 0.3), (2.0, 3.0), (30.0, 0.5), (7.0, 90.0)]:
        model = GroupSparseMTR(lam1, lam2, whiten=False)
        offsets.append(_model_logp(model, tiny, {"W": W, "sigma2": s2})
                       - integrated_joint(W, s2, X, Y, gi, lam1, lam2))
    assert np.ptp(offsets) < 1e-8, offsets


def test_separable_integral_matches_2d_quadrature():
    """One gene of one SNP (K = d = 1): a genuine 2-D integral over (τ, ω) (tensor
    trapezoid rule in log-scale) equals the product of 1-D quad integrals used above,
    and reproduces the marginal model's W-dependence."""
    design = genotype_design(n=6, d=1, gene_size=1, seed=2)
    data = with_phenotypes(design, np.random.default_rng(1).standard_normal((6, 2)))
    X, Y, gi = data.genotypes, data.phenotypes, data.gene_index
    lam1, lam2 = 1.5, 4.0
    model = GroupSparseMTR(lam1, lam2, whiten=False)
    results = []
    for W, s2 in [(np.array([[0.4, -0.3]]), 0.8), (np.array([[1.5, 0.7]]), 1.3)]:
        ref = joint_logp(W, np.ones(1), np.ones(1), s2, X, Y, gi, lam1, lam2)

        # τ = e^t, ω = e^u on a uniform grid: the integrand is smooth and decays
        # doubly exponentially in t and u, so the trapezoid rule converges
        # geometrically (checked: halving the step changes the result < 1e-12).
        t = np.linspace(-25.0, 12.0, 1501)
        tt, uu = np.meshgrid(t, t, indexing="ij")
        lp = joint_logp(W, np.exp(tt)[..., None], np.exp(uu)[..., None], s2, X, Y, gi,
                        lam1, lam2) + tt + uu
        top = lp.max()
        val = integrate.trapezoid(integrate.trapezoid(np.exp(lp - top), t, axis=1), t)
        coarse = integrate.trapezoid(
            integrate.trapezoid(np.exp(lp[::2, ::2] - top), t[::2], axis=1), t[::2])
        assert abs(coarse / val - 1) < 1e-10
        val = val * np.exp(top - ref)
        two_d = ref + np.log(val)
        separable = integrated_joint(W, s2, X, Y, gi, lam1, lam2)
        np.testing.assert_allclose(two_d, separable, rtol=0, atol=1e-7)
        results.append(_model_logp(model, data, {"W": W, "sigma2": s2}) - two_d)
    assert abs(results[0] - results[1]) < 1e-7


def test_literal_joint_helpers_match_scipy():
    """The hand-written Gamma/InvGamma log densities agree with scipy.stats."""
    x = np.array([0.01, 0.7, 3.0, 40.0])
    np.testing.assert_allclose(_gamma_logpdf(x, 2.5, 0.8),
                               stats.gamma.logpdf(x, a=2.5, scale=1 / 0.8), rtol=1e-12)
    W = np.zeros((1, 1))
    base = joint_logp(W, np.ones(1), np.ones(1), 1.0, np.zeros((1, 1)), np.zeros((1, 1)),
                      np.zeros(1, dtype=int), 1.0, 1.0)
    for s2 in (0.2, 3.0):
        got = joint_logp(W, np.ones(1), np.ones(1), s2, np.zeros((1, 1)), np.zeros((1, 1)),
                         np.zeros(1, dtype=int), 1.0, 1.0) - base
        want = (stats.invgamma.logpdf(s2, a=3, scale=1) - stats.invgamma.logpdf(1.0, a=3, scale=1)
                - 1.0 * np.log(s2))         # −(nc/2 + dc/2) log σ² with n = d = c = 1
        assert abs(got - want) < 1e-12


def test_hierarchical_model_is_the_literal_joint(tiny):
    """NumPyro's hierarchical model = the literal joint + a constant (−(nc/2) log 2π)."""
    X, Y, gi = tiny.genotypes, tiny.phenotypes, tiny.gene_index
    lam1, lam2 = 2.0, 3.0
    model = GroupSparseMTR(lam1, lam2, parameterization="hierarchical")
    rng = np.random.default_rng(3)
    gaps = []
    for W, s2 in POINTS:
        tau, omega = rng.gamma(2.0, 1.0, size=1), rng.gamma(2.0, 1.0, size=2)
        lp = _model_logp(model, tiny, {"W": W, "sigma2": s2, "tau": tau, "omega": omega})
        gaps.append(lp - joint_logp(W, tau, omega, s2, X, Y, gi, lam1, lam2))
    n, c = Y.shape
    np.testing.assert_allclose(gaps, -(n * c / 2) * np.log(2 * np.pi), rtol=0, atol=1e-9)


def test_marginal_offset_is_the_analytic_constant(tiny):
    """Not only differences: with ∫ τ^{-1/2} e^{−a/τ − bτ} dτ = √(π/b) e^{−2√(ab)} the
    offset is fully known,

        log p_marginal − log ∫∫ joint = −(nc/2) log 2π + dc log 2 − ((K + d)/2) log π
                                        + Σ_k log Γ((m_k c + 1)/2) + d log Γ((c + 1)/2),

    so the quadrature must reproduce it to quad accuracy (checks every constant of
    the marginal form, including its (dc/2) log λ terms, in absolute terms)."""
    X, Y, gi = tiny.genotypes, tiny.phenotypes, tiny.gene_index
    n, c = Y.shape
    d = X.shape[1]
    m = np.bincount(gi)
    K = len(m)
    expected = (-(n * c / 2) * np.log(2 * np.pi) + d * c * np.log(2) - (K + d) / 2 * np.log(np.pi)
                + np.sum(gammaln((m * c + 1) / 2)) + d * gammaln((c + 1) / 2))
    for lam1, lam2 in [(2.0, 3.0), (30.0, 0.5)]:
        model = GroupSparseMTR(lam1, lam2, whiten=False)
        for W, s2 in POINTS[:2] + POINTS[4:]:
            offset = (_model_logp(model, tiny, {"W": W, "sigma2": s2})
                      - integrated_joint(W, s2, X, Y, gi, lam1, lam2))
            assert abs(offset - expected) < 1e-8, (offset, expected)


def test_whitening_leaves_the_density_unchanged(tiny):
    """W = T V with a constant T: the whitened model's log density at V equals the plain
    model's at W = T V (the constant log|T| Jacobian is not even added)."""
    lam1, lam2 = 2.0, 3.0
    plain = GroupSparseMTR(lam1, lam2, whiten=False)
    white = GroupSparseMTR(lam1, lam2, whiten=True)
    T = white.model_args(tiny)["whitener"]
    assert T is not None
    for W, s2 in POINTS[:2]:
        V = np.linalg.solve(T, W)
        a = _model_logp(plain, tiny, {"W": W, "sigma2": s2})
        b = _model_logp(white, tiny, {"W_white": V, "sigma2": s2})
        assert abs(a - b) < 1e-9 * max(1.0, abs(a))
