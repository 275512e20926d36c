"""bayesimg warnings point at the user's own line, not at library internals."""

import warnings

import numpy as np
import pandas as pd

import bayesimg as bi
from bayesimg.errors import ConvergenceWarning, DataWarning
from bayesimg.report.diagnostics import Diagnostics, warn_if_problems


def test_convergence_warning_points_at_the_caller():
    diag = Diagnostics(method="gibbs", approximate=False, n_chains=2, n_draws=10, n_params=1,
                       problems=["R-hat 1.3 > 1.01"], ok=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warn_if_problems(diag)
    assert [w.category for w in caught] == [ConvergenceWarning]
    assert caught[0].filename == __file__


def test_data_warning_from_deep_in_preprocessing_points_at_the_caller():
    rng = np.random.default_rng(0)
    ids = [f"s{i}" for i in range(40)]
    calls = rng.integers(0, 3, size=(40, 5)).astype(float)
    calls[:, 4] = 0.0                                  # monomorphic: dropped with a warning
    geno = bi.data.GenotypeTable(
        subjects=np.array(ids), values=calls,
        snps=pd.DataFrame({"snp": [f"rs{j}" for j in range(5)], "chrom": "1",
                           "pos": np.arange(5) * 100 + 1, "a1": "A", "a2": "G", "gene": None}))
    pheno = pd.DataFrame({"y": rng.normal(size=40)}, index=pd.Index(ids))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        bi.data.make_dataset(geno, pheno)
    data_warnings = [w for w in caught if issubclass(w.category, DataWarning)]
    assert data_warnings, [str(w.message) for w in caught]
    assert all(w.filename == __file__ for w in data_warnings)
