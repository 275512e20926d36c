r"""Gaussian repeated measures with a subject random intercept, the intercept integrated out.

A subject i with T_i visits (rows r_it of its residuals, t = 1..T_i) has::

    y_it = μ_it + b_i + ε_it,   b_i ~ N_c(0, D),  D = diag(ω),   ε_it ~ N_c(0, Σ) iid,

so its visits are jointly N(μ_i, C_i), C_i = I_{T_i} ⊗ Σ + 1 1ᵀ ⊗ D.  With
M = D^{1/2} Σ⁻¹ D^{1/2} = Q diag(λ) Qᵀ (one c×c eigendecomposition shared by all
subjects, whatever T_i) and s_i = Σ⁻¹ Σ_t r_it:

* log|C_i| = T_i log|Σ| + Σ_k log(1 + T_i λ_k)   (matrix determinant lemma);
* vec(r_i)ᵀ C_i⁻¹ vec(r_i) = Σ_t r_itᵀ Σ⁻¹ r_it − ‖diag(1 + T_i λ)^{-1/2} Qᵀ D^{1/2} s_i‖²
  (Woodbury: (D⁻¹ + T_i Σ⁻¹)⁻¹ = D^{1/2} Q diag(1 + T_i λ)⁻¹ Qᵀ D^{1/2});
* b_i | y_i ~ N(D^{1/2} Q diag(1 + T_i λ)⁻¹ Qᵀ D^{1/2} s_i, D^{1/2} Q diag(1 + T_i λ)⁻¹ Qᵀ D^{1/2}).

D may be singular (ω_j = 0: no random intercept for phenotype j); nothing divides by ω.
Cost per evaluation: one c×c Cholesky and eigendecomposition plus O(N c²) for N visits.
:class:`RandomInterceptNormal` is this as a NumPyro distribution whose batch is the
subject and whose event is (visit, phenotype), padded visits masked out — so the
pointwise log-likelihood is per subject (all its visits), the unit of leave-one-out.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpyro.distributions as dist
from jax.scipy.linalg import cho_solve, solve_triangular
from numpyro.distributions import constraints

LOG_2PI = 1.8378770664093453


class RandomInterceptNormal(dist.Distribution):
    """Visits (n, T, c) of n subjects: N(μ_i, I ⊗ Σ + 11ᵀ ⊗ diag ω) over the visits with
    ``mask[i, t]`` True (the others are padding: ignored by ``log_prob``, zero in draws).

    ``loc`` (n, T, c) the means, ``noise_cov`` Σ (c, c), ``subject_var`` ω (c,), ``mask`` (n, T).
    """

    arg_constraints = {"loc": constraints.real, "subject_var": constraints.nonnegative}
    support = constraints.real
    reparametrized_params = ["loc"]

    def __init__(self, loc, noise_cov, subject_var, mask, *, validate_args=None):
        self.loc = loc
        self.noise_cov = noise_cov
        self.subject_var = subject_var
        self.mask = jnp.asarray(mask, loc.dtype)
        super().__init__(batch_shape=loc.shape[:1], event_shape=loc.shape[1:],
                         validate_args=validate_args)

    # ------------------------------------------------------------ shared factors
    def _factors(self):
        c = self.noise_cov.shape[0]
        chol = jnp.linalg.cholesky(self.noise_cov)
        sd = jnp.sqrt(self.subject_var)
        W = solve_triangular(chol, jnp.diag(sd), lower=True)       # L⁻¹ D^{1/2}
        lam, Q = jnp.linalg.eigh(W.T @ W)
        return chol, sd, jnp.maximum(lam, 0.0), Q, c

    def _sums(self, value, chol):
        """Masked residuals' Σ⁻¹-quadratic per subject and s_i = Σ⁻¹ Σ_t r_it."""
        r = (value - self.loc) * self.mask[..., None]
        n, T, c = r.shape
        white = solve_triangular(chol, r.reshape(-1, c).T, lower=True)
        quad = jnp.sum((white * white).T.reshape(n, T, c), axis=(1, 2))
        s = cho_solve((chol, True), jnp.sum(r, axis=1).T).T
        return quad, s

    @property
    def visit_counts(self):
        return jnp.sum(self.mask, axis=1)

    # ------------------------------------------------------------ density
    def log_prob(self, value):
        chol, sd, lam, Q, c = self._factors()
        quad, s = self._sums(value, chol)
        Ti = self.visit_counts
        shrink = 1.0 + Ti[:, None] * lam[None, :]
        proj = (s * sd) @ Q
        logdet = Ti * 2.0 * jnp.sum(jnp.log(jnp.diagonal(chol))) + jnp.sum(jnp.log(shrink), 1)
        return -0.5 * (Ti * c * LOG_2PI + logdet + quad - jnp.sum(proj * proj / shrink, 1))

    def subject_effect(self, value, key=None):
        """E[b_i | y_i] (n, c), or a draw from b_i | y_i when ``key`` is given."""
        chol, sd, lam, Q, c = self._factors()
        _, s = self._sums(value, chol)
        shrink = 1.0 + self.visit_counts[:, None] * lam[None, :]
        coef = (s * sd) @ Q / shrink
        if key is not None:
            coef = coef + jax.random.normal(key, coef.shape, coef.dtype) / jnp.sqrt(shrink)
        return (coef @ Q.T) * sd

    def sample(self, key, sample_shape=()):
        k_b, k_e = jax.random.split(key)
        shape = sample_shape + self.batch_shape + self.event_shape
        c = shape[-1]
        chol = jnp.linalg.cholesky(self.noise_cov)
        eps = jax.random.normal(k_e, shape, self.loc.dtype) @ chol.T
        b = jax.random.normal(k_b, shape[:-2] + (1, c), self.loc.dtype) \
            * jnp.sqrt(self.subject_var)
        return (self.loc + b + eps) * self.mask[..., None]


__all__ = ["RandomInterceptNormal"]
