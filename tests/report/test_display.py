"""Notebook displays: every object a user gets back renders as a short labelled table."""

from __future__ import annotations

from report_synthetic import make_tree

from bayesimg.inference.fit import Fit
from bayesimg.report import diagnose


def test_diagnostics_repr_says_each_message_once():
    diag = diagnose(Fit(make_tree(shift_chains=3.0)))
    assert not diag.ok
    text = repr(diag)
    assert text == str(diag) and not text.startswith("Diagnostics(")
    for message in diag.messages:
        assert text.count(message) == 1
    page = diag._repr_html_()
    assert "PROBLEMS" in page and "max R-hat" in page and "<table" in page
    assert "OK" in diagnose(Fit(make_tree()))._repr_html_()


def test_fit_html_names_model_method_and_variables():
    fit = Fit(make_tree(attrs={"model": "gsmtr", "method": "nuts", "seed": 7}))
    page = fit._repr_html_()
    assert "bayesimg Fit" in page and "gsmtr" in page and "seed 7" in page
    assert "W(&#x27;snp&#x27;, &#x27;phenotype&#x27;)" in page or "W(" in page
    assert len(page) < 5_000          # concise: no arrays dumped


def test_loo_result_displays_without_dumping_arrays():
    import warnings

    from bayesimg.report import loo
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = loo(Fit(make_tree(n_subject=300)))
    text = repr(result)
    assert text == str(result) and "array(" not in text and len(text) < 2_000
    page = result._repr_html_()
    assert "elpd_loo" in page and "Pareto k" in page and "array(" not in page


def test_summary_display_names_each_row_once_and_rounds_only_the_display():
    import re

    import pandas as pd

    from bayesimg.report import summary, top_associations
    from bayesimg.report.summary_table import MAX_ROWS, SummaryTable
    tree = make_tree(n_draw=300)
    df = summary(tree)
    assert {"variable", "snp", "phenotype"} <= set(df.columns)     # data keep the columns
    shown = df.display_frame()
    assert not {"variable", "snp", "phenotype", "gene"} & set(shown.columns)
    label = "W[rs4988235, Left_Hippocampus_vol]"
    text, page = repr(df), df._repr_html_()
    for dim, value in (("snp", "rs4988235"), ("phenotype", "Left_Hippocampus_vol")):
        assert text.count(value) == (df[dim] == value).sum()      # once per row it names
    assert page.count(label) == 1
    assert text.startswith("Posterior summary: nuts, 95% ETI, 18 rows")
    assert "Posterior summary" in page and "<table" in page and "array(" not in page
    row = df.loc[label]
    assert row["mean"] != round(row["mean"], 6)                   # the data are raw floats
    # mean and bounds to the decimal of the sd's second significant digit, R-hat to 3
    # decimals, ESS as integers
    sd_decimals = len(shown.loc[label, "sd"].split(".")[1])
    assert float(shown.loc[label, "sd"]) == round(row["sd"], sd_decimals)
    for column in ("mean", "eti95_lb", "eti95_ub"):
        assert shown.loc[label, column] == f"{row[column]:.{sd_decimals}f}"
    assert re.fullmatch(r"\d\.\d{3}", shown.loc[label, "rhat"])
    assert shown.loc[label, "ess_bulk"] == f"{row['ess_bulk']:.0f}"
    top = top_associations(tree, n=3)
    assert "snp" in top.columns and "snp" not in top.display_frame().columns
    assert repr(top).startswith("Top associations")
    long = SummaryTable(pd.concat([df] * 3))
    long.attrs.update(df.attrs)
    assert len(long) > MAX_ROWS and f"{len(long) - MAX_ROWS} more rows" in repr(long)
    assert len(long.display_frame()) == MAX_ROWS and len(long._repr_html_()) < 30_000
    filtered = df[df["variable"] == "W"]          # pandas operations keep the display
    assert repr(filtered).startswith("Posterior summary") and "18 rows" not in repr(filtered)


def test_summary_display_of_point_estimates_and_approximations():
    from report_synthetic import make_svi_tree

    from bayesimg.report import summary
    shown = summary(make_svi_tree()).display_frame()
    assert set(shown["rhat"]) == {"—"} and set(shown["ess_bulk"]) == {"—"}


def test_comparison_table_rounds_its_display_and_keeps_the_data():
    import warnings

    import pandas as pd

    from bayesimg.report import compare
    from bayesimg.report.compare import ComparisonTable
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = compare({"a": make_tree(n_subject=200, seed=1),
                         "b": make_tree(n_subject=200, seed=2, mu_offset=0.3)})
    assert isinstance(table, ComparisonTable)
    assert table["elpd"].map(lambda v: len(repr(v)) > 8).any()      # raw floats kept
    shown = table.display_frame()
    for column in ("elpd", "p", "elpd_diff", "se", "dse"):
        assert shown[column].str.fullmatch(r"-?\d+\.\d|—").all(), shown[column]
    assert shown["weight"].str.fullmatch(r"\d\.\d\d").all()
    text, page = repr(table), table._repr_html_()
    assert text.startswith("Model comparison by LOO") and "200 subjects" in text
    assert "Model comparison by LOO" in page and "<table" in page
    # still a plain DataFrame for the data: filtering, concat and CSV work
    assert isinstance(table[table.elpd > -1e9], ComparisonTable)
    assert len(pd.concat([table, table])) == 4
