"""make_dataset(random_effects=...): a grouping column (site, scanner) taken out of the
covariates into Dataset.sites, with named errors before any compile."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import bayesimg as bi
from bayesimg.errors import DataValidationError


def _tables(n=12, seed=0):
    rng = np.random.default_rng(seed)
    ids = [f"s{i:02d}" for i in range(n)]
    pheno = pd.DataFrame({"hippo": rng.standard_normal(n), "amyg": rng.standard_normal(n)},
                         index=ids)
    cov = pd.DataFrame({"age": rng.uniform(50, 80, n),
                        "site": np.array(["oslo", "lyon", "ucla"])[np.arange(n) % 3]},
                       index=ids)
    return pheno, cov


def test_site_column_becomes_sites_and_leaves_the_covariates():
    pheno, cov = _tables()
    data = bi.data.make_dataset(phenotypes=pheno, covariates=cov, random_effects="site")
    assert list(data.covariate_names) == ["age"]
    assert list(data.sites[:3]) == ["oslo", "lyon", "ucla"]
    assert data.preprocessing["random_effects"] == {
        "column": "site", "levels": ["lyon", "oslo", "ucla"], "subjects_per_level": [4, 4, 4]}
    # the list form, and a site-only covariate table (no fixed covariates left)
    only = bi.data.make_dataset(phenotypes=pheno, covariates=cov[["site"]],
                                random_effects=["site"])
    assert only.covariates is None and only.sites is not None
    # subsetting keeps the labels with their subjects
    assert list(data.subset_subjects([2, 0]).sites) == ["ucla", "oslo"]
    # integer site codes are labels too
    coded = cov.assign(site=np.arange(12) % 2 + 1)
    assert set(bi.data.make_dataset(phenotypes=pheno, covariates=coded,
                                    random_effects="site").sites) == {"1", "2"}


@pytest.mark.parametrize("change, kwargs, match", [
    (None, {"random_effects": "scanner"}, "not found in the covariates"),
    (None, {"random_effects": ["site", "age"]}, "one grouping column"),
    (None, {"random_effects": "site", "covariate_columns": ["age", "site"]},
     "both as a fixed covariate"),
    ("missing", {"random_effects": "site"}, "missing"),
    ("single", {"random_effects": "site"}, "single subject"),
    ("one_level", {"random_effects": "site"}, "single level"),
])
def test_bad_random_effect_columns_are_named(change, kwargs, match):
    pheno, cov = _tables()
    if change == "missing":
        cov.loc["s04", "site"] = None
    elif change == "single":
        cov.loc["s04", "site"] = "paris"
    elif change == "one_level":
        cov["site"] = "oslo"
    with pytest.raises(DataValidationError, match=match):
        bi.data.make_dataset(phenotypes=pheno, covariates=cov, **kwargs)


def test_no_covariates_table_is_named():
    pheno, _ = _tables()
    with pytest.raises(DataValidationError, match="no covariates table"):
        bi.data.make_dataset(phenotypes=pheno, random_effects="site")


def test_config_keys_reach_the_dataset_and_the_model(tmp_path):
    from bayesimg.config import load_config
    from bayesimg.jobs import build_model

    cfg = tmp_path / "run.toml"
    cfg.write_text('[data]\nplink = "x"\nphenotypes = "y.csv"\ncovariates = "c.csv"\n'
                   'random_effects = "site"\n[model]\nfamily = "glrr"\nsite_scale = 0.5\n')
    config = load_config(cfg)
    assert config.data["random_effects"] == "site"
    assert build_model(config).site_scale == 0.5


def test_make_longitudinal_takes_a_subject_level_site():
    data, _ = bi.data.simulate_gsmtr(n_subjects=12, n_snps=4, n_genes=2, n_phenotypes=1,
                                     seed=0)
    rows = [{"subject": s, "visit": f"v{t}", "hippo": float(i + t),
             "site": ["oslo", "lyon", "ucla"][i % 3]}
            for i, s in enumerate(data.subjects) for t in range(2)]
    visits = bi.data.read_visits(pd.DataFrame(rows))
    geno = data
    long = bi.data.make_longitudinal(geno, visits, phenotype_columns=["hippo"],
                                     random_effects="site")
    assert list(long.sites[:3]) == ["oslo", "lyon", "ucla"] and long.covariates is None
    assert list(long.subset_subjects([1]).sites) == ["lyon"]
    moved = visits.copy()
    moved.loc[moved.index[1], "site"] = "lyon"          # subject 0's second visit elsewhere
    with pytest.raises(DataValidationError, match="changes between visits"):
        bi.data.make_longitudinal(geno, moved, phenotype_columns=["hippo"],
                                  random_effects="site")
    with pytest.raises(DataValidationError, match="not found in the visits"):
        bi.data.make_longitudinal(geno, visits, phenotype_columns=["hippo"],
                                  random_effects="scanner")
