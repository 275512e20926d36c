"""Markdown tables for report folders and case-study write-ups (no extra dependency)."""

from __future__ import annotations

import pandas as pd


def markdown_table(df: pd.DataFrame, *, index: bool = True, floatfmt: str = ".4g") -> str:
    """A GitHub-flavoured Markdown table of ``df`` (floats formatted with ``floatfmt``)."""
    shown = df.copy()
    for col in shown.columns:
        if pd.api.types.is_float_dtype(shown[col]):
            shown[col] = shown[col].map(lambda v: format(v, floatfmt))
    names = ([str(shown.index.name or "")] if index else []) + list(map(str, shown.columns))
    header = "| " + " | ".join(names) + " |"
    rule = "|" + "---|" * len(names)
    rows = []
    for i, row in zip(shown.index, shown.itertuples(index=False), strict=True):
        cells = ([str(i)] if index else []) + [str(v) for v in row]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join([header, rule] + rows)
