r"""Exact blocked Gibbs kernel of the bilateral GSMTR (:mod:`bayesimg.models.gsmtr.bilateral`).

It runs in the rotated coordinates of the model's docstring: phenotype columns
ordered [(L + R)/√2 of the P pairs | (L − R)/√2 of the pairs | the U unpaired
measures], in which the noise is independent with variance σ² s_j, s_j = 1 + ρ,
1 − ρ, 1 for the three groups, and the bgsmtr prior W | σ², τ, ω ~ N(0, σ² D⁻¹) per
column is unchanged.  With an ROI graph the sums and differences are further taken to
the eigenvectors U of the normalised adjacency Ã (:mod:`.roi_graph`), grouped by equal
eigenvalue μ_g: the column groups are [sums of mode group 1, …, G | differences of mode
group 1, …, G | unpaired] with s = (1 + ρ)/(1 − ρ_s μ_g), (1 − ρ)/(1 − ρ_s μ_g), 1.
One sweep:

* (σ², W) | ρ, ρ_s, τ, ω, Γ jointly: σ² ~ InvGamma(nc/2 + 3, q/2 + 1) with W integrated
  out, q = Σ_g Σ_{j∈g} (‖t_j‖² − t_jᵀX A_g⁻¹Xᵀt_j)/s_g, A_g = XᵀX + s_g D, then
  w_j | σ² ~ N(A_g⁻¹Xᵀt_j, σ² s_g A_g⁻¹)
  (:func:`~bayesimg.models.core.conditionals.gaussian_column_groups`: one Cholesky per
  group, or of s_g I + XD⁻¹Xᵀ when d > n; 2 or 3 groups without a graph, 2G + 1 with
  one, G ≤ P distinct eigenvalues).  The groups are unrolled: without a graph the
  draws are exactly those of the kernel before the graph was added, and with one both
  compile time and sweep time grow with G (measured at d = 200, c = 70 on a loaded
  2-core machine: one collapsed (σ², W) draw 0.08 s with 2 groups, 0.54 s with 38, and
  17.5 s of compile for that block with 38 groups; a padded, vmapped variant compiled in
  1.8 s but ran 2× slower per sweep, so it was not kept).  With no noise correlation
  (ρ = ρ_s = 0) this is the GSMTR kernel's draw;
* τ, ω | W, σ²: the GSMTR kernel's inverse-Gaussian draws (row norms of W do not
  change under the rotation);
* ρ | W, σ², ρ_s, Γ: with r_j the residual sum of squares of rotated column j over the
  n subjects, S₊ = Σ_{sum columns} (1 − ρ_s μ_j) r_j/σ², S₋ likewise over the
  difference columns, and the Beta(a, b) prior on (1 + ρ)/2,

      log p(ρ | ·) = (a − 1 − nP/2) log(1 + ρ) + (b − 1 − nP/2) log(1 − ρ)
                     − S₊ / (2(1 + ρ)) − S₋ / (2(1 − ρ)) + const;

* ρ_s | W, σ², ρ, Γ (graph only): with Q_g = Σ_{j∈g, sums} r_j/(σ²(1 + ρ)) +
  Σ_{j∈g, differences} r_j/(σ²(1 − ρ)), m_g modes in group g, and the Beta(a_s, b_s)
  prior on (ρ_s − l)/(h − l) over the valid range (l, h) = (1/μ_min, 1/μ_max),

      log p(ρ_s | ·) = Σ_g [n m_g log(1 − ρ_s μ_g) + ρ_s μ_g Q_g / 2]
                       + (a_s − 1) log(ρ_s − l) + (b_s − 1) log(h − ρ_s) + const,

  which is log-concave for a_s, b_s ≥ 1;
  neither has a standard form, and each is updated by slice sampling on its whole
  support (:func:`~bayesimg.models.core.conditionals.slice_bounded`), an update that
  leaves its conditional exactly invariant;
* Γ | W, σ², ρ, ρ_s: per group, columns N(P_g⁻¹Zᵀr_j/(σ² s_g), P_g⁻¹),
  P_g = ZᵀZ/(σ² s_g) + I/s² (the Γ prior is isotropic, hence also unchanged by the rotation);
* λ₁, λ₂ | τ, ω under a hyperprior, as in GSMTR;
* site random effects (``H`` given; :mod:`bayesimg.models.core.site_effects`): the site
  indicators join the covariates in the sufficient statistics (Z̃ = [Z, H], as in
  GSMTR's kernel) and the rotated effects ũ = uR enter the target like Γ.  Γ is drawn
  given ũ as above.  Then ũ_s | Γ, W, σ², ρ, ρ_s ~ N(P_s⁻¹ b_s, P_s⁻¹), with
  P_s = n_s diag(1/(σ² s_j)) + Rᵀ diag(1/τ²) R (the N(0, diag τ²) prior on u, rotated)
  and b_s the site's rotated residual sum scaled by 1/(σ² s_j).  Finally τ, ν | u = ũRᵀ.

The recorded draws are taken back to the left/right coordinates (W = W_rot Rᵀ, R the
orthogonal rotation).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from bayesimg.models.core.conditionals import gaussian_column_groups, slice_bounded
from bayesimg.models.core.site_effects import (
    draw_site_scales,
    site_augmented,
    site_effects_given_precisions,
    stacked_coefficients,
)
from bayesimg.models.gsmtr.gibbs import GSMTRGibbs, GSMTRGibbsState
from bayesimg.models.gsmtr.pairs import rotate_pairs, unrotate_pairs
from bayesimg.models.gsmtr.roi_graph import spatial_range


def _mode_sizes(kw, mode_sizes) -> tuple[int, ...]:
    """Static sizes of the groups of graph modes (one group of all P pairs without a graph)."""
    return (kw["pair_left"].shape[0],) if mode_sizes is None else tuple(mode_sizes)


def _group_sizes(kw, mode_sizes=None) -> tuple[int, ...]:
    """Static sizes of the rotated column groups: sums and differences per mode group,
    unpaired (if any)."""
    modes = _mode_sizes(kw, mode_sizes)
    n_unpaired = kw["unpaired"].shape[0]
    return modes + modes + ((n_unpaired,) if n_unpaired else ())


def _noise_scales(rho, sizes, spatial=None):
    """s_g per group: (1 ± ρ)·spatial_g for sums and differences, 1 for unpaired;
    ``spatial`` (G,) = 1/(1 − ρ_s μ_g) per mode group (None: one group, no graph)."""
    if spatial is None:
        return jnp.stack([1.0 + rho, 1.0 - rho] + [jnp.ones_like(rho)] * (len(sizes) - 2))
    G = spatial.shape[0]
    return jnp.concatenate([(1.0 + rho) * spatial, (1.0 - rho) * spatial,
                            jnp.ones((len(sizes) - 2 * G,), spatial.dtype)])


def _rotated(kw, M):
    return rotate_pairs(M, kw["pair_left"], kw["pair_right"], kw["unpaired"],
                        kw.get("graph_vectors"))


class BilateralGSMTRGibbs(GSMTRGibbs):
    """Blocked Gibbs kernel for :class:`~bayesimg.models.BilateralGSMTR`."""

    def __init__(self, hyperprior=None, covariate_scale: float = 10.0,
                 rho_prior: tuple[float, float] = (1.0, 1.0), *,
                 mode_sizes: tuple[int, ...] | None = None,
                 rho_spatial_prior: tuple[float, float] = (1.0, 1.0)):
        super().__init__(hyperprior=hyperprior, covariate_scale=covariate_scale)
        self.rho_prior = rho_prior
        #: sizes of the groups of equal graph eigenvalues (None: no ROI graph)
        self.mode_sizes = mode_sizes
        self.rho_spatial_prior = rho_spatial_prior

    def init(self, rng_key, num_warmup, init_params, model_args, model_kwargs):
        Yr = _rotated(model_kwargs, model_kwargs["Y"])
        state = self._initial_state(rng_key, model_kwargs, Yr)
        z = dict(state.z, rho=jnp.zeros((), Yr.dtype))
        if self.mode_sizes is not None:
            z["rho_spatial"] = jnp.zeros((), Yr.dtype)
        cache = dict(state.cache)
        if "XtX" in cache:
            cache["YtY_cols"] = jnp.sum(Yr * Yr, axis=0)
        state = state._replace(z=z, cache=cache)
        return self.sample(state, model_args, model_kwargs)

    def sample(self, state, model_args, model_kwargs):
        kw = model_kwargs
        X, Z = kw["X"], site_augmented(kw)
        r = 0 if kw["Z"] is None else kw["Z"].shape[1]
        gene_index, gene_sizes = kw["gene_index"], kw["gene_sizes"]
        graph = self.mode_sizes is not None
        modes = _mode_sizes(kw, self.mode_sizes)
        sizes = _group_sizes(kw, self.mode_sizes)
        bounds = [0]
        for size in sizes:
            bounds.append(bounds[-1] + size)
        n_pairs, G = sum(modes), len(modes)
        n, d = X.shape
        c = sum(sizes)
        z = dict(state.z)
        keys = jax.random.split(state.rng_key, 7)
        k_rho = jax.random.fold_in(state.rng_key, 7)
        if graph:
            # μ_g of each mode group (equal within a group) and (1 − ρ_s μ_g)⁻¹
            mu = kw["graph_values"][jnp.asarray(bounds[:G])]

            def spatial_of(rho_s):
                return 1.0 / (1.0 - rho_s * mu)
        else:
            def spatial_of(rho_s):
                return None
        lam1 = z.get("lambda1", kw["lambda1"])
        lam2 = z.get("lambda2", kw["lambda2"])
        cache = state.cache
        narrow = "XtX" in cache
        if narrow:
            xt_target, col_sq = cache["XtY"], cache["YtY_cols"]
            if Z is not None:
                g = stacked_coefficients(z)
                xt_target = xt_target - cache["XtZ"] @ g
                col_sq = (col_sq - 2.0 * jnp.sum(g * cache["ZtY"], axis=0)
                          + jnp.sum(g * (cache["ZtZ"] @ g), axis=0))
        else:
            Yr = _rotated(kw, kw["Y"])
            target = Yr if Z is None else Yr - Z @ stacked_coefficients(z)

        # (σ², W) | ρ, τ, ω, Γ: σ² with W integrated out, then W | σ²
        prior_prec = 1.0 / z["tau"][gene_index] + 1.0 / z["omega"]

        def draw_sigma2(q):
            return (q / 2.0 + 1.0) / jax.random.gamma(keys[3], n * c / 2.0 + 3.0,
                                                      dtype=X.dtype)

        scales = _noise_scales(z["rho"], sizes, spatial_of(z.get("rho_spatial")))
        if narrow:
            W, sigma2, n_jitter = gaussian_column_groups(
                keys[0], cache["XtX"], xt_target, col_sq, prior_prec, scales, sizes,
                draw_sigma2)
        else:
            W, sigma2, n_jitter = gaussian_column_groups(
                keys[0], None, None, None, prior_prec, scales, sizes, draw_sigma2,
                X=X, T=target)
        z["W"], z["sigma2"] = W, sigma2

        # 1/τ, 1/ω | W, σ²
        z["tau"], z["omega"] = self._draw_scales(keys[1], keys[2], W, sigma2, lam1, lam2,
                                                 gene_index, len(gene_sizes))

        # ρ | W, σ², ρ_s, Γ (slice update on (−1, 1))
        if narrow:
            rss = (col_sq - 2.0 * jnp.sum(W * xt_target, axis=0)
                   + jnp.sum(W * (cache["XtX"] @ W), axis=0))
        else:
            resid = target - X @ W
            rss = jnp.sum(resid * resid, axis=0)
        if graph:
            # per mode group: residual sums of squares of the sum and difference columns
            rss_plus = jnp.stack([jnp.sum(rss[bounds[g]:bounds[g + 1]])
                                  for g in range(G)]) / sigma2
            rss_minus = jnp.stack([jnp.sum(rss[bounds[G + g]:bounds[G + g + 1]])
                                   for g in range(G)]) / sigma2
            precision_s = 1.0 - z["rho_spatial"] * mu          # 1/spatial_g
            s_plus = jnp.sum(precision_s * rss_plus)
            s_minus = jnp.sum(precision_s * rss_minus)
        else:
            s_plus = jnp.sum(rss[bounds[0]:bounds[1]]) / sigma2
            s_minus = jnp.sum(rss[bounds[1]:bounds[2]]) / sigma2
        a, b = self.rho_prior
        half_np = n * n_pairs / 2.0

        def log_density(r):
            value = ((a - 1.0 - half_np) * jnp.log1p(r) + (b - 1.0 - half_np) * jnp.log1p(-r)
                     - 0.5 * s_plus / (1.0 + r) - 0.5 * s_minus / (1.0 - r))
            return jnp.where(jnp.abs(r) < 1.0, value, -jnp.inf)

        z["rho"] = slice_bounded(k_rho, log_density, z["rho"], -1.0, 1.0)

        # ρ_s | W, σ², ρ, Γ (slice update on its valid range (1/μ_min, 1/μ_max))
        if graph:
            z["rho_spatial"] = self._draw_rho_spatial(
                jax.random.fold_in(state.rng_key, 8), z["rho_spatial"], z["rho"],
                rss_plus, rss_minus, mu, jnp.asarray(modes, X.dtype), n, kw["graph_values"])

        # Γ | W, σ², ρ, ρ_s (and ũ): one factorisation per column group
        if Z is not None:
            zt_resid = (cache["ZtY"] - cache["XtZ"].T @ W) if narrow \
                else Z.T @ (Yr - X @ W)
            scales = _noise_scales(z["rho"], sizes, spatial_of(z.get("rho_spatial")))
            col_scale = jnp.concatenate([jnp.full((k,), 1.0, W.dtype) * scales[g]
                                         for g, k in enumerate(sizes)])
            ZtZ = cache["ZtZ"]
            if r:
                rhs = zt_resid[:r]
                if kw.get("H") is not None:
                    rhs = rhs - ZtZ[:r, r:] @ z["site_effect"]
                noise = jax.random.normal(keys[4], (r, c), W.dtype)
                parts = []
                for g in range(len(sizes)):
                    cols = slice(bounds[g], bounds[g + 1])
                    part, jit = self._draw_gamma(ZtZ[:r, :r], rhs[:, cols], noise[:, cols],
                                                 sigma2 * scales[g])
                    parts.append(part)
                    n_jitter = n_jitter + jit
                z["gamma"] = jnp.concatenate(parts, axis=1)
            if kw.get("H") is not None:
                site_sums = zt_resid[r:]
                if r:
                    site_sums = site_sums - ZtZ[r:, :r] @ z["gamma"]
                z, jit = self._draw_sites(keys[4], z, kw, jnp.diagonal(ZtZ[r:, r:]),
                                          site_sums, sigma2 * col_scale)
                n_jitter = n_jitter + jit

        # λ | τ, ω (hyperprior)
        self._draw_lambdas(keys[5], keys[6], z, gene_sizes, d, c)

        return GSMTRGibbsState(state.i + 1, z, state.cache,
                               jax.random.split(state.rng_key, 1)[0],
                               {"cholesky_jitter": n_jitter})

    @staticmethod
    def _draw_sites(key, z, kw, counts, site_sums, noise_var):
        """ũ | rest in rotated coordinates (rows independent over sites), then τ, ν | u."""
        z = dict(z)
        c = site_sums.shape[1]
        R = _rotated(kw, jnp.eye(c, dtype=site_sums.dtype))          # M_rot = M R
        prior = R.T @ jnp.diag(1.0 / z["site_sd"] ** 2) @ R
        prec = counts[:, None, None] * jnp.diag(1.0 / noise_var)[None]
        k_u, k_tau = jax.random.split(jax.random.fold_in(key, 11))
        u_rot, jitter = site_effects_given_precisions(
            k_u, prec, site_sums / noise_var, z["site_sd"], prior_precision=prior,
            return_jitter=True)
        z["site_effect"] = u_rot
        u = unrotate_pairs(u_rot, kw["pair_left"], kw["pair_right"], kw["unpaired"],
                           kw.get("graph_vectors"))
        z["site_sd"], z["site_aux"] = draw_site_scales(k_tau, u, z["site_aux"],
                                                       kw["site_scale"])
        return z, jitter

    def rho_spatial_log_density(self, rho, rss_plus, rss_minus, mu, mode_counts, n,
                                graph_values):
        """log p(ρ_s | W, σ², ρ, Γ) up to a constant (module docstring), and its support.

        ``rss_plus``, ``rss_minus`` (G,): residual sums of squares over σ² of the sum and
        difference columns of each mode group; ``mu`` (G,) its eigenvalue; ``mode_counts``
        (G,) its number of modes; ``n`` subjects.  Returns ``(log_density, lower, upper)``."""
        lower, upper = spatial_range(graph_values)
        a, b = self.rho_spatial_prior
        quad = rss_plus / (1.0 + rho) + rss_minus / (1.0 - rho)

        def log_density(r):
            value = (jnp.sum(n * mode_counts * jnp.log1p(-r * mu) + 0.5 * r * mu * quad)
                     + (a - 1.0) * jnp.log(r - lower) + (b - 1.0) * jnp.log(upper - r))
            return jnp.where((r > lower) & (r < upper), value, -jnp.inf)

        return log_density, lower, upper

    def _draw_rho_spatial(self, key, rho_s, *args):
        """One slice update of ρ_s from its full conditional (:meth:`rho_spatial_log_density`)."""
        log_density, lower, upper = self.rho_spatial_log_density(*args)
        return slice_bounded(key, log_density, rho_s, lower, upper)

    def postprocess_fn(self, model_args, model_kwargs):
        add_norms = super().postprocess_fn(model_args, model_kwargs)
        left, right, unpaired = (model_kwargs["pair_left"], model_kwargs["pair_right"],
                                 model_kwargs["unpaired"])
        basis = model_kwargs.get("graph_vectors")

        def to_left_right(z):
            out = dict(z)
            out["W"] = unrotate_pairs(z["W"], left, right, unpaired, basis)
            if "gamma" in z:
                out["gamma"] = unrotate_pairs(z["gamma"], left, right, unpaired, basis)
            if "site_effect" in z:
                out["site_effect"] = unrotate_pairs(z["site_effect"], left, right, unpaired,
                                                     basis)
            return add_norms(out)

        return to_left_right
