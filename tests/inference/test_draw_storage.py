"""Memory-bounded draws: thinning plan, exact streaming summaries, end to end in a fit."""

import numpy as np
import pytest

import bayesimg as bi
from bayesimg.data import simulate_gsmtr
from bayesimg.inference.storage import StreamingSummary, plan_storage


def test_plan_thins_only_above_the_budget():
    sizes = {"W": 1000, "sigma2": 1, "log_likelihood:y": 200}
    per_draw = (1000 + 1 + 200) * 4 * 8
    plan = plan_storage(sizes, 4, 1000, max_draw_bytes=None)
    assert plan.keep_every == 1 and not plan.thinned and plan.streamed_sites == ()
    plan = plan_storage(sizes, 4, 1000, max_draw_bytes=per_draw * 1000)
    assert plan.keep_every == 1
    plan = plan_storage(sizes, 4, 1000, max_draw_bytes=per_draw * 1000 / 4.5)
    assert plan.keep_every == 5 and plan.draws_kept == 200
    assert plan.streamed_sites == ("W", )


def test_streaming_summary_is_exact():
    rng = np.random.default_rng(0)
    x = rng.standard_t(4, size=(3, 257, 6, 2)) + 0.3
    s = StreamingSummary(threshold=0.5)
    for start in range(0, 257, 40):
        s.update(x[:, start:start + 40])
    res = s.result()
    flat = x.reshape(-1, 6, 2)
    np.testing.assert_allclose(res["mean"], flat.mean(0), rtol=1e-12)
    np.testing.assert_allclose(res["sd"], flat.std(0, ddof=1), rtol=1e-12)
    np.testing.assert_array_equal(res["prob_positive"], (flat > 0).mean(0))
    np.testing.assert_array_equal(res["prob_exceeds"], (np.abs(flat) > 0.5).mean(0))


@pytest.fixture(scope="module")
def small_data():
    data, _ = simulate_gsmtr(n_subjects=120, n_snps=40, n_genes=6, n_phenotypes=3, seed=3)
    return data


def test_thinned_fit_keeps_every_kth_draw_and_streams_all(small_data):
    model = bi.models.GroupSparseMTR(lambda1=20.0, lambda2=20.0)
    opts = dict(method="gibbs", chains=2, warmup=50, draws=120, seed=5, progress=False)
    full = bi.fit(model, small_data, max_draw_bytes=None, **opts)
    # budget for ~1/4 of the draws -> keep every 4th (120 -> 30 per chain)
    per_draw = (40 * 3 + 6 + 6 + 40 + 40 + 1 + 120) * 2 * 8  # W, gene_norm, tau, omega,
    # snp_norm, sigma2 and the per-subject log-likelihood, 2 chains, float64
    thin = bi.fit(model, small_data, max_draw_bytes=per_draw * 120 / 3.5, **opts)
    storage = thin.tree["posterior_streaming"].attrs
    assert "keep_every" in storage["draw_storage"]
    assert thin.n_draws == 30
    W_full = full.posterior["W"].values
    np.testing.assert_allclose(thin.posterior["W"].values, W_full[:, 3::4], rtol=1e-12)
    np.testing.assert_allclose(thin.tree["log_likelihood"]["y"].values,
                               full.tree["log_likelihood"]["y"].values[:, 3::4], rtol=1e-12)
    stream = thin.tree["posterior_streaming"]
    np.testing.assert_allclose(stream["W_mean"].values, W_full.mean(axis=(0, 1)), rtol=1e-10)
    np.testing.assert_allclose(stream["W_sd"].values,
                               W_full.reshape(-1, 40, 3).std(0, ddof=1), rtol=1e-10)
    np.testing.assert_allclose(stream["W_prob_positive"].values,
                               (W_full > 0).mean(axis=(0, 1)))
    # the summary reports moments over all draws, intervals/ESS from the kept ones
    table = thin.summary(var_names=["W"])
    np.testing.assert_allclose(table["mean"].to_numpy(),
                               W_full.mean(axis=(0, 1)).ravel(), rtol=1e-10)
    assert table.attrs["streamed_moments"] == ["W"]
    assert np.isfinite(table["ess_bulk"]).all()
    assert np.isfinite(thin.loo().elpd)


def test_thinned_fit_round_trips(small_data, tmp_path):
    model = bi.models.GroupSparseMTR(lambda1=20.0, lambda2=20.0)
    f = bi.fit(model, small_data, method="gibbs", chains=2, warmup=20, draws=40, seed=1,
               progress=False, max_draw_bytes=20_000)
    path = f.save(tmp_path / "fit.nc")
    g = bi.load(path)
    np.testing.assert_allclose(g.tree["posterior_streaming"]["W_mean"].values,
                               f.tree["posterior_streaming"]["W_mean"].values)
    assert g.summary(var_names=["W"]).attrs["streamed_moments"] == ["W"]
