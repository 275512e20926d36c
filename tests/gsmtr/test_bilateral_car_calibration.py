"""Simulation-based calibration (Talts et al. 2018) of the bilateral GSMTR with a CAR graph.

Replicates r = 1..R, each drawn from the model's own prior (module docstring of
:mod:`bayesimg.models.gsmtr.bilateral`) with λ₁ = λ₂ = 1 fixed, as the model fixes them:

* (W, σ²): σ² ~ InvGamma(3, 1) and W | σ² from bgsmtr's prior with τ, ω integrated out,
  p(W | σ²) ∝ σ^{−dc} exp(−(√λ₁ Σ_k‖W_k‖_F + √λ₂ Σ_i‖w_i‖)/σ), by exact rejection
  (``_gsmtr_helpers.exact_prior_draw``, validated in test_gsmtr_calibration.py);
* ρ ~ U(−1, 1) ((1 + ρ)/2 ~ Beta(1, 1)), ρ_s ~ U(l, h) on the valid range of the graph;
* Y = XW + E, the rows of E iid N(0, σ²[[1, ρ], [ρ, 1]] ⊗ (I − ρ_s Ã)⁻¹), built here by a
  dense Kronecker product and inverse (not the library's rotation).

The graph is a ring of P = 4 regions per hemisphere (c = 8, Ã = A/2 with eigenvalues
1, 0, 0, −1: valid range (−1, 1), three mode groups, six noise scales), d = 4 SNPs in 2
genes, n = 100.  Each replicate's posterior is sampled by the exact Gibbs kernel, one
chain per replicate, all replicates in one vmapped program (the ``fit`` path is covered by
the recovery tests of test_bilateral_car.py); W is taken back to the left/right
coordinates.  If the kernel targets the model's posterior, the rank of each true θ among
L thinned draws is uniform on {0, …, L}: chi-square test in 10 bins per quantity (ρ, ρ_s,
σ² and three W entries).

Can fail: the same replicates sampled by a kernel whose ρ_s conditional counts the CAR
log-determinant n Σ_g m_g log(1 − ρ_s μ_g) once per mode instead of twice (for the sum
*and* the difference column of each mode: the slip of forgetting the second hemisphere)
must make the ranks of ρ_s non-uniform.  (A wrong *prior* on ρ_s, Beta(4, 1) on its range
instead of uniform, is not detectable here: at n = 100 the 400 residual modes dominate it;
measured p = 0.90 for ρ_s at R = 20.)
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _gsmtr_helpers import centre_by_rotation, exact_prior_draw, genotype_design
from scipy import stats

from bayesimg.models import BilateralGSMTR
from bayesimg.models.gsmtr.pairs import unrotate_pairs

P = 4
REGIONS = [f"r{k}" for k in range(P)]
NAMES = [f"lh_{r}" for r in REGIONS] + [f"rh_{r}" for r in REGIONS]
RING = [(REGIONS[k], REGIONS[(k + 1) % P]) for k in range(P)]
C = 2 * P
N, D, GENE_SIZE = 100, 4, 2
LAMBDA = 1.0
RHO_S_RANGE = (-1.0, 1.0)          # (1/μ_min, 1/μ_max) of the 4-ring
R_SBC = 200
WARMUP, DRAWS, L_RANK, N_BINS = 100, 1000, 50, 10
#: flat indices (i·C + j) of the W entries checked: different genes, sides and regions
W_ENTRIES = {"W[0,lh_r0]": 0, "W[1,rh_r2]": 1 * C + 6, "W[3,lh_r3]": 3 * C + 3}


def _normalised_ring() -> np.ndarray:
    A = np.zeros((P, P))
    for k in range(P):
        A[k, (k + 1) % P] = A[(k + 1) % P, k] = 1.0
    deg = A.sum(axis=1)
    return A / np.sqrt(np.outer(deg, deg))


def _noise_cov(sigma2, rho, rho_s):
    """σ² [[1, ρ], [ρ, 1]] ⊗ (I − ρ_s Ã)⁻¹ over the columns [lh regions | rh regions]."""
    car = np.linalg.inv(np.eye(P) - rho_s * _normalised_ring())
    return sigma2 * np.kron(np.array([[1.0, rho], [rho, 1.0]]), car)


def _replicate(rep: int):
    rng = np.random.default_rng(900 + rep)
    design = genotype_design(N, D, GENE_SIZE, seed=1900 + rep)
    W, sigma2 = exact_prior_draw(rng, design.gene_index, C, LAMBDA, LAMBDA)
    rho = rng.uniform(-1.0, 1.0)
    rho_s = rng.uniform(*RHO_S_RANGE)
    E = rng.multivariate_normal(np.zeros(C), _noise_cov(sigma2, rho, rho_s), size=N)
    data = centre_by_rotation(dataclasses.replace(
        design, phenotypes=design.genotypes @ W + E, phenotype_names=np.array(NAMES)))
    return data, np.concatenate([[rho, rho_s, sigma2], W.ravel()[list(W_ENTRIES.values())]])


NAMES_CHECKED = ["rho", "rho_spatial", "sigma2", *W_ENTRIES]


def _half_log_determinant(kernel) -> None:
    """Break ``kernel``'s ρ_s conditional: subtract half of its log-determinant term."""
    exact = kernel.rho_spatial_log_density

    def wrong(rho, rss_plus, rss_minus, mu, mode_counts, n, graph_values):
        log_f, lower, upper = exact(rho, rss_plus, rss_minus, mu, mode_counts, n,
                                    graph_values)
        return (lambda r: log_f(r) - 0.5 * jnp.sum(n * mode_counts * jnp.log1p(-r * mu)),
                lower, upper)

    kernel.rho_spatial_log_density = wrong


def _posterior_draws(model: BilateralGSMTR, replicates, broken: bool = False) -> np.ndarray:
    """(R, L_RANK, quantities) thinned draws of one Gibbs chain per replicate."""
    kwargs = [model.model_args(data, "gibbs") for data, _ in replicates]
    kernel = model.gibbs_kernel(replicates[0][0])
    if broken:
        _half_log_determinant(kernel)
    stacked = jax.tree.map(lambda *xs: jnp.asarray(np.stack(xs)), *kwargs)
    entries = jnp.asarray(list(W_ENTRIES.values()))

    def chain(key, kw):
        def record(z):
            W = unrotate_pairs(z["W"], kw["pair_left"], kw["pair_right"], kw["unpaired"],
                               kw["graph_vectors"])
            return jnp.concatenate([jnp.stack([z["rho"], z["rho_spatial"], z["sigma2"]]),
                                    W.ravel()[entries]])

        def step(st, _):
            st = kernel.sample(st, (), kw)
            return st, record(st.z)

        state = kernel.init(key, 0, None, (), kw)
        state = jax.lax.fori_loop(0, WARMUP, lambda i, st: kernel.sample(st, (), kw), state)
        return jax.lax.scan(step, state, None, length=DRAWS)[1][:: DRAWS // L_RANK]

    keys = jax.random.split(jax.random.PRNGKey(3), len(replicates))
    return np.asarray(jax.jit(jax.vmap(chain))(keys, stacked))


def _rank_pvalues(truths: np.ndarray, kept: np.ndarray) -> dict[str, float]:
    """Chi-square p-value of the ranks of θ_true among the L kept draws, in N_BINS bins
    (exact expected counts: the L + 1 possible ranks do not split evenly)."""
    ranks = np.sum(kept < truths[:, None, :], axis=1)                   # (R, quantities)
    expected = np.bincount(np.arange(L_RANK + 1) * N_BINS // (L_RANK + 1),
                           minlength=N_BINS) / (L_RANK + 1)
    out = {}
    for j, name in enumerate(NAMES_CHECKED):
        counts = np.bincount(ranks[:, j] * N_BINS // (L_RANK + 1), minlength=N_BINS)
        out[name] = float(stats.chisquare(counts, len(ranks) * expected).pvalue)
    return out


@pytest.fixture(scope="module")
def replicates():
    return [_replicate(rep) for rep in range(R_SBC)]


@pytest.mark.slow
def test_car_gibbs_sbc_ranks_uniform(replicates):
    """α = 0.001 per quantity (6 quantities: family false alarm ≤ 0.006)."""
    truths = np.array([truth for _, truth in replicates])
    kept = _posterior_draws(BilateralGSMTR(LAMBDA, LAMBDA, roi_graph=RING), replicates)
    assert kept.shape == (R_SBC, L_RANK, len(NAMES_CHECKED))
    pvalues = _rank_pvalues(truths, kept)
    assert min(pvalues.values()) > 1e-3, pvalues


@pytest.mark.slow
def test_car_sbc_detects_a_wrong_rho_spatial_conditional(replicates):
    """The same replicates, the kernel's ρ_s conditional missing half its log-determinant:
    the ranks of ρ_s must be far from uniform."""
    truths = np.array([truth for _, truth in replicates])
    model = BilateralGSMTR(LAMBDA, LAMBDA, roi_graph=RING)
    pvalues = _rank_pvalues(truths, _posterior_draws(model, replicates, broken=True))
    assert pvalues["rho_spatial"] < 1e-6, pvalues
