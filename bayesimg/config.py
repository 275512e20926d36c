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
    folder = "results"

Relative paths are resolved against the folder holding the config file.  Unknown
keys are errors that name the key (a typo must not silently change a run).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bayesimg.errors import ConfigError

_ALLOWED = {
    "data": {"plink", "phenotypes", "phenotype_columns", "covariates", "covariate_columns",
             "id_column", "max_snp_missing", "standardize_genotypes", "genes", "window",
             "unassigned", "ld_prune_r2", "drop_missing_phenotypes", "count"},
    "model": {"family", "lambda1", "lambda2", "lambda_grid", "ic", "hyperprior",
              "parameterization", "covariate_scale"},
    "inference": {"method", "chains", "warmup", "draws", "thin", "seed", "chain_method",
                  "steps", "learning_rate", "num_draws", "guide", "progress"},
    "output": {"folder", "top", "posterior_predictive_draws"},
}
_REQUIRED = {"data": {"plink", "phenotypes"}}


@dataclass
class RunConfig:
    data: dict[str, Any]
    model: dict[str, Any]
    inference: dict[str, Any]
    output: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None


def load_config(path: str | Path) -> RunConfig:
    """Read and check a TOML run configuration."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {str(path)!r}")
    try:
        raw = tomllib.loads(path.read_text())
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
        sections[name] = dict(section)
    base = path.resolve().parent
    for key in ("plink", "phenotypes", "covariates"):
        if key in sections["data"]:
            sections["data"][key] = str(_resolve(base, sections["data"][key]))
    genes = sections["data"].get("genes")
    if genes is not None and genes != "hg19":
        sections["data"]["genes"] = str(_resolve(base, genes))
    sections["output"]["folder"] = str(_resolve(base, sections["output"].get("folder",
                                                                            "bayesimg_results")))
    family = sections["model"].get("family", "gsmtr")
    if family != "gsmtr":
        raise ConfigError(f"{str(path)!r}: [model] family={family!r} is not available "
                          "(available: 'gsmtr')")
    return RunConfig(path=path, **sections)


def _resolve(base: Path, value: str) -> Path:
    p = Path(value).expanduser()
    return p if p.is_absolute() else base / p
