"""The command line runs every family from TOML; examples, --dry-run and key checks."""

from __future__ import annotations

from importlib import resources

import numpy as np
import pandas as pd
import pytest

import bayesimg as bi
from bayesimg import jobs
from bayesimg.cli import EXIT_USAGE, main
from bayesimg.config import FAMILIES, load_config
from bayesimg.errors import ConfigError

DEMO = resources.files("bayesimg.data") / "datasets" / "demo_1000g"


@pytest.mark.parametrize("family", FAMILIES)
def test_every_example_is_a_valid_config_with_every_key(tmp_path, capsys, family):
    assert main(["config", "--example", family]) == 0
    text = capsys.readouterr().out
    cfg = tmp_path / "run.toml"
    cfg.write_text(text)
    config = load_config(cfg)
    assert config.family == family
    assert config.inference["method"] == "gibbs" and config.output["overwrite"] is False


def test_key_of_another_family_is_an_error(tmp_path, capsys):
    cfg = tmp_path / "run.toml"
    cfg.write_text('[data]\nplink = "g"\nphenotypes = "p.csv"\n[model]\nfamily = "gsmtr"\n'
                   "rank = 3\n")
    with pytest.raises(ConfigError, match="rank does not apply to family = 'gsmtr'"):
        load_config(cfg)
    cfg.write_text('[data]\nplink = "g"\nphenotypes = "p.csv"\n[model]\nfamily = "factor"\n')
    with pytest.raises(ConfigError, match="plink does not apply to family = 'factor'"):
        load_config(cfg)
    cfg.write_text('[data]\nid_column = "IID"\n[model]\nfamily = "factor"\n')
    with pytest.raises(ConfigError, match=r"needs key\(s\) \['views'\]"):
        load_config(cfg)
    assert main(["fit", str(cfg)]) == EXIT_USAGE


@pytest.mark.parametrize("family, model", [("glrr", "rank = 2"), ("spike_slab", ""),
                                           ("gsmtr", "lambda1 = 20\nlambda2 = 20")])
def test_dry_run_checks_everything_and_fits_nothing(tmp_path, capsys, monkeypatch, family,
                                                    model):
    def no_fit(*args, **kwargs):
        raise AssertionError("--dry-run must not fit")
    monkeypatch.setattr(jobs, "fit", no_fit)
    monkeypatch.setattr(jobs, "select_hyperparameter", no_fit)
    pd.read_csv(DEMO / "phenotypes.csv").iloc[:, :4].to_csv(tmp_path / "rois.csv", index=False)
    cfg = tmp_path / "run.toml"
    cfg.write_text(f'[data]\nplink = "{DEMO / "AGT"}"\nphenotypes = "rois.csv"\n'
                   f'ld_prune_r2 = 0.5\n[model]\nfamily = "{family}"\n{model}\n'
                   '[output]\nfolder = "results"\n')
    assert main(["fit", str(cfg), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "Plan for" in out and "503" in out
    assert "Nothing was fitted" in out
    assert not (tmp_path / "results").exists()


def _view_tables(tmp_path, family: str):
    if family == "factor":
        views, _ = bi.data.simulate_factor(n=60, sizes={"a": 25, "b": 15}, n_factors=2, seed=1)
    else:
        views, _ = bi.data.simulate_bnmix(n=90, n_nodes=4, n_clusters=2, seed=1)
    paths = {}
    for view in views.views:
        frame = pd.DataFrame(np.asarray(view.values), index=pd.Index(views.subjects, name="id"),
                             columns=list(view.feature_names))
        frame.to_csv(tmp_path / f"{view.name}.csv")
        paths[view.name] = f"{view.name}.csv"
    return paths


@pytest.mark.parametrize("family, model", [("factor", "n_factors = 3"),
                                           ("bnmix", "n_clusters = 2")])
def test_view_families_run_end_to_end_from_toml(tmp_path, capsys, family, model):
    paths = _view_tables(tmp_path, family)
    views = ", ".join(f'{k} = "{v}"' for k, v in paths.items())
    cfg = tmp_path / "run.toml"
    cfg.write_text(f"[data]\nviews = {{{views}}}\n[model]\nfamily = \"{family}\"\n{model}\n"
                   "[inference]\nmethod = \"gibbs\"\nchains = 1\nwarmup = 40\ndraws = 40\n"
                   "seed = 2\n[output]\nfolder = \"results\"\n")
    assert main(["fit", str(cfg), "--no-progress"]) == 0
    report = (tmp_path / "results" / "report.md").read_text()
    assert "## Provenance" in report and "view " in report
    fit = bi.load(tmp_path / "results" / family / "fit.nc")
    assert fit.model_name in (family, "bnmix", "factor", "multiview_factor")
    assert "Best model" in capsys.readouterr().out


def test_genotype_sources_are_alternatives(tmp_path):
    cfg = tmp_path / "run.toml"
    base = 'phenotypes = "p.csv"\n[model]\nfamily = "gsmtr"\n'
    cfg.write_text("[data]\n" + base)
    with pytest.raises(ConfigError, match=r"needs one of \['plink', 'pgen', 'bgen', 'dosages'\]"):
        load_config(cfg)
    cfg.write_text('[data]\nplink = "g"\npgen = "g"\n' + base)
    with pytest.raises(ConfigError, match=r"takes only one of .*got \['plink', 'pgen'\]"):
        load_config(cfg)
    cfg.write_text('[data]\nplink = "g"\nbgen_sample = "g.sample"\n' + base)
    with pytest.raises(ConfigError, match="bgen_sample is the sample file of a bgen"):
        load_config(cfg)
    cfg.write_text('[data]\ndosages = "d.csv"\n' + base)
    with pytest.raises(ConfigError, match="dosages tables carry no SNP positions"):
        load_config(cfg)
    cfg.write_text('[data]\ndosages = "d.csv"\ngenes = "genes.csv"\ncount = "a2"\n' + base)
    with pytest.raises(ConfigError, match="remove count"):
        load_config(cfg)
    cfg.write_text('[data]\nbgen = "g.bgen"\nbgen_sample = "g.sample"\n' + base)
    config = load_config(cfg)
    assert config.data["bgen"] == str(tmp_path / "g.bgen")
    assert config.data["bgen_sample"] == str(tmp_path / "g.sample")


def test_dry_run_reads_an_imputed_dosage_table(tmp_path, capsys, monkeypatch):
    """Genotypes as a CSV of dosages in [0, 2] (the bundled AGT panel, imputed-like
    noise added) are read, grouped by an explicit snp,gene table and planned."""
    def no_fit(*args, **kwargs):
        raise AssertionError("--dry-run must not fit")
    monkeypatch.setattr(jobs, "fit", no_fit)
    geno = bi.data.read_plink(str(DEMO / "AGT"))
    values = np.asarray(geno.values, dtype=float)
    rng = np.random.default_rng(0)
    dosage = np.clip(values + rng.uniform(-0.1, 0.1, values.shape), 0.0, 2.0)
    snps = list(geno.snps["snp"])
    pd.DataFrame(dosage, index=pd.Index(geno.subjects, name="IID"), columns=snps
                 ).to_csv(tmp_path / "dosages.csv")
    pd.DataFrame({"snp": snps, "gene": "AGT"}).to_csv(tmp_path / "genes.csv", index=False)
    pd.read_csv(DEMO / "phenotypes.csv").iloc[:, :4].to_csv(tmp_path / "rois.csv", index=False)
    cfg = tmp_path / "run.toml"
    cfg.write_text('[data]\ndosages = "dosages.csv"\ngenes = "genes.csv"\n'
                   'phenotypes = "rois.csv"\nld_prune_r2 = 0.5\n[model]\nfamily = "glrr"\n'
                   'rank = 2\n[output]\nfolder = "results"\n')
    assert main(["fit", str(cfg), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "Plan for" in out and "503" in out and "dosages.csv" in out
    assert not (tmp_path / "results").exists()
