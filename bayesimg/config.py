"""Run configuration files (TOML) for ``bayesimg fit CONFIG.toml``, for every model family.

``bayesimg config --example FAMILY`` prints a complete example with every key, its
default and what it means; the same text is :func:`example` here.  Families:

* ``gsmtr`` — group-sparse multitask regression (bgsmtr prior), λ fixed or over a grid;
* ``bilateral_gsmtr`` — GSMTR whose residuals couple left/right phenotype pairs with a
  learned correlation ρ (``[model] pairs``: ``"auto"`` or ``[[left, right], ...]``), and
  optionally a CAR graph over their regions (``[model] roi_graph = [[roi, roi], ...]``);
* ``spike_slab`` — bi-level spike-and-slab multitask regression (PIPs, discoveries);
* ``glrr`` — generalized low-rank regression;
* ``factor`` — multi-view factor analysis (``[data] views``);
* ``bnmix`` — Bayesian-network mixture clustering (``[data] views``).

The first four read genotypes (one of ``[data] plink``, ``pgen``, ``bgen`` or ``dosages``)
and phenotypes; the last two read
subject-indexed tables, one per view.  Relative paths are resolved against the folder
holding the config file.  Every key is checked (type, range, allowed values, and that
it belongs to the chosen family and method) when the file is read — before any data are
read or JAX is imported — and unknown or contradictory keys are errors naming the key:
a typo must never silently change a run.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bayesimg.errors import ConfigError

FAMILIES = ("gsmtr", "bilateral_gsmtr", "spike_slab", "glrr", "factor", "bnmix")
GENOTYPE_FAMILIES = ("gsmtr", "bilateral_gsmtr", "spike_slab", "glrr")
#: families with GSMTR's group-sparse prior (λ₁, λ₂, grid, hyperprior)
GSMTR_FAMILIES = ("gsmtr", "bilateral_gsmtr")
VIEW_FAMILIES = ("factor", "bnmix")
METHODS = ("nuts", "gibbs", "svi", "map")

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


def _bool(v: Any) -> bool:
    return isinstance(v, bool)


def _str_list(v: Any) -> bool:
    return isinstance(v, list) and len(v) > 0 and all(_str(x) for x in v)


def _pair(v: Any) -> bool:
    return isinstance(v, list) and len(v) == 2 and all(_pos(x) for x in v)


def _pos_list(v: Any) -> bool:
    return isinstance(v, list) and len(v) > 0 and all(_pos(x) for x in v)


def _pairs(v: Any) -> bool:
    return v == "auto" or (isinstance(v, list) and len(v) > 0 and all(
        isinstance(p, list) and len(p) == 2 and all(_str(x) for x in p) for p in v))


def _edges(v: Any) -> bool:
    return isinstance(v, list) and len(v) > 0 and all(
        isinstance(e, list) and len(e) == 2 and all(_str(x) for x in e) for e in v)


def _path_table(v: Any) -> bool:
    return isinstance(v, dict) and len(v) > 0 and all(_str(k) and _str(p) for k, p in v.items())


def _likelihood_table(v: Any) -> bool:
    return isinstance(v, dict) and all(
        _str(k) and p in ("gaussian", "bernoulli", "binomial2") for k, p in v.items())


@dataclass(frozen=True)
class Key:
    """One configuration key: its check, what it must be, its default and its families."""

    check: _Check
    expected: str
    default: Any = None             # None: optional, no default (shown commented out)
    help: str = ""
    families: tuple[str, ...] = FAMILIES
    methods: tuple[str, ...] = METHODS
    required: bool = False
    path: bool = False              # resolved against the config file's folder
    #: keys of one group are alternatives: exactly one must be given (the group's first key
    #: is the one example() shows)
    group: str | None = None


_G, _V, _GS = GENOTYPE_FAMILIES, VIEW_FAMILIES, GSMTR_FAMILIES
_MCMC, _OPT = ("nuts", "gibbs"), ("svi", "map")

KEYS: dict[str, dict[str, Key]] = {
    "data": {
        "plink": Key(_str, "a PLINK .bed/.bim/.fam prefix (text)",
                     help="genotypes: one of plink, pgen, bgen, dosages",
                     families=_G, path=True, group="genotypes"),
        "pgen": Key(_str, "a PLINK 2 .pgen/.pvar/.psam prefix (text)", families=_G,
                    path=True, group="genotypes", help="genotypes (hard calls or dosages)"),
        "bgen": Key(_str, "a BGEN file path (text)", families=_G, path=True,
                    group="genotypes", help="genotypes: expected allele counts"),
        "bgen_sample": Key(_str, "a BGEN .sample path (text)", families=_G, path=True,
                           help="subject IDs of a bgen (default: those in the file, "
                           "else FILE.sample)"),
        "dosages": Key(_str, "a CSV/TSV/parquet path (text)", families=_G, path=True,
                       group="genotypes", help="one ID column, one column per SNP holding "
                       "0-2 (hard calls or imputed dosages); needs genes = a snp,gene CSV"),
        "phenotypes": Key(_str, "a CSV/TSV/parquet path (text)", families=_G, required=True,
                          path=True, help="first column: subject ID (IID)"),
        "phenotype_columns": Key(_str_list, "a non-empty list of column names", families=_G,
                                 help="default: every column"),
        "views": Key(_path_table, "a table view name -> CSV/TSV/parquet path",
                     families=_V, required=True, path=True,
                     help='one subject-indexed table per view, e.g. {mrna = "mrna.csv"}'),
        "likelihoods": Key(_likelihood_table, "a table view name -> 'gaussian', 'bernoulli' "
                           "or 'binomial2'", families=_V, help="default: gaussian for every view"),
        "subjects": Key(_one_of("union", "intersection"), "'union' or 'intersection'",
                        "union", families=_V, help="union keeps subjects missing some views"),
        "labels": Key(_str, "a CSV/TSV/parquet path (text)", families=_V, path=True,
                      help="annotations kept with the data, never fitted (e.g. diagnosis)"),
        "covariates": Key(_str, "a CSV/TSV/parquet path (text)", path=True,
                          help="age, sex, site, PCs ...; first column: subject ID"),
        "covariate_columns": Key(_str_list, "a non-empty list of column names"),
        "id_column": Key(_str, "a column name (text)", help="default: the first column"),
        "max_snp_missing": Key(lambda v: _is_num(v) and 0 <= v <= 1, "a number in [0, 1]", 0.05,
                               families=_G),
        "min_maf": Key(lambda v: _is_num(v) and 0 <= v < 0.5, "a number in [0, 0.5)", 0.0,
                       families=_G, help="drop SNPs with a rarer minor allele"),
        "standardize_genotypes": Key(_one_of("center", "scale", "none"),
                                     "'center', 'scale' or 'none'", "center", families=_G),
        "genes": Key(_str, "'hg19' or the path of a CSV with columns snp,gene", "hg19",
                     families=_G),
        "window": Key(_int_at_least(0), "a whole number of base pairs >= 0", 10_000,
                      families=_G, help="SNPs within this distance of a gene belong to it"),
        "unassigned": Key(_one_of("drop", "singleton", "nearest"),
                          "'drop', 'singleton' or 'nearest'", "drop", families=_G),
        "ld_prune_r2": Key(lambda v: _is_num(v) and 0 < v <= 1, "a number in (0, 1]",
                           families=_G, help="prune SNPs in LD above this r² within genes"),
        "drop_missing_phenotypes": Key(_bool, "true or false", False, families=_G),
        "random_effects": Key(_str, "a column name (text)", families=_G,
                              help="a site/scanner column of the covariates modelled as "
                                   "random intercepts (site_effect, site_sd)"),
        "count": Key(_one_of("a1", "a2"), "'a1' or 'a2'", "a1", families=_G,
                     help="which .bim allele the genotypes count"),
    },
    "model": {
        "family": Key(_one_of(*FAMILIES), " | ".join(repr(f) for f in FAMILIES), "gsmtr"),
        "lambda1": Key(_pos, "a positive number", 2.0, families=_GS,
                       help="gene-level shrinkage"),
        "lambda2": Key(_pos, "a positive number", 2.0, families=_GS,
                       help="SNP-level shrinkage"),
        "lambda_grid": Key(lambda v: isinstance(v, list) and len(v) > 0 and all(map(_pair, v)),
                           "a non-empty list of [lambda1, lambda2] pairs of positive numbers",
                           families=_GS, help="instead of lambda1/lambda2: choose by ic"),
        "ic": Key(_one_of("waic", "loo"), "'waic' or 'loo'", families=_GS,
                  help="criterion that picks from lambda_grid (default loo)"),
        "hyperprior": Key(_pair, "[shape, rate] of a Gamma prior, both positive",
                          families=_GS, help="instead of fixed λ: learn them"),
        "parameterization": Key(_one_of("marginal", "hierarchical"),
                                "'marginal' or 'hierarchical'", "marginal", families=_GS),
        "residual": Key(_one_of("full", "diagonal"), "'full' or 'diagonal'", "full",
                        families=("spike_slab",), help="residual covariance across phenotypes"),
        "pairs": Key(_pairs, "'auto' or a non-empty list of [left, right] phenotype names",
                     "auto", families=("bilateral_gsmtr",),
                     help="left/right pairs with correlated residuals; 'auto' parses "
                     "lh_/rh_, Left-/Right-, L_/R_, _L/_R names"),
        "rho_prior": Key(_pair, "[a, b] of a Beta prior on (1 + rho)/2, both positive",
                         [1.0, 1.0], families=("bilateral_gsmtr",),
                         help="prior of the left/right correlation rho; [1, 1]: uniform"),
        "roi_graph": Key(_edges, "a non-empty list of [roi, roi] edges (region or phenotype "
                         "names)", families=("bilateral_gsmtr",),
                         help="neighbourhood graph over the pairs' regions (CAR noise with "
                         "a learned spatial parameter rho_spatial); none: no graph"),
        "rho_spatial_prior": Key(_pair, "[a, b] of a Beta prior on rho_spatial rescaled to "
                                 "(0, 1) from its valid range, both positive", [1.0, 1.0],
                                 families=("bilateral_gsmtr",),
                                 help="prior of the CAR parameter (with roi_graph)"),
        "slab_scales": Key(_pos_list, "a non-empty list of positive numbers",
                           [0.05, 0.1, 0.2, 0.4], families=("spike_slab",),
                           help="effect sizes (phenotype SD units) of the mixture components"),
        "rank": Key(_int_at_least(1), "a whole number >= 1", 3, families=("glrr",)),
        "noise_factors": Key(_int_at_least(0), "a whole number >= 0", families=("glrr",),
                             help="latent factors of the residual covariance"),
        "site_scale": Key(_pos, "a positive number", 1.0,
                          families=_G,
                          help="half-Cauchy scale of the site random-effect sds"),
        "covariate_scale": Key(_pos, "a positive number", 10.0,
                               families=(*_GS, "spike_slab", "glrr", "factor"),
                               help="prior sd of covariate effects"),
        "n_factors": Key(_int_at_least(1), "a whole number >= 1", 10, families=("factor",)),
        "n_clusters": Key(_int_at_least(1), "a whole number >= 1", 2, families=("bnmix",)),
    },
    "inference": {
        "method": Key(_one_of(*METHODS), "'nuts', 'gibbs', 'svi' or 'map'", "gibbs"),
        "chains": Key(_int_at_least(1), "a whole number >= 1", 4, methods=_MCMC),
        "warmup": Key(_int_at_least(0), "a whole number >= 0", 1000, methods=_MCMC),
        "draws": Key(_int_at_least(1), "a whole number >= 1", 1000, methods=_MCMC),
        "thin": Key(_int_at_least(1), "a whole number >= 1", 1, methods=_MCMC),
        "seed": Key(_int_at_least(0), "a whole number >= 0", 0),
        "chain_method": Key(_one_of("auto", "parallel", "sequential", "vectorized"),
                            "'auto', 'parallel', 'sequential' or 'vectorized'", "auto",
                            methods=_MCMC),
        "steps": Key(_int_at_least(1), "a whole number >= 1", 20_000, methods=_OPT),
        "learning_rate": Key(_pos, "a positive number", methods=_OPT),
        "num_draws": Key(_int_at_least(1), "a whole number >= 1", methods=("svi",)),
        "guide": Key(_one_of("mean_field", "low_rank", "map"),
                     "'mean_field', 'low_rank' or 'map'", methods=("svi",)),
        "progress": Key(_bool, "true or false", True),
    },
    "output": {
        "folder": Key(_str, "a folder path (text); it must not exist yet, or hold an earlier "
                      "bayesimg report with overwrite = true", "bayesimg_results", path=True,
                      help="created; never an existing folder of yours"),
        "overwrite": Key(_bool, "true or false", False,
                         help="replace an earlier bayesimg report at folder"),
        "include_data": Key(_bool, "true or false (save genotypes, phenotypes and subject IDs "
                            "in the report's fits; default false)", False,
                            help="saved fits keep individual-level data"),
        "top": Key(_int_at_least(1), "a whole number >= 1", 20,
                   help="associations listed in the report"),
        "posterior_predictive_draws": Key(_int_at_least(0), "a whole number >= 0", 100,
                                          families=_G),
    },
}

#: section → key → (check, what it must be), for callers that only validate values
_SCHEMA: dict[str, dict[str, tuple[_Check, str]]] = {
    section: {name: (key.check, key.expected) for name, key in keys.items()}
    for section, keys in KEYS.items()}
_ALLOWED = {section: set(keys) for section, keys in KEYS.items()}


@dataclass
class RunConfig:
    data: dict[str, Any]
    model: dict[str, Any]
    inference: dict[str, Any]
    output: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None
    text: str | None = None   # the file as read (recorded in the report)

    @property
    def family(self) -> str:
        return self.model.get("family", "gsmtr")


def load_config(path: str | Path) -> RunConfig:
    """Read and check a TOML run configuration (see the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {str(path)!r}")
    text = path.read_text()
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{str(path)!r} is not valid TOML: {err}") from err
    where = repr(str(path))
    unknown_sections = set(raw) - set(KEYS)
    if unknown_sections:
        raise ConfigError(f"{where}: unknown section(s) {sorted(unknown_sections)}; "
                          f"allowed: {sorted(KEYS)}")
    for name in KEYS:
        if not isinstance(raw.get(name, {}), dict):
            raise ConfigError(f"{where}: [{name}] must be a table")
    family_value = raw.get("model", {}).get("family", "gsmtr")
    if not KEYS["model"]["family"].check(family_value):
        raise ConfigError(f"{where}: [model] family = {family_value!r} is invalid; expected "
                          f"{KEYS['model']['family'].expected}")
    method_value = raw.get("inference", {}).get("method", "gibbs")
    if not KEYS["inference"]["method"].check(method_value):
        raise ConfigError(f"{where}: [inference] method = {method_value!r} is invalid; "
                          f"expected {KEYS['inference']['method'].expected}")
    sections = {}
    for name, keys in KEYS.items():
        section = raw.get(name, {})
        unknown = set(section) - set(keys)
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)} in [{name}]; "
                              f"allowed: {sorted(keys)}")
        for key, value in section.items():
            spec = keys[key]
            if not spec.check(value):
                raise ConfigError(f"{where}: [{name}] {key} = {value!r} is invalid; "
                                  f"expected {spec.expected}")
            if family_value not in spec.families:
                raise ConfigError(f"{where}: [{name}] {key} does not apply to family = "
                                  f"{family_value!r} (it is for {', '.join(spec.families)}); "
                                  "remove it")
            if method_value not in spec.methods:
                raise ConfigError(f"{where}: [{name}] {key} does not apply to method = "
                                  f"{method_value!r}; remove it")
        missing = {k for k, spec in keys.items()
                   if spec.required and family_value in spec.families} - set(section)
        if missing:
            raise ConfigError(f"{where}: [{name}] needs key(s) {sorted(missing)} for family = "
                              f"{family_value!r}")
        groups: dict[str, list[str]] = {}
        for k, spec in keys.items():
            if spec.group is not None and family_value in spec.families:
                groups.setdefault(spec.group, []).append(k)
        for group, members in groups.items():
            given = [k for k in members if k in section]
            if len(given) != 1:
                what = "needs one of" if not given else "takes only one of"
                raise ConfigError(
                    f"{where}: [{name}] {what} {members} for the {group} (family = "
                    f"{family_value!r})" + (f"; got {given}" if given else ""))
        sections[name] = dict(section)
    _check_combinations(path, sections)
    base = path.resolve().parent
    for section, keys in KEYS.items():
        for key, spec in keys.items():
            if not spec.path or key not in sections[section]:
                continue
            value = sections[section][key]
            sections[section][key] = ({k: str(_resolve(base, v)) for k, v in value.items()}
                                      if isinstance(value, dict) else str(_resolve(base, value)))
    genes = sections["data"].get("genes")
    if genes is not None and genes != "hg19":
        sections["data"]["genes"] = str(_resolve(base, genes))
    sections["output"]["folder"] = str(_resolve(base, sections["output"].get(
        "folder", KEYS["output"]["folder"].default)))
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
    if inference.get("method", "gibbs") == "map" and inference.get("guide", "map") != "map":
        raise ConfigError(f"{where}: [inference] method = 'map' uses the point-mass guide; "
                          "remove guide")
    data = sections["data"]
    _check_pairs(where, model.get("pairs"), data.get("phenotype_columns"))
    if "bgen_sample" in data and "bgen" not in data:
        raise ConfigError(f"{where}: [data] bgen_sample is the sample file of a bgen; add "
                          "bgen or remove bgen_sample")
    if "dosages" in data:
        if data.get("genes", "hg19") == "hg19":
            raise ConfigError(f"{where}: [data] dosages tables carry no SNP positions, so "
                              "genes = 'hg19' cannot group them; set genes to a CSV with "
                              "columns snp,gene")
        if "count" in data:
            raise ConfigError(f"{where}: [data] count applies to PLINK/BGEN alleles; a dosage "
                              "table already counts one allele: remove count")
    views = sections["data"].get("views")
    likelihoods = sections["data"].get("likelihoods") or {}
    if views is not None and set(likelihoods) - set(views):
        raise ConfigError(f"{where}: [data] likelihoods names view(s) "
                          f"{sorted(set(likelihoods) - set(views))} not in views "
                          f"{sorted(views)}")


def _check_pairs(where: str, pairs: Any, columns: list[str] | None) -> None:
    """``[model] pairs`` as far as it can be checked without data: no measure paired with
    itself or in two pairs, and (with ``phenotype_columns``) only names of those columns.
    The data-level check (names in the phenotype table, ``"auto"`` finding pairs) is
    :meth:`BilateralGSMTR.resolve_pairs`, run by :mod:`bayesimg.jobs` before fitting."""
    if pairs is None or pairs == "auto":
        return
    used: dict[str, int] = {}
    for p, (left, right) in enumerate(pairs):
        if left == right:
            raise ConfigError(f"{where}: [model] pairs: pair {p} pairs {left!r} with itself")
        for name in (left, right):
            if columns is not None and name not in columns:
                raise ConfigError(f"{where}: [model] pairs: pair {p} ({left!r}, {right!r}) "
                                  f"names {name!r}, which is not in [data] phenotype_columns "
                                  f"{columns}")
            if name in used:
                raise ConfigError(f"{where}: [model] pairs: phenotype {name!r} is in pair "
                                  f"{used[name]} and pair {p}; each measure may belong to "
                                  "one pair only")
            used[name] = p


def _resolve(base: Path, value: str) -> Path:
    p = Path(value).expanduser()
    return p if p.is_absolute() else base / p


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + "}"
    return repr(value)


#: placeholder values for required keys and optional keys without a default in examples
_EXAMPLE_VALUES = {
    "plink": "genotypes/chr2", "pgen": "genotypes/chr2", "bgen": "genotypes/chr2.bgen",
    "bgen_sample": "genotypes/chr2.sample", "dosages": "dosages.csv", "phenotypes": "rois.csv",
    "phenotype_columns": ["Left_Hippocampus_vol", "Right_Hippocampus_vol"],
    "views": {"mrna": "mrna.csv", "protein": "protein.csv"},
    "likelihoods": {"mrna": "gaussian", "protein": "gaussian"},
    "labels": "labels.csv", "covariates": "covariates.csv",
    "covariate_columns": ["age", "sex", "site"], "id_column": "IID", "ld_prune_r2": 0.8,
    "lambda_grid": [[2, 2], [20, 20], [200, 200]], "ic": "loo", "hyperprior": [1.0, 0.1],
    "noise_factors": 5, "learning_rate": 0.01, "num_draws": 1000, "guide": "mean_field",
}


def example(family: str = "gsmtr", method: str = "gibbs") -> str:
    """A complete example configuration for ``family``: every key with its default.

    Optional keys without a default are shown commented out with an example value.
    """
    if family not in FAMILIES:
        raise ConfigError(f"family must be one of {FAMILIES}, got {family!r}")
    lines = [f"# bayesimg fit configuration for family = {family!r} (bayesimg fit FILE.toml)",
             "# Relative paths are resolved against this file's folder.", ""]
    for section, keys in KEYS.items():
        lines.append(f"[{section}]")
        for name, spec in keys.items():
            if family not in spec.families or method not in spec.methods:
                continue
            if name == "family":
                value, commented = family, False
            elif name == "method":
                value, commented = method, False
            elif spec.required or (spec.group is not None and name == next(
                    k for k, o in keys.items() if o.group == spec.group)):
                value, commented = _EXAMPLE_VALUES.get(name, "..."), False
            elif spec.default is not None:
                value, commented = spec.default, False
            else:
                value, commented = _EXAMPLE_VALUES.get(name, "..."), True
            note = "; ".join(x for x in ("required" if spec.required else "", spec.help) if x)
            entry = f"{'# ' if commented else ''}{name} = {_toml(value)}"
            lines.append(f"{entry:<44} # {note}" if note else entry)
        lines.append("")
    return "\n".join(lines)


def keys_help() -> str:
    """Every key by section: what it must be, its default and its families (for --help)."""
    out = []
    for section, keys in KEYS.items():
        out.append(f"[{section}]")
        for name, spec in keys.items():
            default = "" if spec.default is None else f" (default {_toml(spec.default)})"
            fams = "" if spec.families == FAMILIES else f" [{', '.join(spec.families)}]"
            out.append(f"  {name}: {spec.expected}{default}{fams}")
    return "\n".join(out)
