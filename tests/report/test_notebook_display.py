"""Plot functions render inline in a fresh IPython shell (no pyplot import needed)."""

from __future__ import annotations

import sys

import pytest
from report_synthetic import FakeFit, make_tree

from bayesimg.report import plots

PNG = b"\x89PNG\r\n\x1a\n"


def test_figure_renders_as_png_in_ipython_without_pyplot():
    interactiveshell = pytest.importorskip("IPython.core.interactiveshell")
    shell = interactiveshell.InteractiveShell.instance()
    try:
        fig = plots.plot_forest(FakeFit(make_tree()), top=3)
        data, _ = shell.display_formatter.format(fig)
        assert data["image/png"][:8] == PNG
        assert plots.register_notebook_display() is True
    finally:
        interactiveshell.InteractiveShell.clear_instance()


def test_outside_ipython_nothing_is_registered():
    ipython = sys.modules.get("IPython")
    if ipython is not None and ipython.get_ipython() is not None:
        pytest.skip("running inside IPython")
    assert plots.register_notebook_display() is False
