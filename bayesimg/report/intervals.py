"""The credible-interval convention of bayesimg, stated once.

Every table and plot in :mod:`bayesimg.report` reports **95% equal-tailed intervals**
(ETI): the 2.5% and 97.5% posterior quantiles, computed with NumPy's default
("linear", Hyndman & Fan type 7) quantile rule, exactly as ``arviz_stats.eti`` does.

Why this needs saying: ArviZ 1.x changed its defaults to **89% ETI**
(``rcParams["stats.ci_prob"] = 0.89``, ``rcParams["stats.ci_kind"] = "eti"``; ArviZ
0.x used 94% HDI).  Imaging-genetics papers report 95% intervals, so any ArviZ call
made here passes ``ci_prob=CI_PROB`` explicitly instead of relying on ArviZ's
default, and column names always carry the probability (``eti95_lb``) so a table
can never be misread.

Users can still ask for another probability or for highest-density intervals
(``ci_kind="hdi"``) in :func:`bayesimg.report.summary`; the column names follow.
"""

from __future__ import annotations

import numpy as np

__all__ = ["CI_PROB", "CI_KIND", "interval_columns", "interval_label", "validate_interval",
           "compute_intervals"]

#: Probability mass inside every reported credible interval.
CI_PROB: float = 0.95
#: Kind of interval: ``"eti"`` (equal-tailed) or ``"hdi"`` (highest density).
CI_KIND: str = "eti"

_KINDS = ("eti", "hdi")


def validate_interval(ci_prob: float, ci_kind: str) -> tuple[float, str]:
    """Check an interval specification and return it normalised.

    Parameters
    ----------
    ci_prob : float
        Probability in (0, 1).
    ci_kind : {"eti", "hdi"}
        Interval kind (case-insensitive).

    Returns
    -------
    (float, str)

    Raises
    ------
    ValueError
        If ``ci_prob`` is not strictly between 0 and 1 or ``ci_kind`` is unknown.
    """
    kind = str(ci_kind).lower()
    if kind not in _KINDS:
        raise ValueError(f"ci_kind must be one of {_KINDS}, got {ci_kind!r}")
    prob = float(ci_prob)
    if not 0.0 < prob < 1.0:
        raise ValueError(f"ci_prob must be strictly between 0 and 1, got {ci_prob!r}")
    return prob, kind


def _percent(ci_prob: float) -> str:
    """``0.95 -> "95"``, ``0.975 -> "97.5"`` (no float noise such as 56.99999)."""
    return f"{round(ci_prob * 100, 6):g}"


def interval_columns(ci_prob: float = CI_PROB, ci_kind: str = CI_KIND) -> tuple[str, str]:
    """Names of the lower and upper bound columns, in ArviZ 1.x style.

    Parameters
    ----------
    ci_prob : float, default :data:`CI_PROB`
    ci_kind : {"eti", "hdi"}, default :data:`CI_KIND`

    Returns
    -------
    (str, str)
        E.g. ``("eti95_lb", "eti95_ub")``.
    """
    prob, kind = validate_interval(ci_prob, ci_kind)
    pct = _percent(prob)
    return f"{kind}{pct}_lb", f"{kind}{pct}_ub"


def interval_label(ci_prob: float = CI_PROB, ci_kind: str = CI_KIND) -> str:
    """Human-readable name of the interval, e.g. ``"95% ETI"`` (for plot legends)."""
    prob, kind = validate_interval(ci_prob, ci_kind)
    return f"{_percent(prob)}% {kind.upper()}"


def compute_intervals(draws: np.ndarray, ci_prob: float = CI_PROB,
                      ci_kind: str = CI_KIND) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper interval bounds of many quantities at once.

    Parameters
    ----------
    draws : ndarray, shape (E, S)
        ``S`` posterior draws (chains pooled) of each of ``E`` scalar quantities.
    ci_prob : float, default :data:`CI_PROB`
    ci_kind : {"eti", "hdi"}, default :data:`CI_KIND`
        ``"eti"``: the ``(1 - p)/2`` and ``(1 + p)/2`` quantiles, NumPy's "linear" rule
        (as ``arviz_stats.eti``; the tail probabilities are rounded to 12 decimals so
        95% gives exactly ``np.quantile(x, [0.025, 0.975])``).  ``"hdi"``: the
        narrowest interval spanning ``floor(p * S)`` consecutive sorted draws
        (identical to ArviZ's default ``hdi(method="nearest")``).

    Returns
    -------
    (ndarray, ndarray)
        Lower and upper bounds, each of shape ``(E,)``.
    """
    prob, kind = validate_interval(ci_prob, ci_kind)
    draws = np.asarray(draws, dtype=float)
    e, s = draws.shape
    if s == 0:
        return np.full(e, np.nan), np.full(e, np.nan)
    if kind == "eti":
        # Rounded so that 0.95 gives exactly the 0.025 and 0.975 quantiles: the raw
        # (1 - 0.95) / 2 is 0.025000000000000022 in binary floating point.
        edge = round((1.0 - prob) / 2.0, 12)
        q = np.quantile(draws, [edge, round(1.0 - edge, 12)], axis=-1)
        return q[0], q[1]
    srt = np.sort(draws, axis=-1)
    inc = min(int(np.floor(prob * s)), s - 1)
    widths = srt[:, inc:] - srt[:, : s - inc]
    start = np.argmin(widths, axis=-1)
    rows = np.arange(e)
    return srt[rows, start], srt[rows, start + inc]
