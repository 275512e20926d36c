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
