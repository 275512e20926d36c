r"""Exact blocked Gibbs kernel for :class:`~bayesimg.models.factor.MultiViewFactor`.

All views (and the outcome, a one-feature "view" with a dense N(0, s_β²) loading
prior) are handled as P concatenated columns with linear predictor
ψ_ij = z_iᵀw_j + μ_j + x_iᵀb_j.  Every column contributes a Gaussian
pseudo-likelihood with per-entry information Ω_ij and response h_ij:

* Gaussian column, *augmented* (few scattered missing entries): missing entries
  of subjects present in the view are drawn from y_ij | ψ, τ ~ N(ψ_ij, 1/τ_j) at
  the start of each sweep (data augmentation, so the joint of parameters and
  missing values is sampled exactly); Ω_ij = τ_j·present_i.  The information
  is then shared by all features of a view, which makes the sweep O(n·P·K).
* Gaussian column, *weighted* (heavy scattered missingness): Ω_ij = τ_j·obs_ij.
* Bernoulli / Binomial(2) column: Pólya-Gamma augmentation (Polson, Scott &
  Windle 2013), ω_ij | ψ ~ PG(b_j, ψ_ij), Ω_ij = ω_ij·obs_ij and
  h_ij = (y_ij − b_j/2)·obs_ij.  PG(b, c) is drawn from its series
  (1/2π²) Σ_k g_k / ((k − ½)² + c²/4π²), g_k ~ Gamma(b, 1), with the first
  ``pg_terms`` terms exact and the remainder replaced by its mean (so the
  mean of ω is exact and the missing variance is O(1/T³): 0.07% of Var(ω)
  at T = 3).  ω is drawn only at observed entries (a missing one carries no
  information), so the cost is linear in the observed entries.

One sweep:

1. missing Gaussian entries (augmented columns) and ω;
2. z_i ~ N(Λ_i⁻¹ Σ_j (h_ij − Ω_ij o_ij) w_j, Λ_i⁻¹), Λ_i = I + Σ_j Ω_ij w_j w_jᵀ
   (o_ij = μ_j + x_iᵀb_j), for all i at once (batched K×K Cholesky);
3. (w_j, μ_j, b_j) ~ N(Q_j⁻¹ Gᵀh_j, Q_j⁻¹), Q_j = Gᵀ diag(Ω_·j) G + diag(prior_j),
   G = [Z, 1, X], for all columns at once; prior_j = α_m(j)k/λ²_jk + 1/c² on the
   loadings of view columns, 1/s_β² on β, 1/s_μ², 1/s_b² on μ, b;
4. τ_j ~ Gamma(a_τ + n_j/2, b_τ + Σ_i Ω-weighted residual²/2) (Gaussian columns);
5. horseshoe (Makalic & Schmidt 2016): λ²_jk ~ IG(1, 1/ν_jk + α w²_jk/2),
   ν_jk ~ IG(1, 1 + 1/λ²_jk); α_mk ~ Gamma(a_α + D_m/2, b_α + Σ_j w²_jk/(2λ²_jk)).

The slab factor exp(−w²/2c²) only adds 1/c² to the loading precision, so every
step is an exact full conditional of the joint density in
:mod:`bayesimg.models.factor` (the PG series truncation aside).

Start: the PCA + varimax solution, rotated by a random rotation exp(A), A
skew-symmetric with N(0, ``init_jitter``²) entries (a different one per chain).

Scale (100 subjects × 20,000 features × 15 factors): the per-column (Q × Q)
precisions and per-subject (K × K) ones are formed packed (Q(Q+1)/2 distinct
entries, :mod:`bayesimg.models.factor.packed`) by one GEMM each and factored by
an unrolled Cholesky over contiguous vectors; the sweep's uniforms come from
XLA's counter-based bit generator (:func:`uniform_open_closed`), and logarithms
and sines of the variates are taken in float32 (relative error ≤ 1e-7, no
truncation of tails), which halved the cost of the ~1.5 M variates a sweep
needs at that size.

Compilation: XLA compile time of the sweep decided the cold-start speed against
MOFA+, so the sweep is written to stay small: one random-bits call per sweep
(:class:`SweepRandoms`) and one vectorised Gamma rejection loop for every Gamma
update (:func:`gamma_variates`) instead of ~13 threefry calls and two
``jax.random.gamma``; the unrolled batched Cholesky (fast, ~1 s of compile per
call site) only where thousands of systems are drawn, once for all columns'
coefficients; with Gaussian views only, factors drawn per presence pattern
(:func:`_gaussian_by_pattern`, no per-subject Cholesky); static index sets as
slices and broadcasts rather than gathers and scatters.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.linalg import cho_solve, solve_triangular

from bayesimg.models.core.gibbs_kernel import ExactGibbsKernel
from bayesimg.models.factor.layout import (  # noqa: F401  (split_columns re-exported)
    TRIALS,
    FactorLayout,
    split_columns,
)
from bayesimg.models.factor.packed import (
    pack,
    pack_gram,
    packed_gaussian_draw,
    packed_outer,
    packed_outer_t,
    unpack,
)

#: Up to this many slots (views + outcome), Gibbs draws the factors per presence pattern.
MAX_PATTERN_SLOTS = 4


class FactorGibbsState(NamedTuple):
    i: jnp.ndarray
    z: dict
    Ys: jnp.ndarray          # augmented Gaussian columns, missing entries imputed
    rng_key: jnp.ndarray


def polya_gamma(key, b, c, n_terms: int = 10):
    """Approximate PG(b, c) draws (b ∈ {1, 2}: a sum of b exponentials per term).

    The first ``n_terms`` terms of the infinite-sum representation are exact;
    the tail is replaced by its expectation, so E[ω] = b·tanh(c/2)/(2c) exactly.
    """
    u = jax.random.uniform(key, jnp.shape(c) + (n_terms, 2), c.dtype,
                           minval=jnp.finfo(c.dtype).tiny, maxval=1.0)
    return polya_gamma_from(u, b, c)


def polya_gamma_from(u, b, c):
    """:func:`polya_gamma` driven by given U(0, 1] draws ``u`` of shape ``c.shape + (T, 2)``
    (or ``c.shape + (T, 1)`` when every b is 1).

    The Gamma(b, 1) weight of term k is −log(u_k1 · u_k2) for b = 2 (a sum of two
    exponentials with one logarithm), −log(u_k1) for b = 1.
    """
    c = jnp.abs(c)
    shift = (c / (2 * math.pi)) ** 2
    # the logarithm in float32 (relative error ≤ 1e-7; several times cheaper on CPU)
    low = jnp.float32 if c.dtype == jnp.float64 else c.dtype
    two = b >= 2
    # the T terms summed one by one (T is small and static): a reduction over a
    # trailing axis of length T is ~20× slower on XLA's CPU backend
    head = head_mean = 0.0
    for k in range(u.shape[-2]):
        u_k = jnp.where(two, u[..., k, 0] * u[..., k, 1], u[..., k, 0]) \
            if u.shape[-1] > 1 else u[..., k, 0]
        g = -jnp.log(u_k.astype(low)).astype(c.dtype)
        denom = (k + 0.5) ** 2 + shift
        head = head + g / denom
        head_mean = head_mean + 1.0 / denom
    head = head / (2 * math.pi**2)
    head_mean = b * head_mean / (2 * math.pi**2)
    safe_c = jnp.where(c < 1e-4, 1.0, c)
    total_mean = jnp.where(c < 1e-4, b / 4.0, b * jnp.tanh(safe_c / 2) / (2 * safe_c))
    return head + jnp.maximum(total_mean - head_mean, 0.0)


def gamma_variates(key, shape):
    """Exact Gamma(shape, 1) draws (any positive ``shape`` array, float dtype).

    Marsaglia & Tsang (2000) rejection, vectorised: every element proposes in
    each round and keeps its first accepted proposal; a ``while_loop`` repeats
    rounds until all have accepted (acceptance per round ≥ 0.95 for shape ≥ 1,
    so a few rounds; capped at 200 rounds, which a finite shape fails to finish
    with probability < 10⁻²⁵⁰, so NaN input cannot hang the sampler).  Shapes
    below 1 use Gamma(a) = Gamma(a + 1)·U^{1/a}, U a fourth uniform of the
    accepted round (independent of the acceptance).
    One small loop instead of ``jax.random.gamma``'s per-element keys and
    loops: cheaper to run and to compile.
    """
    dtype = shape.dtype
    tiny = jnp.finfo(dtype).tiny
    boost = shape < 1.0
    d = jnp.where(boost, shape + 1.0, shape) - 1.0 / 3.0
    c = 1.0 / jnp.sqrt(9.0 * d)

    def body(carry):
        i, x, u_boost, done = carry
        u = jax.random.uniform(jax.random.fold_in(key, i), (4,) + shape.shape, dtype,
                               minval=tiny, maxval=1.0)
        z = jnp.sqrt(-2.0 * jnp.log(u[0])) * jnp.cos(2.0 * math.pi * u[1])
        v = (1.0 + c * z) ** 3
        safe_v = jnp.where(v > 0, v, 1.0)
        ok = (v > 0) & (jnp.log(u[2]) < 0.5 * z**2 + d - d * safe_v + d * jnp.log(safe_v))
        new = ~done & ok
        return (i + 1, jnp.where(new, d * safe_v, x), jnp.where(new, u[3], u_boost),
                done | ok)

    init = (jnp.zeros((), jnp.int32), jnp.zeros_like(shape), jnp.ones_like(shape),
            jnp.zeros(shape.shape, bool))
    _, x, u, _ = jax.lax.while_loop(lambda carry: ~jnp.all(carry[3]) & (carry[0] < 200),
                                    body, init)
    return jnp.where(boost, x * jnp.exp(jnp.log(u) / shape), x)


def uniform_open_closed(key, shape, dtype):
    """U(0, 1] variates from XLA's counter-based bit generator (three-fry), seeded by
    four words drawn from ``key``: ~2× cheaper on CPU than ``jax.random.uniform``,
    which is the largest single cost of a sweep with tens of thousands of columns.
    The top 52 (23 in float32) bits give u' ∈ [0, 1) on a grid; 1 − u' ∈ (0, 1]."""
    seed = jax.random.bits(key, (4,), jnp.uint32)
    if dtype == jnp.float64:
        _, bits = jax.lax.rng_bit_generator(seed, shape, jnp.uint64,
                                            algorithm=jax.lax.RandomAlgorithm.RNG_THREE_FRY)
        one = jnp.uint64(0x3FF0000000000000)
        word = jnp.uint64
    else:
        _, bits = jax.lax.rng_bit_generator(seed, shape, jnp.uint32,
                                            algorithm=jax.lax.RandomAlgorithm.RNG_THREE_FRY)
        one = jnp.uint32(0x3F800000)
        word = jnp.uint32
    # mantissa bits under the exponent of 1.0: a float in [1, 2) (an integer-to-float
    # conversion of 64-bit words does not vectorise on x86)
    shift = word(64 - 52) if word is jnp.uint64 else word(32 - 23)
    in_1_2 = jax.lax.bitcast_convert_type((bits >> shift) | one, dtype)
    return 2.0 - in_1_2


class SweepRandoms:
    """Every standard normal, Exp(1) and U(0, 1) variate of one sweep, from one draw.

    Each random-bits call compiles to ~100 HLO ops (threefry), so the sweep
    draws all its uniforms at once (counts are static) and its steps take
    consecutive, non-overlapping slices: normals by Box–Muller (on CPU,
    ``jax.random.normal`` in float64 spends most of its time in the inverse error
    function, ~5× slower), exponentials as −log U.
    """

    def __init__(self, key, dtype, n_normal: int, n_exp: int, n_unif: int):
        half = (n_normal + 1) // 2
        u = uniform_open_closed(key, (2 * half + n_exp + n_unif,), dtype)
        # logarithms and sines in float32 (several times cheaper on CPU than float64):
        # relative error ≤ 1e-7 in each variate; u ≥ 2⁻⁵³ is far inside float32's
        # range, so the tails are not cut
        low = jnp.float32 if dtype == jnp.float64 else dtype
        r = jnp.sqrt(-2.0 * jnp.log(u[:half].astype(low)))
        t = (2.0 * math.pi) * u[half:2 * half].astype(low)
        pools = {"normal": jnp.concatenate([r * jnp.cos(t), r * jnp.sin(t)]).astype(dtype),
                 "exponential": (-jnp.log(u[2 * half:2 * half + n_exp].astype(low)))
                 .astype(dtype),
                 "uniform": u[2 * half + n_exp:]}
        # materialised once: without the barrier XLA re-derives the variates inside
        # every consumer fusion (measured: Box–Muller computed three times)
        self._pools = jax.lax.optimization_barrier(pools)
        self._used = dict.fromkeys(self._pools, 0)

    def take(self, kind: str, shape) -> jnp.ndarray:
        size = int(np.prod(shape))
        start = self._used[kind]
        if start + size > self._pools[kind].shape[0]:
            raise RuntimeError(f"sweep randoms: {kind} pool too small")  # a counting bug
        self._used[kind] = start + size
        return self._pools[kind][start:start + size].reshape(shape)

    def check_used(self) -> None:
        """Raise unless every variate was taken (the static counts match the sweep)."""
        left = {k: p.shape[0] - self._used[k] for k, p in self._pools.items()}
        if any(n > (1 if k == "normal" else 0) for k, n in left.items()):  # Box–Muller pairs
            raise RuntimeError(f"sweep randoms: unused variates {left}")


def _is_range(idx: np.ndarray) -> bool:
    return idx.size > 0 and np.array_equal(idx, np.arange(idx[0], idx[0] + idx.size))


def take_rows(x, idx: np.ndarray):
    """``x[idx]`` for a static index array: a slice when ``idx`` is a contiguous range
    (XLA's CPU gathers are slow), broadcasts of single rows when it is sorted runs
    of labels (the view of each column), a gather otherwise."""
    idx = np.asarray(idx)
    if _is_range(idx):
        return x[int(idx[0]):int(idx[0]) + idx.size]
    if idx.size and np.all(np.diff(idx) >= 0):
        starts = np.flatnonzero(np.r_[True, np.diff(idx) > 0])
        counts = np.diff(np.r_[starts, idx.size])
        parts = [jnp.broadcast_to(x[int(idx[s])][None], (int(c),) + x.shape[1:])
                 for s, c in zip(starts, counts, strict=True)]
        return parts[0] if len(parts) == 1 else jnp.concatenate(parts)
    return x[jnp.asarray(idx)]


def sum_rows_by(x, labels: np.ndarray, n_groups: int):
    """``segment_sum(x, labels, n_groups)`` for static labels: sums of slices when the
    labels are sorted (the columns of a view are consecutive), a scatter-add otherwise."""
    labels = np.asarray(labels)
    if labels.size == 0 or np.any(np.diff(labels) < 0):
        return jax.ops.segment_sum(x, jnp.asarray(labels), num_segments=n_groups)
    bounds = np.searchsorted(labels, np.arange(n_groups + 1))
    return jnp.stack([jnp.sum(x[int(a):int(b)], axis=0)
                      for a, b in zip(bounds[:-1], bounds[1:], strict=True)])


def gram_by(A, B, labels: np.ndarray, n_groups: int):
    """(n_groups, k, k): Σ_{j in group g} a_j b_jᵀ for sorted static ``labels`` (one
    small GEMM per group), by a segment sum of outer products otherwise."""
    labels = np.asarray(labels)
    if labels.size == 0 or np.any(np.diff(labels) < 0):
        return sum_rows_by(A[:, :, None] * B[:, None, :], labels, n_groups)
    bounds = np.searchsorted(labels, np.arange(n_groups + 1))
    return jnp.stack([A[int(a):int(b)].T @ B[int(a):int(b)]
                      for a, b in zip(bounds[:-1], bounds[1:], strict=True)])


def assemble_rows(n_rows: int, blocks):
    """Rows ``idx`` of the result set to ``values`` for each ``(idx, values)`` in
    ``blocks`` (static indices covering ``range(n_rows)`` exactly once): a
    concatenation when the blocks are consecutive ranges, a scatter otherwise."""
    blocks = [(np.asarray(i), v) for i, v in blocks if np.asarray(i).size]
    blocks.sort(key=lambda b: int(b[0][0]))
    if all(_is_range(i) for i, _ in blocks) and \
            np.array_equal(np.concatenate([i for i, _ in blocks]), np.arange(n_rows)):
        return blocks[0][1] if len(blocks) == 1 else jnp.concatenate([v for _, v in blocks])
    out = jnp.zeros((n_rows,) + blocks[0][1].shape[1:], blocks[0][1].dtype)
    for i, v in blocks:
        out = out.at[jnp.asarray(i)].set(v)
    return out


def _unrolled_cholesky_draw(prec, rhs, eps):
    """Cholesky, forward and back substitution written out over the (small) matrix
    size, each step vectorised over the batch: ~3× faster on CPU than batched
    LAPACK calls for thousands of 10×10 systems (:func:`packed_gaussian_draw`)."""
    return packed_gaussian_draw(pack(prec), rhs.T, eps.T).T


def _add_diagonal(packed_t, diag_t):
    """Add ``diag_t`` (q, B) to the diagonal of packed, transposed (q(q+1)/2, B)
    matrices (their first q rows, :mod:`bayesimg.models.factor.packed`)."""
    q = diag_t.shape[0]
    return jnp.concatenate([packed_t[:q] + diag_t, packed_t[q:]])


def _batched_gaussian(eps, prec, rhs):
    """Draw x ~ N(prec⁻¹ rhs, prec⁻¹) for a batch of (q, q) precisions (B, q, q),
    given standard normals ``eps`` (B, q).

    Large batches of small systems use the unrolled Cholesky (fast, but ~1 s of
    XLA compilation per call site); a handful of systems use LAPACK.
    """
    if prec.shape[-1] <= 16 and prec.shape[0] >= 64:
        return _unrolled_cholesky_draw(prec, rhs, eps)
    L = jnp.linalg.cholesky(prec)
    mean = cho_solve((L, True), rhs[..., None])[..., 0]
    return mean + solve_triangular(jnp.swapaxes(L, -1, -2), eps[..., None],
                                   lower=False)[..., 0]


def _gaussian_by_pattern(eps, present, A, rhs):
    """Draw z_i ~ N(Λ_i⁻¹ rhs_i, Λ_i⁻¹), Λ_i = I + Σ_m present_im A_m, for all i.

    Λ_i takes one of 2^M' values (M' slots, presence 0/1): each is factored once
    (LAPACK), giving Λ⁻¹ and L⁻ᵀ per pattern, and subject i uses those of its
    pattern (one-hot weights, no gather).  Same draw as :func:`_batched_gaussian`
    on the per-subject Λ_i (x = Λ⁻¹ rhs + L⁻ᵀ eps), without its ~1 s of XLA
    compilation for the unrolled per-subject Cholesky.
    """
    n, K = rhs.shape
    M = present.shape[1]
    bits = np.array([[(p >> m) & 1 for m in range(M)] for p in range(2**M)], float)
    eye = jnp.eye(K, dtype=rhs.dtype)
    Lam = eye + (jnp.asarray(bits, rhs.dtype) @ A).reshape(-1, K, K)      # (2^M, K, K)
    L = jnp.linalg.cholesky(Lam)
    L_inv_t = solve_triangular(jnp.swapaxes(L, -1, -2), jnp.broadcast_to(eye, Lam.shape),
                               lower=False)                              # L⁻ᵀ
    Lam_inv = L_inv_t @ jnp.swapaxes(L_inv_t, -1, -2)                     # Λ⁻¹ = L⁻ᵀL⁻¹
    code = present @ jnp.asarray(2.0 ** np.arange(M), rhs.dtype)          # pattern of i
    onehot = (code[:, None] == jnp.arange(2**M, dtype=rhs.dtype)).astype(rhs.dtype)
    both = (rhs @ jnp.swapaxes(Lam_inv, -1, -2).transpose(1, 0, 2).reshape(K, -1)
            + eps @ jnp.swapaxes(L_inv_t, -1, -2).transpose(1, 0, 2).reshape(K, -1))
    return jnp.sum(onehot[:, :, None] * both.reshape(n, 2**M, K), axis=1)


class FactorGibbs(ExactGibbsKernel):
    """Blocked Gibbs kernel; state ``z`` holds the concatenated parameters."""

    def __init__(self, model, layout: FactorLayout):
        self.K = model.n_factors
        self.layout = layout
        self.a_alpha, self.b_alpha = model.ard_prior
        self.a_tau, self.b_tau = model.noise_prior
        self.slab = model.slab_scale
        self.s_mu, self.s_b, self.s_beta = (model.intercept_scale, model.covariate_scale,
                                            model.outcome_scale)
        self.jitter = model.init_jitter
        self.pg_terms = model.pg_terms
        lay = layout
        self.col_view = lay.column_view()
        self.trials = np.asarray([TRIALS[k] for k in lay.column_likelihood()], float)
        self.sidx, self.widx = split_columns(lay)
        self.view_s = self.col_view[self.sidx]
        self.trials_w = self.trials[self.widx]
        self.gauss_w = self.trials_w == 0
        # uniforms per Pólya-Gamma series term: Gamma(b, 1) as a sum of b exponentials
        self.pg_uniforms = 2 if np.any(self.trials_w >= 2) else 1
        self.P_views = int(sum(lay.sizes))
        self.n_slots = lay.n_views + (1 if lay.outcome_kind else 0)
        # without weighted columns Λ_i depends only on which views subject i is
        # present in: one K × K factorisation per presence pattern serves them all
        self.by_pattern = len(self.widx) == 0 and self.n_slots <= MAX_PATTERN_SLOTS

    # ------------------------------------------------------------------ helpers
    def _design(self, X, n, dtype):
        ones = jnp.ones((n, 1), dtype)
        return ones if X is None else jnp.hstack([ones, X])

    def _prior_precision(self, z, dtype):
        K = self.K
        P = self.trials.shape[0]
        lam2, alpha = z["lam2"], z["alpha"]
        w_prec = take_rows(alpha, self.col_view[: self.P_views]) / lam2 + 1.0 / self.slab**2
        if self.layout.outcome_kind:
            w_prec = jnp.vstack([w_prec, jnp.full((1, K), 1.0 / self.s_beta**2, dtype)])
        r = self.layout.n_covariates
        rest = jnp.concatenate([jnp.full((P, 1), 1.0 / self.s_mu**2, dtype),
                                jnp.full((P, r), 1.0 / self.s_b**2, dtype)], axis=1)
        return jnp.concatenate([w_prec, rest], axis=1)            # (P, Q)

    # ------------------------------------------------------------------ init
    def init(self, rng_key, num_warmup, init_params, model_args, model_kwargs):
        kw = model_kwargs
        Y, mask = kw["Y"], kw["mask"]
        dtype = Y.dtype
        n, P = Y.shape
        K = self.K
        k_rot, k_state = jax.random.split(rng_key)
        # a random rotation near I (Cayley transform of a skew-symmetric matrix)
        A = self.jitter * jax.random.normal(k_rot, (K, K), dtype) / 2.0
        A = (A - A.T) / 2.0
        eye = jnp.eye(K, dtype=dtype)
        R = jnp.linalg.solve(eye - A, eye + A)
        Z = kw["init_Z"] @ R
        W = kw["init_W"] @ R
        trials = jnp.asarray(self.trials, dtype)
        n_obs = jnp.maximum(jnp.sum(mask, axis=0), 1.0)
        mean = jnp.sum(Y * mask, axis=0) / n_obs
        p = jnp.clip(mean / jnp.maximum(trials, 1.0), 0.02, 0.98)
        count = trials > 0
        W = jnp.where(count[:, None], W / (jnp.maximum(trials, 1.0) * p * (1 - p))[:, None], W)
        intercept = jnp.where(count, jnp.log(p / (1 - p)), mean)
        r = self.layout.n_covariates
        C = jnp.concatenate([intercept[:, None], jnp.zeros((P, r), dtype)], axis=1)
        resid = (Y - Z @ W.T - intercept[None, :]) * mask
        var = jnp.sum(resid**2, axis=0) / n_obs
        tau = jnp.where(count, 1.0, 1.0 / jnp.clip(var, 1e-2, 1e2))
        view = self.col_view[: self.P_views]
        w2 = W[: self.P_views] ** 2
        sums = sum_rows_by(w2, view, self.layout.n_views)
        sizes = jnp.asarray(self.layout.sizes, dtype)[:, None]
        alpha = 1.0 / (sums / sizes + 1e-2)
        z = {"Z": Z, "W": W, "C": C, "tau": tau,
             "lam2": jnp.ones((self.P_views, K), dtype), "nu": jnp.ones((self.P_views, K), dtype),
             "alpha": alpha}
        return FactorGibbsState(jnp.zeros((), jnp.int32), z, kw["Ys"], k_state)

    # ------------------------------------------------------------------ sweep
    def sample(self, state, model_args, model_kwargs):
        kw = model_kwargs
        present, X = kw["present"], kw["X"]
        Ys = state.Ys
        z = dict(state.z)
        dtype = Ys.dtype
        n = present.shape[0]
        K = self.K
        k_next, k_draws, k_gamma = jax.random.split(state.rng_key, 3)
        sidx, widx = self.sidx, self.widx
        Ps, Pw = len(sidx), len(widx)
        Z, W, C, tau = z["Z"], z["W"], z["C"], z["tau"]
        G1 = self._design(X, n, dtype)                                   # (n, 1 + r)
        Q = K + G1.shape[1]
        rand = SweepRandoms(k_draws, dtype, *self._random_counts(n, Q, kw))
        T = K * (K + 1) // 2
        Lam = jnp.zeros((n, T), dtype)                                   # packed Λ_i − I
        rhs = jnp.zeros((n, K), dtype)
        # Gamma(shape, 1) variates for τ (steps 3-4) and α (step 5): their shapes
        # do not depend on the state, so one draw serves every Gamma update
        g_tau_s, g_tau_w, g_alpha = self._gamma_draws(k_gamma, kw, dtype)

        # 1. missing Gaussian entries of present subjects (augmented columns)
        if Ps:
            Ws, Cs, tau_s = take_rows(W, sidx), take_rows(C, sidx), take_rows(tau, sidx)
            idx = kw["impute_index"]
            ys2 = kw["ys2_obs"]
            if idx.shape[0] > 0:
                rows, cols = idx // Ps, idx % Ps
                psi_m = (Z @ Ws.T + G1 @ Cs.T).ravel()[idx]
                y_m = psi_m + rand.take("normal", idx.shape) / jnp.sqrt(tau_s[cols])
                Ys = Ys.at[rows, cols].set(y_m)
                ys2 = ys2 + jax.ops.segment_sum(y_m**2, cols, num_segments=Ps)
            TW = tau_s[:, None] * Ws
            A = pack_gram(gram_by(TW, Ws, self.view_s, self.n_slots))  # (M', K(K+1)/2)
            E = sum_rows_by(tau_s[:, None, None] * Cs[:, :, None] * Ws[:, None, :],
                            self.view_s, self.n_slots)   # (M', 1+r, K)
            Lam = Lam + present @ A
            rhs = rhs + Ys @ TW - jnp.einsum("nm,nq,mqk->nk", present, G1, E)

        # 1b. weighted columns: Pólya-Gamma / masked Gaussian information
        if Pw:
            Yw, Mw = kw["Yw"], kw["Mw"]
            Ww, Cw, tau_w = take_rows(W, widx), take_rows(C, widx), take_rows(tau, widx)
            off_w = G1 @ Cw.T
            psi_w = Z @ Ww.T + off_w
            b = jnp.asarray(self.trials_w, dtype)
            gw = jnp.asarray(self.gauss_w)
            if np.all(self.gauss_w):
                Om = tau_w[None, :] * Mw
                Hw = Om * Yw
            else:
                Om = jnp.where(gw[None, :], tau_w[None, :] * Mw,
                               self._pg_information(rand, kw["pg_index"], psi_w, b))
                Hw = jnp.where(gw[None, :], Om * Yw, (Yw - b[None, :] / 2.0) * Mw)
            Lam = Lam + Om @ packed_outer_t(Ww.T).T
            rhs = rhs + (Hw - Om * off_w) @ Ww

        # 2. factors
        if self.by_pattern:
            A_full = unpack(A.T, K).reshape(-1, K * K)
            Z = _gaussian_by_pattern(rand.take("normal", (n, K)), present, A_full, rhs)
        else:
            Z = packed_gaussian_draw(_add_diagonal(Lam.T, jnp.ones((K, 1), dtype)), rhs.T,
                                     rand.take("normal", (n, K)).T).T

        # 3. loadings, intercepts, covariate coefficients (and 4. noise of shared columns)
        G = jnp.hstack([Z, G1])                                         # (n, Q)
        GG = packed_outer(G)                                            # (n, Q(Q+1)/2)
        prior = self._prior_precision(z, dtype)                          # (P, Q)
        P = prior.shape[0]
        # augmented and weighted columns' systems go through one batched draw, packed
        # and transposed: (Q(Q+1)/2, columns)
        precs, rhss = [], []
        if Ps:
            S = present.T @ GG                                           # (M', Q(Q+1)/2)
            Rs = (G.T @ Ys).T                                            # (Ps, Q)
            S_col = take_rows(S, self.view_s).T                          # (Q(Q+1)/2, Ps)
            precs.append(_add_diagonal(tau_s[None, :] * S_col, take_rows(prior, sidx).T))
            rhss.append((tau_s[:, None] * Rs).T)
        if Pw:
            precs.append(_add_diagonal(GG.T @ Om, take_rows(prior, widx).T))
            rhss.append(G.T @ Hw)
        c_all = packed_gaussian_draw(
            precs[0] if len(precs) == 1 else jnp.concatenate(precs, axis=1),
            rhss[0] if len(rhss) == 1 else jnp.concatenate(rhss, axis=1),
            rand.take("normal", (Ps + Pw, Q)).T).T
        coef_parts, tau_parts = [], []
        if Ps:
            cs = c_all[:Ps]
            coef_parts.append((sidx, cs))
            # cᵀ S c from the packed S: diagonal terms once, off-diagonal twice
            twice = np.where(np.arange(Q * (Q + 1) // 2) < Q, 1.0, 2.0)
            quad = jnp.sum(packed_outer_t(cs.T) * jnp.asarray(twice, dtype)[:, None] * S_col, 0)
            ss = ys2 - 2.0 * jnp.sum(cs * Rs, -1) + quad
            tau_parts.append((sidx, g_tau_s / (self.b_tau + jnp.maximum(ss, 0.0) / 2.0)))
        if Pw:
            cw = c_all[Ps:]
            coef_parts.append((widx, cw))
            if np.any(self.gauss_w):
                resid = (Yw - G @ cw.T) * Mw
                tw = g_tau_w / (self.b_tau + jnp.sum(resid**2, 0) / 2.0)
                tau_parts.append((widx, jnp.where(gw, tw, 1.0)))
            else:
                tau_parts.append((widx, jnp.ones((Pw,), dtype)))
        coef = assemble_rows(P, coef_parts)
        tau_new = assemble_rows(P, tau_parts)
        W, C = coef[:, :K], coef[:, K:]

        # 5. horseshoe local scales and view × factor ARD
        Wv = W[: self.P_views]
        alpha = z["alpha"]
        lam2 = (1.0 / z["nu"] + take_rows(alpha, self.col_view[: self.P_views]) * Wv**2 / 2.0) \
            / rand.take("exponential", Wv.shape)
        lam2 = jnp.clip(lam2, 1e-12, 1e12)
        nu = (1.0 + 1.0 / lam2) / rand.take("exponential", Wv.shape)
        sums = sum_rows_by(Wv**2 / lam2, self.col_view[: self.P_views], self.layout.n_views)
        alpha = g_alpha / (self.b_alpha + sums / 2.0)

        # 6. likelihood-invariant group moves: scale of each factor, location of all
        Z, W = self._scale_move(rand, Z, W, lam2, alpha, dtype)
        Z, C = self._shift_move(rand.take("normal", (1, K)), Z, W, C, dtype)
        rand.check_used()

        z = {"Z": Z, "W": W, "C": C, "tau": tau_new, "lam2": lam2, "nu": nu, "alpha": alpha}
        return FactorGibbsState(state.i + 1, z, Ys, k_next)

    def _pg_information(self, rand, pg_index, psi_w, b):
        """Pólya-Gamma draws ω_ij ~ PG(b_j, ψ_ij) at the observed entries of the count
        columns (``pg_index``: flat indices into (n, Pw)), zero elsewhere: the
        per-entry information of the weighted count columns.  Missing entries
        carry no information, so no variate is spent on them."""
        n, Pw = psi_w.shape
        c = psi_w.ravel()[pg_index]
        b_e = b[pg_index % Pw]
        u = rand.take("uniform", c.shape + (self.pg_terms, self.pg_uniforms))
        om = polya_gamma_from(u, b_e, c)
        return jnp.zeros((n * Pw,), psi_w.dtype).at[pg_index].set(om).reshape(n, Pw)

    def _random_counts(self, n: int, Q: int, kw) -> tuple[int, int, int]:
        """Numbers of normals, exponentials and uniforms one sweep takes (static)."""
        K, Ps, Pw = self.K, len(self.sidx), len(self.widx)
        n_imp = kw["impute_index"].shape[0] if Ps else 0
        n_normal = n_imp + n * K + (Ps + Pw) * Q + 2 * K      # + scale and shift moves
        n_exp = 2 * self.P_views * K                            # horseshoe λ², ν
        n_unif = K                                              # scale-move test
        if Pw and not np.all(self.gauss_w):                     # Pólya-Gamma series
            n_unif += kw["pg_index"].shape[0] * self.pg_terms * self.pg_uniforms
        return n_normal, n_exp, n_unif

    def _gamma_draws(self, key, kw, dtype):
        """Gamma(shape, 1) variates of the τ of augmented and weighted columns and of α.

        τ_j = g_j / (b_τ + SS_j/2) with shape a_τ + n_j/2 (n_j: present subjects of
        an augmented column, observed entries of a weighted one), α_mk = g_mk /
        (b_α + Σ_j w²_jk/(2λ²_jk)) with shape a_α + D_m/2.
        """
        K, M = self.K, self.layout.n_views
        parts = [self.a_alpha + jnp.asarray(self.layout.sizes, dtype)[:, None] / 2.0
                 * jnp.ones((M, K), dtype)]
        Ps, Pw = len(self.sidx), len(self.widx)
        if Ps:
            parts.append(self.a_tau + take_rows(jnp.sum(kw["present"], axis=0), self.view_s)
                         / 2.0)
        if Pw:
            parts.append(self.a_tau + jnp.sum(kw["Mw"], axis=0) / 2.0)
        shapes = jnp.concatenate([parts[0].ravel()] + parts[1:]).astype(dtype)
        g = gamma_variates(key, shapes)
        return g[M * K:M * K + Ps], g[M * K + Ps:], g[:M * K].reshape(M, K)

    def _shift_move(self, eps, Z, W, C, dtype):
        """Exact draw along z_i → z_i + δ, μ_j → μ_j − w_jᵀδ (translation group).

        The factors' common mean and the intercepts trade off exactly in the
        likelihood, and alternating updates move along that ridge slowly
        (R-hat of μ ≈ 2 without this step).  The conditional of δ is Gaussian:
        precision n·I + Σ_j w_j w_jᵀ/s_μ², linear term −Σ_i z_i + Σ_j μ_j w_j/s_μ².
        """
        n, K = Z.shape
        prec = n * jnp.eye(K, dtype=dtype) + W.T @ W / self.s_mu**2
        lin = -jnp.sum(Z, axis=0) + W.T @ C[:, 0] / self.s_mu**2
        delta = _batched_gaussian(eps, prec[None], lin[None])[0]
        return Z + delta[None, :], C.at[:, 0].add(-(W @ delta))

    def _scale_move(self, rand, Z, W, lam2, alpha, dtype):
        """Generalised Gibbs step (Liu & Sabatti 2000) on the scale of each factor.

        Alternating z | w and w | z moves the joint scale of (z_k, w_k) only by
        O(1/√(nP)) per sweep.  The multiplicative group z_k → c z_k,
        w_k → w_k / c leaves the likelihood unchanged; with Haar measure dc/c
        and Jacobian c^{n − P} the conditional of u = c² is GIG((n − P)/2,
        Σ_i z²_ik, Σ_j w²_jk π_jk) (π_jk the loadings' prior precision), drawn
        here by an independence Metropolis step with a Laplace proposal in
        log u (log-concave target: acceptance ≈ 1).
        """
        n = Z.shape[0]
        P = W.shape[0]
        prec = take_rows(alpha, self.col_view[: self.P_views]) / lam2 + 1.0 / self.slab**2
        if self.layout.outcome_kind:
            prec = jnp.vstack([prec, jnp.full((1, self.K), 1.0 / self.s_beta**2, dtype)])
        a = jnp.sum(Z**2, axis=0)
        b = jnp.sum(W**2 * prec, axis=0)
        p = (n - P) / 2.0

        def logf(t):
            return p * t - 0.5 * a * jnp.exp(t) - 0.5 * b * jnp.exp(-t)

        def newton(_, t):
            g = p - 0.5 * a * jnp.exp(t) + 0.5 * b * jnp.exp(-t)
            h = -0.5 * a * jnp.exp(t) - 0.5 * b * jnp.exp(-t)
            return t - g / h

        t = jax.lax.fori_loop(0, 12, newton, jnp.zeros_like(a))
        sd = 1.0 / jnp.sqrt(0.5 * a * jnp.exp(t) + 0.5 * b * jnp.exp(-t))
        prop = t + sd * rand.take("normal", t.shape)

        def logq(x):
            return -0.5 * ((x - t) / sd) ** 2

        log_ratio = logf(prop) - logf(0.0) - logq(prop) + logq(0.0)
        accept = jnp.log(rand.take("uniform", t.shape)) < log_ratio
        c = jnp.where(accept, jnp.exp(prop / 2.0), 1.0)
        return Z * c[None, :], W / c[None, :]

    # -------------------------------------------------------------- outputs
    def postprocess_fn(self, model_args, model_kwargs):
        lay = self.layout
        present = model_kwargs["present"]
        off = lay.offsets

        def named(z):
            out = {"Z": z["Z"], "alpha": z["alpha"]}
            for m, (v, lik) in enumerate(zip(lay.views, lay.likelihoods, strict=True)):
                sl = slice(int(off[m]), int(off[m + 1]))
                lam2 = z["lam2"][sl]
                out[f"W_{v}"] = z["W"][sl]
                out[f"lam_{v}"] = jnp.sqrt(lam2)
                out[f"mu_{v}"] = z["C"][sl, 0]
                info = z["tau"][sl] if lik == "gaussian" else \
                    jnp.full((off[m + 1] - off[m],), 0.25 * TRIALS[lik])
                scale2 = lam2 / z["alpha"][m][None, :]
                n_eff = jnp.sum(present[:, m])
                out[f"incl_{v}"] = 1.0 - 1.0 / (1.0 + n_eff * info[:, None] * scale2)
                if lik == "gaussian":
                    out[f"tau_{v}"] = z["tau"][sl]
                if lay.n_covariates:
                    out[f"B_{v}"] = z["C"][sl, 1:]
            if lay.outcome_kind:
                out["beta"] = z["W"][-1]
                out["beta0"] = z["C"][-1, 0]
                if lay.outcome_kind == "gaussian":
                    out["tau_outcome"] = z["tau"][-1]
                if lay.n_covariates:
                    out["gamma_outcome"] = z["C"][-1, 1:]
            return out

        return named
