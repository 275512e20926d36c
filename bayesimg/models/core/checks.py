"""Input checks shared by the genotype → phenotype regression families (GSMTR, GLRR)."""

from __future__ import annotations

import numpy as np

from bayesimg.data.dataset import Dataset
from bayesimg.errors import DataValidationError


def check_finite_arrays(data: Dataset) -> None:
    """Raise naming the column and subject of the first NaN/inf in X, Y or Z."""
    for label, arr, names in (("genotypes", data.genotypes, data.snp_names),
                              ("phenotypes", data.phenotypes, data.phenotype_names),
                              ("covariates", data.covariates, data.covariate_names)):
        if arr is None:
            continue
        bad = ~np.isfinite(arr)
        if bad.any():
            i, j = np.argwhere(bad)[0]
            raise DataValidationError(f"{label} contain NaN or inf",
                                      column=str(names[j]), subject=str(data.subjects[i]))


def check_centred_phenotypes(data: Dataset, model_name: str) -> None:
    """Models without an intercept: a phenotype mean 5 standard errors from 0 is an error."""
    z = np.abs(data.phenotypes.mean(axis=0)) / (
        data.phenotypes.std(axis=0) / np.sqrt(data.n_subjects) + 1e-12)
    if np.any(z > 5.0):
        j = int(np.argmax(z))
        raise DataValidationError(
            f"{model_name} has no intercept: phenotypes must be centred; build the dataset "
            "with standardize_phenotypes=True", column=str(data.phenotype_names[j]))


class GenotypePhenotypeIO:
    """What the genotype → phenotype families (GSMTR, GLRR) store with a fit.

    The observed site ``y`` (subject × phenotype) and the design matrices X (and Z)
    as constant data; X, Y, Z are also the arguments with a subject axis (not the
    d×d whitening transform, whatever n is).
    """

    def subject_axis_args(self, data: Dataset, method: str = "nuts", *, args=None):
        return frozenset({"X", "Y", "Z", "H"})

    def observed_data(self, data: Dataset) -> dict[str, np.ndarray]:
        return {"y": np.asarray(data.phenotypes, dtype=float)}

    def constant_data(self, data: Dataset):
        from bayesimg.models.core.predict import standardisation_constants

        out = {"X": (("subject", "snp"), np.asarray(data.genotypes, dtype=float))}
        if data.covariates is not None:
            out["Z"] = (("subject", "covariate"), np.asarray(data.covariates, dtype=float))
        if getattr(data, "sites", None) is not None:
            # random-effect grouping (site_effects): the integrated LOO rebuilds H from it
            out["site_of_subject"] = (("subject",), np.asarray(data.sites, dtype=str))
        # training centres/scales (and counted alleles): what predicting new subjects needs
        out.update(standardisation_constants(data))
        return out
