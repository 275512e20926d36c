"""Standard plots of fits, drawn with matplotlib directly.

Every function builds a :class:`matplotlib.figure.Figure` without pyplot: nothing is
registered with a GUI backend, nothing is ever shown, and figures made in a loop are
garbage-collected like any object (safe on headless servers and under Agg).  In
Jupyter the returned figure displays inline, once (:func:`register_notebook_display`
gives IPython a PNG formatter for Figures; no pyplot import is needed).  Each function
returns the Figure and, given ``path=``, also writes it atomically: to a temporary file
in the same folder, then ``os.replace`` onto ``path``, so an interrupted run never
leaves a truncated image.

ArviZ 1.x's own plots (``arviz_plots``) return ``PlotCollection`` objects and render
to a silent ``"none"`` backend when no plotting library is configured; these
functions avoid that dependency and always return a plain matplotlib Figure.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from scipy.ndimage import gaussian_filter1d

from bayesimg.atomic import new_file_mode
from bayesimg.errors import ModelSpecError
from bayesimg.report import _tree
from bayesimg.report.compare import KHAT_BAD, KHAT_VERY_BAD, ICResult
from bayesimg.report.intervals import CI_KIND, CI_PROB, interval_columns, interval_label
from bayesimg.report.summary import top_associations

__all__ = ["plot_forest", "plot_trace", "plot_ppc", "plot_khat", "plot_compare", "plot_elbo",
           "save_figure"]

_DPI = 120
_FORMATS = ("png", "pdf", "svg")


def save_figure(fig: Figure, path: str | os.PathLike, dpi: int = _DPI) -> str:
    """Write ``fig`` to ``path`` atomically (temporary sibling file, then ``os.replace``).

    Parameters
    ----------
    fig : matplotlib.figure.Figure
    path : str or path-like
        Target file; PNG unless the suffix is ``.pdf`` or ``.svg``.  Missing parent
        folders are created.
    dpi : int, default 120

    Returns
    -------
    str
        The path written.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    suffix = os.path.splitext(path)[1].lstrip(".").lower()
    fmt = suffix if suffix in _FORMATS else "png"
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=f".{fmt}",
                               dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            fig.savefig(fh, format=fmt, dpi=dpi)
        os.chmod(tmp, new_file_mode())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def _finish(fig: Figure, path: str | os.PathLike | None) -> Figure:
    if path is not None:
        save_figure(fig, path)
    register_notebook_display()
    return fig


def _figure_png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return buffer.getvalue()


def register_notebook_display() -> bool:
    """Show matplotlib Figures as PNG in Jupyter/IPython without pyplot.

    A Figure built without pyplot has no canvas registered with IPython, so a notebook
    cell would print ``<Figure size ...>`` until something imported pyplot.  This
    registers a PNG formatter for :class:`~matplotlib.figure.Figure` with the running
    IPython shell (once; a no-op outside IPython), so the figure a plot function returns
    renders inline exactly once.  Returns True when a shell was found.
    """
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    if shell is None:
        return False
    formatter = shell.display_formatter.formatters["image/png"]
    if Figure not in formatter.type_printers:
        formatter.for_type(Figure, _figure_png)
    return True


def _new_figure(width: float, height: float) -> Figure:
    return Figure(figsize=(width, height), layout="constrained")


# --------------------------------------------------------------------------- forest
def plot_forest(fit: Any, var_name: str | None = None, top: int = 20, *,
                by: str = "abs_mean",
                ci_prob: float = CI_PROB, ci_kind: str = CI_KIND,
                path: str | os.PathLike | None = None) -> Figure:
    """Posterior means with credible-interval bars for the top associations.

    Parameters
    ----------
    fit : Fit or xarray.DataTree
    var_name : str, optional
        Coefficient variable (default: the model's declared association site, e.g.
        GSMTR's SNP x phenotype weights ``W``).
    top : int, default 20
        Number of associations shown (see :func:`~bayesimg.report.top_associations`).
    by : {"abs_mean", "prob_sign"}, default "abs_mean"
    ci_prob, ci_kind
        Interval convention (default 95% ETI).
    path : str or path-like, optional
        Also save the figure there (atomically).

    Returns
    -------
    matplotlib.figure.Figure
        Rows labelled by their coordinates (``rs123 | Left_Hippocampus_vol``); bars
        whose interval excludes zero are drawn in colour, the others in grey.
    """
    df = top_associations(fit, var_name=var_name, n=top, by=by, ci_prob=ci_prob,
                          ci_kind=ci_kind)
    lb_col, ub_col = interval_columns(ci_prob, ci_kind)
    dims = [c for c in df.columns if c not in ("mean", "sd", lb_col, ub_col, "prob_positive",
                                               "prob_sign", "excludes_zero", "rhat",
                                               "ess_bulk")]
    labels = [" | ".join(str(row[d]) for d in dims) if dims else str(idx)
              for idx, row in df.iterrows()]
    n = len(df)
    fig = _new_figure(7.5, 1.2 + 0.32 * max(n, 1))
    ax = fig.add_subplot()
    y = np.arange(n)[::-1]
    mean = df["mean"].to_numpy(float)
    lo, hi = df[lb_col].to_numpy(float), df[ub_col].to_numpy(float)
    excl = df["excludes_zero"].fillna(False).to_numpy(bool)
    for mask, color, label in ((excl, "tab:blue", f"{interval_label(ci_prob, ci_kind)} "
                                "excludes 0"),
                               (~excl, "0.55", "includes 0")):
        if mask.any():
            ax.hlines(y[mask], lo[mask], hi[mask], color=color, lw=2, label=label)
            ax.plot(mean[mask], y[mask], "o", color=color, ms=5)
    ax.axvline(0.0, color="k", lw=0.8, ls="--")
    ax.set_yticks(y, labels)
    var_name = df.attrs["var_name"]
    ax.set_xlabel(f"{var_name} (posterior mean and {interval_label(ci_prob, ci_kind)})")
    order = "|posterior mean|" if by == "abs_mean" else "posterior probability of sign"
    ax.set_title(f"Top {n} of {df.attrs['n_elements']} {var_name} elements by {order}")
    if n:
        ax.legend(loc="best", fontsize="small", frameon=False)
    return _finish(fig, path)


# --------------------------------------------------------------------------- trace
def plot_trace(fit: Any, var_names: str | list[str] | None = None, max_vars: int = 6, *,
               bins: int = 20, path: str | os.PathLike | None = None) -> Figure:
    """Trace plot and rank plot per chain for up to ``max_vars`` scalar parameters.

    Parameters
    ----------
    fit : Fit or xarray.DataTree
    var_names : str or list of str, optional
        Posterior variables (default: all); their scalar elements are shown in order.
    max_vars : int, default 6
        Maximum number of scalar parameters (rows) drawn.
    bins : int, default 20
        Bins of the rank histograms.
    path : str or path-like, optional

    Returns
    -------
    matplotlib.figure.Figure
        Left column: draws against iteration, one line per chain.  Right column:
        histograms of each chain's ranks among all draws; well-mixed chains give flat,
        overlapping histograms near the dashed uniform line.
    """
    tree = _tree.as_tree(fit)
    post = _tree.group(tree, "posterior", purpose="a trace plot")
    names = _tree.select_vars(post, var_names, "the posterior")
    if max_vars < 1:
        raise ModelSpecError(f"max_vars must be >= 1, got {max_vars}")
    rows: list[tuple[str, np.ndarray]] = []
    total = 0
    for name in names:
        block = _tree.flatten_var(post, name)
        total += block.values.shape[0]
        for lab, vals in zip(block.labels, block.values, strict=True):
            if len(rows) < max_vars:
                rows.append((lab, vals))
    n_chain, n_draw = rows[0][1].shape if rows else (0, 0)
    fig = _new_figure(10, 0.4 + 1.9 * max(len(rows), 1))
    axes = fig.subplots(max(len(rows), 1), 2, squeeze=False,
                        gridspec_kw={"width_ratios": [2.2, 1]})
    colors = [f"C{c % 10}" for c in range(n_chain)]
    edges = np.linspace(0.5, n_chain * n_draw + 0.5, bins + 1)
    for (lab, vals), (ax_t, ax_r) in zip(rows, axes, strict=False):
        ranks = pd.Series(vals.ravel()).rank(method="average").to_numpy().reshape(vals.shape)
        for c in range(n_chain):
            ax_t.plot(np.arange(n_draw), vals[c], color=colors[c], lw=0.6, alpha=0.8,
                      label=f"chain {c}")
            counts, _ = np.histogram(ranks[c], bins=edges)
            ax_r.stairs(counts, edges, color=colors[c], lw=1.2, baseline=None)
        ax_r.axhline(n_draw / bins, color="k", ls="--", lw=0.8)
        ax_r.set_ylim(bottom=0)
        ax_t.set_ylabel(lab, fontsize="small")
        ax_r.set_yticks([])
    if rows:
        axes[0, 0].set_title("trace")
        axes[0, 1].set_title("rank histogram per chain")
        axes[-1, 0].set_xlabel("draw")
        axes[-1, 1].set_xlabel("rank of draw (all chains pooled)")
        if n_chain <= 8:
            axes[0, 0].legend(fontsize="x-small", ncol=min(n_chain, 4), frameon=False)
    if total > len(rows):
        fig.suptitle(f"first {len(rows)} of {total} parameters", fontsize="small")
    return _finish(fig, path)


# --------------------------------------------------------------------------- ppc
def _binned_kde(x: np.ndarray, lo: float, hi: float, n_bins: int, bw: float) -> np.ndarray:
    """Gaussian KDE of each row of ``x`` on a common grid (histogram + Gaussian filter).

    Non-finite values and values outside ``[lo, hi)`` are left out of the histogram
    but still count in the normalisation, so every row integrates to its share of
    values inside the window.
    """
    k, n = x.shape
    width = (hi - lo) / n_bins
    pos = np.where(np.isfinite(x), (x - lo) / width, -1.0)
    inside = (pos >= 0) & (pos < n_bins)
    idx = np.where(inside, pos, 0).astype(int) + np.arange(k)[:, None] * n_bins
    counts = np.bincount(idx.ravel(), weights=inside.ravel().astype(float),
                         minlength=k * n_bins).reshape(k, n_bins)
    dens = gaussian_filter1d(counts, sigma=max(bw / width, 0.5), axis=1, mode="constant")
    n_finite = np.maximum(np.isfinite(x).sum(axis=1, keepdims=True), 1)
    return dens / (n_finite * width)


def _silverman(x: np.ndarray) -> float:
    x = x[np.isfinite(x)]
    if x.size < 2:
        return 1.0
    sd = np.std(x, ddof=1)
    iqr = np.subtract(*np.percentile(x, [75, 25])) / 1.34
    spread = min(sd, iqr) if iqr > 0 else sd
    if spread <= 0:
        spread = max(abs(float(np.mean(x))), 1.0) * 1e-3
    return 0.9 * spread * x.size ** -0.2


def plot_ppc(fit: Any, obs_name: str = "y", *, n_draws: int = 50, max_panels: int = 12,
             seed: int = 0, path: str | os.PathLike | None = None) -> Figure:
    """Posterior predictive check: observed vs predicted densities, one panel per phenotype.

    Parameters
    ----------
    fit : Fit or xarray.DataTree
        Needs ``observed_data[obs_name]`` (dims ``(subject, phenotype)``) and
        ``posterior_predictive[obs_name]`` (dims ``(chain, draw, subject, phenotype)``).
    obs_name : str, default "y"
    n_draws : int, default 50
        Predictive draws drawn as thin lines (picked at random).
    max_panels : int, default 12
        Maximum number of phenotype panels.
    seed : int, default 0
        Seed of the draw selection.
    path : str or path-like, optional

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ModelSpecError
        No ``posterior_predictive`` group (sample it when fitting), or no
        ``obs_name`` variable, or mismatched dims.
    """
    tree = _tree.as_tree(fit)
    if not _tree.has_group(tree, "posterior_predictive"):
        raise ModelSpecError(
            "the fit has no 'posterior_predictive' group, so there is nothing to compare "
            "with the data: draw posterior predictive samples when fitting (or add a "
            "'posterior_predictive' group to the tree) and call plot_ppc again.")
    pp = _tree.group(tree, "posterior_predictive")
    obs = _tree.group(tree, "observed_data", purpose="a posterior predictive check")
    for ds, where in ((pp, "posterior_predictive"), (obs, "observed_data")):
        if obs_name not in ds.data_vars:
            raise ModelSpecError(f"{where} has no variable {obs_name!r}; available: "
                                 f"{sorted(map(str, ds.data_vars))}")
    y_obs = obs[obs_name]
    y_pp = pp[obs_name]
    _tree.check_sample_dims(y_pp, f"posterior_predictive/{obs_name}")
    if tuple(y_pp.dims[2:]) != tuple(y_obs.dims):
        raise ModelSpecError(
            f"posterior_predictive/{obs_name} dims {y_pp.dims[2:]} do not match "
            f"observed_data/{obs_name} dims {y_obs.dims}")
    unit_dim = y_obs.dims[0]
    panel_dims = tuple(y_obs.dims[1:])
    obs_block = np.asarray(y_obs.transpose(unit_dim, *panel_dims).values, dtype=float)
    n_units = obs_block.shape[0]
    obs_block = obs_block.reshape(n_units, -1)
    pp_vals = np.asarray(y_pp.transpose("chain", "draw", unit_dim, *panel_dims).values,
                         dtype=float)
    n_total = pp_vals.shape[0] * pp_vals.shape[1]
    pp_vals = pp_vals.reshape(n_total, n_units, -1)
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(n_total, size=min(n_draws, n_total), replace=False))
    pp_vals = pp_vals[pick]

    if panel_dims:
        coords = _tree.element_coords(y_obs, panel_dims)
        titles = [" | ".join(str(coords[d][j]) for d in panel_dims)
                  for j in range(obs_block.shape[1])]
    else:
        titles = [obs_name]
    n_panels = min(len(titles), max_panels)
    ncols = min(3, n_panels)
    nrows = int(np.ceil(n_panels / ncols))
    fig = _new_figure(4.0 * ncols, 0.6 + 2.6 * nrows)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for j in range(n_panels):
        ax = axes[j]
        o = obs_block[:, j]
        p = pp_vals[:, :, j]
        finite = np.concatenate([o[np.isfinite(o)], p[np.isfinite(p)]])
        if finite.size == 0:
            ax.set_title(f"{titles[j]} (no finite values)", fontsize="small")
            continue
        lo, hi = np.percentile(finite, [0.5, 99.5])
        pad = 0.1 * (hi - lo) if hi > lo else 1.0
        lo, hi = lo - pad, hi + pad
        bw = _silverman(o)
        grid = lo + (np.arange(200) + 0.5) * (hi - lo) / 200
        dens_pp = _binned_kde(p, lo, hi, 200, bw)
        dens_obs = _binned_kde(o[np.isfinite(o)][None, :], lo, hi, 200, bw)[0]
        for row in dens_pp:
            ax.plot(grid, row, color="tab:blue", alpha=0.15, lw=0.7)
        ax.plot(grid, dens_pp.mean(axis=0), color="tab:blue", lw=1.5, ls="--",
                label="predictive mean")
        ax.plot(grid, dens_obs, color="k", lw=2, label="observed")
        ax.set_title(titles[j], fontsize="small")
        ax.set_yticks([])
    for ax in axes[n_panels:]:
        ax.set_axis_off()
    axes[0].legend(fontsize="x-small", frameon=False)
    extra = f" (first {n_panels} of {len(titles)} panels)" if len(titles) > n_panels else ""
    fig.suptitle(f"Posterior predictive check of {obs_name!r}: {len(pick)} predictive draws"
                 f"{extra}", fontsize="medium")
    return _finish(fig, path)


# --------------------------------------------------------------------------- khat
def plot_khat(loo_result: ICResult, *, annotate: int = 5,
              path: str | os.PathLike | None = None) -> Figure:
    """Pareto k of each observation (subject) from :func:`~bayesimg.report.loo`.

    Parameters
    ----------
    loo_result : ICResult
        A LOO result (``kind="loo"``).
    annotate : int, default 5
        Label this many of the highest k values above 0.7 with their subject.
    path : str or path-like, optional

    Returns
    -------
    matplotlib.figure.Figure
        Points coloured by reliability: k <= 0.7 good, 0.7 < k <= 1 bad, k > 1 very bad.
    """
    if not isinstance(loo_result, ICResult) or loo_result.pareto_k is None:
        raise ModelSpecError("plot_khat needs the result of bayesimg.report.loo(fit) "
                             "(it carries Pareto k values; WAIC does not)")
    k = np.asarray(loo_result.pareto_k, dtype=float)
    x = np.arange(k.size)
    fig = _new_figure(8, 3.8)
    ax = fig.add_subplot()
    cats = ((k <= KHAT_BAD, "tab:blue", f"k <= {KHAT_BAD}"),
            ((k > KHAT_BAD) & (k <= KHAT_VERY_BAD), "tab:orange",
             f"{KHAT_BAD} < k <= {KHAT_VERY_BAD}"),
            (k > KHAT_VERY_BAD, "tab:red", f"k > {KHAT_VERY_BAD}"))
    for mask, color, label in cats:
        if mask.any():
            ax.scatter(x[mask], k[mask], s=12, color=color, label=f"{label} ({mask.sum()})")
    ax.axhline(KHAT_BAD, color="tab:orange", ls="--", lw=0.8)
    ax.axhline(KHAT_VERY_BAD, color="tab:red", ls="--", lw=0.8)
    good_k = loo_result.good_k
    if good_k is not None and good_k < KHAT_BAD:
        ax.axhline(good_k, color="0.5", ls=":", lw=0.8,
                   label=f"sample-size threshold {good_k:.2f}")
    high = np.flatnonzero(k > KHAT_BAD)
    for i in high[np.argsort(-k[high])][:annotate]:
        ax.annotate(str(loo_result.obs_labels[i]), (x[i], k[i]), fontsize="x-small",
                    xytext=(3, 3), textcoords="offset points")
    dims = ", ".join(loo_result.obs_dims)
    ax.set_xlabel(f"observation index ({dims})")
    ax.set_ylabel("Pareto k")
    ax.set_title(f"PSIS-LOO Pareto k ({k.size} observations, {loo_result.n_draws} draws)")
    fig.legend(fontsize="x-small", frameon=False, loc="outside lower center", ncols=4)
    return _finish(fig, path)


# --------------------------------------------------------------------------- compare
def plot_compare(compare_df: pd.DataFrame, *, path: str | os.PathLike | None = None) -> Figure:
    """Model comparison plot from :func:`~bayesimg.report.compare`.

    Parameters
    ----------
    compare_df : pandas.DataFrame
        Output of ``compare`` (columns ``elpd``, ``se``, ``elpd_diff``, ``dse``,
        ``weight``), best model first.
    path : str or path-like, optional

    Returns
    -------
    matplotlib.figure.Figure
        Black: each model's elpd +/- se.  Grey: the difference to the best model,
        drawn at the model's elpd with +/- dse (the uncertainty that matters when
        ranking).  The dashed line marks the best model.
    """
    needed = {"elpd", "se", "elpd_diff", "dse", "weight"}
    if not isinstance(compare_df, pd.DataFrame) or not needed <= set(compare_df.columns):
        raise ModelSpecError(f"plot_compare needs the table returned by compare() "
                             f"(columns {sorted(needed)})")
    df = compare_df
    n = len(df)
    fig = _new_figure(7, 1.3 + 0.55 * max(n, 1))
    ax = fig.add_subplot()
    y = np.arange(n)[::-1].astype(float)
    elpd = df["elpd"].to_numpy(float)
    ax.errorbar(elpd, y, xerr=df["se"].to_numpy(float), fmt="o", color="k", capsize=3,
                label="elpd +/- se")
    rest = np.arange(n) > 0
    if rest.any():
        ax.errorbar(elpd[rest], y[rest] - 0.2, xerr=df["dse"].to_numpy(float)[rest], fmt="^",
                    color="0.5", capsize=3, label="difference to best +/- dse")
    ax.axvline(elpd[0], color="0.4", ls="--", lw=0.8)
    labels = [f"{name}\n(weight {w:.2f})" for name, w in zip(df.index, df["weight"],
                                                             strict=True)]
    ax.set_yticks(y, labels)
    ic = str(df.attrs.get("ic", "ic")).upper()
    ax.set_xlabel(f"elpd ({ic}; higher is better)")
    ax.set_title(f"Model comparison by {ic}")
    ax.legend(fontsize="x-small", frameon=False, loc="best")
    ax.margins(y=0.3)
    return _finish(fig, path)


# --------------------------------------------------------------------------- elbo
def _elbo_history(tree) -> np.ndarray:
    if _tree.has_group(tree, "svi") and "elbo" in tree["svi"].to_dataset().data_vars:
        return np.asarray(tree["svi"]["elbo"].values, dtype=float).ravel()
    raw = tree.attrs.get("elbo")
    if raw is not None:
        if isinstance(raw, str):
            import json

            raw = json.loads(raw)
        return np.asarray(raw, dtype=float).ravel()
    raise ModelSpecError(
        "the fit has no ELBO history: expected a DataTree group 'svi' with variable "
        "'elbo' (dim 'step'), as written by SVI/MAP fits, or an 'elbo' root attribute")


def plot_elbo(fit: Any, *, path: str | os.PathLike | None = None) -> Figure:
    """ELBO history of an SVI (or MAP) fit: full run and the last half enlarged.

    Parameters
    ----------
    fit : Fit or xarray.DataTree
        Needs group ``svi`` with variable ``elbo`` (dim ``step``), or an ``elbo``
        root attribute.
    path : str or path-like, optional

    Returns
    -------
    matplotlib.figure.Figure
        A converged run is flat (up to noise) over the enlarged last half.
    """
    tree = _tree.as_tree(fit)
    elbo = _elbo_history(tree)
    if elbo.size == 0:
        raise ModelSpecError("the fit's ELBO history is empty")
    steps = np.arange(elbo.size)
    window = max(1, elbo.size // 100)
    smooth = pd.Series(elbo).rolling(window, min_periods=1).mean().to_numpy()
    fig = _new_figure(10, 3.6)
    ax_all, ax_end = fig.subplots(1, 2)
    half = elbo.size // 2
    for ax, sl, title in ((ax_all, slice(None), "whole run"),
                          (ax_end, slice(half, None), "last half")):
        ax.plot(steps[sl], elbo[sl], color="tab:blue", lw=0.5, alpha=0.5, label="ELBO")
        ax.plot(steps[sl], smooth[sl], color="k", lw=1.2,
                label=f"running mean ({window} steps)")
        ax.set_xlabel("step")
        ax.set_title(title)
    ax_all.set_ylabel("ELBO (higher is better)")
    ax_all.legend(fontsize="x-small", frameon=False)
    converged = _tree.attr_bool(tree, "svi_converged")
    if converged is not None:
        fig.suptitle(f"SVI optimisation ({'converged' if converged else 'NOT converged'})",
                     fontsize="medium")
    return _finish(fig, path)
