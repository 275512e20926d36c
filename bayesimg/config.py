"""Run configuration files (TOML) for ``bayesimg fit CONFIG.toml``.

Example::

    [data]
    plink = "genotypes/chr2"              # PLINK prefix (or the .bed path)
    phenotypes = "phenotypes.csv"         # CSV/TSV/parquet, first column = subject ID
    phenotype_columns = ["Left_Hippocampus_vol", "Right_Hippocampus_vol"]  # optional
    covariates = "covariates.csv"         # optional
    max_snp_missing = 0.05
    genes = "hg19"                        # bundled hg19 table, or a CSV with columns snp,gene
    window = 10000
    unassigned = "drop"                   # drop | singleton | nearest
    ld_prune_r2 = 0.9                     # optional

    [model]
    family = "gsmtr"
    lambda1 = 2.0
    lambda2 = 2.0
    # lambda_grid = [[2, 2], [20, 20]]    # instead: choose λ by WAIC/LOO
    # ic = "waic"
    # hyperprior = [1.0, 0.1]             # instead: Gamma(shape, rate) on λ

    [inference]
    method = "gibbs"                      # nuts | gibbs | svi | map
    chains = 4
    warmup = 1000
    draws = 1000
    seed = 1

    [output]
    folder = "results"                    # created; never an existing folder of yours
    # overwrite = true                    # replace an earlier bayesimg report there
    # include_data = true                 # saved fits keep individual-level data

Relative paths are resolved against the folder holding the config file.  Unknown
keys are errors that name the key (a typo must not silently change a run).
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bayesimg.errors import ConfigError

# key → (check, what it must be).  Every key is checked here, before any data are read or
# any model is compiled, so a typo or a wrong type costs nothing.
_Check = Callable[[Any], bool]


def _is_num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _pos(v: Any) -> bool:
    return _is_num(v) and v > 0


def _int_at_least(k: int) -> _Check:
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= k


def _one_of(*values: Any) -> _Check:
    return lambda v: isinstance(v, str) and v in values


def _str(v: Any) -> bool:
    return isinstance(v, str) and v != ""


def _str_list(v: Any) -> bool:
    return isinstance(v, list) and len(v) > 0 and all(_str(x) for x in v)


def _pair(v: Any) -> bool:
    return isinstance(v, list) and len(v) == 2 and all(_pos(x) for x in v)


_SCHEMA: dict[str, dict[str, tuple[_Check, str]]] = {
    "data": {
        "plink": (_str, "a PLINK .bed/.bim/.fam prefix (text)"),
        "phenotypes": (_str, "a CSV/TSV/parquet path (text)"),
        "phenotype_columns": (_str_list, "a non-empty list of column names"),
        "covariates": (_str, "a CSV/TSV/parquet path (text)"),
        "covariate_columns": (_str_list, "a non-empty list of column names"),
        "id_column": (_str, "a column name (text)"),
        "max_snp_missing": (lambda v: _is_num(v) and 0 <= v <= 1, "a number in [0, 1]"),
        "standardize_genotypes": (_one_of("center", "scale", "none"),
                                  "'center', 'scale' or 'none'"),
        "genes": (_str, "'hg19' or the path of a CSV with columns snp,gene"),
        "window": (_int_at_least(0), "a whole number of base pairs >= 0"),
        "unassigned": (_one_of("drop", "singleton", "nearest"),
                       "'drop', 'singleton' or 'nearest'"),
        "ld_prune_r2": (lambda v: _is_num(v) and 0 < v <= 1, "a number in (0, 1]"),
        "drop_missing_phenotypes": (lambda v: isinstance(v, bool), "true or false"),
        "count": (_one_of("a1", "a2"), "'a1' or 'a2'"),
    },
    "model": {
        "family": (_one_of("gsmtr"), "'gsmtr' (the only family runnable from a config)"),
        "lambda1": (_pos, "a positive number"),
        "lambda2": (_pos, "a positive number"),
        "lambda_grid": (lambda v: isinstance(v, list) and len(v) > 0 and all(map(_pair, v)),
                        "a non-empty list of [lambda1, lambda2] pairs of positive numbers"),
        "ic": (_one_of("waic", "loo"), "'waic' or 'loo'"),
        "hyperprior": (_pair, "[shape, rate] of a Gamma prior, both positive"),
        "parameterization": (_one_of("marginal", "hierarchical"),
                             "'marginal' or 'hierarchical'"),
        "covariate_scale": (_pos, "a positive number"),
    },
    "inference": {
        "method": (_one_of("nuts", "gibbs", "svi", "map"), "'nuts', 'gibbs', 'svi' or 'map'"),
        "chains": (_int_at_least(1), "a whole number >= 1"),
        "warmup": (_int_at_least(0), "a whole number >= 0"),
        "draws": (_int_at_least(1), "a whole number >= 1"),
        "thin": (_int_at_least(1), "a whole number >= 1"),
        "seed": (_int_at_least(0), "a whole number >= 0"),
        "chain_method": (_one_of("auto", "parallel", "sequential", "vectorized"),
                         "'auto', 'parallel', 'sequential' or 'vectorized'"),
        "steps": (_int_at_least(1), "a whole number >= 1"),
        "learning_rate": (_pos, "a positive number"),
        "num_draws": (_int_at_least(1), "a whole number >= 1"),
        "guide": (_one_of("mean_field", "low_rank", "map"), "'mean_field', 'low_rank' or 'map'"),
        "progress": (lambda v: isinstance(v, bool), "true or false"),
    },
    "output": {
        "folder": (_str, "a folder path (text); it must not exist yet, or hold an earlier "
                   "bayesimg report with overwrite = true"),
        "overwrite": (lambda v: isinstance(v, bool), "true or false"),
        "include_data": (lambda v: isinstance(v, bool), "true or false (save genotypes, "
                         "phenotypes and subject IDs in the report's fits; default false)"),
        "top": (_int_at_least(1), "a whole number >= 1"),
        "posterior_predictive_draws": (_int_at_least(0), "a whole number >= 0"),
    },
}
_ALLOWED = {section: set(keys) for section, keys in _SCHEMA.items()}
_REQUIRED = {"data": {"plink", "phenotypes"}}
_METHOD_KEYS = {"nuts": {"steps", "learning_rate", "num_draws", "guide"},
                "gibbs": {"steps", "learning_rate", "num_draws", "guide"},
                "svi": {"chains", "warmup", "draws", "thin", "chain_method"},
                "map": {"chains", "warmup", "draws", "thin", "chain_method"}}


@dataclass
class RunConfig:
    data: dict[str, Any]
    model: dict[str, Any]
    inference: dict[str, Any]
    output: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None
    text: str | None = None   # the file as read (recorded in the report)


def load_config(path: str | Path) -> RunConfig:
    """Read and check a TOML run configuration."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {str(path)!r}")
    text = path.read_text()
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{str(path)!r} is not valid TOML: {err}") from err
    unknown_sections = set(raw) - set(_ALLOWED)
    if unknown_sections:
        raise ConfigError(f"{str(path)!r}: unknown section(s) {sorted(unknown_sections)}; "
                          f"allowed: {sorted(_ALLOWED)}")
    sections = {}
    for name, allowed in _ALLOWED.items():
        section = raw.get(name, {})
        if not isinstance(section, dict):
            raise ConfigError(f"{str(path)!r}: [{name}] must be a table")
        unknown = set(section) - allowed
        if unknown:
            raise ConfigError(f"{str(path)!r}: unknown key(s) {sorted(unknown)} in [{name}]; "
                              f"allowed: {sorted(allowed)}")
        missing = _REQUIRED.get(name, set()) - set(section)
        if missing:
            raise ConfigError(f"{str(path)!r}: [{name}] needs key(s) {sorted(missing)}")
        for key, value in section.items():
            check, expected = _SCHEMA[name][key]
            if not check(value):
                raise ConfigError(f"{str(path)!r}: [{name}] {key} = {value!r} is invalid; "
                                  f"expected {expected}")
        sections[name] = dict(section)
    _check_combinations(path, sections)
    base = path.resolve().parent
    for key in ("plink", "phenotypes", "covariates"):
        if key in sections["data"]:
            sections["data"][key] = str(_resolve(base, sections["data"][key]))
    genes = sections["data"].get("genes")
    if genes is not None and genes != "hg19":
        sections["data"]["genes"] = str(_resolve(base, genes))
    sections["output"]["folder"] = str(_resolve(base, sections["output"].get("folder",
                                                                            "bayesimg_results")))
    if sections["data"].get("standardize_genotypes") == "none":
        sections["data"]["standardize_genotypes"] = None
    return RunConfig(path=path, text=text, **sections)


def _check_combinations(path: Path, sections: dict[str, dict[str, Any]]) -> None:
    """Keys that are valid alone but contradict each other (nothing is silently ignored)."""
    model, inference = sections["model"], sections["inference"]
    where = repr(str(path))
    if "lambda_grid" in model:
        clash = sorted({"lambda1", "lambda2", "hyperprior"} & set(model))
        if clash:
            raise ConfigError(f"{where}: [model] {', '.join(clash)} cannot be combined with "
                              "lambda_grid (the grid sets lambda1 and lambda2 of each fit); "
                              "remove one of them")
    elif "ic" in model:
        raise ConfigError(f"{where}: [model] ic is used only to choose among lambda_grid "
                          "settings; add lambda_grid or remove ic")
    method = inference.get("method", "gibbs")
    if method == "map" and inference.get("guide", "map") != "map":
        raise ConfigError(f"{where}: [inference] method = 'map' uses the point-mass guide; "
                          "remove guide")
    wrong = sorted(_METHOD_KEYS[method] & set(inference))
    if wrong:
        raise ConfigError(f"{where}: [inference] {', '.join(wrong)} do(es) not apply to "
                          f"method = {method!r}; remove them")


def _resolve(base: Path, value: str) -> Path:
    p = Path(value).expanduser()
    return p if p.is_absolute() else base / p
