"""Left/right pairs of phenotype columns: the (L ± R)/√2 rotation and the pair covariance.

With a pair covariance σ²[[1, ρ], [ρ, 1]], the columns (L + R)/√2 and (L − R)/√2 are
independent with variances σ²(1 + ρ) and σ²(1 − ρ) (the eigenvectors (1, ±1)/√2).  The
rotation R (c × c, unpaired columns unchanged) is orthogonal, so it keeps row norms and
Gaussian densities (Jacobian 1).  Used by :mod:`.bilateral` and its kernel.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

_SQRT2 = np.sqrt(2.0)


def rotate_pairs(M, left, right, unpaired):
    """Columns of ``M`` (…, c) → [(L + R)/√2 | (L − R)/√2 | unpaired] (…, c)."""
    xp = jnp if isinstance(M, jax.Array) else np
    M_left, M_right = M[..., left], M[..., right]
    return xp.concatenate([(M_left + M_right) / _SQRT2, (M_left - M_right) / _SQRT2,
                           M[..., unpaired]], axis=-1)


def unrotate_pairs(M_rot, left, right, unpaired):
    """Inverse of :func:`rotate_pairs`: back to the original column order."""
    xp = jnp if isinstance(M_rot, jax.Array) else np
    n_pairs = left.shape[0]
    plus, minus = M_rot[..., :n_pairs], M_rot[..., n_pairs:2 * n_pairs]
    stacked = xp.concatenate([(plus + minus) / _SQRT2, (plus - minus) / _SQRT2,
                              M_rot[..., 2 * n_pairs:]], axis=-1)
    order = xp.concatenate([left, right, unpaired])
    return stacked[..., xp.argsort(order)]


def pair_noise_cov(sigma2, rho, left, right, c):
    """σ²(I + ρ(E_LR + E_RL)) (…, c, c): the noise covariance of the bilateral model."""
    sigma2 = np.asarray(sigma2, dtype=float)
    rho = np.asarray(rho, dtype=float)
    cov = np.broadcast_to(np.eye(c), sigma2.shape + (c, c)).copy()
    cov[..., left, right] = rho[..., None]
    cov[..., right, left] = rho[..., None]
    return sigma2[..., None, None] * cov
