"""Reading fits: the one place that knows how a fit's DataTree is laid out.

Every report function accepts either an ``xarray.DataTree`` or an object with a
``.tree`` attribute holding one (``bayesimg.inference.Fit``).  The helpers here
turn that into plain numpy blocks of shape ``(element, chain, draw)`` plus labels,
so the statistics modules never touch xarray details.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr

from bayesimg.errors import ModelSpecError

SAMPLE_DIMS = ("chain", "draw")
APPROXIMATE_METHODS = ("svi", "map")


def as_tree(fit: Any) -> xr.DataTree:
    """Return the DataTree of a fit (a DataTree itself or an object with ``.tree``).

    Raises
    ------
    TypeError
        If ``fit`` is neither.
    """
    if isinstance(fit, xr.DataTree):
        return fit
    tree = getattr(fit, "tree", None)
    if isinstance(tree, xr.DataTree):
        return tree
    raise TypeError(
        "expected a bayesimg Fit or an xarray.DataTree with a 'posterior' group, "
        f"got {type(fit).__name__}")


def has_group(tree: xr.DataTree, name: str) -> bool:
    """Whether the tree has a child group ``name``."""
    return name in tree.children


def group(tree: xr.DataTree, name: str, *, purpose: str = "") -> xr.Dataset:
    """The dataset of group ``name``; a clear :class:`ModelSpecError` if it is missing."""
    if not has_group(tree, name):
        why = f" (needed for {purpose})" if purpose else ""
        present = ", ".join(sorted(tree.children)) or "none"
        raise ModelSpecError(f"the fit has no {name!r} group{why}; groups present: {present}")
    return tree[name].to_dataset()


def _attr_bool(value: Any) -> bool | None:
    if value is None:
        return None
    if isinstance(value, str):
        low = value.strip().lower()
        if low in ("true", "1", "yes"):
            return True
        if low in ("false", "0", "no", ""):
            return False
        return None
    return bool(value)


def method(tree: xr.DataTree) -> str | None:
    """Inference method recorded in the root attrs (``nuts``, ``gibbs``, ``svi``, ``map``)."""
    m = tree.attrs.get("method")
    return None if m is None else str(m).lower()


def is_approximate(tree: xr.DataTree) -> bool:
    """True for SVI/MAP fits: R-hat and ESS are then meaningless."""
    flag = _attr_bool(tree.attrs.get("approximate"))
    if flag is not None:
        return flag
    return method(tree) in APPROXIMATE_METHODS


def attr_bool(tree: xr.DataTree, key: str) -> bool | None:
    """A boolean root attribute (netCDF may have stored it as int or string)."""
    return _attr_bool(tree.attrs.get(key))


def association_site(tree: xr.DataTree, var_name: str | None) -> str:
    """``var_name`` if given, else the model's declared association site (root attrs).

    Trees without that attribute (built by hand) fall back to ``"W"``.
    """
    if var_name is not None:
        return var_name
    declared = tree.attrs.get("association_site")
    return str(declared) if declared else "W"


def trace_sites(tree: xr.DataTree) -> list[str]:
    """The model's declared trace-plot sites present in the posterior."""
    raw = tree.attrs.get("trace_sites")
    names = json.loads(raw) if isinstance(raw, str) else list(raw or [])
    post = tree["posterior"].data_vars if "posterior" in tree.children else {}
    return [n for n in names if n in post]


def settings(tree: xr.DataTree) -> dict[str, Any]:
    """The sampler settings in the root attrs (stored as JSON text in netCDF files)."""
    raw = tree.attrs.get("settings")
    if raw is None:
        return {}
    if isinstance(raw, str):
        try:
            out = json.loads(raw)
        except json.JSONDecodeError:
            return {}
        return out if isinstance(out, dict) else {}
    return dict(raw) if isinstance(raw, dict) else {}


def check_sample_dims(da: xr.DataArray, name: str) -> None:
    """Raise ModelSpecError unless ``da`` starts with dims ``("chain", "draw")``."""
    if tuple(da.dims[:2]) != SAMPLE_DIMS:
        raise ModelSpecError(
            f"variable {name!r} has dims {da.dims}; expected ('chain', 'draw', ...)")


def select_vars(ds: xr.Dataset, var_names: str | list[str] | None, where: str) -> list[str]:
    """Validate ``var_names`` against ``ds`` (None: every variable, in order, except the
    helper sites a model stored for a later computation, ``attrs["role"] == "helper"``)."""
    if var_names is None:
        return [str(v) for v in ds.data_vars if ds[v].attrs.get("role") != "helper"]
    if isinstance(var_names, str):
        var_names = [var_names]
    missing = [v for v in var_names if v not in ds.data_vars]
    if missing:
        raise ModelSpecError(
            f"{where} has no variable(s) {missing}; available: {sorted(map(str, ds.data_vars))}")
    return list(var_names)


def coord_values(da: xr.DataArray, dim: str) -> np.ndarray:
    """Coordinate labels of ``dim`` (integer positions when there is no coordinate)."""
    if dim in da.coords:
        return np.asarray(da.coords[dim].values)
    return np.arange(da.sizes[dim])


@dataclass
class Block:
    """Draws of one variable flattened to scalar elements.

    Attributes
    ----------
    name : str
        Variable name.
    dims : tuple of str
        Non-sample dims, in order.
    values : ndarray, shape (E, chain, draw)
        Draws, element-major (C order over ``dims``).
    coords : dict of str to ndarray
        For each dim, the label of every element (length ``E``).
    labels : list of str
        ``name[a, b]`` for each element (``name`` for scalars).
    """

    name: str
    dims: tuple[str, ...]
    values: np.ndarray
    coords: dict[str, np.ndarray]
    labels: list[str]


def element_coords(da: xr.DataArray, dims: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Per-element coordinate labels for the C-order flattening over ``dims``."""
    shape = tuple(da.sizes[d] for d in dims)
    if not dims:
        return {}
    idx = np.indices(shape).reshape(len(dims), -1)
    return {d: coord_values(da, d)[idx[i]] for i, d in enumerate(dims)}


def element_labels(name: str, coords: dict[str, np.ndarray], n: int) -> list[str]:
    """``name[a, b]`` labels (Python loop over elements, string building only)."""
    if not coords:
        return [name] * n
    cols = [list(map(str, v)) for v in coords.values()]
    return [f"{name}[{', '.join(parts)}]" for parts in zip(*cols, strict=True)]


def flatten_var(ds: xr.Dataset, name: str, *, with_labels: bool = True) -> Block:
    """Flatten variable ``name`` of a posterior-like dataset into a :class:`Block`."""
    da = ds[name]
    check_sample_dims(da, name)
    dims = tuple(str(d) for d in da.dims[2:])
    n_chain, n_draw = da.sizes["chain"], da.sizes["draw"]
    arr = np.asarray(da.transpose(*dims, *SAMPLE_DIMS).values)
    if arr.dtype == bool:
        arr = arr.astype(float)
    values = arr.reshape(-1, n_chain, n_draw)
    coords = element_coords(da, dims)
    labels = element_labels(name, coords, values.shape[0]) if with_labels else []
    return Block(name=name, dims=dims, values=values, coords=coords, labels=labels)


def log_likelihood(tree: xr.DataTree, var_name: str | None) -> tuple[xr.DataArray, str]:
    """The pointwise log-likelihood variable to use, and its name.

    With several observed sites and no ``var_name``, ``"y"`` is used when present;
    otherwise the caller must choose.
    """
    ds = group(tree, "log_likelihood", purpose="WAIC/LOO")
    names = [str(v) for v in ds.data_vars]
    if not names:
        raise ModelSpecError("the fit's 'log_likelihood' group is empty")
    if var_name is None:
        if len(names) == 1:
            var_name = names[0]
        elif "y" in names:
            var_name = "y"
        else:
            raise ModelSpecError(
                f"the log_likelihood group has several variables {names}; pass var_name=")
    if var_name not in names:
        raise ModelSpecError(f"log_likelihood has no variable {var_name!r}; available: {names}")
    da = ds[var_name]
    check_sample_dims(da, f"log_likelihood/{var_name}")
    if da.ndim < 3:
        raise ModelSpecError(
            f"log_likelihood/{var_name} has dims {da.dims}: it needs at least one "
            "observation dim (e.g. 'subject') after ('chain', 'draw')")
    return da, var_name
