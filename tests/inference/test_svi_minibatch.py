"""SVI on subject minibatches: same optimum as full-batch SVI, clear errors."""

import numpy as np
import pytest

import bayesimg as bi
from bayesimg.data import simulate_gsmtr
from bayesimg.errors import ModelSpecError


@pytest.fixture(scope="module")
def data():
    return simulate_gsmtr(n_subjects=3000, n_snps=24, n_genes=6, n_phenotypes=3,
                          effect_size=0.3, seed=7)


def test_minibatch_svi_matches_full_batch(data):
    ds, truth = data
    model = bi.models.GroupSparseMTR(lambda1=10.0, lambda2=10.0)
    opts = dict(method="svi", steps=6000, learning_rate=0.02, num_draws=400, progress=False,
                stop_on_convergence=False)
    full = bi.fit(model, ds, **opts)
    mini = bi.fit(model, ds, subsample_size=300, **opts)
    assert mini.settings["subsample_size"] == 300
    W_full = full.posterior["W"].mean(("chain", "draw")).values
    W_mini = mini.posterior["W"].mean(("chain", "draw")).values
    sd = full.posterior["W"].std(("chain", "draw")).values
    # minibatch noise: posterior means within half a posterior sd of the full-batch optimum
    assert np.max(np.abs(W_mini - W_full) / sd) < 0.5
    # and the planted effects are recovered
    W_true = truth.W.loc[ds.snp_names, ds.phenotype_names].to_numpy()
    active = np.abs(W_true) > 0
    assert np.corrcoef(W_mini[active], W_true[active])[0, 1] > 0.9
    # draws and log-likelihood are on the full data: one value per subject
    assert mini.tree["log_likelihood"]["y"].shape[-1] == ds.n_subjects


def test_minibatch_at_least_n_is_full_batch(data):
    ds, _ = data
    fit = bi.fit(bi.models.GroupSparseMTR(), ds, method="svi", steps=50, progress=False,
                 subsample_size=10**6, num_draws=10)
    assert fit.settings["subsample_size"] is None


def test_minibatch_needs_model_support(data):
    ds, _ = data

    class NoMinibatch(bi.models.GroupSparseMTR):
        supports_subsampling = False

    with pytest.raises(ModelSpecError, match="minibatch"):
        bi.fit(NoMinibatch(), ds, method="svi", steps=10, subsample_size=100, progress=False)
    with pytest.raises(ModelSpecError, match="subsample_size"):
        bi.fit(bi.models.GroupSparseMTR(), ds, method="svi", steps=10, subsample_size=0,
               progress=False)
