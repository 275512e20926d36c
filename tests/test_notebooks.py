"""The notebooks run: each is executed at reduced size in a fresh kernel (nbclient).

The committed ``.ipynb`` (with its outputs) must hold the same code as its percent-format
source, so what users open is what CI ran.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
nbformat = pytest.importorskip("nbformat")
pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")


def _builder():
    spec = importlib.util.spec_from_file_location("build_notebooks",
                                                  ROOT / "scripts" / "build_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


BUILD = _builder()


@pytest.mark.parametrize("source", BUILD.NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_notebook_matches_its_source(source):
    committed = nbformat.read(source.with_suffix(".ipynb"), as_version=4)
    built = BUILD.notebook_from_percent(source)
    assert [(c.cell_type, c.source) for c in committed.cells] == \
        [(c.cell_type, c.source) for c in built.cells], "run scripts/build_notebooks.py"
    errors = [o for c in committed.cells for o in c.get("outputs", [])
              if o.output_type == "error"]
    assert not errors


@pytest.mark.parametrize("source", BUILD.NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_executes_in_a_fresh_kernel(source, monkeypatch):
    monkeypatch.setenv("BAYESIMG_NOTEBOOK_SIZE", "ci")
    nb = BUILD.execute(BUILD.notebook_from_percent(source), "ci", source.parent, timeout=1200)
    outputs = [o for c in nb.cells for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    images = [o for o in outputs if o.output_type in ("display_data", "execute_result")
              and "image/png" in o.get("data", {})]
    assert images, "plots must render inline without importing pyplot"
    html = [o for o in outputs if "text/html" in o.get("data", {})]
    assert html, "fits and tables render as HTML"
