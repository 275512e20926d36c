"""Plots return matplotlib Figures and write non-empty PNG files atomically."""

from __future__ import annotations

import os
import warnings

import pytest
from matplotlib.figure import Figure
from report_synthetic import FakeFit, make_svi_tree, make_tree

from bayesimg.errors import BayesimgWarning, ModelSpecError
from bayesimg.report import (
    compare,
    loo,
    plot_compare,
    plot_elbo,
    plot_forest,
    plot_khat,
    plot_ppc,
    plot_trace,
    waic,
)
from bayesimg.report.plots import save_figure

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def tree():
    return make_tree(n_draw=150, n_subject=30)


def _check_png(fig, path):
    assert isinstance(fig, Figure)
    assert path.exists() and path.stat().st_size > 1000
    assert path.read_bytes()[:8] == PNG_MAGIC
    leftovers = [p for p in os.listdir(path.parent) if p.startswith(".")]
    assert leftovers == [], "temporary files were left behind"


def test_plot_forest(tree, tmp_path):
    path = tmp_path / "forest.png"
    fig = plot_forest(FakeFit(tree), var_name="W", top=5, path=path)
    _check_png(fig, path)
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert len(labels) == 5 and all(" | " in lab for lab in labels)
    assert "95% ETI" in ax.get_xlabel()


def test_plot_trace(tree, tmp_path):
    path = tmp_path / "sub" / "trace.png"  # missing folder is created
    fig = plot_trace(tree, ["W", "sigma"], max_vars=3, path=path)
    _check_png(fig, path)
    assert len(fig.axes) == 6
    assert "first 3 of 13" in fig.get_suptitle()


def test_plot_ppc(tree, tmp_path):
    path = tmp_path / "ppc.png"
    fig = plot_ppc(tree, "y", n_draws=20, path=path)
    _check_png(fig, path)
    assert [a.get_title() for a in fig.axes] == ["Left_Hippocampus_vol", "Right_Amygdala_vol",
                                                 "Left_Thalamus_vol"]


def test_plot_ppc_without_posterior_predictive():
    tree = make_tree(n_draw=50, posterior_predictive=False)
    with pytest.raises(ModelSpecError, match="no 'posterior_predictive' group"):
        plot_ppc(tree)


def test_plot_khat(tree, tmp_path):
    path = tmp_path / "khat.png"
    fig = plot_khat(loo(tree), path=path)
    _check_png(fig, path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BayesimgWarning)
        result = waic(tree)
    with pytest.raises(ModelSpecError, match="Pareto k"):
        plot_khat(result)


def test_plot_compare(tree, tmp_path):
    other = make_tree(n_draw=150, n_subject=30, seed=9, mu_offset=1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BayesimgWarning)
        df = compare({"good": tree, "shifted": other})
    path = tmp_path / "compare.png"
    fig = plot_compare(df, path=path)
    _check_png(fig, path)
    with pytest.raises(ModelSpecError):
        plot_compare(df[["elpd"]])


def test_plot_elbo(tmp_path):
    path = tmp_path / "elbo.png"
    fig = plot_elbo(make_svi_tree(), path=path)
    _check_png(fig, path)
    assert "converged" in fig.get_suptitle()
    with pytest.raises(ModelSpecError, match="no ELBO history"):
        plot_elbo(make_tree(n_draw=20))


def test_save_replaces_existing_file_atomically(tree, tmp_path):
    path = tmp_path / "fig.png"
    path.write_bytes(b"old")
    fig = plot_forest(tree, top=3)
    assert save_figure(fig, path) == str(path)
    _check_png(fig, path)


def test_no_pyplot_state_is_created(tree):
    import sys

    plot_forest(tree, top=3)
    if "matplotlib.pyplot" in sys.modules:
        import matplotlib.pyplot as plt

        assert plt.get_fignums() == []
