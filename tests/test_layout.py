"""The package layout of bayesimg.models (issue 20): one package per family plus ``core``.

* nothing under ``bayesimg/models`` imports the layers above it (inference, report, jobs,
  cli, config, workflows) — except the lazy re-exports of moved names inside a module-level
  ``__getattr__``, which run only when a user asks for such a name;
* a family imports ``core``, never another family (nor ``bayesimg.models`` itself, which
  imports every family), and ``core`` imports no family;
* no import cycle inside a family (lazy imports in function bodies included);
* the old public paths still resolve.
"""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "bayesimg" / "models"
FAMILIES = ("gsmtr", "glrr", "factor", "bnmix")
UPPER = ("bayesimg.inference", "bayesimg.report", "bayesimg.jobs", "bayesimg.cli",
         "bayesimg.config", "bayesimg.workflows")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _is_module(name: str) -> bool:
    rel = Path(*name.split("."))
    return (ROOT / rel).with_suffix(".py").is_file() or (ROOT / rel / "__init__.py").is_file()


def _imports(path: Path) -> list[tuple[str, bool]]:
    """(imported module, inside a module-level ``__getattr__``) for every import statement."""
    tree = ast.parse(path.read_text(), filename=str(path))
    lazy_nodes = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == "__getattr__":
            lazy_nodes.update(id(n) for n in ast.walk(node))
    package = _module_name(path) if path.name == "__init__.py" else \
        _module_name(path).rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        lazy = id(node) in lazy_nodes
        if isinstance(node, ast.Import):
            out += [(alias.name, lazy) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                out.append((sub if _is_module(sub) else base, lazy))
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(
                node.func, "id", None)) in ("import_module", "__import__"):
            out.append(("<dynamic import>", lazy))
    return out


def _model_files() -> list[Path]:
    return sorted(MODELS.rglob("*.py"))


def _family_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[2] if len(parts) > 2 and parts[:2] == ["bayesimg", "models"] else None


def test_the_layout_is_one_package_per_family_plus_core():
    rooms = sorted(p.name for p in MODELS.iterdir() if p.is_dir() and p.name != "__pycache__")
    assert rooms == sorted((*FAMILIES, "core"))
    assert sorted(p.name for p in MODELS.glob("*.py")) == ["__init__.py"]
    for room in rooms:
        assert (MODELS / room / "__init__.py").is_file()


def test_models_never_import_the_layers_above_them():
    bad = []
    for path in _model_files():
        for target, lazy in _imports(path):
            if target == "<dynamic import>" and not lazy:
                bad.append((str(path.relative_to(ROOT)), target))
            elif target.startswith(UPPER) and not lazy:
                bad.append((str(path.relative_to(ROOT)), target))
            elif target == "bayesimg" or (target.startswith(UPPER) and lazy
                                          and not target.startswith(("bayesimg.workflows",
                                                                     "bayesimg.report"))):
                bad.append((str(path.relative_to(ROOT)), target))
    assert not bad, bad


def test_a_family_imports_core_never_another_family():
    bad = []
    for path in _model_files():
        own = _family_of(_module_name(path))
        if own is None:          # bayesimg/models/__init__.py gathers the families
            continue
        for target, _ in _imports(path):
            other = _family_of(target)
            if target == "bayesimg.models" or (other is not None and other not in (own, "core")):
                bad.append((str(path.relative_to(ROOT)), target))
            if own == "core" and other in FAMILIES:
                bad.append((str(path.relative_to(ROOT)), target))
    assert not bad, bad


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        state[node] = 2
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


@pytest.mark.parametrize("family", (*FAMILIES, "core"))
def test_no_import_cycle_inside_a_family(family):
    graph: dict[str, set[str]] = {}
    for path in sorted((MODELS / family).rglob("*.py")):
        name = _module_name(path)
        graph[name] = {t for t, _ in _imports(path)
                       if _family_of(t) == family and t != name}
    assert graph, family
    assert _cycle(graph) is None, _cycle(graph)


def test_the_cycle_finder_finds_cycles():
    assert _cycle({"a": {"b"}, "b": {"a"}}) == ["a", "b", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_old_public_paths_still_resolve():
    import bayesimg as bi
    import bayesimg.models.factor.outputs as outputs
    import bayesimg.workflows as workflows
    from bayesimg.models import bnmix, factor_outputs
    from bayesimg.report.summary import top_loadings

    assert bi.models.GroupSparseMTR is importlib.import_module(
        "bayesimg.models.gsmtr").GroupSparseMTR
    assert factor_outputs is outputs
    assert importlib.import_module("bayesimg.models.factor_outputs") is outputs
    assert bnmix.select_n_clusters is workflows.select_n_clusters
    assert factor_outputs.select_k is workflows.select_k
    assert factor_outputs.top_loadings is top_loadings
    assert callable(bnmix.cluster_labels) and callable(bnmix.BNMix)
    from bayesimg.models.factor_outputs import select_k, variance_explained  # noqa: F401

    from bayesimg.models.bnmix import select_n_clusters  # noqa: F401
    with pytest.raises(AttributeError):
        _ = bnmix.no_such_name
    # the classes keep the module path they always had: fit_many's job fingerprints name it
    assert {cls.__module__ for cls in (bi.models.GroupSparseMTR, bi.models.GLRR,
                                       bi.models.MultiViewFactor, bi.models.BNMix)} == {
        "bayesimg.models.gsmtr", "bayesimg.models.glrr", "bayesimg.models.factor",
        "bayesimg.models.bnmix"}


def test_import_bayesimg_models_factor_outputs_in_a_fresh_process():
    code = ("import bayesimg.models.factor_outputs as fo, bayesimg.models.factor.outputs as o; "
            "assert fo is o and callable(fo.transform)")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=300)
