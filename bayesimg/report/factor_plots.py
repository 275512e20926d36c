"""Plots for multi-view factor fits (matplotlib Figures, no pyplot).

* :func:`plot_variance_explained` — heatmap of posterior-mean R² (view × factor),
  each cell annotated with its 95% interval, plus total R² per view.
* :func:`plot_factor_scatter` — two factors' posterior means for every subject,
  coloured by a label (subtype, diagnosis, site), with 95% interval whiskers.
* :func:`plot_top_loadings` — the features of one view with the largest loadings
  on one factor, posterior means with 95% intervals.

Each returns the Figure (shown inline in a notebook, without pyplot) and, given ``path=``,
writes it atomically.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import xarray as xr
from matplotlib.figure import Figure

from bayesimg.report.plots import _finish
from bayesimg.report.summary import top_loadings

__all__ = ["plot_factor_scatter", "plot_top_loadings", "plot_variance_explained"]


def plot_variance_explained(ve: xr.Dataset, *, path: str | os.PathLike | None = None,
                            factors: list[str] | None = None) -> Figure:
    """Heatmap of R² (view × factor) from
    :func:`~bayesimg.models.factor.outputs.variance_explained`."""
    mean = ve["r2_mean"]
    if factors is not None:
        mean = mean.sel(factor=factors)
    lo = ve["r2_lower"].sel(factor=mean["factor"])
    hi = ve["r2_upper"].sel(factor=mean["factor"])
    views = [str(v) for v in mean["view"].values]
    facs = [str(f) for f in mean["factor"].values]
    fig = Figure(figsize=(1.0 + 0.9 * len(facs) + 1.6, 0.8 + 0.7 * len(views)))
    ax = fig.add_axes((0.12, 0.15, 0.68, 0.72))
    vals = np.clip(mean.values, 0.0, None)
    im = ax.imshow(vals, cmap="Blues", vmin=0.0, vmax=max(0.05, float(vals.max())),
                   aspect="auto")
    for i in range(len(views)):
        for j in range(len(facs)):
            ax.text(j, i, f"{100 * vals[i, j]:.1f}\n[{100 * max(lo.values[i, j], 0):.1f}, "
                    f"{100 * hi.values[i, j]:.1f}]", ha="center", va="center", fontsize=6,
                    color="white" if vals[i, j] > 0.6 * vals.max() else "black")
    ax.set_xticks(range(len(facs)), facs)
    ax.set_yticks(range(len(views)), views)
    ax.set_title("variance explained, % (95% interval)", fontsize=9)
    cax = fig.add_axes((0.82, 0.15, 0.02, 0.72))
    fig.colorbar(im, cax=cax)
    tot = ve["r2_total_mean"].values
    ax2 = fig.add_axes((0.90, 0.15, 0.08, 0.72))
    ax2.barh(range(len(views)), tot[::-1], color="grey")
    ax2.set_yticks([])
    ax2.set_title("total", fontsize=8)
    return _finish(fig, path)


def plot_factor_scatter(fit, labels: pd.Series | None = None, x: int | str = 0,
                        y: int | str = 1, *, path: str | os.PathLike | None = None,
                        Z: xr.DataArray | None = None) -> Figure:
    """Factor ``x`` against factor ``y`` (posterior means ± 95% intervals), coloured by ``labels``.

    ``Z`` (draw dims first, then sample, factor) may be given instead of the fit's
    posterior, e.g. the ``Z`` of :func:`~bayesimg.models.factor.outputs.transform`.
    """
    if Z is None:
        Z = fit.posterior["Z"].stack(_s=("chain", "draw")).transpose("_s", "sample", "factor")
    else:
        Z = Z.transpose(..., "sample", "factor")
        Z = Z.stack(_s=[d for d in Z.dims if d not in ("sample", "factor")])
        Z = Z.transpose("_s", "sample", "factor")
    facs = [str(f) for f in Z["factor"].values]
    fx = facs[x] if isinstance(x, int) else x
    fy = facs[y] if isinstance(y, int) else y
    vals = np.asarray(Z.values)
    jx, jy = facs.index(fx), facs.index(fy)
    mx, my = vals[:, :, jx].mean(0), vals[:, :, jy].mean(0)
    lx, hx = np.quantile(vals[:, :, jx], [0.025, 0.975], axis=0)
    ly, hy = np.quantile(vals[:, :, jy], [0.025, 0.975], axis=0)
    fig = Figure(figsize=(5.2, 4.4))
    ax = fig.add_subplot(1, 1, 1)
    samples = [str(s) for s in Z["sample"].values]
    if labels is None:
        groups = {"all": np.ones(len(samples), bool)}
    else:
        lab = labels.reindex(samples).astype(str).to_numpy()
        groups = {g: lab == g for g in sorted(set(lab))}
    if len(groups) <= 10:
        colors = [f"C{i}" for i in range(10)]
    else:
        from matplotlib import colormaps
        cmap = colormaps["tab20"]
        colors = [cmap(i % 20) for i in range(20)]
    for (g, sel), col in zip(groups.items(), colors * 10, strict=False):
        ax.errorbar(mx[sel], my[sel], xerr=[mx[sel] - lx[sel], hx[sel] - mx[sel]],
                    yerr=[my[sel] - ly[sel], hy[sel] - my[sel]], fmt="o", ms=3, lw=0.3,
                    alpha=0.7, color=col, label=f"{g} ({int(sel.sum())})")
    ax.set_xlabel(fx)
    ax.set_ylabel(fy)
    if labels is not None:
        ax.legend(fontsize=7, title=labels.name, title_fontsize=7)
    fig.tight_layout()
    return _finish(fig, path)


def plot_top_loadings(fit, view: str, factor: int | str = 0, n: int = 15, *,
                      path: str | os.PathLike | None = None) -> Figure:
    """Largest |loadings| of ``view`` on ``factor`` with 95% intervals and inclusion."""
    table = top_loadings(fit, view, factor, n=n)
    fig = Figure(figsize=(5.0, 0.3 * len(table) + 1.0))
    ax = fig.add_subplot(1, 1, 1)
    pos = np.arange(len(table))[::-1]
    ax.errorbar(table["mean"], pos, xerr=[table["mean"] - table["lower"],
                                          table["upper"] - table["mean"]],
                fmt="o", ms=4, color="C0")
    ax.axvline(0.0, color="grey", lw=0.6)
    ax.set_yticks(pos, [f"{f} ({p:.2f})" for f, p in zip(table.index, table["inclusion"],
                                                         strict=True)], fontsize=7)
    fac = factor if isinstance(factor, str) else str(fit.posterior["factor"].values[factor])
    ax.set_title(f"{view}: top loadings on {fac} (inclusion prob.)", fontsize=9)
    fig.tight_layout()
    return _finish(fig, path)
