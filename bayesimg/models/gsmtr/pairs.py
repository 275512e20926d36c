"""Left/right pairs of phenotype columns: the (L ± R)/√2 rotation and the pair covariance.

With a pair covariance σ²[[1, ρ], [ρ, 1]], the columns (L + R)/√2 and (L − R)/√2 are
independent with variances σ²(1 + ρ) and σ²(1 − ρ) (the eigenvectors (1, ±1)/√2).  The
rotation R (c × c, unpaired columns unchanged) is orthogonal, so it keeps row norms and
Gaussian densities (Jacobian 1).  With an ROI graph (:mod:`.roi_graph`) the paired block
has covariance σ²[[1, ρ], [ρ, 1]] ⊗ U diag(1/(1 − ρ_s μ)) Uᵀ, and the rotation is
((1, ±1)/√2) ⊗ U: the sums and differences are further projected on the graph's
eigenvectors U (``basis``), giving independent columns with variances
σ²(1 ± ρ)/(1 − ρ_s μ_k).  Used by :mod:`.bilateral` and its kernel.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

_SQRT2 = np.sqrt(2.0)


def rotate_pairs(M, left, right, unpaired, basis=None):
    """Columns of ``M`` (…, c) → [(L + R)/√2 | (L − R)/√2 | unpaired] (…, c).

    With ``basis`` U (P × P orthogonal) the sums and differences are taken to U's
    coordinates: [(L + R)U/√2 | (L − R)U/√2 | unpaired]."""
    xp = jnp if isinstance(M, jax.Array) or isinstance(basis, jax.Array) else np
    M_left, M_right = M[..., left], M[..., right]
    plus, minus = (M_left + M_right) / _SQRT2, (M_left - M_right) / _SQRT2
    if basis is not None:
        plus, minus = plus @ basis, minus @ basis
    return xp.concatenate([plus, minus, M[..., unpaired]], axis=-1)


def unrotate_pairs(M_rot, left, right, unpaired, basis=None):
    """Inverse of :func:`rotate_pairs`: back to the original column order."""
    xp = jnp if isinstance(M_rot, jax.Array) or isinstance(basis, jax.Array) else np
    n_pairs = left.shape[0]
    plus, minus = M_rot[..., :n_pairs], M_rot[..., n_pairs:2 * n_pairs]
    if basis is not None:
        plus, minus = plus @ basis.T, minus @ basis.T
    stacked = xp.concatenate([(plus + minus) / _SQRT2, (plus - minus) / _SQRT2,
                              M_rot[..., 2 * n_pairs:]], axis=-1)
    order = xp.concatenate([left, right, unpaired])
    return stacked[..., xp.argsort(order)]


def pair_noise_cov(sigma2, rho, left, right, c, spatial=None):
    """σ²(I + ρ(E_LR + E_RL)) (…, c, c): the noise covariance of the bilateral model.

    With ``spatial`` (…, P, P), the CAR correlation C(ρ_s) of the pairs' regions, the
    paired block is σ²[[1, ρ], [ρ, 1]] ⊗ C (unpaired columns keep variance σ²)."""
    sigma2 = np.asarray(sigma2, dtype=float)
    rho = np.asarray(rho, dtype=float)
    cov = np.broadcast_to(np.eye(c), sigma2.shape + (c, c)).copy()
    if spatial is None:
        cov[..., left, right] = rho[..., None]
        cov[..., right, left] = rho[..., None]
    else:
        spatial = np.broadcast_to(spatial, sigma2.shape + spatial.shape[-2:])
        for rows, cols, weight in ((left, left, 1.0), (right, right, 1.0),
                                   (left, right, rho), (right, left, rho)):
            cov[..., rows[:, None], cols[None, :]] = (
                np.asarray(weight)[..., None, None] * spatial)
    return sigma2[..., None, None] * cov
