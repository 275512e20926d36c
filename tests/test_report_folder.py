"""Users' files are sacred: report destinations, early checks and the config reader.

Every case of the data-loss report (issue 15) has a test here: an existing file, a folder
of the user's notes, ``folder = "."`` holding the config and data, a symlink, an earlier
bayesimg report without ``--overwrite``; and the late failures (an unwritable destination,
``ic = "bic"``, ``lambda1 = "twenty"``, ``lambda1`` beside ``lambda_grid``) now stop before
any data are read.
"""

from __future__ import annotations

import json
import tomllib
from importlib import resources
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bayesimg import jobs
from bayesimg.cli import EXIT_OUTPUT, EXIT_USAGE, main
from bayesimg.config import _SCHEMA, load_config
from bayesimg.errors import ConfigError, OutputFolderError
from bayesimg.report import folder as report_folder
from bayesimg.report.destination import MARKER, check_destination, is_bayesimg_report

DEMO = resources.files("bayesimg.data") / "datasets" / "demo_1000g"


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


@pytest.fixture
def cheap_report(monkeypatch):
    """write_report with per-fit work replaced by one small file (the folder logic is real)."""
    def one_fit(name, fit, out, *, top, lead, file_name, include_data=False):
        (out / file_name).mkdir()
        (out / file_name / "fit.txt").write_text(str(fit))
        return [f"fit {name}"]
    monkeypatch.setattr(report_folder, "_one_fit", one_fit)
    monkeypatch.setattr(report_folder, "_provenance", lambda *a, **k: [])
    return lambda folder, **kw: report_folder.write_report({"lambda1=2, lambda2=2": 1}, folder,
                                                            **kw)


def test_new_folder_is_created_with_marker_and_portable_names(tmp_path, cheap_report):
    out = cheap_report(tmp_path / "new" / "report")
    assert is_bayesimg_report(out)
    assert json.loads((out / MARKER).read_text())["created_by"] == "bayesimg"
    # labels keep their text in report.md; file names are portable
    assert (out / "lambda1-2_lambda2-2" / "fit.txt").exists()
    assert "lambda1=2, lambda2=2" in (out / "report.md").read_text()
    assert sorted(p.name for p in (tmp_path / "new").iterdir()) == ["report"]


def test_earlier_report_needs_overwrite(tmp_path, cheap_report):
    out = cheap_report(tmp_path / "report")
    (out / "report.md").write_text("first run")
    with pytest.raises(OutputFolderError, match="--overwrite"):
        cheap_report(out)
    assert (out / "report.md").read_text() == "first run"
    cheap_report(out, overwrite=True)
    assert (out / "report.md").read_text() != "first run"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]


@pytest.mark.parametrize("overwrite", [False, True])
def test_user_folder_file_and_symlink_are_never_touched(tmp_path, cheap_report, overwrite):
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "todo.md").write_text("my notes")
    (notes / "report.md").write_text("my own report")
    a_file = tmp_path / "results.csv"
    a_file.write_text("1,2,3")
    link = tmp_path / "link"
    link.symlink_to(notes)
    before = _snapshot(tmp_path)
    for target, why in ((notes, "not made by bayesimg"), (a_file, "file"),
                        (link, "symlink")):
        with pytest.raises(OutputFolderError, match=why):
            cheap_report(target, overwrite=overwrite)
    assert _snapshot(tmp_path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link", "notes", "results.csv"]


def test_unwritable_destination_is_refused(tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a folder would go")
    with pytest.raises(OutputFolderError, match="is a file"):
        check_destination(blocker / "sub" / "report")
    assert blocker.read_text() == "a file where a folder would go"


def _config(tmp_path: Path, output: str, extra_model: str = "") -> Path:
    (tmp_path / "rois.csv").write_text((DEMO / "phenotypes.csv").read_text())
    cfg = tmp_path / "run.toml"
    cfg.write_text(f'[data]\nplink = "{DEMO / "AGT"}"\nphenotypes = "rois.csv"\n\n'
                   f'[model]\n{extra_model}\n[inference]\nmethod = "gibbs"\nchains = 1\n'
                   f'warmup = 10\ndraws = 10\n\n[output]\n{output}\n')
    return cfg


@pytest.fixture
def no_data_reads(monkeypatch):
    """Fail the test if a job reads genotypes (i.e. got past the early checks)."""
    def boom(*args, **kwargs):
        raise AssertionError("data were read before the destination was checked")
    monkeypatch.setattr(jobs.bdata, "read_plink", boom)
    monkeypatch.setattr(jobs.bdata, "load_demo", boom)


def test_config_folder_dot_keeps_config_data_and_notebook(tmp_path, capsys, no_data_reads):
    cfg = _config(tmp_path, 'folder = "."')
    (tmp_path / "analysis.ipynb").write_text("{}")
    before = _snapshot(tmp_path)
    assert main(["fit", str(cfg), "--no-progress"]) == EXIT_OUTPUT
    assert main(["fit", str(cfg), "--no-progress", "--overwrite"]) == EXIT_OUTPUT
    err = capsys.readouterr().err
    assert "not made by bayesimg" in err and "Traceback" not in err
    assert _snapshot(tmp_path) == before


def test_existing_output_file_is_refused_before_fitting(tmp_path, capsys, no_data_reads):
    cfg = _config(tmp_path, 'folder = "out.txt"')
    (tmp_path / "out.txt").write_text("keep me")
    assert main(["fit", str(cfg), "--no-progress"]) == EXIT_OUTPUT
    assert (tmp_path / "out.txt").read_text() == "keep me"


def test_demo_refuses_existing_folder_before_loading(tmp_path, capsys, no_data_reads):
    (tmp_path / "mine").mkdir()
    assert main(["demo", "--quick", "--out", str(tmp_path / "mine"), "--no-progress"]) \
        == EXIT_OUTPUT
    assert "not made by bayesimg" in capsys.readouterr().err


@pytest.mark.parametrize("model, match", [
    ('ic = "bic"\nlambda_grid = [[2, 2]]', "ic = 'bic'"),
    ('lambda1 = "twenty"', "lambda1 = 'twenty'"),
    ("lambda1 = 20\nlambda_grid = [[2, 2], [20, 20]]", "cannot be combined with lambda_grid"),
    ('ic = "loo"', "add lambda_grid"),
    ('family = "bnmix"', "family"),
    ("lambda_grid = [[2]]", "lambda_grid"),
])
def test_bad_model_options_fail_at_load_with_the_key(tmp_path, capsys, no_data_reads, model,
                                                     match):
    cfg = _config(tmp_path, 'folder = "results"', model)
    with pytest.raises(ConfigError, match=match):
        load_config(cfg)
    assert main(["fit", str(cfg), "--no-progress"]) == EXIT_USAGE
    assert "Traceback" not in capsys.readouterr().err
    assert not (tmp_path / "results").exists()


def test_option_for_another_method_is_an_error(tmp_path):
    cfg = tmp_path / "run.toml"
    cfg.write_text('[data]\nplink = "x"\nphenotypes = "y.csv"\n[inference]\nmethod = "svi"\n'
                   "chains = 4\n")
    with pytest.raises(ConfigError, match="chains"):
        load_config(cfg)


# --- property-based: the reader either returns a config or raises a ConfigError ----------

_TEXT = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=12)
_VALUES = st.one_of(st.none(), st.booleans(), st.integers(-5, 10**6),
                    st.floats(allow_nan=True, allow_infinity=True), _TEXT,
                    st.lists(st.integers(-3, 300), max_size=3),
                    st.lists(st.lists(st.floats(-1, 1e4), max_size=3), max_size=3))
_KEYS = st.sampled_from([(s, k) for s, keys in _SCHEMA.items() for k in keys]
                        + [("model", "lamda"), ("bogus", "key")])


def _toml_value(v) -> str:
    if v is None:
        return '"none"'
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, float):
        return {float("inf"): "inf", float("-inf"): "-inf"}.get(v, "nan" if v != v else repr(v))
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return repr(v)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(entries=st.dictionaries(_KEYS, _VALUES, max_size=6))
def test_config_reader_never_crashes_and_checks_every_value(tmp_path, entries):
    sections: dict[str, dict] = {"data": {"plink": "g", "phenotypes": "p.csv"}}
    for (section, key), value in entries.items():
        sections.setdefault(section, {})[key] = value
    text = "\n".join(f"[{s}]\n" + "\n".join(f"{k} = {_toml_value(v)}" for k, v in kv.items())
                     for s, kv in sections.items())
    cfg = tmp_path / "run.toml"
    cfg.write_text(text)
    raw = tomllib.loads(text)
    try:
        config = load_config(cfg)
    except ConfigError:
        return
    # accepted: every value passed its check, and no unknown key got through
    for section, kv in raw.items():
        for key, value in kv.items():
            assert _SCHEMA[section][key][0](value), (section, key, value)
    assert config.output["folder"]


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lam=st.floats(1e-3, 1e5), chains=st.integers(1, 8), draws=st.integers(1, 5000),
       ic=st.sampled_from(["waic", "loo"]))
def test_valid_configs_are_accepted(tmp_path, lam, chains, draws, ic):
    cfg = tmp_path / "run.toml"
    cfg.write_text(f'[data]\nplink = "g"\nphenotypes = "p.csv"\n[model]\n'
                   f"lambda_grid = [[{lam!r}, {lam!r}]]\nic = \"{ic}\"\n"
                   f"[inference]\nchains = {chains}\ndraws = {draws}\n")
    config = load_config(cfg)
    assert config.model["lambda_grid"] == [[lam, lam]] and config.inference["chains"] == chains


def test_waic_warnings_are_one_line_under_the_loo_comparison(tmp_path, monkeypatch,
                                                             cheap_report):
    """At p ≈ n WAIC warns for nearly every fit: the report leads with LOO and says so once
    under the WAIC table instead of repeating one warning per model."""
    import warnings as _warnings

    import pandas as pd

    def fake_compare(fits, ic):
        if ic == "waic":
            for name in fits:
                _warnings.warn(f"{name}: 500 of 503 observations have p_waic > 0.4: WAIC is "
                               "unreliable here; use loo() instead.", UserWarning, stacklevel=2)
        return pd.DataFrame({"elpd": [-1.0, -2.0], "se": [1.0, 1.0], "elpd_diff": [0.0, 1.0],
                             "dse": [0.0, 0.5], "weight": [1.0, 0.0],
                             "warning": [ic == "waic"] * 2,
                             "estimate": [ic if ic == "waic" else "integrated"] * 2},
                            index=list(fits))

    monkeypatch.setattr(report_folder, "compare", fake_compare)
    out = report_folder.write_report({"a": 1, "b": 2}, tmp_path / "report")
    text = (out / "report.md").read_text()
    assert text.index("Model comparison by LOO") < text.index("Model comparison by WAIC")
    assert "WAIC is unreliable for 2 of 2 models here" in text
    assert "p_waic > 0.4: WAIC is unreliable" not in text       # no per-model repetition
    assert (out / "comparison_waic.csv").exists()
