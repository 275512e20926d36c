"""Build the notebooks from their percent-format sources and execute them.

    python scripts/build_notebooks.py [--size ci|full] [NAME.py ...]

Each ``case_studies/<study>/<study>.py`` written in the percent format (``# %%`` code
cells, ``# %% [markdown]`` markdown cells) becomes ``<study>.ipynb`` beside it, executed in a
fresh kernel (working directory: the study's folder) with ``BAYESIMG_NOTEBOOK_SIZE`` set,
and saved with its outputs (atomically).  The sources are what is reviewed; the notebooks
are what users open.  ``--size ci`` (the default, and what is committed) runs each study at
a tiny size that checks the analysis runs; ``--size full`` runs the size whose results the
study's README quotes (and writes its ``results/``).  CI executes every notebook at the
reduced size (tests/test_notebooks.py).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CASE_STUDIES = ROOT / "case_studies"


def notebook_sources(root: Path = CASE_STUDIES) -> list[Path]:
    """``<study>/<study>.py`` of every case study written in the percent format."""
    found = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        source = folder / f"{folder.name}.py"
        if source.is_file() and source.read_text().startswith("# %%"):
            found.append(source)
    return found


NOTEBOOKS = notebook_sources()


def cells_from_percent(text: str) -> list[tuple[str, str]]:
    """``[(kind, source)]`` from a percent-format script (kind: 'code' or 'markdown')."""
    cells: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        if line.startswith("# %%"):
            cells.append(("markdown" if "[markdown]" in line else "code", []))
            continue
        if not cells:
            continue
        kind, lines = cells[-1]
        if kind == "markdown":
            line = line[2:] if line.startswith("# ") else line.lstrip("#")
        lines.append(line)
    return [(kind, "\n".join(lines).strip("\n")) for kind, lines in cells]


def notebook_from_percent(path: Path):
    import nbformat
    nb = nbformat.v4.new_notebook()
    for kind, source in cells_from_percent(path.read_text()):
        maker = nbformat.v4.new_markdown_cell if kind == "markdown" else nbformat.v4.new_code_cell
        nb.cells.append(maker(source))
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    return nb


def execute(nb, size: str, cwd: Path, timeout: int = 900):
    from nbclient import NotebookClient
    os.environ["BAYESIMG_NOTEBOOK_SIZE"] = size
    os.environ.setdefault("MPLBACKEND", "Agg")
    # the kernel runs in the notebook's folder: make it import this checkout's bayesimg
    # (a relative PYTHONPATH such as "." would point into the case study instead)
    paths = [str(ROOT)] + [str(Path(p).resolve()) for p in
                           os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(cwd)}})
    client.execute()
    return nb


def build(path: Path, size: str) -> Path:
    import nbformat

    from bayesimg.atomic import write_text_atomic
    nb = execute(notebook_from_percent(path), size, path.parent)
    out = path.with_suffix(".ipynb")
    write_text_atomic(out, nbformat.writes(nb))
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=("ci", "full"), default="ci")
    parser.add_argument("sources", nargs="*", type=Path)
    args = parser.parse_args()
    for source in args.sources or NOTEBOOKS:
        print("built", build(source.resolve(), args.size), file=sys.stderr)
