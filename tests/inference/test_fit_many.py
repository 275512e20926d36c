"""``bayesimg.fit_many``: batched fits equal single fits; Dask; resume; named errors."""

from __future__ import annotations

import os

import numpy as np
import pytest
import xarray as xr

import bayesimg as bi
from bayesimg.errors import FitManyError, ModelSpecError, ResultFileError
from bayesimg.inference import batched, mcmc
from bayesimg.inference.batched import BatchedMCMC, stack_arguments

# the runs are kept far too short to converge: their convergence warnings are expected
pytestmark = pytest.mark.filterwarnings("ignore::bayesimg.errors.ConvergenceWarning")

GIBBS = {"chains": 2, "warmup": 20, "draws": 15}
LAMBDAS = [(1.0, 2.0), (5.0, 5.0), (20.0, 3.0)]
# batched and single fits run the same arithmetic in differently batched XLA programs: their
# draws agree to rounding (observed: identical, or ~1e-12 apart), far below float32's ~1e-4
RTOL, ATOL = 1e-8, 1e-10
# attributes that legitimately differ between two runs of the same fit
VOLATILE = {"created", "timings", "job_name", "job_fingerprint"}


@pytest.fixture(scope="module")
def data():
    return bi.data.simulate_gsmtr(n_subjects=40, n_snps=8, n_phenotypes=2, seed=3)[0]


def _jobs(data, method="gibbs", options=GIBBS, lambdas=LAMBDAS):
    return {f"lam{i}": bi.FitJob(bi.models.GroupSparseMTR(lambda1=a, lambda2=b), data,
                                 method=method, options={**options, "seed": i})
            for i, (a, b) in enumerate(lambdas)}


def _single(job):
    return bi.fit(job.model, job.data, job.method, progress=False, **job.options)


def _assert_same_fit(a, b, rtol=RTOL):
    assert set(a.tree.children) == set(b.tree.children)
    for group in ("posterior", "sample_stats", "log_likelihood"):
        da, db = a.tree[group].to_dataset(), b.tree[group].to_dataset()
        assert set(da.data_vars) == set(db.data_vars), group
        for v in da.data_vars:
            assert da[v].dims == db[v].dims, (group, v)
            np.testing.assert_allclose(da[v].values, db[v].values, rtol=rtol, atol=ATOL,
                                       err_msg=f"{group}/{v}")
    keep_a = {k: v for k, v in a.tree.attrs.items() if k not in VOLATILE}
    keep_b = {k: v for k, v in b.tree.attrs.items() if k not in VOLATILE}
    assert keep_a == keep_b


@pytest.fixture(scope="module")
def gibbs_singles(data):
    return {name: _single(job) for name, job in _jobs(data).items()}


def test_batched_gibbs_equals_single_fits_and_shares_x(data, gibbs_singles):
    jobs = _jobs(data)
    fits = bi.fit_many(jobs, progress=False)
    assert list(fits) == list(jobs) and fits.ran == list(jobs) and not fits.skipped
    assert set(fits.batch_sizes.values()) == {3}
    for name in jobs:
        assert "y" in fits[name].tree["log_likelihood"]
        _assert_same_fit(fits[name], gibbs_singles[name])
    # one batched program (3 fits padded to 4 lanes, batched.fit_bucket): X, Y, gene
    # structure passed once, λ stacked over the fits
    program = [p for p in mcmc._PROGRAMS.values()
               if isinstance(p, BatchedMCMC) and p.n_fits == 4][0]
    axes = program.fit_axes
    assert axes["X"] is None and axes["Y"] is None and axes["gene_index"] is None
    assert axes["lambda1"] == 0 and axes["lambda2"] == 0
    assert program.repeat_per_chain   # only λ is per fit: one vmap over (fit, chain)


def test_stack_arguments_keeps_equal_arrays_once():
    x = np.ones((3, 2))
    merged, axes = stack_arguments([{"X": x, "lam": np.asarray(1.0), "Z": None},
                                    {"X": x.copy(), "lam": np.asarray(2.0), "Z": None}])
    assert axes == {"X": None, "lam": 0, "Z": None}
    assert merged["X"] is x and merged["lam"].shape == (2,)
    with pytest.raises(ModelSpecError, match="shape"):
        stack_arguments([{"X": x}, {"X": np.ones((4, 2))}])


def test_batched_nuts_equals_single_fits(data, monkeypatch):
    # short runs: NUTS amplifies rounding differences over long ones (see inference.batched)
    options = {"chains": 2, "warmup": 15, "draws": 10, "max_tree_depth": 4}
    jobs = _jobs(data, "nuts", options, LAMBDAS[:2])
    # the nested form (vmap over fits of a vmap over chains), as for large per-fit arguments
    monkeypatch.setattr(batched, "REPEAT_BYTES", -1)
    fits = bi.fit_many(jobs, progress=False)
    assert set(fits.batch_sizes.values()) == {2}
    program = [p for p in mcmc._PROGRAMS.values()
               if isinstance(p, BatchedMCMC) and p.n_fits == 2
               and type(p.kernel).__name__ == "NUTS"]
    assert not program[0].repeat_per_chain
    for name, job in jobs.items():
        _assert_same_fit(fits[name], _single(job))


def test_resume_recomputes_only_missing_and_refuses_stale(data, gibbs_singles, tmp_path):
    jobs = _jobs(data)
    first = bi.fit_many(jobs, out_dir=tmp_path, progress=False)
    assert sorted(os.listdir(tmp_path)) == [f"{n}.nc" for n in sorted(jobs)]
    assert first.ran == list(jobs)
    loaded = first["lam1"]  # loaded from its file
    assert loaded.tree.attrs["job_name"] == "lam1"
    _assert_same_fit(loaded, gibbs_singles["lam1"])

    (tmp_path / "lam1.nc").unlink()
    again = bi.fit_many(jobs, out_dir=tmp_path, progress=False)
    assert again.ran == ["lam1"] and again.skipped == ["lam0", "lam2"]
    _assert_same_fit(again["lam1"], gibbs_singles["lam1"])
    third = bi.fit_many(jobs, out_dir=tmp_path, progress=False)
    assert third.ran == [] and len(third) == 3

    # same name, other seed: a stale file is refused before anything runs ...
    changed = {**jobs, "lam2": bi.FitJob(jobs["lam2"].model, data, "gibbs",
                                         {**GIBBS, "seed": 99})}
    with pytest.raises(ResultFileError, match="lam2.*different job"):
        bi.fit_many(changed, out_dir=tmp_path, progress=False)
    # ... and so is a corrupted one
    (tmp_path / "lam0.nc").write_bytes(b"not a netCDF file")
    with pytest.raises(ResultFileError, match="lam0.*cannot be read"):
        bi.fit_many(jobs, out_dir=tmp_path, progress=False)
    fixed = bi.fit_many(changed, out_dir=tmp_path, overwrite=True, batch_size=1,
                        progress=False)
    assert sorted(fixed.ran) == ["lam0", "lam2"] and fixed.skipped == ["lam1"]
    assert fixed["lam2"].tree.attrs["seed"] == 99


def test_bad_jobs_are_refused_before_any_work(data, tmp_path):
    model = bi.models.GroupSparseMTR()
    out = tmp_path / "out"
    job = bi.FitJob(model, data, "gibbs", GIBBS, name="a")
    cases = [
        ([job, job], "used more than once"),
        ([bi.FitJob(model, data, "gibbs", GIBBS)], "no name"),
        ({"a": job, "b": bi.FitJob(model, data, "hmc", GIBBS)}, "job 'b'.*method"),
        ({"a": job, "b": bi.FitJob(model, data, "gibbs", {"n_draws": 5})}, "job 'b'.*unknown"),
        ({"a/b": job}, "file name"),
        ([], "no jobs"),
    ]
    for jobs, message in cases:
        with pytest.raises(ModelSpecError, match=message):
            bi.fit_many(jobs, out_dir=out, progress=False)
    assert not out.exists()
    with pytest.raises(ModelSpecError, match="client"):
        bi.fit_many({"a": job}, client=object(), progress=False)


def test_a_failing_job_leaves_nothing_half_written(data, tmp_path, monkeypatch):
    original = xr.DataTree.to_netcdf

    def flaky(self, path, *args, **kwargs):
        if "lam1" in str(path):
            with open(path, "wb") as f:
                f.write(b"half")
            raise OSError("disk full")
        return original(self, path, *args, **kwargs)

    monkeypatch.setattr(xr.DataTree, "to_netcdf", flaky)
    with pytest.raises(FitManyError, match="lam1") as info:
        bi.fit_many(_jobs(data), out_dir=tmp_path, progress=False)
    assert list(info.value.failures) == ["lam1"]
    assert sorted(os.listdir(tmp_path)) == ["lam0.nc", "lam2.nc"]   # no temporary left
    assert sorted(info.value.results) == ["lam0", "lam2"]


def test_dask_cluster_gives_the_same_fits_and_resumes(data, gibbs_singles, tmp_path,
                                                      monkeypatch):
    distributed = pytest.importorskip("distributed")
    from bayesimg.inference.many import local_cluster
    jobs = _jobs(data)
    with local_cluster(2) as cluster, distributed.Client(cluster) as client:
        # a user's client: its cluster is used as given
        fits = bi.fit_many(jobs, out_dir=tmp_path, client=client, progress=False)
        assert sorted(os.listdir(tmp_path)) == [f"{n}.nc" for n in sorted(jobs)]
        assert fits.ran == list(jobs)
        # the group was sliced over the two workers: a batch of 2 and a single fit
        assert sorted(fits.batch_sizes.values()) == [1, 2, 2]
        for name in jobs:
            fit = fits[name]
            assert fit.settings["devices"] == 1   # one JAX device per worker process
            for group in ("posterior", "log_likelihood"):
                ours, single = fit.tree[group], gibbs_singles[name].tree[group]
                for v in single.data_vars:
                    np.testing.assert_allclose(ours[v].values, single[v].values,
                                               rtol=RTOL, atol=ATOL)

        # client="local": a cluster of single-thread processes is made (here: handed the
        # running one, to save a start-up) and closed; only the missing job runs
        made = {}

        def local_cluster(**kwargs):
            made.update(kwargs)
            return cluster

        monkeypatch.setattr(distributed, "LocalCluster", local_cluster)
        monkeypatch.setattr(cluster, "close", lambda *a, **k: made.setdefault("closed", True))
        (tmp_path / "lam2.nc").unlink()
        resumed = bi.fit_many(jobs, out_dir=tmp_path, client="local", n_workers=2,
                              progress=False)
        assert resumed.ran == ["lam2"] and resumed.skipped == ["lam0", "lam1"]
        assert made["threads_per_worker"] == 1 and made["processes"] is True
        assert made["n_workers"] == 2 and made["env"]["BAYESIMG_CPU_DEVICES"] == "1"
        assert made["closed"]
        monkeypatch.undo()   # the with-block closes the cluster for real
        np.testing.assert_allclose(resumed["lam2"].posterior["W"].values,
                                   gibbs_singles["lam2"].posterior["W"].values, rtol=RTOL,
                                   atol=ATOL)


def test_map_jobs_and_thinned_jobs_run_alone(data, gibbs_singles):
    from bayesimg.inference.many import _prepare
    gibbs = _jobs(data)["lam0"]
    thinned = bi.FitJob(gibbs.model, data, "gibbs", {**GIBBS, "max_draw_bytes": 1})
    assert _prepare(0, "a", gibbs, {}).group is not None
    assert _prepare(1, "b", thinned, {}).group is None   # thinned storage: through bi.fit
    jobs = {"map": bi.FitJob(bi.models.GroupSparseMTR(lambda1=5.0, lambda2=5.0), data, "map",
                             {"steps": 200}),
            "lam0": gibbs}
    fits = bi.fit_many(jobs, progress=False)
    assert fits.batch_sizes == {"map": 1, "lam0": 1}
    assert fits["map"].method == "map" and fits["map"].tree.attrs["job_name"] == "map"
    _assert_same_fit(fits["lam0"], gibbs_singles["lam0"])
