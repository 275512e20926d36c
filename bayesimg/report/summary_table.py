"""Display of posterior summary tables: concise, labelled and rounded, data untouched.

:func:`bayesimg.report.summary` and :func:`~bayesimg.report.top_associations` return a
:class:`SummaryTable`, a ``pandas.DataFrame`` whose values stay raw floats (for
filtering, sorting, ``to_csv``) but whose notebook (``_repr_html_``) and terminal
(``repr``) displays are made for reading:

* **coordinates once** — each row is named by its label (``W[rs4988235, Left_Hippocampus_vol]``);
  the ``variable`` and per-dim coordinate columns that repeat it are hidden from the
  display (they stay in the data, so ``df[df.snp == "rs1"]`` works);
* **rounded to the Monte Carlo precision** — the mean, sd and interval bounds of a row
  are shown to the decimal that gives its posterior sd two significant digits
  (``d = max(0, 1 - floor(log10 sd))``, at most 6; three significant digits when the sd
  is zero or missing, e.g. a MAP fit); R-hat to 3 decimals, ESS as integers, MCSE and
  other numbers to 2-3 significant digits;
* **labelled** — a title with the method, the interval convention and the row count, in
  the style of the Fit, diagnostics and LOO displays (:mod:`bayesimg.report.display`),
  and at most :data:`MAX_ROWS` rows, with a line saying how many are left out.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from bayesimg.report.display import DisplayTable, number

__all__ = ["SummaryTable", "MAX_ROWS"]

#: Rows shown by the notebook and terminal displays (the data keep every row).
MAX_ROWS = 30
_SCALE_COLUMNS = ("mean", "sd")
_MAX_DECIMALS = 6


def _is_bound(column: str) -> bool:
    return column.endswith("_lb") or column.endswith("_ub")


def _decimals(sd: float) -> int | None:
    """Decimals that show ``sd`` to two significant digits (None: no usable sd)."""
    if sd is None or not np.isfinite(sd) or sd <= 0:
        return None
    return int(min(_MAX_DECIMALS, max(0, 1 - math.floor(math.log10(sd)))))


def _fixed(value: object, decimals: int | None) -> str:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return str(value)
    if not np.isfinite(x):
        return "—"
    if decimals is None:
        return f"{x:.3g}"
    return f"{x:.{decimals}f}"


def _significant(value: object, digits: int) -> str:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return str(value)
    return f"{x:.{digits}g}" if np.isfinite(x) else "—"


def _integer(value: object) -> str:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return str(value)
    return f"{x:.0f}" if np.isfinite(x) else "—"


def _format_column(column: str, values: pd.Series, decimals: list[int | None]) -> list[str]:
    if column in _SCALE_COLUMNS or _is_bound(column):
        return [_fixed(v, d) for v, d in zip(values, decimals, strict=True)]
    if column == "rhat":
        return [_fixed(v, 3) for v in values]
    if column.startswith("ess"):
        return [_integer(v) for v in values]
    if column.startswith("mcse"):
        return [_significant(v, 2) for v in values]
    if column.startswith("prob"):
        return [_fixed(v, 3) for v in values]
    if pd.api.types.is_bool_dtype(values) or not pd.api.types.is_numeric_dtype(values):
        return ["—" if v is None or v is pd.NA else str(v) for v in values]
    return [number(v) for v in values]


class SummaryTable(DisplayTable):
    """A posterior summary: a DataFrame of raw values with a rounded, labelled display.

    ``attrs["label_columns"]`` names the columns the row labels already spell out
    (hidden from the display only).
    """

    # ------------------------------------------------------------------ display
    def display_frame(self, max_rows: int | None = MAX_ROWS) -> pd.DataFrame:
        """The rounded strings the displays show (first ``max_rows`` rows; None: all)."""
        hidden = set(self.attrs.get("label_columns", ()))
        shown = [c for c in self.columns if c not in hidden]
        head = self if max_rows is None else self.iloc[:max_rows]
        if "sd" in head.columns:
            decimals = [_decimals(float(s)) if pd.notna(s) else None for s in head["sd"]]
        else:
            decimals = [None] * len(head)
        return pd.DataFrame({c: _format_column(str(c), head[c], decimals) for c in shown},
                            index=pd.Index(head.index, name=head.index.name))

    def _title(self) -> str:
        attrs = self.attrs
        parts = []
        if attrs.get("method"):
            parts.append(f"{attrs['method']}" + (" (approximate)" if attrs.get("approximate")
                                                 else ""))
        if "ci_prob" in attrs:
            parts.append(f"{100 * float(attrs['ci_prob']):g}% "
                         f"{str(attrs.get('ci_kind', 'eti')).upper()}")
        parts.append(f"{len(self)} row{'s' if len(self) != 1 else ''}")
        kind = "Top associations" if "by" in attrs else "Posterior summary"
        return f"{kind}: " + ", ".join(parts)

    def _left_out(self) -> str | None:
        if len(self) <= MAX_ROWS:
            return None
        return (f"… {len(self) - MAX_ROWS} more rows (all are in the data: filter with "
                "df[df.variable == ...], sort with summary(..., sort_by=...))")
