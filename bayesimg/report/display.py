"""Notebook displays: concise, labelled, rounded HTML for fits and their reports.

Jupyter calls ``_repr_html_`` on the last value of a cell.  Every object a user gets back
from bayesimg (a fit, its diagnostics, an information criterion) renders as a short
table here instead of a dump of its arrays; the plain-text ``repr`` stays for terminals.
"""

from __future__ import annotations

import html
from collections.abc import Iterable

import numpy as np

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
