r"""Alignment of factor draws (sign, permutation) and rotation-aware diagnostics.

A factor model is invariant to Z → ZR, W → WR⁻ᵀ.  With the sparse prior the
rotation is pinned when the data identify it, but sign flips and relabelling
remain, and a chain may still settle on a rotated solution.  This module

1. **aligns** every draw to one reference (MatchAlign-style, Poworoznek et al.
   2021): the loadings of a draw, stacked over views, are matched to the
   reference's by the assignment maximising Σ|cos| (Hungarian algorithm), signs
   follow the sign of the cosine; the reference is then replaced by the mean of
   the aligned draws and the matching repeated; then **identifies** it: every
   draw is rotated onto the varimax rotation of that mean by orthogonal
   Procrustes (:mod:`bayesimg.models.factor.identify`; exact: ZWᵀ is unchanged
   draw by draw), so the split of the factor subspace into factors depends on
   the draw's rotation class only, not on where the chain is inside it;
2. **diagnoses** what alignment cannot fix, with rotation-invariant quantities:

   * ``subspace_agreement``: for every pair of chains, the smallest cosine of
     the principal angles between the column spaces of their posterior-mean
     loadings of active factors (1 = same subspace);
   * ``factor_agreement`` per factor: the smallest |cos| between chains' aligned
     posterior-mean loadings;
   * ``within_chain_stability`` per factor: mean |cos| of single draws with the
     reference (low: the factor wanders within a chain);
   * ``rotated_factors``: active factors whose agreement is below 0.9 while the
     subspace agrees (≥ 0.95): the chains found the same space but different
     axes, i.e. the rotation is not identified by the data — reported, with a
     :class:`~bayesimg.errors.ConvergenceWarning`, never silently returned.

3. **checks convergence on identified quantities**: per draw, the factors'
   variance shares per view and the cosines of the principal angles between the
   draw's factor span and the posterior-mean span (:func:`identified_summaries`,
   stored in the posterior); :func:`identified_convergence` writes one line
   saying whether the subspace converged, whether the identified variance
   shares, loadings and scores of every active factor did, which did not, and
   about how much longer to run
   (``convergence_summary``, shown first among the notes of
   :func:`bayesimg.report.diagnostics.diagnose`).

Activity: a factor is *active* when its share of the variance of some view,
Σ_j w²_jk / Σ_j (Σ_k w²_jk + 1/τ_j) at the posterior mean, exceeds 1%.  A
(view, factor) pair below that share is switched off by ARD: its loadings and α
are draws from the shrinkage prior (α's scale wanders freely under the vague
Gamma prior), as are the scores of a factor off in every view (without an
outcome), so they are listed under ``convergence_exclude`` and left out of
R-hat/ESS checks (:mod:`bayesimg.report.diagnostics`).  So are the ARD
precisions α and inclusion weights of every factor: they belong to the
sampler's axes, which the identification step rotates away.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment
from threadpoolctl import threadpool_limits

from bayesimg.errors import LIBRARY_FILES, ConvergenceWarning
from bayesimg.models.factor.identify import identify_draws

ACTIVE_SHARE = 0.01
AGREE = 0.9
SUBSPACE_AGREE = 0.95


def _unit(L: np.ndarray) -> np.ndarray:
    return L / np.maximum(np.linalg.norm(L, axis=-2, keepdims=True), 1e-12)


def match_factors(L: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Permutation and signs mapping the columns of ``L`` (P, K) onto ``ref`` (P, K).

    Returns ``perm, sign, score``: column ``perm[k]`` of L, times ``sign[k]``,
    matches reference column k with |cos| = ``score[k]``.
    """
    return _match_cos(_unit(L).T @ _unit(ref))


def _match_cos(cos: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`match_factors` from the (K_L, K_ref) cosines of the columns."""
    rows, cols = linear_sum_assignment(-np.abs(cos))
    perm = np.empty(cos.shape[1], int)
    perm[cols] = rows
    c = cos[perm, np.arange(cos.shape[1])]
    return perm, np.where(c < 0, -1.0, 1.0), np.abs(c)


def _factor_axes(samples: dict[str, np.ndarray], layout) -> dict[str, tuple[int, bool]]:
    """Site → (axis of the factor dim, whether the sign flips with the factor)."""
    out = {"Z": (-1, True), "alpha": (-1, False)}
    for v in layout.views:
        out[f"W_{v}"] = (-1, True)
        out[f"incl_{v}"] = (-1, False)
        out[f"lam_{v}"] = (-1, False)
        out[f"W_raw_{v}"] = (-1, True)
    out["beta"] = (-1, True)
    return {k: a for k, a in out.items() if k in samples}


def stacked_loadings(samples: dict[str, np.ndarray], layout) -> np.ndarray:
    """(chain, draw, P, K) loadings of all views, each view scaled to unit Frobenius
    weight per feature count so a large view does not dominate the matching."""
    blocks = []
    for v, d in zip(layout.views, layout.sizes, strict=True):
        blocks.append(samples[f"W_{v}"] / np.sqrt(d))
    return np.concatenate(blocks, axis=-2)


def variance_share(W_blocks: list[np.ndarray], noise_var: list[np.ndarray]) -> np.ndarray:
    """(view, factor) share Σ_j w²_jk / Σ_j (Σ_k w²_jk + noise_j) — a cheap R² proxy."""
    out = []
    for W, s2 in zip(W_blocks, noise_var, strict=True):
        total = np.sum(W**2) + np.sum(s2)
        out.append(np.sum(W**2, axis=0) / total)
    return np.asarray(out)


def _noise_var(samples, layout, mean=True) -> list[np.ndarray]:
    out = []
    for v, lik, d in zip(layout.views, layout.likelihoods, layout.sizes, strict=True):
        if lik == "gaussian" and f"tau_{v}" in samples:
            t = samples[f"tau_{v}"]
            out.append(np.mean(1.0 / t, axis=(0, 1)) if mean else 1.0 / t)
        else:
            out.append(np.full(d, np.pi**2 / 3))
    return out


def align_factor_draws(samples: dict[str, np.ndarray], layout, n_iter: int = 3,
                       warn: bool = True) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Align ``samples`` (site → (chain, draw, ...)) in place of a copy; return info."""
    if "Z" not in samples:
        return samples, {}
    # thin QRs and small products: extra BLAS threads only spin (2 QRs of 1700 × 10
    # took 0.16 CPU-s with two OpenBLAS threads on a busy 2-core machine)
    with threadpool_limits(limits=1, user_api="blas"):
        samples, info = _align(samples, layout, n_iter)
    if warn and info.get("warning"):
        warnings.warn(info["warning"], ConvergenceWarning, skip_file_prefixes=LIBRARY_FILES)
    return samples, info


def _align(samples, layout, n_iter, identify=True):
    # the input arrays are never modified (identified and aligned sites are new arrays);
    # no (draws, P, K)-sized temporary is made below beyond the stacked loadings: draws
    # are matched and averaged one at a time
    samples = dict(samples)
    L = stacked_loadings(samples, layout)                           # (C, S, P, K)
    C, S, P, K = L.shape
    flat = L.reshape(C * S, P, K)
    norms = np.maximum(np.linalg.norm(flat, axis=1), 1e-12)         # (C·S, K)
    ref = L[0].mean(axis=0)
    perms = np.tile(np.arange(K), (C * S, 1))
    signs = np.ones((C * S, K))
    scores = np.ones((C * S, K))
    for _ in range(n_iter):
        uref = _unit(ref)
        ref = np.zeros((P, K))
        for s in range(C * S):
            cos = (flat[s].T @ uref) / norms[s][:, None]
            perms[s], signs[s], scores[s] = _match_cos(cos)
            ref += flat[s][:, perms[s]] * signs[s]
        ref /= C * S
    n_relabelled = int(np.sum(np.any(perms != np.arange(K), axis=1)))
    n_flipped = int(np.sum(np.any(signs < 0, axis=1)))
    perms = perms.reshape(C, S, K)
    signs = signs.reshape(C, S, K)
    for site, (axis, flips) in _factor_axes(samples, layout).items():
        x = samples[site]
        x = np.moveaxis(x, axis, -1)
        idx = perms.reshape((C, S) + (1,) * (x.ndim - 3) + (K,))
        x = np.take_along_axis(x, np.broadcast_to(idx, x.shape[:-1] + (K,)), axis=-1)
        if flips:
            x *= signs.reshape((C, S) + (1,) * (x.ndim - 3) + (K,))
        samples[site] = np.moveaxis(x, -1, axis)
    if identify:     # off only to measure what identification changes (benchmarks)
        samples = identify_draws(samples, layout)

    info = rotation_diagnostics(samples, layout)
    samples.update(identified_summaries(samples, layout, info))
    summary = identified_convergence(samples, info, layout)
    if summary:
        info["convergence_summary"] = summary
    info.update({"method": "sign/permutation matching to the mean loadings (Hungarian, "
                           f"{n_iter} passes), then orthogonal Procrustes of every draw "
                           "onto the varimax rotation of the mean",
                 "draws_relabelled": n_relabelled, "draws_sign_flipped": n_flipped,
                 "within_chain_stability": scores.reshape(C, S, K).mean(axis=(0, 1)).round(4)
                 .tolist()})
    return samples, info


def identified_summaries(samples: dict[str, np.ndarray], layout,
                         info: dict[str, Any]) -> dict[str, np.ndarray]:
    """Per-draw quantities the likelihood identifies, for R-hat/ESS (aligned samples).

    * ``variance_share`` (view, factor): the activity measure of every draw —
      Σ_j w²_jk s²_k / Σ_j (Σ_k w²_jk s²_k + noise_j), s²_k the sample variance of
      z_k — invariant to the scale trade between z_k and w_k;
    * ``subspace_cosine`` (factor): the cosines of the principal angles between
      each draw's span of the active factors' scores and the posterior-mean span,
      largest first (padded with 1 beyond the active ones): invariant to
      rotation, sign, labels and scale of the factors.
    """
    Z = samples["Z"]                                                  # (C, S, n, K)
    C, S, n, K = Z.shape
    s2 = Z.var(axis=2)                                                # (C, S, K)
    noise = _noise_var(samples, layout, mean=False)
    shares = []
    for v, nv in zip(layout.views, noise, strict=True):
        W = samples[f"W_{v}"]                                          # (C, S, D, K)
        w2 = np.einsum("csdk,csdk->csk", W, W) * s2                    # Σ_j w²_jk s²_k
        noise_sum = (nv.sum(axis=-1) if nv.ndim >= 3
                     else np.broadcast_to(nv.sum(axis=-1), (C, S)))
        total = w2.sum(axis=-1) + noise_sum
        shares.append(w2 / total[..., None])
    out = {"variance_share": np.stack(shares, axis=2)}                 # (C, S, M, K)
    active = info.get("active_factors") or []
    cos = np.ones((C, S, K))
    if active:
        Zc = Z[..., active] - Z[..., active].mean(axis=2, keepdims=True)
        ref, _ = np.linalg.qr(Zc.mean(axis=(0, 1)))
        q, _ = np.linalg.qr(Zc.reshape(C * S, n, len(active)))
        sv = np.linalg.svd(np.swapaxes(q, 1, 2) @ ref, compute_uv=False)   # descending
        cos[..., :len(active)] = np.clip(sv.reshape(C, S, -1), 0.0, 1.0)
    out["subspace_cosine"] = cos
    return out


def identified_convergence(samples: dict[str, np.ndarray], info: dict[str, Any],
                           layout=None) -> str:
    """One line on the identified quantities, from the coarsest to the finest.

    R-hat and ESS (:mod:`bayesimg.mcmc_stats`) of the factor subspace
    (``subspace_cosine``), then, per active factor, of its variance shares in the
    views where it is on and (with ``layout``) of its loadings in those views and
    its scores: the subspace can converge while the split of it into factors
    still drifts (a slowly mixing rotation within the span), and the line says
    which of the two it is, which factors and quantities, and about how much
    longer to run (the largest :func:`~bayesimg.mcmc_stats.longer_run_factor`
    over everything that failed).  Empty with fewer than two chains or no active
    factor.
    """
    from bayesimg.mcmc_stats import ESS_MIN, RHAT_MAX, convergence_table, longer_run_factor

    active = info.get("active_factors") or []
    cos = samples["subspace_cosine"]
    C, S = cos.shape[:2]
    if C < 2 or not active or S < 4:
        return ""

    def stats(x):                                       # x: (C, S, ...) → worst R-hat, ESS
        x = x.reshape(C, S, -1)
        t = convergence_table(np.moveaxis(x, -1, 0), stats=("rhat", "ess_bulk", "ess_tail"))
        ess = np.fmin(t["ess_bulk"], t["ess_tail"])
        return float(np.nanmax(t["rhat"])), float(np.nanmin(ess))

    def ok(r, e):
        return r <= RHAT_MAX and e >= ESS_MIN

    sub_r, sub_e = stats(cos[..., :len(active)])
    share = samples["variance_share"]                    # (C, S, M, K)
    on = np.asarray(info["variance_share"]) > ACTIVE_SHARE
    quantities = {"variance shares": lambda k, views: share[:, :, views, k]}
    if layout is not None:
        def loadings(k, views):
            return np.concatenate([samples[f"W_{layout.views[m]}"][..., k] for m in views],
                                  axis=-1)
        quantities["loadings"] = loadings
        quantities["scores"] = lambda k, views: samples["Z"][..., k]
    failed = []                                          # (quantity, factor, R-hat, ESS)
    worst_r, worst_e = sub_r, sub_e
    for k in active:
        views = np.flatnonzero(on[:, k])
        if not views.size:
            continue
        for what, get in quantities.items():
            r, e = stats(get(k, views))
            worst_r, worst_e = max(worst_r, r), min(worst_e, e)
            if not ok(r, e):
                failed.append((what, k, r, e))
    sub = (f"factor subspace {'converged' if ok(sub_r, sub_e) else 'NOT converged'} "
           f"(R-hat {sub_r:.3f}, ESS {sub_e:.0f})")
    checked = " and ".join([", ".join(list(quantities)[:-1]), list(quantities)[-1]]
                           if len(quantities) > 1 else list(quantities))
    if not failed and ok(sub_r, sub_e):
        return (f"{sub}; every active factor's {checked} converged (worst R-hat "
                f"{worst_r:.3f}, smallest ESS {worst_e:.0f})")
    parts = []
    for what in quantities:
        bad = [f for f in failed if f[0] == what]
        if bad:
            names = ", ".join(f"F{k + 1}" for _, k, _, _ in bad)
            parts.append(f"{what} of {names} (R-hat up to {max(b[2] for b in bad):.3f}, "
                         f"ESS down to {min(b[3] for b in bad):.0f})")
    more = max([longer_run_factor(sub_r, sub_e)]
               + [longer_run_factor(r, e) for _, _, r, e in failed])
    draws = int(np.ceil(more * S / 100.0) * 100)
    if not failed:
        return f"{sub}: run about {more:.0f}x longer (~{draws} draws per chain)"
    what = ("the split of the converged subspace into these factors (a rotation within "
            "their span) mixes slowly: read them jointly, or" if ok(sub_r, sub_e)
            else "the factors themselves have not settled:")
    return (f"{sub}; not converged: {'; '.join(parts)}: {what} run about {more:.0f}x "
            f"longer (~{draws} draws per chain)")


def switched_off(share: np.ndarray, layout) -> dict[str, Any]:
    """Elements of (view, factor) pairs with variance share ≤ ``ACTIVE_SHARE``, in the
    ``convergence_exclude`` format of :mod:`bayesimg.report.diagnostics`."""
    elements, pairs = [], []
    for k in range(share.shape[1]):
        label = f"F{k + 1}"
        views = [v for m, v in enumerate(layout.views) if share[m, k] <= ACTIVE_SHARE]
        if views:
            where = "every view" if len(views) == share.shape[0] else ", ".join(views)
            pairs.append(f"{label} in {where}")
        for v in views:
            elements += [{"var": f"W_{v}", "sel": {"factor": label}},
                         {"var": "variance_share", "sel": {"view": v, "factor": label}}]
        if len(views) == share.shape[0] and not layout.outcome_kind:
            # off everywhere (and no outcome it could carry): its scores are prior noise,
            # and its label among the other empty factors is arbitrary
            elements.append({"var": "Z", "sel": {"factor": label}})
    for v in layout.views:
        elements.append({"var": f"incl_{v}", "sel": {}})
    elements.append({"var": "alpha", "sel": {}})
    reason = ("the horseshoe inclusion weights incl and the ARD precisions alpha (prior "
              "scales of the sampler's axes, carried to the identified factors along the "
              "nearest permutation, so not identified where the split of the subspace is "
              "free; the identified loadings, scores and variance shares are checked "
              "instead)")
    if pairs:
        reason += (f"; the loadings (W) and variance share of factors "
                   f"switched off by ARD (variance share <= {ACTIVE_SHARE:g}; "
                   f"{'; '.join(pairs)}), and the scores Z of factors off in every view, are "
                   "draws from the shrinkage prior, which need not mix")
    return {"reason": reason, "elements": elements}


def rotation_diagnostics(samples: dict[str, np.ndarray], layout) -> dict[str, Any]:
    """Subspace/factor agreement across chains and factor activity (aligned samples)."""
    W_mean = [samples[f"W_{v}"].mean(axis=(0, 1)) for v in layout.views]
    share = variance_share(W_mean, _noise_var(samples, layout))
    active = np.flatnonzero(share.max(axis=0) > ACTIVE_SHARE)
    info: dict[str, Any] = {"variance_share": share.round(4).tolist(),
                            "active_factors": [int(k) for k in active],
                            "n_active": int(active.size)}
    off = switched_off(share, layout)
    info["convergence_exclude"] = off
    L = stacked_loadings(samples, layout)
    C = L.shape[0]
    if C < 2 or active.size == 0:
        info["note"] = "one chain: cross-chain rotation diagnostics need >= 2 chains"
        return info
    means = L.mean(axis=1)[:, :, active]                             # (C, P, A)
    sub = []
    fac = np.ones(active.size)
    for a in range(C):
        for b in range(a + 1, C):
            qa, _ = np.linalg.qr(means[a])
            qb, _ = np.linalg.qr(means[b])
            sv = np.linalg.svd(qa.T @ qb, compute_uv=False)
            sub.append(float(sv.min()))
            cos = np.abs(np.sum(_unit(means[a]) * _unit(means[b]), axis=0))
            fac = np.minimum(fac, cos)
    subspace = float(min(sub))
    info["subspace_agreement"] = round(subspace, 4)
    info["factor_agreement"] = {int(k): round(float(c), 4) for k, c in zip(active, fac,
                                                                             strict=True)}
    rotated = [int(k) for k, c in zip(active, fac, strict=True) if c < AGREE]
    info["rotated_factors"] = rotated if subspace >= SUBSPACE_AGREE else []
    if subspace < SUBSPACE_AGREE:
        info["warning"] = (
            f"chains disagree on the factor subspace (smallest principal-angle cosine "
            f"{subspace:.3f} < {SUBSPACE_AGREE}): not converged; run longer or check K")
    elif rotated:
        names = ", ".join(f"F{k + 1}" for k in rotated)
        info["warning"] = (
            f"factor(s) {names} are rotated between chains (same subspace, agreement "
            f"< {AGREE}): the data do not identify their rotation; interpret them jointly "
            "(their span), not one by one")
    return info
