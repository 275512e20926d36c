"""Build the API reference (HTML) from the docstrings with pdoc.

    python scripts/build_api_docs.py [OUTPUT_FOLDER]      # default: docs/api

Documents the public packages (data → models → inference → report, the workflows, the
command line's configuration and the errors) with math rendered, and fails on any pdoc
warning, so a broken docstring or an unimportable module breaks the build (CI runs this
through tests/test_api_docs.py).
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

MODULES = ["bayesimg", "bayesimg.inference",
           "bayesimg.workflows", "bayesimg.metrics", "bayesimg.baselines",
           "bayesimg.config", "bayesimg.errors"]


def build(output: Path) -> list[Path]:
    import pdoc
    import pdoc.extract
    import pdoc.render

    pdoc.render.configure(docformat="numpy", math=True, show_source=False,
                          footer_text="bayesimg API reference")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pdoc.pdoc(*MODULES, output_directory=output)
    return sorted(output.rglob("*.html"))


if __name__ == "__main__":
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[1] / \
        "docs" / "api"
    pages = build(out)
    print(f"API reference: {len(pages)} pages in {out}")
