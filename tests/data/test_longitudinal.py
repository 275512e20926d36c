"""LongitudinalData: genotyped subjects aligned with a long table of visits."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from bayesimg.data import make_longitudinal, read_visits, simulate_glrr
from bayesimg.data.simulate_l2r2 import simulate_l2r2
from bayesimg.errors import DataValidationError


def _genotypes():
    data, _ = simulate_glrr(n_subjects=12, n_snps=4, n_phenotypes=2, rank=1, seed=0)
    return dataclasses.replace(data, phenotypes=None, phenotype_names=None)


def _visits(subjects):
    rows = [  # out of time order on purpose; one subject without genotypes
        (subjects[0], "m12", 71.0, 2.0, 1.0), (subjects[0], "bl", 70.0, 1.0, 0.5),
        (subjects[1], "bl", 60.0, 3.0, 0.0), (subjects[2], "bl", 65.0, 0.0, 1.5),
        (subjects[2], "m24", 67.0, 4.0, 2.0), (subjects[2], "m12", 66.0, 2.0, 1.0),
        ("nobody", "bl", 50.0, 9.0, 9.0)]
    frame = pd.DataFrame(rows, columns=["RID", "VISCODE", "AGE", "hippo", "amyg"])
    return read_visits(frame, subject="RID", visit="VISCODE", time="AGE")


def test_visits_are_padded_in_time_order_and_centred():
    geno = _genotypes()
    visits = _visits(geno.subjects)
    data = make_longitudinal(geno, visits, phenotype_columns=["hippo", "amyg"],
                             standardize_phenotypes=False)
    assert list(data.subjects) == list(geno.subjects[:3])       # genotyped with visits
    assert data.phenotypes.shape == (3, 3, 2)
    assert data.visit_counts.tolist() == [2, 1, 3]
    assert data.visit_labels[0, :2].tolist() == ["bl", "m12"]
    assert data.visit_labels[2].tolist() == ["bl", "m12", "m24"]
    raw = np.array([1.0, 2.0, 3.0, 0.0, 2.0, 4.0])             # hippo in subject-major order
    np.testing.assert_allclose(data.flat_phenotypes()[:, 0], raw - raw.mean())
    assert np.isnan(data.phenotypes[1, 1:]).all()
    ages = np.array([70.0, 71.0, 60.0, 65.0, 66.0, 67.0])
    np.testing.assert_allclose(data.flat_time(), ages - ages.mean())
    np.testing.assert_allclose(data.genotypes, geno.genotypes[:3])
    # the naive summaries
    avg = data.visit_average()
    np.testing.assert_allclose(avg.phenotypes.mean(axis=0), 0.0, atol=1e-12)
    assert avg.phenotypes.shape == (3, 2)
    sub = data.subset_subjects([1])
    assert sub.max_visits == 1 and sub.subjects.tolist() == [data.subjects[1]]
    assert data.fingerprint() != sub.fingerprint()


def test_bad_visit_tables_raise_named_errors():
    geno = _genotypes()
    visits = _visits(geno.subjects)
    with pytest.raises(DataValidationError, match="missing phenotype"):
        bad = visits.copy()
        bad.loc[0, "hippo"] = np.nan
        make_longitudinal(geno, bad, phenotype_columns=["hippo"])
    with pytest.raises(DataValidationError, match="column not found"):
        make_longitudinal(geno, visits, phenotype_columns=["putamen"])
    with pytest.raises(DataValidationError, match="no subject"):
        make_longitudinal(geno, visits[visits["subject"] == "nobody"],
                          phenotype_columns=["hippo"])
    with pytest.raises(DataValidationError, match="Dataset with genotypes"):
        make_longitudinal(visits, visits, phenotype_columns=["hippo"])


def test_simulated_truth_is_the_generating_model():
    data, truth = simulate_l2r2(n_subjects=300, n_snps=6, n_phenotypes=3, rank=1,
                                singular_values=[10.0], max_visits=3, min_visits=3,
                                subject_sd=1.0, noise_sd=0.3, seed=1)
    assert data.visit_counts.tolist() == [3] * 300
    # within-subject covariance of visit residuals ≈ ω (noise independent across visits)
    resid = data.phenotypes - (data.genotypes @ truth.B.to_numpy())[:, None, :] \
        - data.time[..., None] * truth.time_effect
    cross = np.mean(resid[:, 0] * resid[:, 2], axis=0) - resid[:, 0].mean(0) * resid[:, 2].mean(0)
    np.testing.assert_allclose(cross, truth.subject_effect.var(axis=0), rtol=0.25)


def test_text_site_column_is_one_hot_encoded_with_named_errors():
    geno = _genotypes()
    visits = _visits(geno.subjects)
    sites = np.array(["B", "B", "A", "C", "C", "C", "A"])      # one site per subject
    visits["site"] = read_visits(visits.assign(site=sites))["site"]  # text, as read
    data = make_longitudinal(geno, visits, phenotype_columns=["hippo"],
                             covariate_columns=["site"], standardize_covariates=False)
    assert list(data.covariate_names) == ["site[B]", "site[C]"]
    assert data.preprocessing["covariates_one_hot"]["site"]["reference"] == "A"
    lr, lp = data.visit_index()
    site_of = dict(zip(visits["subject"], visits["site"], strict=False))
    per_visit = np.array([site_of[s] for s in np.asarray(data.subjects)[lr]])
    np.testing.assert_array_equal(data.covariates[lr, lp],
                                  np.column_stack([per_visit == "B", per_visit == "C"]))
    # levels fixed from the training data: the same columns; an unseen site is an error
    fixed = make_longitudinal(geno, visits, phenotype_columns=["hippo"],
                              covariate_columns=["site"],
                              covariate_levels={"site": ["A", "B", "C"]})
    assert list(fixed.covariate_names) == ["site[B]", "site[C]"]
    with pytest.raises(DataValidationError, match="unknown category 'C'.*column 'site'"):
        make_longitudinal(geno, visits, phenotype_columns=["hippo"],
                          covariate_columns=["site"], covariate_levels={"site": ["A", "B"]})
    with pytest.raises(DataValidationError, match="no value.*column 'site'"):
        make_longitudinal(geno, visits.assign(site=None), phenotype_columns=["hippo"],
                          covariate_columns=["site"])
    with pytest.raises(DataValidationError, match="missing covariate value"):
        make_longitudinal(geno, visits.assign(site=[None, *sites[1:]]),
                          phenotype_columns=["hippo"], covariate_columns=["site"])
    with pytest.raises(DataValidationError, match="phenotype column is not numeric"):
        make_longitudinal(geno, visits, phenotype_columns=["site"])
