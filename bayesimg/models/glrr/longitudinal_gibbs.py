r"""Exact blocked Gibbs sampler for L2R2 (:mod:`bayesimg.models.glrr.longitudinal`).

The model adds to GLRR, on N visit rows, subject random intercepts b_i ~ N_c(0, diag ω)
and 1/ω_j ~ Gamma(a_ω, b_ω).  With b_i as an exact auxiliary variable (its marginal
is the model's integrated likelihood), one sweep is

1. b_i | θ, ω, y (i = 1..n, all at once), the noise factors η integrated out:
   N(D^{1/2} Q diag(1 + T_i λ)⁻¹ Qᵀ D^{1/2} s_i, D^{1/2} Q diag(1 + T_i λ)⁻¹ Qᵀ D^{1/2}),
   s_i = Σ⁻¹ Σ_t (y_it − Bᵀx̃_it − Γᵀz̃_it), D^{1/2} Σ⁻¹ D^{1/2} = Q diag(λ) Qᵀ
   (:meth:`~bayesimg.models.core.random_intercept.RandomInterceptNormal.subject_effect`);
2. 1/ω_j | b ~ Gamma(a_ω + n/2, b_ω + ½ Σ_i b_ij²) (skipped when ω is fixed);
3. θ = (U, V, δ, Γ, Λ, ψ and GLRR's auxiliaries) | b: p(θ | b, y) is GLRR's posterior for
   the data y_it − b_i on the design x̃_it, z̃_it, so one sweep of GLRR's exact kernel
   (:class:`~bayesimg.models.glrr.gibbs.GLRRGibbs`, its conditionals and moves unchanged)
   on those data leaves it invariant;
4. u_h | rest (h = 1..R, when d ≤ n) and δ | rest with b integrated out (exact
   Gaussians, :meth:`L2R2Gibbs._collapsed_layers`): Gibbs steps on the marginal
   posterior of θ, which b (redrawn in step 1) does not enter.

Steps 1–2 are draws from full conditionals of (b, ω), step 3 an invariant kernel of
θ given b and step 4 a full conditional of the marginal posterior, so the sweep leaves
the posterior invariant; b is not kept between
sweeps (step 1 redraws it from θ), so the stored draws are those of the NUTS model,
whose deterministic sites (and the per-subject marginal log-likelihood) the kernel
computes with the model function itself.

Site random effects (``H`` given, a subject's site fixed over its visits): before step 1,
u | θ, ω is drawn with b integrated out (:meth:`L2R2Gibbs._collapsed_sites`), then τ | u
(:mod:`bayesimg.models.core.site_effects`), and steps 1–4 run on y − Hu.  Step 1 then
draws b given (θ, ω, u), so the pair (u, b) is one draw from its joint conditional
(partially collapsed Gibbs, van Dyk & Park 2008, JASA 103:790, in a valid order).
Integrating b matters here because b_i and u_s are both constant over a subject's
visits: drawing u given b would be the same slow coupling as the one step 4 addresses.

Why step 4: b_i and the genetic mean Bᵀx_i are both constant over a subject's visits,
so when ω is large relative to Σ/T_i the intercepts drawn in step 1 absorb part of the
genetic signal and steps 1–3 alone give B back only gradually (an AR(1)-like coupling
with rate ≈ T_i ω / (T_i ω + σ²)).  Updating the amplitudes δ with b integrated out cuts
that coupling along the layers' scales, and the SNP loadings u_h (given V) with b
integrated out cut it along their directions (``benchmarks/l2r2.py`` records ESS of B).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.scipy.linalg import cho_solve, solve_triangular

from bayesimg.models.core.conditionals import gaussian_columns_given_precision
from bayesimg.models.core.random_intercept import RandomInterceptNormal
from bayesimg.models.core.site_effects import draw_site_scales, site_effects_given_precisions
from bayesimg.models.glrr.gibbs import GLRRGibbs, GLRRGibbsState

__all__ = ["L2R2Gibbs"]


class L2R2Gibbs(GLRRGibbs):
    """GLRR's kernel plus the random-intercept blocks (see the module docstring)."""

    def __init__(self, model, model_fn):
        super().__init__(model, model_fn)
        self.fixed_subject_var = model.fixed_subject_var

    @staticmethod
    def _noise_cov(z):
        return z["Lam"] @ z["Lam"].T + jnp.diag(z["psi"])

    @staticmethod
    def _visit_mean(z, kw):
        mean = kw["X"] @ ((z["U"] * z["delta"]) @ z["V"].T)
        if kw["Z"] is not None:
            mean = mean + kw["Z"] @ z["gamma"]
        return mean

    def _likelihood(self, z, kw, omega):
        n, T = kw["visit_mask"].shape
        c = kw["Y"].shape[1]
        mean = self._visit_mean(z, kw)
        padded = jnp.zeros((n, T, c), mean.dtype).at[
            kw["subject_index"], kw["visit_position"]].set(mean)
        return RandomInterceptNormal(padded, self._noise_cov(z), omega, kw["visit_mask"])

    def init(self, rng_key, num_warmup, init_params, model_args, model_kwargs):
        kw = model_kwargs
        k_glrr, k_omega = jax.random.split(rng_key)
        state = super().init(k_glrr, num_warmup, init_params, model_args, kw)
        z = dict(state.z)
        if not self.fixed_subject_var:
            # ω from the spread of the subjects' mean residuals around the ridge start
            resid = kw["Y"] - self._visit_mean(z, kw)
            n = kw["visit_mask"].shape[0]
            counts = jnp.sum(kw["visit_mask"], axis=1)
            means = jax.ops.segment_sum(resid, kw["subject_index"], n) / counts[:, None]
            spread = jnp.maximum(jnp.var(means, axis=0), 1e-3 * jnp.var(kw["Y"], axis=0))
            z["subject_var"] = spread * jnp.exp(0.2 * jax.random.normal(
                k_omega, spread.shape, spread.dtype))
        return GLRRGibbsState(state.i, z, state.rng_key, state.stats)

    def sample(self, state, model_args, model_kwargs):
        """One sweep; with site random effects (``H``): u | θ, ω with the subject
        intercepts integrated out (:meth:`_collapsed_sites`), τ | u, then steps 1–4 on
        y − Hu (see the module docstring)."""
        kw = model_kwargs
        if kw.get("H") is None:
            return self._sweep_given_sites(state, model_args, kw)
        z = dict(state.z)
        site = {k: z.pop(k) for k in ("site_effect", "site_sd", "site_aux")}
        k_site, k_tau, k_rest = jax.random.split(state.rng_key, 3)
        dt = kw["Y"].dtype
        c = kw["Y"].shape[1]
        omega = (jnp.full((c,), kw["subject_var_prior"][0], dt) if self.fixed_subject_var
                 else z["subject_var"])
        u, Hs, jitter = self._collapsed_sites(k_site, z, kw, omega, site["site_sd"])
        sd, aux = draw_site_scales(k_tau, u, site["site_aux"], kw["site_scale"])
        shift = Hs @ u                                                     # (n, c)
        shifted = {**kw, "H": None, "Y": kw["Y"] - shift[kw["subject_index"]],
                   "Y_obs": kw["Y_obs"] - shift[:, None, :] * kw["visit_mask"][..., None]}
        inner = self._sweep_given_sites(GLRRGibbsState(state.i, z, k_rest, state.stats),
                                        model_args, shifted)
        z_new = dict(inner.z)
        z_new.update(site_effect=u, site_sd=sd, site_aux=aux)
        stats = dict(inner.stats)
        stats["cholesky_jitter"] = stats["cholesky_jitter"] + jitter
        return GLRRGibbsState(inner.i, z_new, inner.rng_key, stats)

    def _collapsed_sites(self, key, z, kw, omega, site_sd):
        """u | θ, ω, y with the intercepts b integrated out.  A subject's site is fixed,
        so with r_it = y_it − μ_it its visit mean r̄_i ~ N(u_s(i), Σ/T_i + D) and the
        deviations from it do not involve u: u_s ~ N(P_s⁻¹ Σ_{i∈s} K_i r̄_i, P_s⁻¹),
        K_i = (Σ/T_i + D)⁻¹, P_s = Σ_{i∈s} K_i + diag(1/τ²).  Returns (u, the subjects'
        site indicators (n × S), jitter count)."""
        idx = kw["subject_index"]
        n = kw["visit_mask"].shape[0]
        counts = jnp.sum(kw["visit_mask"], axis=1)
        Hs = jax.ops.segment_sum(kw["H"], idx, n) / counts[:, None]
        resid = kw["Y"] - self._visit_mean(z, kw)
        rbar = jax.ops.segment_sum(resid, idx, n) / counts[:, None]
        Sigma = self._noise_cov(z)
        C = Sigma[None] / counts[:, None, None] + jnp.diag(omega)[None]
        K = jnp.linalg.inv(C)
        K = 0.5 * (K + jnp.swapaxes(K, 1, 2))
        prec = jnp.einsum("is,icd->scd", Hs, K)
        lin = jnp.einsum("is,icd,id->sc", Hs, K, rbar)
        u, jitter = site_effects_given_precisions(key, prec, lin, site_sd, return_jitter=True)
        return u, Hs, jitter

    def _sweep_given_sites(self, state, model_args, model_kwargs):
        kw = model_kwargs
        z = dict(state.z)
        k_b, k_omega, k_glrr = jax.random.split(state.rng_key, 3)
        dt = kw["Y"].dtype
        a, b0 = kw["subject_var_prior"][0], kw["subject_var_prior"][1]
        c = kw["Y"].shape[1]
        omega = (jnp.full((c,), a, dt) if self.fixed_subject_var else z.pop("subject_var"))
        # 1. random intercepts, η integrated out
        b = self._likelihood(z, kw, omega).subject_effect(kw["Y_obs"], key=k_b)
        # 2. their variances
        if not self.fixed_subject_var:
            n = b.shape[0]
            rate = b0 + 0.5 * jnp.sum(b * b, axis=0)
            omega = rate / jax.random.gamma(k_omega, a + n / 2.0, (c,), dt)
        # 3. GLRR's sweep on the visits with the intercepts removed
        shifted = {**kw, "Y": kw["Y"] - b[kw["subject_index"]]}
        inner = super().sample(GLRRGibbsState(state.i, z, k_glrr, state.stats),
                               model_args, shifted)
        z_new = dict(inner.z)
        # 4. SNP loadings and layer weights again, with b integrated out
        k_delta, k_next = jax.random.split(inner.rng_key)
        z_new["U"], z_new["delta"], jitter = self._collapsed_layers(k_delta, z_new, kw, omega)
        stats = dict(inner.stats)
        stats["cholesky_jitter"] = stats["cholesky_jitter"] + jitter
        if not self.fixed_subject_var:
            z_new["subject_var"] = omega
        return GLRRGibbsState(inner.i, z_new, k_next, stats)

    def _collapsed_pieces(self, z, kw, omega):
        """What the collapsed updates share: Σ's Cholesky, D^{1/2}, Q, the shrinkage
        1/(1 + T_i λ_m) (n × c), the residuals without the genetic term and their
        per-subject sums in the (Q, D^{1/2}Σ⁻¹) basis."""
        Y, Z = kw["Y"], kw["Z"]
        n = kw["visit_mask"].shape[0]
        counts = jnp.sum(kw["visit_mask"], axis=1)
        resid = Y if Z is None else Y - Z @ z["gamma"]
        chol = jnp.linalg.cholesky(self._noise_cov(z))
        sd = jnp.sqrt(omega)
        half = solve_triangular(chol, jnp.diag(sd), lower=True)           # L⁻¹ D^{1/2}
        lam, Q = jnp.linalg.eigh(half.T @ half)
        shrink = 1.0 / (1.0 + counts[:, None] * jnp.maximum(lam, 0.0)[None, :])
        return chol, sd, Q, shrink, resid, n

    def _collapsed_layers(self, key, z, kw, omega):
        """u_h (layer by layer, d ≤ n) and then δ, each from its conditional with the
        random intercepts integrated out (exact Gaussians).

        With layer contributions M_h = (X̃u_h) v_hᵀ (N × c), the subjects' covariance
        C_i = I ⊗ Σ + 11ᵀ ⊗ D and the module's (Q, λ), the inner product the
        likelihood weights them with is
        ⟨M_h, M_k⟩ = Σ_it (X̃u_h)_it (X̃u_k)_it v_hᵀΣ⁻¹v_k
                     − Σ_i S_ih S_ik Σ_m P_mh P_mk / (1 + T_i λ_m),
        S_ih = Σ_t (X̃u_h)_it, P = Qᵀ D^{1/2} Σ⁻¹ V.  So δ has precision
        (X̃U)ᵀ(X̃U) ∘ VᵀΣ⁻¹V − Σ_i (S_i S_iᵀ) ∘ (Pᵀ diag(shrink_i) P) + diag θ, and u_h
        precision δ_h² (a_h X̃ᵀX̃ − S̃ᵀ diag(g_h) S̃) + prior, a_h = v_hᵀΣ⁻¹v_h,
        g_ih = Σ_m P_mh² shrink_im, S̃ = per-subject sums of the rows of X̃; the linear
        terms are the same inner products with the residuals y − Γᵀz̃.
        """
        X = kw["X"]
        U, V, delta = z["U"], z["V"], z["delta"]
        dt = X.dtype
        idx = kw["subject_index"]
        chol, sd, Q, shrink, resid, n = self._collapsed_pieces(z, kw, omega)
        SV = cho_solve((chol, True), V)                                   # Σ⁻¹V
        P = Q.T @ (sd[:, None] * SV)                                      # c × R
        s_res = cho_solve((chol, True), jax.ops.segment_sum(resid, idx, n).T).T
        q_res = (s_res * sd) @ Q                                          # n × c
        VSV = V.T @ SV
        jitter = jnp.zeros((), jnp.int32)
        k_u, k_d = jax.random.split(key)
        XU = X @ U
        if X.shape[1] <= n:
            keys = jax.random.split(k_u, self.rank)
            Xs = jax.ops.segment_sum(X, idx, n)                           # S̃ (n × d)
            XtX = X.T @ X
            prior = (z["inv_s_u"] if self.snp_laplace
                     else jnp.full(U.shape, X.shape[1], dt))
            RSV = resid @ SV                                              # N × R
            for h in range(self.rank):
                S = jax.ops.segment_sum(XU, idx, n)
                g = shrink @ (P[:, h] ** 2)                               # n
                others = (delta * VSV[:, h]).at[h].set(0.0)
                cross = jnp.einsum("im,m,mk->ik", shrink, P[:, h], P) * S  # n × R
                lin_visits = RSV[:, h] - XU @ others
                lin_subjects = (q_res * shrink) @ P[:, h] - cross @ (delta.at[h].set(0.0))
                b = delta[h] * (X.T @ lin_visits - Xs.T @ lin_subjects)
                gram = delta[h] ** 2 * (VSV[h, h] * XtX - (Xs.T * g) @ Xs)
                u, j = gaussian_columns_given_precision(keys[h], gram, b[:, None],
                                                        prior[:, h], 1.0, return_jitter=True)
                jitter = jitter + j
                U = U.at[:, h].set(u[:, 0])
                XU = XU.at[:, h].set(X @ u[:, 0])
        S = jax.ops.segment_sum(XU, idx, n)                               # n × R
        G = (XU.T @ XU) * VSV - jnp.einsum("ih,ik,im,mh,mk->hk", S, S, shrink, P, P)
        rhs = jnp.sum(XU * (resid @ SV), axis=0) \
            - jnp.einsum("ih,im,mh->h", S, q_res * shrink, P)
        draw, j = gaussian_columns_given_precision(
            k_d, G, rhs[:, None], self._theta(z, kw, dt), 1.0, return_jitter=True)
        return U, draw[:, 0], jitter + j

    def model_sites(self, z):
        out = super().model_sites(z)
        if "subject_var" in z:
            out["subject_var"] = z["subject_var"]
        return out
