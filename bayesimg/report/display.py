"""Notebook displays: concise, labelled, rounded HTML for fits and their reports.

Jupyter calls ``_repr_html_`` on the last value of a cell.  Every object a user gets back
from bayesimg (a fit, its diagnostics, an information criterion) renders as a short
table here instead of a dump of its arrays; the plain-text ``repr`` stays for terminals.
"""

from __future__ import annotations

import html
from collections.abc import Iterable

import numpy as np
import pandas as pd

_STYLE = ("font-family: var(--jp-content-font-family, sans-serif); font-size: 13px; "
          "border-collapse: collapse")
_VERDICT_COLOURS = {"OK": "#1a7f37", "PROBLEMS": "#cf222e"}


def esc(value: object) -> str:
    return html.escape(str(value))


def number(value: object, digits: int = 3) -> str:
    """Round for display: 3 significant digits, integers as integers, NaN as '—'."""
    if value is None:
        return "—"
    try:
        x = float(value)
    except (TypeError, ValueError):
        return esc(value)
    if not np.isfinite(x):
        return "—"
    if x == int(x) and abs(x) < 1e6:
        return f"{int(x)}"
    return f"{x:.{digits}g}" if abs(x) < 1e-3 or abs(x) >= 1e4 else f"{x:.{digits}f}"


def key_value_table(title: str, rows: Iterable[tuple[str, object]],
                    notes: Iterable[str] = (), verdict: str | None = None) -> str:
    """A two-column table with a bold title, an optional coloured verdict and bullet notes."""
    head = f"<b>{esc(title)}</b>"
    if verdict is not None:
        colour = _VERDICT_COLOURS.get(verdict, "#6e7781")
        head += f" &nbsp;<span style='color:{colour}; font-weight:bold'>{esc(verdict)}</span>"
    body = "".join(f"<tr><td style='padding:1px 10px 1px 0; color:#57606a'>{esc(k)}</td>"
                   f"<td style='padding:1px 0'>{v}</td></tr>" for k, v in rows)
    items = "".join(f"<li>{esc(n)}</li>" for n in notes)
    notes_html = f"<ul style='margin:4px 0 0 0'>{items}</ul>" if items else ""
    return f"<div>{head}<table style='{_STYLE}'>{body}</table>{notes_html}</div>"


class DisplayTable(pd.DataFrame):
    """A DataFrame of raw values whose notebook and terminal displays are rounded and titled.

    Subclasses give :meth:`display_frame` (the strings shown), :meth:`_title` and, when
    rows are left out, :meth:`_left_out`; the data themselves are never rounded.
    """

    @property
    def _constructor(self):
        return type(self)

    def display_frame(self, max_rows: int | None = None) -> pd.DataFrame:
        """The strings the displays show (first ``max_rows`` rows; None: all)."""
        head = self if max_rows is None else self.iloc[:max_rows]
        return head.map(number)

    def _title(self) -> str:
        return ""

    def _left_out(self) -> str | None:
        return None

    def _repr_html_(self) -> str:
        frame = self.display_frame()
        head_cells = "".join(f"<th style='padding:1px 8px; text-align:right'>{esc(c)}</th>"
                             for c in frame.columns)
        header = (f"<tr><th style='padding:1px 8px; text-align:left'>"
                  f"{esc(frame.index.name or '')}</th>{head_cells}</tr>")
        body = "".join(
            f"<tr><td style='padding:1px 8px; text-align:left; color:#57606a'>{esc(label)}</td>"
            + "".join(f"<td style='padding:1px 8px; text-align:right'>{esc(v)}</td>"
                      for v in row)
            + "</tr>"
            for label, row in zip(frame.index, frame.to_numpy(), strict=True))
        more = self._left_out()
        note = f"<div style='color:#57606a'>{esc(more)}</div>" if more else ""
        return (f"<div><b>{esc(self._title())}</b><table style='{_STYLE}'>{header}{body}"
                f"</table>{note}</div>")

    def __repr__(self) -> str:
        lines = [self._title(), self.display_frame().to_string()]
        more = self._left_out()
        if more:
            lines.append(more)
        return "\n".join(lines)
