"""Posterior summary tables: one labelled row per scalar parameter.

The statistics are raw, unrounded floats (ArviZ 1.x's ``summary`` rounds to two
significant figures unless ``round_to="none"``), and intervals follow the project
convention of :mod:`bayesimg.report.intervals` (95% ETI).  R-hat, ESS and MCSE use
the vectorised estimators of :mod:`bayesimg.mcmc_stats`, which reproduce
``arviz_stats.rhat``/``ess``/``mcse`` but run on whole arrays at once (a 20 000
element weight matrix is summarised in seconds, not minutes).  The tables are
:class:`~bayesimg.report.summary_table.SummaryTable` DataFrames: the data stay raw, the
notebook and terminal displays round them and name each row once by its label.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd

from bayesimg import mcmc_stats as _mcmc_stats
from bayesimg.errors import DataValidationError, ModelSpecError
from bayesimg.report import _tree
from bayesimg.report.intervals import CI_KIND, CI_PROB, compute_intervals, interval_columns
from bayesimg.report.summary_table import SummaryTable

__all__ = ["summary", "top_associations", "top_loadings", "STAT_COLUMNS"]

#: Statistic columns of :func:`summary`, in order (the two interval columns go
#: between ``sd`` and ``rhat`` and are named by :func:`interval_columns`).
STAT_COLUMNS = ("mean", "sd", "rhat", "ess_bulk", "ess_tail", "mcse_mean")

# Columns for which "most notable first" means ascending order.
_ASCENDING = {"ess_bulk", "ess_tail"}


def _moments(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    flat = values.reshape(values.shape[0], -1)
    mean = flat.mean(axis=-1)
    if flat.shape[1] < 2:
        return mean, np.full(flat.shape[0], np.nan)
    return mean, flat.std(axis=-1, ddof=1)


def _convergence(values: np.ndarray, approximate: bool,
                 stats: tuple[str, ...] = _mcmc_stats.ALL_STATS) -> dict[str, np.ndarray]:
    if approximate:
        return {k: np.full(values.shape[0], np.nan) for k in stats}
    return _mcmc_stats.convergence_table(values, stats=stats)


def _coord_columns(blocks: list[_tree.Block], n_rows: int) -> dict[str, Any]:
    """One column per coordinate dim over all variables (None where a var lacks it)."""
    dims: list[str] = []
    for b in blocks:
        dims.extend(d for d in b.dims if d not in dims)
    out: dict[str, Any] = {}
    for d in dims:
        owners = [b for b in blocks if d in b.dims]
        if len(owners) == len(blocks):
            out[d] = np.concatenate([b.coords[d] for b in blocks])
            continue
        col = np.full(n_rows, None, dtype=object)
        start = 0
        for b in blocks:
            n = b.values.shape[0]
            if d in b.dims:
                col[start:start + n] = b.coords[d]
            start += n
        out[d] = col
    return out


def _sort(df: pd.DataFrame, sort_by: str | None) -> pd.DataFrame:
    if sort_by is None:
        return df
    if sort_by == "abs_mean":
        # argsort puts NaN last.
        return df.iloc[np.argsort(-np.abs(df["mean"].to_numpy(float)), kind="stable")]
    if sort_by not in df.columns:
        raise ModelSpecError(
            f"cannot sort by {sort_by!r}; choose 'abs_mean' or one of {list(df.columns)}")
    ascending = sort_by in _ASCENDING or sort_by not in set(df.select_dtypes("number").columns)
    return df.sort_values(sort_by, ascending=ascending, na_position="last", kind="stable")


def summary(fit: Any, var_names: str | list[str] | None = None, ci_prob: float = CI_PROB,
            ci_kind: str = CI_KIND, *, sort_by: str | None = None,
            top: int | None = None) -> pd.DataFrame:
    """Posterior summary, one row per scalar element of each variable.

    Parameters
    ----------
    fit : Fit or xarray.DataTree
        A fit (anything with a ``.tree`` DataTree) or the DataTree itself.
    var_names : str or list of str, optional
        Posterior variables to summarise (default: all).
    ci_prob : float, default :data:`~bayesimg.report.intervals.CI_PROB` (0.95)
        Interval probability.
    ci_kind : {"eti", "hdi"}, default ``"eti"``
        Equal-tailed or highest-density interval.
    sort_by : str, optional
        ``"abs_mean"`` or any column name.  Numeric columns sort so the most notable
        rows come first: descending (largest ``|mean|``, ``rhat``, ``sd`` ...), except
        ``ess_bulk``/``ess_tail`` which sort ascending (worst first); label columns
        sort ascending.  NaN always last.
    top : int, optional
        Keep only the first ``top`` rows (after sorting).

    Returns
    -------
    pandas.DataFrame
        Index ``parameter`` with readable labels such as
        ``W[rs4988235, Left_Hippocampus_vol]``.  Columns: ``variable``, one column per
        coordinate dim (e.g. ``snp``, ``phenotype``; ``None`` for variables without
        that dim) so rows can be filtered with ``df[df.snp == "rs1"]``, then ``mean``,
        ``sd`` (ddof=1), the interval bounds (e.g. ``eti95_lb``, ``eti95_ub``),
        ``rhat`` (rank-normalised split R-hat), ``ess_bulk``, ``ess_tail`` (5%/95%
        quantiles) and ``mcse_mean``, all raw floats.  For approximate fits (SVI,
        MAP) ``rhat``, ``ess_*`` and ``mcse_mean`` are NaN: they do not apply to
        independent draws from an approximation.  ``df.attrs`` records ``ci_prob``,
        ``ci_kind``, ``method`` and ``approximate``.

    Raises
    ------
    ModelSpecError
        Unknown variable, bad sort column, or no posterior group.
    """
    lb_col, ub_col = interval_columns(ci_prob, ci_kind)
    if top is not None and (isinstance(top, bool) or int(top) < 0):
        raise ModelSpecError(f"top must be a non-negative integer, got {top!r}")
    tree = _tree.as_tree(fit)
    post = _tree.group(tree, "posterior", purpose="a summary")
    names = _tree.select_vars(post, var_names, "the posterior")
    approximate = _tree.is_approximate(tree)

    blocks = [_tree.flatten_var(post, name) for name in names]
    streamed = _streamed_moments(tree, blocks)
    n_rows = sum(b.values.shape[0] for b in blocks)
    columns: dict[str, Any] = {
        "variable": np.concatenate([np.full(b.values.shape[0], b.name, dtype=object)
                                    for b in blocks]) if blocks else np.array([], dtype=object)}
    columns.update(_coord_columns(blocks, n_rows))

    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("mean", "sd", lb_col, ub_col,
                                                         *_mcmc_stats.ALL_STATS)}
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        for b in blocks:
            mean, sd = streamed.get(b.name) or _moments(b.values)
            lb, ub = compute_intervals(b.values.reshape(b.values.shape[0], -1), ci_prob, ci_kind)
            conv = _convergence(b.values, approximate)
            parts["mean"].append(mean)
            parts["sd"].append(sd)
            parts[lb_col].append(lb)
            parts[ub_col].append(ub)
            for k in _mcmc_stats.ALL_STATS:
                parts[k].append(conv[k])
    for k, v in parts.items():
        columns[k] = np.concatenate(v) if v else np.array([], dtype=float)

    index = pd.Index([lab for b in blocks for lab in b.labels], name="parameter")
    df = pd.DataFrame(columns, index=index)
    df = _sort(df, sort_by)
    if top is not None:
        df = df.iloc[: int(top)]
    df = SummaryTable(df)
    df.attrs.update({"ci_prob": float(ci_prob), "ci_kind": str(ci_kind).lower(),
                     "method": _tree.method(tree), "approximate": approximate,
                     "streamed_moments": sorted(streamed),
                     "label_columns": [c for c in columns if c not in parts]})
    return df


def _streamed_moments(tree, blocks) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Mean and sd over *all* draws for sites whose stored draws were thinned.

    Intervals, R-hat and ESS still come from the kept draws (see
    :mod:`bayesimg.inference.storage`).
    """
    if "posterior_streaming" not in tree.children:
        return {}
    ds = tree["posterior_streaming"].to_dataset()
    out = {}
    for b in blocks:
        if f"{b.name}_mean" in ds and f"{b.name}_sd" in ds:
            order = [d for d in b.dims]
            out[b.name] = (np.asarray(ds[f"{b.name}_mean"].transpose(*order).values).ravel(),
                           np.asarray(ds[f"{b.name}_sd"].transpose(*order).values).ravel())
    return out


def top_associations(fit: Any, var_name: str | None = None, n: int = 20, by: str = "abs_mean",
                     ci_prob: float = CI_PROB, ci_kind: str = CI_KIND) -> pd.DataFrame:
    """The strongest associations in a coefficient matrix such as ``W`` (SNP × phenotype).

    Ranking uses only cheap vectorised statistics over all elements; intervals,
    R-hat and bulk ESS are then computed for the selected rows only, so this is fast
    even for very large coefficient arrays.

    Parameters
    ----------
    fit : Fit or xarray.DataTree
    var_name : str, optional
        Posterior variable holding the coefficients (default: the site the model
        declares as its associations, ``W`` for GSMTR).
    n : int, default 20
        Number of rows to return.
    by : {"abs_mean", "prob_sign"}, default "abs_mean"
        ``"abs_mean"``: largest absolute posterior mean first.  ``"prob_sign"``:
        largest posterior probability of the sign first (ties broken by ``|mean|``).
    ci_prob, ci_kind
        Interval convention (default 95% ETI).

    Returns
    -------
    pandas.DataFrame
        Index: labels like ``W[rs4988235, Left_Hippocampus_vol]``.  Columns: one per
        coordinate dim, ``mean``, ``sd``, the interval bounds, ``prob_positive``
        (P(w > 0)), ``prob_sign`` (max(P(w > 0), P(w < 0))), ``excludes_zero``
        (whether the interval excludes 0), ``rhat`` and ``ess_bulk`` (NaN for
        approximate fits).  With a single draw (MAP) the probabilities and
        ``excludes_zero`` are missing: a point estimate carries no uncertainty.

    Raises
    ------
    ModelSpecError
        Unknown variable or ``by``.
    """
    if by not in ("abs_mean", "prob_sign"):
        raise ModelSpecError(f"by must be 'abs_mean' or 'prob_sign', got {by!r}")
    if isinstance(n, bool) or int(n) < 1:
        raise ModelSpecError(f"n must be a positive integer, got {n!r}")
    lb_col, ub_col = interval_columns(ci_prob, ci_kind)
    tree = _tree.as_tree(fit)
    var_name = _tree.association_site(tree, var_name)
    post = _tree.group(tree, "posterior", purpose="top associations")
    _tree.select_vars(post, var_name, "the posterior")
    approximate = _tree.is_approximate(tree)

    block = _tree.flatten_var(post, var_name, with_labels=False)
    flat = block.values.reshape(block.values.shape[0], -1)
    n_draws = flat.shape[1]
    mean = flat.mean(axis=-1)
    p_pos = (flat > 0).mean(axis=-1)
    p_neg = (flat < 0).mean(axis=-1)
    p_sign = np.maximum(p_pos, p_neg)
    if by == "abs_mean":
        order = np.lexsort((np.arange(mean.size), -np.abs(mean)))
    else:
        order = np.lexsort((np.arange(mean.size), -np.abs(mean), -p_sign))
    sel = order[: int(n)]

    values = block.values[sel]
    coords = {d: v[sel] for d, v in block.coords.items()}
    labels = _tree.element_labels(var_name, coords, sel.size)
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        _, sd = _moments(values)
        lb, ub = compute_intervals(flat[sel], ci_prob, ci_kind)
        conv = _convergence(values, approximate, stats=("rhat", "ess_bulk"))

    df = SummaryTable(coords, index=pd.Index(labels, name="parameter"))
    df["mean"] = mean[sel]
    df["sd"] = sd
    df[lb_col] = lb
    df[ub_col] = ub
    if n_draws >= 2:
        df["prob_positive"] = p_pos[sel]
        df["prob_sign"] = p_sign[sel]
        df["excludes_zero"] = (lb > 0) | (ub < 0)
    else:
        df["prob_positive"] = np.nan
        df["prob_sign"] = np.nan
        df["excludes_zero"] = pd.array([pd.NA] * sel.size, dtype="boolean")
    df["rhat"] = conv["rhat"]
    df["ess_bulk"] = conv["ess_bulk"]
    df.attrs.update({"ci_prob": float(ci_prob), "ci_kind": str(ci_kind).lower(),
                     "var_name": var_name, "by": by, "n_elements": int(mean.size),
                     "method": _tree.method(tree), "approximate": approximate,
                     "label_columns": list(coords)})
    return df


def top_loadings(fit, view: str, factor: str | int, n: int = 15) -> pd.DataFrame:
    """The ``n`` features of ``view`` with the largest |posterior mean| loading on ``factor``.

    For multi-view factor fits (posterior ``W_<view>`` and ``incl_<view>`` over dims
    ``feature_<view>`` × ``factor``): mean, 95% interval and mean inclusion per feature.
    Reads only the fit (also reachable as ``bayesimg.models.factor.outputs.top_loadings``).
    """
    views = [str(v) for v in fit.posterior["view"].values]
    if view not in views:
        raise DataValidationError(f"no view {view!r} in the fit; views: {views}")
    factors = [str(f) for f in fit.posterior["factor"].values]
    if isinstance(factor, int | np.integer):
        if not 0 <= factor < len(factors):
            raise DataValidationError(f"factor index {factor} out of range 0..{len(factors) - 1}")
        factor = factors[int(factor)]
    if factor not in factors:
        raise DataValidationError(f"no factor {factor!r}; factors: {factors}")
    W = fit.posterior[f"W_{view}"].sel(factor=factor)
    incl = fit.posterior[f"incl_{view}"].sel(factor=factor).mean(("chain", "draw"))
    table = pd.DataFrame({
        "mean": W.mean(("chain", "draw")).values,
        "lower": W.quantile(0.025, ("chain", "draw")).values,
        "upper": W.quantile(0.975, ("chain", "draw")).values,
        "inclusion": incl.values}, index=W[f"feature_{view}"].values)
    order = np.argsort(-np.abs(table["mean"].to_numpy()), kind="stable")
    return table.iloc[order[:n]]
