"""make_dataset(random_effects=...): a grouping column (site, scanner) taken out of the
covariates into Dataset.sites, with named errors before any compile."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import bayesimg as bi
from bayesimg.errors import DataValidationError, ModelSpecError


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


def test_families_without_site_effects_refuse_them_before_any_compile():
    import dataclasses
    data, _ = bi.data.simulate_gsmtr(n_subjects=20, n_snps=4, n_genes=2, n_phenotypes=2,
                                     seed=0)
    data = dataclasses.replace(data, sites=np.array(["a", "b"] * 10))
    for model in (bi.models.GLRR(), bi.models.SpikeSlabMTR()):
        with pytest.raises(ModelSpecError, match="no site random effects"):
            model.validate(data)


def test_config_keys_reach_the_dataset_and_the_model(tmp_path):
    from bayesimg.config import load_config
    from bayesimg.jobs import build_model

    cfg = tmp_path / "run.toml"
    cfg.write_text('[data]\nplink = "x"\nphenotypes = "y.csv"\ncovariates = "c.csv"\n'
                   'random_effects = "site"\n[model]\nfamily = "glrr"\nsite_scale = 0.5\n')
    config = load_config(cfg)
    assert config.data["random_effects"] == "site"
    assert build_model(config).site_scale == 0.5
