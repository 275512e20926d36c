r"""The neighbourhood graph over ROIs of the bilateral GSMTR: input checks and the CAR spectrum.

A graph links the P regions of the left/right pairs (the same graph in both
hemispheres).  From its symmetric, non-negative adjacency A (P×P, zero diagonal,
degrees dᵢ) the model uses the normalised adjacency

    Ã = D^{-1/2} A D^{-1/2}      (Ãᵢⱼ = Aᵢⱼ/√(dᵢdⱼ); a region with no neighbour has a zero row),

and the conditional autoregressive (CAR) correlation C(ρ_s) = (I − ρ_s Ã)⁻¹.  With
Ã = U diag(μ) Uᵀ the eigenvectors U do not depend on ρ_s and C has eigenvalues
1/(1 − ρ_s μ_k); C is positive definite exactly for ρ_s ∈ (1/μ_min, 1/μ_max).  Every
connected component with an edge has μ = 1 (eigenvector ∝ D^{1/2}1), so the upper end
is 1, and the lower end is ≤ −1 (the μ sum to tr Ã = 0; it is −1 for a bipartite
component, e.g. an even ring).  Isolated regions have μ = 0 and stay independent of
the others whatever ρ_s; components share one ρ_s.  For a regular graph (all dᵢ = δ)
D − ρ_s A = δ(I − ρ_s Ã): the usual proper CAR precision, up to a scale.

Eigenvalues that agree within :data:`EIGENVALUE_TOLERANCE` (repeated by symmetry: a
ring's come in pairs) are replaced by their mean, so that the noise has one variance
per group of modes and the sampler one factorisation per group; the model's Ã is
U diag(μ̄) Uᵀ, within that tolerance of the graph's.

Accepted inputs (:func:`resolve_roi_graph`): a list of ``(roi, roi)`` edges, a square
pandas DataFrame labelled by ROI on both axes, or a P×P array in the order of the
pairs.  An ROI is named by its region (``"entorhinal_thickness"``, as
:func:`bayesimg.data.pair_hemispheres` names it; ``"left/right"`` for pairs given by
hand) or by either of its phenotypes.  Edges named by phenotypes must stay within a
hemisphere, and when both hemispheres are named their graphs must agree (the model is
the Kronecker product [[1, ρ], [ρ, 1]] ⊗ C(ρ_s), one graph for both sides).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from bayesimg.errors import DataValidationError, ModelSpecError

#: eigenvalues of Ã closer than this (absolute) are one group of modes
EIGENVALUE_TOLERANCE = 1e-8


@dataclass(frozen=True)
class RoiGraph:
    """A validated ROI graph over the pairs: adjacency and the spectrum of Ã."""

    adjacency: np.ndarray        # (P, P) symmetric, zero diagonal, non-negative
    values: np.ndarray           # (P,) eigenvalues μ̄ of Ã, ascending, groups averaged
    vectors: np.ndarray          # (P, P) orthonormal eigenvectors U (columns)
    mode_sizes: tuple[int, ...]  # sizes of the groups of equal eigenvalues, in order
    n_components: int            # connected components with at least one edge
    n_isolated: int              # regions with no neighbour


def spatial_range(values):
    """(1/μ_min, 1/μ_max): the ρ_s for which (I − ρ_s Ã)⁻¹ is positive definite."""
    return 1.0 / values.min(), 1.0 / values.max()


def car_correlation(rho_spatial, values, vectors):
    """(I − ρ_s Ã)⁻¹ = U diag(1/(1 − ρ_s μ)) Uᵀ, batched over ρ_s (…,) → (…, P, P)."""
    rho_spatial = np.asarray(rho_spatial, dtype=float)
    eig = 1.0 / (1.0 - rho_spatial[..., None] * values)
    return np.einsum("ik,...k,jk->...ij", vectors, eig, vectors)


def spectrum(adjacency: np.ndarray) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
    """Eigenvalues (grouped and averaged), eigenvectors and group sizes of Ã."""
    degree = adjacency.sum(axis=1)
    inv_sqrt = np.where(degree > 0, 1.0 / np.sqrt(np.where(degree > 0, degree, 1.0)), 0.0)
    normalised = inv_sqrt[:, None] * adjacency * inv_sqrt[None, :]
    values, vectors = np.linalg.eigh(normalised)
    sizes, start = [], 0
    for k in range(1, len(values) + 1):
        if k == len(values) or values[k] - values[k - 1] > EIGENVALUE_TOLERANCE:
            values[start:k] = values[start:k].mean()
            sizes.append(k - start)
            start = k
    return values, vectors, tuple(sizes)


def _components(adjacency: np.ndarray) -> tuple[int, int]:
    """(components with an edge, isolated regions)."""
    P = adjacency.shape[0]
    seen = np.zeros(P, bool)
    with_edges = 0
    for start in range(P):
        if seen[start] or not adjacency[start].any():
            continue
        with_edges += 1
        stack = [start]
        seen[start] = True
        while stack:
            i = stack.pop()
            for j in np.flatnonzero(adjacency[i] > 0):
                if not seen[j]:
                    seen[j] = True
                    stack.append(j)
    return with_edges, int(np.sum(~adjacency.any(axis=1)))


def check_graph_spec(roi_graph) -> None:
    """Shape-level checks of ``roi_graph`` that need no data (raised by the constructor)."""
    if roi_graph is None:
        return
    try:
        import pandas as pd
        if isinstance(roi_graph, pd.DataFrame):
            return
    except ImportError:  # pragma: no cover - pandas is a dependency
        pass
    if isinstance(roi_graph, np.ndarray):
        if roi_graph.ndim != 2 or roi_graph.shape[0] != roi_graph.shape[1]:
            raise ModelSpecError(f"roi_graph as an array must be square (P × P, one row per "
                                 f"left/right pair), got shape {roi_graph.shape}")
        return
    if isinstance(roi_graph, str) or not isinstance(roi_graph, Sequence):
        raise ModelSpecError("roi_graph must be None, a list of (roi, roi) edges, a square "
                             f"DataFrame labelled by ROI or a P × P array; got {roi_graph!r}")
    if not roi_graph:
        raise ModelSpecError("roi_graph is an empty edge list: pass None for no graph")
    for e, edge in enumerate(roi_graph):
        if (isinstance(edge, str) or not isinstance(edge, Sequence) or len(edge) != 2
                or not all(isinstance(x, str) for x in edge)):
            raise ModelSpecError(f"roi_graph edge {e} must be a (roi, roi) pair of names, "
                                 f"got {edge!r}")


def resolve_roi_graph(roi_graph, regions: list[str], left_names: list[str],
                      right_names: list[str], phenotype_names: list[str]) -> RoiGraph:
    """Validate ``roi_graph`` against the pairs and return its :class:`RoiGraph`.

    ``regions``, ``left_names``, ``right_names``: one entry per pair, in pair order.
    """
    P = len(regions)
    label: dict[str, tuple[int, str | None]] = {}
    for p in range(P):
        label[regions[p]] = (p, None)
    for p in range(P):
        label.setdefault(left_names[p], (p, "left"))
        label.setdefault(right_names[p], (p, "right"))
    unpaired = set(phenotype_names) - set(left_names) - set(right_names)

    def locate(name, where):
        name = str(name)
        if name in label:
            return label[name]
        if name in unpaired:
            raise DataValidationError(
                f"roi_graph {where} names {name!r}, a phenotype in no left/right pair: the "
                "graph links the regions of the pairs (unpaired measures stay independent)")
        more = " …" if P > 6 else ""
        raise DataValidationError(
            f"roi_graph {where} names {name!r}, which is neither a region of the pairs "
            f"({regions[:6]}{more}) nor one of their phenotypes")

    import pandas as pd
    weighted: list[tuple[str, str, float, str]] = []       # (a, b, weight, where)
    if isinstance(roi_graph, pd.DataFrame):
        rows, cols = [str(x) for x in roi_graph.index], [str(x) for x in roi_graph.columns]
        if sorted(rows) != sorted(cols) or len(set(rows)) != len(rows):
            raise DataValidationError(
                "roi_graph as a DataFrame must have the same unique ROI labels as its index "
                f"and its columns (index {rows[:4]}…, columns {cols[:4]}…)")
        matrix = roi_graph.loc[roi_graph.index, [roi_graph.columns[cols.index(r)]
                                                 for r in rows]]
        values = _checked_matrix(matrix.to_numpy(dtype=float), rows)
        names = rows
    elif isinstance(roi_graph, np.ndarray):
        if roi_graph.shape != (P, P):
            raise DataValidationError(
                f"roi_graph as an array must be {P} × {P} (one row per left/right pair, in "
                f"the order {regions[:4]}…), got {roi_graph.shape}")
        values = _checked_matrix(np.asarray(roi_graph, dtype=float), regions)
        names = regions
    else:
        values, names = None, None
        for e, (a, b) in enumerate(roi_graph):
            weighted.append((a, b, 1.0, f"edge {e} ({a!r}, {b!r})"))
    if values is not None:
        for i, j in zip(*np.nonzero(np.triu(values, 1)), strict=True):
            weighted.append((names[i], names[j], float(values[i, j]),
                             f"entry ({names[i]!r}, {names[j]!r})"))
        for name in names:
            locate(name, "label")

    adjacency = np.zeros((P, P))
    sided: dict[str, dict[tuple[int, int], float]] = {"left": {}, "right": {}}
    for a, b, weight, where in weighted:
        (i, side_a), (j, side_b) = locate(a, where), locate(b, where)
        if i == j:
            raise DataValidationError(
                f"roi_graph {where} links region {regions[i]!r} to itself (the adjacency "
                "must have a zero diagonal; the left/right coupling is ρ, not an edge)")
        if side_a and side_b and side_a != side_b:
            raise DataValidationError(
                f"roi_graph {where} links the two hemispheres: edges must stay within a "
                "hemisphere (the left/right coupling is ρ; the graph is the same on both sides)")
        key = (min(i, j), max(i, j))
        side = side_a or side_b
        if side:
            sided[side][key] = weight
        else:
            adjacency[key] = adjacency[key[::-1]] = weight
    if sided["left"] and sided["right"] and sided["left"] != sided["right"]:
        only = sorted(set(sided["left"].items()) ^ set(sided["right"].items()))[0]
        (i, j), _ = only
        raise DataValidationError(
            f"roi_graph differs between hemispheres at regions ({regions[i]!r}, "
            f"{regions[j]!r}): the model uses one graph for both sides (the Kronecker form "
            "[[1, ρ], [ρ, 1]] ⊗ CAR), so left and right edges must match")
    for side in ("left", "right"):
        for (i, j), weight in sided[side].items():
            if adjacency[i, j] not in (0.0, weight):
                raise DataValidationError(
                    f"roi_graph gives regions ({regions[i]!r}, {regions[j]!r}) two different "
                    f"weights ({adjacency[i, j]:g} and {weight:g})")
            adjacency[i, j] = adjacency[j, i] = weight
    if not adjacency.any():
        raise DataValidationError("roi_graph has no edge between two regions: pass "
                                  "roi_graph=None for the model without a graph")
    values, vectors, sizes = spectrum(adjacency)
    n_components, n_isolated = _components(adjacency)
    return RoiGraph(adjacency, values, vectors, sizes, n_components, n_isolated)


def _checked_matrix(matrix: np.ndarray, names: list[str]) -> np.ndarray:
    """An adjacency matrix: finite, non-negative, symmetric, zero diagonal."""
    if not np.all(np.isfinite(matrix)):
        raise DataValidationError("roi_graph has missing or infinite entries")
    if np.any(matrix < 0):
        i, j = np.argwhere(matrix < 0)[0]
        raise DataValidationError(f"roi_graph entry ({names[i]!r}, {names[j]!r}) is "
                                  f"{matrix[i, j]:g}: edge weights must be >= 0")
    if not np.allclose(matrix, matrix.T, rtol=0, atol=1e-12):
        i, j = np.argwhere(~np.isclose(matrix, matrix.T, rtol=0, atol=1e-12))[0]
        raise DataValidationError(f"roi_graph is not symmetric: entry ({names[i]!r}, "
                                  f"{names[j]!r}) is {matrix[i, j]:g} but ({names[j]!r}, "
                                  f"{names[i]!r}) is {matrix[j, i]:g}")
    if np.any(np.diag(matrix) != 0):
        i = int(np.flatnonzero(np.diag(matrix))[0])
        raise DataValidationError(f"roi_graph has a non-zero diagonal at {names[i]!r}: a "
                                  "region is not its own neighbour")
    return matrix
