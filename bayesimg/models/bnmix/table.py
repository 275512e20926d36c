"""One table of mixed node types → BNMix's data, with the column order and names kept.

bnClustOmics takes omics blocks in a fixed type order (binary, ordinal, continuous)
and users split their table by hand.  :func:`views_from_table` takes one pandas
DataFrame — rows subjects (index: subject IDs), columns nodes — and decides each
column's type: **binary** when its observed values are 0/1 (or booleans), **Gaussian**
otherwise.  Consecutive columns of one type form one view, so the concatenated nodes
are exactly the table's columns in the table's order: node ``j`` of the fit is column
``j`` of the table, and every output (``edge_probabilities``, ``B``, ``allowed_initial``
…) is labelled by the column names.  Edge matrices given as arrays therefore use the
table's column order.

Constant columns are **refused** (a :class:`~bayesimg.errors.DataValidationError`
listing them): a constant node carries no information, and dropping it here would
silently shift every later column's index.  Drop them yourself (the error names
them) so the indices you use are the ones the fit uses.  Missing entries are refused
as well (BNMix models none yet).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from bayesimg.data.views import MultiViewData, make_views
from bayesimg.errors import DataValidationError


def column_is_binary(values: np.ndarray) -> bool:
    """True when every observed value is 0 or 1 (a Bernoulli node)."""
    v = values[~np.isnan(values)]
    return bool(v.size) and bool(np.isin(v, (0.0, 1.0)).all())


def views_from_table(frame: pd.DataFrame, *, binary: Sequence[str] | None = None,
                     name: str = "table") -> MultiViewData:
    """A :class:`MultiViewData` whose nodes are ``frame``'s columns, in order.

    Parameters
    ----------
    frame : pandas.DataFrame
        Subjects × nodes, numeric or boolean; the index holds subject IDs.
    binary : sequence of column names, optional
        The binary columns.  Default: every column whose values are all 0/1.  A named
        column must hold only 0/1.
    name : str
        The data set's name.
    """
    if not isinstance(frame, pd.DataFrame):
        raise DataValidationError(f"expected a pandas DataFrame, got {type(frame).__name__}")
    if frame.shape[0] == 0 or frame.shape[1] == 0:
        raise DataValidationError("the table has no rows or no columns", source=name)
    cols = [str(c) for c in frame.columns]
    dup = pd.Index(cols)[pd.Index(cols).duplicated()]
    if len(dup):
        raise DataValidationError("node name appears more than once", source=name,
                                  column=str(dup[0]))
    table = frame.copy()
    table.columns = cols
    values = np.empty(table.shape, dtype=float)
    for j, c in enumerate(cols):
        col = table[c]
        if col.dtype == bool:
            col = col.astype(float)
        numeric = pd.to_numeric(col, errors="coerce")
        bad = numeric.isna() & col.notna()
        if bad.any():
            raise DataValidationError(f"non-numeric value {col[bad].iloc[0]!r}", source=name,
                                      column=c, subject=str(col.index[bad.to_numpy()][0]))
        values[:, j] = numeric.to_numpy(dtype=float)
    if np.isnan(values).any():
        i, j = np.argwhere(np.isnan(values))[0]
        raise DataValidationError(
            f"BNMix does not model missing entries yet ({int(np.isnan(values).sum())} missing "
            "in the table); drop or impute them", source=name, column=cols[j],
            subject=str(table.index[i]))
    constant = [c for j, c in enumerate(cols) if np.unique(values[:, j]).size < 2]
    if constant:
        raise DataValidationError(
            f"{len(constant)} constant column(s) {constant[:10]}: a constant node carries no "
            "information and BNMix does not drop columns itself (later columns would "
            "change index); remove them from the table first", source=name,
            column=constant[0])
    if binary is None:
        is_binary = [column_is_binary(values[:, j]) for j in range(len(cols))]
    else:
        wanted = {str(b) for b in binary}
        unknown = sorted(wanted - set(cols))
        if unknown:
            raise DataValidationError(f"binary names column {unknown[0]!r}, which is not in "
                                      "the table", source=name, column=unknown[0])
        is_binary = [c in wanted for c in cols]
        for j, c in enumerate(cols):
            if is_binary[j] and not column_is_binary(values[:, j]):
                raise DataValidationError("a binary column must hold only 0/1", source=name,
                                          column=c)
    # runs of consecutive columns of one type → one view each (the order is kept)
    tables, likelihoods = {}, {}
    start = 0
    for j in range(1, len(cols) + 1):
        if j == len(cols) or is_binary[j] != is_binary[start]:
            kind = "binary" if is_binary[start] else "gaussian"
            view = f"{kind}_{len(tables) + 1}"
            tables[view] = pd.DataFrame(values[:, start:j], index=table.index,
                                        columns=cols[start:j])
            likelihoods[view] = "bernoulli" if is_binary[start] else "gaussian"
            start = j
    return make_views(tables, likelihoods=likelihoods, subjects="intersection",
                      standardize=False, drop_constant=False, name=name)
