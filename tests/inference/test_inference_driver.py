"""The shared inference drivers: compile cache, reproducibility, chain layouts,
thinning, option validation, saving/loading fits, and the pointwise log-likelihood.

Small GSMTR problems (n = 30, d = 8, c = 2: the shapes and MCMC settings of the
calibration tests, so the compiled programs are shared within one pytest run).
"""

from __future__ import annotations

import os
import warnings

import jax
import numpy as np
import pytest
import xarray as xr
from _gsmtr_helpers import genotype_design, with_phenotypes
from scipy import stats

import bayesimg
from bayesimg.errors import ConvergenceWarning, ModelSpecError
from bayesimg.models import GroupSparseMTR

GIBBS = dict(chains=2, warmup=200, draws=2000)        # as in test_gsmtr_calibration.py
NUTS = dict(chains=2, warmup=500, draws=1000)


def _data(n=30, seed=0):
    design = genotype_design(n, 8, 2, seed=seed)
    rng = np.random.default_rng(seed)
    W = np.zeros((8, 2))
    W[2] = [0.8, -0.5]
    Y = design.genotypes @ W + 0.7 * rng.standard_normal((n, 2))
    return with_phenotypes(design, Y)


@pytest.fixture(scope="module")
def data():
    return _data()


@pytest.fixture(scope="module")
def gibbs_fit(data):
    return bayesimg.fit(GroupSparseMTR(), data, method="gibbs", seed=3, progress=False, **GIBBS)


# ------------------------------------------------------------------ compile cache
def test_second_fit_of_same_shape_compiles_nothing():
    """n = 31 is used by no other test, so the first fit must compile; a second fit on
    *new data* of the same shape, with other λ's (arguments of the program, not
    constants) and another seed, must not."""
    a, b = _data(n=31, seed=1), _data(n=31, seed=2)
    first = bayesimg.fit(GroupSparseMTR(1.0, 1.0), a, method="gibbs", seed=0, progress=False,
                         **GIBBS)
    second = bayesimg.fit(GroupSparseMTR(4.0, 0.5), b, method="gibbs", seed=1, progress=False,
                          **GIBBS)
    assert first.timings["compile_seconds"] > 0
    assert second.timings["compile_seconds"] == 0
    assert second.timings["sampling_seconds"] > 0
    # and the new λ's were really used (the posterior differs from a refit at the old λ)
    third = bayesimg.fit(GroupSparseMTR(1.0, 1.0), b, method="gibbs", seed=1, progress=False,
                         **GIBBS)
    assert third.timings["compile_seconds"] == 0
    assert not np.allclose(second.posterior["W"].values, third.posterior["W"].values)
    # a shorter run (a trial before the long one) reuses the program too, and its draws
    # are the first draws of the longer run: the call length is not compiled in
    short = bayesimg.fit(GroupSparseMTR(1.0, 1.0), b, method="gibbs", seed=1, progress=False,
                         **{**GIBBS, "draws": 300})
    assert short.timings["compile_seconds"] == 0
    np.testing.assert_allclose(short.posterior["W"].values,
                               third.posterior["W"].values[:, :300], rtol=1e-12)


def test_compiled_programs_are_kept_least_recently_used_first(monkeypatch):
    """The cache of compiled samplers is bounded: the least recently used is dropped."""
    from bayesimg.inference import mcmc

    class Recorder:
        def __init__(self, kernel, **kwargs):
            self.kwargs = kwargs

    monkeypatch.setattr(mcmc, "_PROGRAMS", type(mcmc._PROGRAMS)())
    monkeypatch.setattr(mcmc, "MAX_CACHED_PROGRAMS", 2)
    get = lambda k: mcmc.compiled_mcmc(("k", k), lambda: None, program_class=Recorder)  # noqa: E731
    a, b = get(1), get(2)
    assert get(1) is a                 # a hit, and now the most recently used
    get(3)                             # evicts 2, the least recently used
    assert len(mcmc._PROGRAMS) == 2
    assert get(1) is a and get(2) is not b


# ------------------------------------------------------------------ reproducibility
def test_same_seed_identical_different_seed_different(data, gibbs_fit):
    again = bayesimg.fit(GroupSparseMTR(), data, method="gibbs", seed=3, progress=False, **GIBBS)
    other = bayesimg.fit(GroupSparseMTR(), data, method="gibbs", seed=4, progress=False, **GIBBS)
    for name in ("W", "sigma2", "tau", "omega"):
        np.testing.assert_array_equal(again.posterior[name].values,
                                      gibbs_fit.posterior[name].values)
        assert not np.any(other.posterior[name].values == gibbs_fit.posterior[name].values)
    # chains of one fit are different streams too
    W = gibbs_fit.posterior["W"].values
    assert not np.allclose(W[0], W[1])


def test_nuts_same_seed_identical(data):
    a = bayesimg.fit(GroupSparseMTR(), data, method="nuts", seed=5, progress=False, **NUTS)
    b = bayesimg.fit(GroupSparseMTR(), data, method="nuts", seed=5, progress=False, **NUTS)
    np.testing.assert_array_equal(a.posterior["W"].values, b.posterior["W"].values)
    np.testing.assert_array_equal(a.tree["sample_stats"]["n_steps"].values,
                                  b.tree["sample_stats"]["n_steps"].values)


@pytest.mark.parametrize("chain_method", ["sequential", "vectorized"])
def test_gibbs_chain_layouts_give_the_same_draws(data, gibbs_fit, chain_method):
    """The chain keys are split once, before the layout is chosen, and the Gibbs kernel
    is deterministic given its key: sequential, parallel (pmap) and vectorised (vmap)
    runs must give the same draws up to float round-off (1e-8; observed ≤ 1e-15).
    NUTS does not: its trajectories are chaotic, so round-off differences between vmap
    and pmap grow to O(1) over a run — documented here, not tested."""
    assert gibbs_fit.settings["chain_method"] == "parallel" or jax.local_device_count() == 1
    other = bayesimg.fit(GroupSparseMTR(), data, method="gibbs", seed=3, progress=False,
                         chain_method=chain_method, **GIBBS)
    assert other.settings["chain_method"] == chain_method
    for name in ("W", "sigma2"):
        np.testing.assert_allclose(other.posterior[name].values,
                                   gibbs_fit.posterior[name].values, rtol=0, atol=1e-8)


def test_single_chain_fit(data):
    """One chain runs on one device through the single-device branch of the driver
    (the branch that sequential/vectorised layouts, 1-core CPUs and GPUs use)."""
    fit = bayesimg.fit(GroupSparseMTR(), data, method="gibbs", chains=1, warmup=200, draws=2000,
                       seed=3, progress=False)
    assert fit.n_chains == 1 and fit.n_draws == 2000
    assert np.all(np.isfinite(fit.posterior["W"].values))


def test_thinning_keeps_draws_and_takes_every_kth_transition(data):
    """thin=3 keeps ``draws`` draws, and they are exactly every 3rd transition of the
    same chain run unthinned (the kernel state carries its own RNG key)."""
    thinned = bayesimg.fit(GroupSparseMTR(), data, method="gibbs", seed=8, thin=3,
                           progress=False, **GIBBS)
    full = bayesimg.fit(GroupSparseMTR(), data, method="gibbs", seed=8, progress=False,
                        **dict(GIBBS, draws=3 * GIBBS["draws"]))
    assert thinned.n_draws == GIBBS["draws"] and thinned.n_chains == GIBBS["chains"]
    assert thinned.settings["thin"] == 3
    assert thinned.tree["log_likelihood"]["y"].sizes["draw"] == GIBBS["draws"]
    np.testing.assert_allclose(thinned.posterior["W"].values,
                               full.posterior["W"].values[:, 2::3], rtol=0, atol=1e-12)


# ------------------------------------------------------------------ option validation
@pytest.mark.parametrize(("method", "options", "match"), [
    ("hmc", {}, "method"),
    ("gibbs", {"chains": 0}, "chains"),
    ("nuts", {"chains": 2.5}, "chains"),
    ("gibbs", {"chains": True}, "chains"),
    ("gibbs", {"draws": 0}, "draws"),
    ("gibbs", {"warmup": -1}, "warmup"),
    ("gibbs", {"thin": 0}, "thin"),
    ("gibbs", {"chain_method": "threads"}, "chain_method"),
    ("nuts", {"num_samples": 100}, "num_samples"),
    ("svi", {"chains": 2}, "chains"),
    ("svi", {"guide": "flow"}, "guide"),
    ("map", {"guide": "mean_field"}, "guide"),
    ("svi", {"steps": 0}, "steps"),
])
def test_bad_options_raise_model_spec_error(data, method, options, match):
    with pytest.raises(ModelSpecError, match=match):
        bayesimg.fit(GroupSparseMTR(), data, method=method, progress=False, **options)


def test_bad_model_settings_raise_model_spec_error():
    for kwargs in ({"lambda1": 0.0}, {"lambda2": float("nan")},
                   {"parameterization": "centred"}, {"whiten": "yes"},
                   {"hyperprior": (1.0,)}):
        with pytest.raises(ModelSpecError):
            GroupSparseMTR(**kwargs)


# ------------------------------------------------------------------ save / load
def _assert_no_jax(tree):
    for node in tree.subtree:
        for name, var in node.dataset.variables.items():
            assert type(var.data) is np.ndarray, (node.path, name, type(var.data))
            assert not isinstance(var.data, jax.Array)


def test_fits_hold_numpy_only(gibbs_fit):
    _assert_no_jax(gibbs_fit.tree)


def test_netcdf_round_trip(gibbs_fit, tmp_path):
    path = gibbs_fit.save(tmp_path / "fit.nc")
    assert path == tmp_path / "fit.nc" and path.is_file()
    assert sorted(os.listdir(tmp_path)) == ["fit.nc"]          # no temporary leftovers
    loaded = bayesimg.load(path)
    _assert_no_jax(loaded.tree)
    assert set(loaded.tree.children) == set(gibbs_fit.tree.children)
    for group in gibbs_fit.tree.children:
        a = gibbs_fit.tree[group].to_dataset()
        b = loaded.tree[group].to_dataset()
        assert set(a.data_vars) == set(b.data_vars), group
        for name in a.data_vars:
            assert a[name].dims == b[name].dims
            np.testing.assert_array_equal(a[name].values, b[name].values)
            assert a[name].dtype == b[name].dtype, (group, name)
        for dim in ("snp", "gene", "phenotype", "subject"):
            if dim in a.coords:
                values = b.coords[dim].values
                assert all(isinstance(v, str) for v in values.tolist()), (group, dim)
                assert values.tolist() == a.coords[dim].values.tolist()
    assert dict(loaded.tree.attrs) == dict(gibbs_fit.tree.attrs)
    assert loaded.settings == gibbs_fit.settings and loaded.timings == gibbs_fit.timings
    assert loaded.method == "gibbs" and loaded.model_name == "gsmtr"
    assert loaded.model_settings == gibbs_fit.model_settings == GroupSparseMTR().settings()


def test_zarr_round_trip(gibbs_fit, tmp_path):
    pytest.importorskip("zarr")
    path = gibbs_fit.save(tmp_path / "fit.zarr")
    loaded = bayesimg.load(path)
    _assert_no_jax(loaded.tree)
    np.testing.assert_array_equal(loaded.posterior["W"].values, gibbs_fit.posterior["W"].values)
    assert dict(loaded.tree.attrs) == dict(gibbs_fit.tree.attrs)
    # overwriting an existing store works and leaves no temporary directory behind
    gibbs_fit.save(path)
    assert sorted(os.listdir(tmp_path)) == ["fit.zarr"]


def _failing_to_netcdf(self, path, *args, **kwargs):
    with open(path, "wb") as fh:                 # half a file, then the "disk fills up"
        fh.write(b"\x89HDF\r\n\x1a\n" + b"\0" * 1000)
    raise OSError("simulated failure half-way through writing")


def test_failed_save_leaves_nothing(gibbs_fit, tmp_path, monkeypatch):
    monkeypatch.setattr(xr.DataTree, "to_netcdf", _failing_to_netcdf)
    with pytest.raises(OSError, match="simulated failure"):
        gibbs_fit.save(tmp_path / "fit.nc")
    assert os.listdir(tmp_path) == []            # no file, no temporary sibling


def test_failed_save_keeps_the_existing_file(gibbs_fit, tmp_path, monkeypatch):
    path = gibbs_fit.save(tmp_path / "fit.nc")
    before = path.read_bytes()
    monkeypatch.setattr(xr.DataTree, "to_netcdf", _failing_to_netcdf)
    with pytest.raises(OSError, match="simulated failure"):
        gibbs_fit.save(path)
    assert sorted(os.listdir(tmp_path)) == ["fit.nc"]
    assert path.read_bytes() == before
    monkeypatch.undo()
    np.testing.assert_array_equal(bayesimg.load(path).posterior["W"].values,
                                  gibbs_fit.posterior["W"].values)


def test_load_rejects_missing_and_corrupt_files(tmp_path):
    from bayesimg.errors import InputFileError
    with pytest.raises(InputFileError):
        bayesimg.load(tmp_path / "absent.nc")
    bad = tmp_path / "bad.nc"
    bad.write_bytes(b"not a netCDF file")
    with pytest.raises(InputFileError):
        bayesimg.load(bad)
    with pytest.raises(InputFileError):
        bayesimg.load(tmp_path)                  # no .nc/.zarr suffix


# ------------------------------------------------------------------ log-likelihood
def _check_loglik(fit, data, picks):
    """log_likelihood y[chain, draw, subject] = Σ_j log N(y_lj | (XW)_lj, σ²), by hand."""
    ll = fit.tree["log_likelihood"]["y"]
    assert ll.dims == ("chain", "draw", "subject")
    assert ll.coords["subject"].values.tolist() == [str(s) for s in data.subjects]
    X = fit.tree["constant_data"]["X"].values
    Y = fit.tree["observed_data"]["y"].values
    np.testing.assert_array_equal(X, data.genotypes)
    np.testing.assert_array_equal(Y, data.phenotypes)
    W = fit.posterior["W"].values
    s2 = fit.posterior["sigma2"].values
    for c, k in picks:
        by_hand = stats.norm.logpdf(Y, X @ W[c, k], np.sqrt(s2[c, k])).sum(axis=1)
        np.testing.assert_allclose(ll.values[c, k], by_hand, rtol=1e-10, atol=1e-10)


def test_loglik_gibbs(gibbs_fit, data):
    _check_loglik(gibbs_fit, data, [(0, 0), (1, 17), (0, 1999)])


def test_loglik_nuts(data):
    fit = bayesimg.fit(GroupSparseMTR(), data, method="nuts", seed=5, progress=False, **NUTS)
    _check_loglik(fit, data, [(0, 0), (1, 500), (1, 999)])


def test_loglik_map(data):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        fit = bayesimg.fit(GroupSparseMTR(), data, method="map", steps=500, seed=0,
                           progress=False)
    assert fit.n_chains == 1 and fit.n_draws == 1
    _check_loglik(fit, data, [(0, 0)])


def test_save_refuses_a_file_it_did_not_write(gibbs_fit, tmp_path):
    from bayesimg.errors import OutputFolderError
    mine = tmp_path / "results.nc"
    mine.write_bytes(b"my own netCDF, not a fit")
    with pytest.raises(OutputFolderError, match="not a fit saved by bayesimg"):
        gibbs_fit.save(mine)
    assert mine.read_bytes() == b"my own netCDF, not a fit"
    store = tmp_path / "notes.zarr"
    store.mkdir()
    (store / "todo.txt").write_text("keep")
    with pytest.raises(OutputFolderError):
        gibbs_fit.save(store)
    assert (store / "todo.txt").read_text() == "keep"
    gibbs_fit.save(mine, overwrite=True)           # explicit: replaced
    assert bayesimg.load(mine).method == "gibbs"


def test_save_without_individual_data(gibbs_fit, tmp_path):
    path = gibbs_fit.save(tmp_path / "shared.nc", include_data=False)
    back = bayesimg.load(path)
    assert "individual_data" in back.tree.attrs
    for group in ("observed_data", "constant_data"):
        if group in back.tree.children:
            assert "subject" not in back.tree[group].to_dataset().dims
    subjects = back.tree["log_likelihood"].to_dataset()["subject"].values
    assert list(subjects) == list(range(len(subjects)))
    original = gibbs_fit.tree["constant_data"].to_dataset()
    assert any("subject" in original[v].dims for v in original.data_vars)
    np.testing.assert_array_equal(back.posterior["W"].values, gibbs_fit.posterior["W"].values)
    # PSIS needs only the pointwise log-likelihood (integrated LOO needs the genotypes)
    np.testing.assert_allclose(back.loo(method="psis").elpd, gibbs_fit.loo(method="psis").elpd)
    assert path.stat().st_size < gibbs_fit.save(tmp_path / "full.nc").stat().st_size


def test_fit_is_an_arviz_datatree(gibbs_fit):
    """ArviZ 1.x functions and arviz_plots take a Fit directly (it is a DataTree)."""
    import pickle

    import arviz as az
    import xarray as xr
    assert isinstance(gibbs_fit, xr.DataTree) and gibbs_fit.tree is gibbs_fit
    table = az.summary(gibbs_fit, var_names=["sigma2"])
    assert list(table.index) == ["sigma2"] and table.loc["sigma2", "r_hat"] < 1.1
    psis = az.loo(gibbs_fit)
    np.testing.assert_allclose(psis.elpd, gibbs_fit.loo(method="psis").elpd, rtol=1e-6)
    with_pp = gibbs_fit.with_posterior_predictive(num_draws=20)
    assert "posterior_predictive" in with_pp.children
    az.plot_ppc_dist(with_pp)                      # no dims beyond subject/phenotype
    import matplotlib.pyplot as plt
    plt.close("all")                               # arviz_plots draws through pyplot
    assert isinstance(gibbs_fit.posterior, xr.Dataset)
    copy = gibbs_fit.copy()
    assert type(copy) is type(gibbs_fit) and copy.method == gibbs_fit.method
    assert copy != gibbs_fit and len({gibbs_fit, copy}) == 2      # identity, hashable
    back = pickle.loads(pickle.dumps(gibbs_fit))
    np.testing.assert_array_equal(back.posterior["W"].values, gibbs_fit.posterior["W"].values)
