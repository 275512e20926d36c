"""Vectorised MCMC convergence statistics (R-hat, ESS, MCSE).

These reproduce, element for element, the definitions used by ``arviz_stats`` 1.3
(``_rhat_rank``, ``_ess_bulk``, ``_ess_tail``, ``_mcse_mean`` in
``arviz_stats/base/diagnostics.py``), which follow Vehtari, Gelman, Simpson,
Carpenter & Bürkner (2021), *Rank-normalization, folding, and localization: an
improved R-hat*, Bayesian Analysis 16(2).  ArviZ evaluates them with one Python call
per scalar element (about 2 ms each, so 40 s for a 20 000-element weight matrix);
here every statistic is computed on a whole ``(n_elements, chain, draw)`` block at
once, in chunks that bound memory.  ``tests/report/test_report_diagnostics.py`` checks the
results against ``arviz_stats`` to floating-point precision.

Differences from ArviZ's defaults are deliberate and documented:

* tail ESS uses the 5% and 95% quantiles (:data:`TAIL_ESS_PROBS`, as in Vehtari et
  al. 2021 and R's ``posterior``); ``arviz_stats.ess(method="tail")`` without
  ``prob`` derives its quantiles from ``rcParams["stats.ci_prob"]`` (0.89), i.e. it
  uses the 11% and 89% quantiles.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from scipy import fft as sp_fft
from scipy.special import ndtri

__all__ = [
    "ALL_STATS", "ESS_MIN", "RHAT_MAX", "TAIL_ESS_PROBS", "convergence_table", "ess_bulk",
    "ess_tail", "longer_run_factor", "mcse_mean", "rhat_rank",
]

#: R-hat above this (rank-normalised split R-hat) means the chains have not mixed.
RHAT_MAX = 1.01
#: Bulk or tail ESS below this (over all chains) is too few for reliable intervals.
ESS_MIN = 400
#: Quantiles whose indicator ESS is reported as the tail ESS (minimum of the two).
TAIL_ESS_PROBS = (0.05, 0.95)

# Values (elements x chains x draws) per block: bounds peak memory per thread to
# about 100 MB whatever the size of the parameter.
_BLOCK_VALUES = 2_000_000
# Threads used for blocks (each holds a few copies of one block in memory).
_MAX_WORKERS = 8
_MIN_DRAWS = 4


def _split_chains(x: np.ndarray) -> np.ndarray:
    """Split each chain in two halves: ``(E, C, D) -> (E, 2C, D // 2)``."""
    half = x.shape[-1] // 2
    return np.concatenate((x[..., :half], x[..., x.shape[-1] - half:]), axis=-2)


def _blom_scores(size: int) -> np.ndarray:
    """Normal scores Φ⁻¹((r − 3/8) / (size + 1/4)) of the ranks r = 1 … size (Blom)."""
    return ndtri((np.arange(1.0, size + 1.0) - 0.375) / (size + 0.25))


def _z_scale_sorted(flat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rank-normalise each row of a 2-D array (ties get their average rank).

    Same values as ``ndtri((rankdata(row, "average") − 3/8) / (n + 1/4))``: one argsort
    per row; untied ranks read their normal score from a table of the n possible
    values, so Φ⁻¹ is evaluated only for the (usually few) tied runs.  Returns the
    z-scores in the original positions and the sorted rows.
    """
    e, n = flat.shape
    # flat (1-D) indices: numpy's 1-D take/put are ~30% faster than take_along_axis
    order = (np.argsort(flat, axis=-1) + (np.arange(e) * n)[:, None]).ravel()
    srt = np.take(np.ascontiguousarray(flat).ravel(), order).reshape(e, n)
    z_sorted = np.broadcast_to(_blom_scores(n), (e, n)).copy()
    # Flat positions whose value equals the previous one in the same row.
    tied = np.flatnonzero(srt[:, 1:] == srt[:, :-1])
    if tied.size:
        row, col = np.divmod(tied, n - 1)
        pos = row * n + col + 1  # flat index (in srt) of the repeated value
        brk = np.flatnonzero(np.diff(pos) != 1)
        run_first = pos[np.r_[0, brk + 1]] - 1
        run_last = pos[np.r_[brk, pos.size - 1]]
        lengths = run_last - run_first + 1
        mid = ((run_first % n) + (run_last % n)) / 2.0 + 1.0
        idx = np.repeat(run_first - np.cumsum(np.r_[0, lengths[:-1]]), lengths) \
            + np.arange(lengths.sum())
        z_sorted.ravel()[idx] = np.repeat(ndtri((mid - 0.375) / (n + 0.25)), lengths)
    z = np.empty((e, n))
    z.ravel()[order] = z_sorted.ravel()
    return z, srt


def _z_scale(x: np.ndarray) -> np.ndarray:
    """Rank-normalise each element over all of its chains and draws (Blom, c = 3/8)."""
    e, c, d = x.shape
    return _z_scale_sorted(x.reshape(e, c * d))[0].reshape(e, c, d)


def _rhat_basic(x: np.ndarray) -> np.ndarray:
    """Classic (non-split) potential scale reduction of ``(E, M, N)`` arrays."""
    n = x.shape[-1]
    chain_mean = x.mean(axis=-1)
    chain_var = x.var(axis=-1, ddof=1)
    between = n * chain_mean.var(axis=-1, ddof=1)
    within = chain_var.mean(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.sqrt((between / within + n - 1) / n)


def _autocov(x: np.ndarray) -> np.ndarray:
    """Autocovariance at every lag along the last axis (FFT, biased estimator)."""
    n = x.shape[-1]
    m = sp_fft.next_fast_len(2 * n, real=True)
    xc = x - x.mean(axis=-1, keepdims=True)
    f = sp_fft.rfft(xc, n=m, axis=-1)
    f *= np.conjugate(f)
    return sp_fft.irfft(f, n=m, axis=-1)[..., :n] / n


def _ess_basic(x: np.ndarray, relative: bool = False) -> np.ndarray:
    """ESS of ``(E, M, N)`` arrays with Geyer's initial monotone sequence estimator.

    Vectorised form of ``arviz_stats.base.diagnostics._DiagnosticsBase._ess``: the
    sequential while-loops over lag pairs are replaced by a count of leading positive
    pair sums and a cumulative minimum, which yields identical values.
    """
    x = np.asarray(x, dtype=float)
    e, n_chain, n_draw = x.shape
    size = n_chain * n_draw
    flat = x.reshape(e, -1)
    constant = (flat.max(axis=-1) - flat.min(axis=-1)) < np.finfo(float).resolution

    acov = _autocov(x)  # (E, M, N)
    chain_mean = x.mean(axis=-1)
    mean_var = acov[..., 0].mean(axis=-1) * n_draw / (n_draw - 1.0)
    var_plus = mean_var * (n_draw - 1.0) / n_draw
    if n_chain > 1:
        var_plus = var_plus + chain_mean.var(axis=-1, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = 1.0 - (mean_var[:, None] - acov.mean(axis=1)) / var_plus[:, None]  # (E, N)
    rho[:, 0] = 1.0

    # Pair k holds lags (2k, 2k + 1).  ArviZ evaluates pair k >= 1 only while
    # 2k - 1 < n_draw - 3 and every earlier pair sum is > 0.
    n_pairs = n_draw // 2
    even = rho[:, 0 : 2 * n_pairs : 2]
    odd = rho[:, 1 : 2 * n_pairs : 2]
    pair = even + odd  # (E, n_pairs)
    # Largest k with k == 0 or 2k - 1 < n_draw - 3.
    k_allowed = max(0, (n_draw - 3) // 2)
    leading_pos = np.logical_and.accumulate(pair > 0, axis=1).sum(axis=1)
    k_last = np.minimum(leading_pos, k_allowed)  # (E,)

    monotone = np.minimum.accumulate(pair, axis=1)
    keep = np.arange(n_pairs)[None, :] < k_last[:, None]
    pair_sum = np.where(keep, monotone, 0.0).sum(axis=1)
    idx = np.arange(e)
    last_even = even[idx, k_last]
    last_pair = pair[idx, k_last]
    tail_term = np.where((last_even > 0) | (last_pair >= 0), last_even, 0.0)
    tail_term = np.where(k_last == 0, 1.0, tail_term)

    tau = -1.0 + 2.0 * pair_sum + tail_term
    tau = np.maximum(tau, 1.0 / np.log10(size))
    ess = (1.0 if relative else float(size)) / tau
    used = np.arange(2 * n_pairs)[None, :] <= 2 * k_last[:, None] + 1
    bad = np.isnan(np.where(used, rho[:, : 2 * n_pairs], 0.0)).any(axis=1)
    ess = np.where(bad, np.nan, ess)
    return np.where(constant, float(size), ess)


def _nan_if(bad: np.ndarray, values: np.ndarray) -> np.ndarray:
    return np.where(bad, np.nan, values)


def _rhat_from_split(s: np.ndarray, z: np.ndarray, srt: np.ndarray) -> np.ndarray:
    """max(bulk, folded) split R-hat given split draws ``s``, their z-scores ``z`` and
    each element's draws sorted (``srt`` (E, size), for the median; elements with NaN
    draws, sorted last, get a wrong median here and NaN from the caller)."""
    size = srt.shape[1]
    half = size // 2
    med = srt[:, half] if size % 2 else 0.5 * (srt[:, half - 1] + srt[:, half])
    return np.maximum(_rhat_basic(z), _rhat_basic(_z_scale(np.abs(s - med[:, None, None]))))


def _ess_quantile(x: np.ndarray, prob: float) -> np.ndarray:
    q = np.quantile(x.reshape(x.shape[0], -1), prob, axis=-1)[:, None, None]
    return _ess_basic(_split_chains((x <= q).astype(float)))


def _ess_tail(x: np.ndarray, probs: tuple[float, float]) -> np.ndarray:
    return np.minimum(_ess_quantile(x, probs[0]), _ess_quantile(x, probs[1]))


def _mcse_mean(x: np.ndarray, s: np.ndarray) -> np.ndarray:
    sd = x.reshape(x.shape[0], -1).std(axis=-1, ddof=1)
    return sd / np.sqrt(_ess_basic(s))


def _as_blocks(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    if x.ndim != 3:
        raise ValueError(f"expected an array of shape (element, chain, draw), got {x.shape}")
    return x


def rhat_rank(x: np.ndarray) -> np.ndarray:
    """Rank-normalised split R-hat, max of bulk and folded (tail) versions.

    Parameters
    ----------
    x : ndarray, shape (E, chain, draw)

    Returns
    -------
    ndarray, shape (E,)
        NaN where an element has NaN draws, fewer than 2 chains or fewer than 4 draws
        (as in ArviZ).
    """
    return convergence_table(x, stats=("rhat",))["rhat"]


def ess_bulk(x: np.ndarray) -> np.ndarray:
    """Bulk ESS: ESS of the rank-normalised split chains. ``(E, C, D) -> (E,)``."""
    return convergence_table(x, stats=("ess_bulk",))["ess_bulk"]


def ess_tail(x: np.ndarray, probs: tuple[float, float] = TAIL_ESS_PROBS) -> np.ndarray:
    """Tail ESS: minimum of the indicator ESS at the two quantiles ``probs``."""
    return convergence_table(x, stats=("ess_tail",), tail_probs=probs)["ess_tail"]


def mcse_mean(x: np.ndarray) -> np.ndarray:
    """Monte Carlo standard error of the mean: ``sd / sqrt(ESS_mean)``."""
    return convergence_table(x, stats=("mcse_mean",))["mcse_mean"]


#: Statistics shown in summaries.
ALL_STATS = ("rhat", "ess_bulk", "ess_tail", "mcse_mean")
# Also available: ArviZ's ``ess(method="mean")`` (used for PSIS-LOO's relative efficiency).
_KNOWN_STATS = (*ALL_STATS, "ess_mean")


def convergence_table(
    x: np.ndarray,
    stats: tuple[str, ...] = ALL_STATS,
    tail_probs: tuple[float, float] = TAIL_ESS_PROBS,
) -> dict[str, np.ndarray]:
    """R-hat, bulk/tail ESS and MCSE of the mean for every element of ``x``.

    The split chains and their rank-normalised values are computed once per block
    and shared between R-hat and bulk ESS.

    Parameters
    ----------
    x : ndarray, shape (E, chain, draw)
        Draws of ``E`` scalar quantities.
    stats : tuple of str, default all of ``ALL_STATS``
        Which of ``"rhat"``, ``"ess_bulk"``, ``"ess_tail"``, ``"mcse_mean"`` and
        ``"ess_mean"`` (ESS of the mean, no rank normalisation) to compute.
    tail_probs : (float, float), default :data:`TAIL_ESS_PROBS`
        Quantiles for the tail ESS.

    Returns
    -------
    dict of str to ndarray of shape (E,)
        One entry per requested statistic.  NaN where ArviZ gives NaN: any NaN draw,
        fewer than 4 draws, and (R-hat only) fewer than 2 chains.
    """
    unknown = set(stats) - set(_KNOWN_STATS)
    if unknown:
        raise ValueError(f"unknown statistics {sorted(unknown)}; choose from {_KNOWN_STATS}")
    x = _as_blocks(x)
    e, c, d = x.shape
    out = {k: np.full(e, np.nan) for k in stats}
    if e == 0 or d < _MIN_DRAWS:
        return out
    block = max(1, _BLOCK_VALUES // (c * d))
    starts = range(0, e, block)

    def run(start: int) -> None:
        sl = slice(start, start + block)
        for k, v in _block_stats(x[sl], stats, tail_probs).items():
            out[k][sl] = v

    # NumPy's sorting, FFTs and ufuncs release the GIL, so blocks run in parallel.
    workers = min(_MAX_WORKERS, os.cpu_count() or 1, len(starts))
    if workers > 1:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(run, starts))
    else:
        for start in starts:
            run(start)
    return out


def _block_stats(chunk: np.ndarray, stats: tuple[str, ...],
                 tail_probs: tuple[float, float]) -> dict[str, np.ndarray]:
    """All requested statistics of one block of elements."""
    out = {}
    c = chunk.shape[1]
    with np.errstate(divide="ignore", invalid="ignore"):
        has_nan = np.isnan(chunk.reshape(chunk.shape[0], -1)).any(axis=-1)
        s = _split_chains(chunk)
        if "rhat" in stats or "ess_bulk" in stats:
            z, srt = _z_scale_sorted(s.reshape(s.shape[0], -1))
            z = z.reshape(s.shape)
        if "rhat" in stats and c >= 2:
            out["rhat"] = _nan_if(has_nan, _rhat_from_split(s, z, srt))
        if "ess_bulk" in stats:
            out["ess_bulk"] = _nan_if(has_nan, _ess_basic(z))
        if "ess_tail" in stats:
            out["ess_tail"] = _nan_if(has_nan, _ess_tail(chunk, tail_probs))
        if "mcse_mean" in stats:
            out["mcse_mean"] = _nan_if(has_nan, _mcse_mean(chunk, s))
        if "ess_mean" in stats:
            out["ess_mean"] = _nan_if(has_nan, _ess_basic(s))
    return out


def longer_run_factor(rhat: float, ess: float) -> float:
    """Rough factor by which the run must grow for R-hat ≤ RHAT_MAX and ESS ≥ ESS_MIN.

    ESS grows linearly with the draws (ESS_MIN / ESS); the excess R-hat − 1 of
    a chain that is still drifting shrinks roughly as 1/draws (the between-chain
    variance of chain means falls like the variance of a mean), so
    (R-hat − 1)/(RHAT_MAX − 1) more.  An order of magnitude, not a promise.
    """
    need = 1.0
    if np.isfinite(ess) and ess > 0:
        need = max(need, ESS_MIN / ess)
    if np.isfinite(rhat) and rhat > 1:
        need = max(need, (rhat - 1.0) / (RHAT_MAX - 1.0))
    return need
