"""The notebooks run: each is executed at reduced size in a fresh kernel (nbclient).

The committed ``.ipynb`` (with its outputs) must hold the same code as its percent-format
source, so what users open is what CI ran.  Every case study is a notebook, except
``bgsmtr_example`` (its data may not be redistributed, so there is nothing bundled to run
it on) and ``visits_pairs_sites`` (grouped K-fold of four families: too slow for CI).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
nbformat = pytest.importorskip("nbformat")
pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
#: case studies that stay scripts, and why
SCRIPTS = {"bgsmtr_example": "reads bgsmtr's example data from a path the user gives",
           "visits_pairs_sites": "25 fold fits of four families (minutes even at a tiny size): "
                                 "no room in CI's 30-minute budget; run by hand"}


def _builder():
    spec = importlib.util.spec_from_file_location("build_notebooks",
                                                  ROOT / "scripts" / "build_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


BUILD = _builder()


def test_every_case_study_is_a_notebook_its_readme_points_at():
    folders = sorted(p.name for p in (ROOT / "case_studies").iterdir()
                     if p.is_dir() and p.name != "data")
    built = {p.parent.name for p in BUILD.NOTEBOOKS}
    assert set(folders) - set(SCRIPTS) == built
    for source in BUILD.NOTEBOOKS:
        readme = source.parent / "README.md"
        if readme.is_file():
            assert source.with_suffix(".ipynb").name in readme.read_text(), readme
        assert "BAYESIMG_NOTEBOOK_SIZE" in source.read_text()


@pytest.mark.parametrize("source", BUILD.NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_notebook_matches_its_source(source):
    committed = nbformat.read(source.with_suffix(".ipynb"), as_version=4)
    built = BUILD.notebook_from_percent(source)
    assert [(c.cell_type, c.source) for c in committed.cells] == \
        [(c.cell_type, c.source) for c in built.cells], "run scripts/build_notebooks.py"
    outputs = [o for c in committed.cells for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    assert all(c.get("execution_count") for c in committed.cells if c.cell_type == "code"), \
        "the committed notebook holds its outputs"
    sizes = [o.get("text", "") for o in outputs if o.output_type == "stream"]
    assert any(text.startswith("size: ci") for text in sizes), "committed at the CI size"


@pytest.mark.parametrize("source", BUILD.NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_executes_in_a_fresh_kernel(source, monkeypatch, tmp_path):
    monkeypatch.setenv("BAYESIMG_NOTEBOOK_SIZE", "ci")
    before = {p: p.stat().st_mtime for p in source.parent.rglob("*") if p.is_file()}
    nb = BUILD.execute(BUILD.notebook_from_percent(source), "ci", source.parent, timeout=1200)
    outputs = [o for c in nb.cells for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    images = [o for o in outputs if o.output_type in ("display_data", "execute_result")
              and "image/png" in o.get("data", {})]
    assert images, "plots must render inline without importing pyplot"
    html = [o for o in outputs if "text/html" in o.get("data", {})]
    assert html, "fits and tables render as HTML"
    after = {p: p.stat().st_mtime for p in source.parent.rglob("*") if p.is_file()}
    assert after == before, "the CI size writes nothing into the case study (results/ is full size)"
