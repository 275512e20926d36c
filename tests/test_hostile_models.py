"""Hostile inputs to every model's entry point ``bayesimg.fit`` (issue 7, point 4).

Hypothesis perturbs a valid data object the way a user building one by hand
could (NaN/inf, wrong dtypes, duplicated subject or column labels, no
subjects, huge values, ungrouped SNPs, too many clusters) and draws invalid
options.  Each must end in a :class:`~bayesimg.errors.BayesimgError` naming the
culprit before anything is compiled — never a raw JAX/NumPy/NumPyro
exception.  One p ≫ n fit checks the documented handling (the wide sampler /
MAP path gives finite estimates), and that results are saved atomically and
load without pickle.
"""

from __future__ import annotations

import dataclasses
import pickle
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from hypothesis import HealthCheck, Phase, event, example, given, settings
from hypothesis import strategies as st

import bayesimg
from bayesimg.data import make_dataset, make_views
from bayesimg.data.io import GenotypeTable
from bayesimg.errors import BayesimgError, DataValidationError, ModelSpecError
from bayesimg.inference.fit import load
from bayesimg.models import BNMix, GroupSparseMTR

# no shrinking: a failing example is reported as drawn (shrinking re-runs fits)
SETTINGS = settings(max_examples=30, deadline=None,
                    phases=[Phase.explicit, Phase.reuse, Phase.generate],
                    suppress_health_check=[HealthCheck.function_scoped_fixture])
N, D, C = 12, 4, 2
FAST = {"map": dict(steps=20, progress=False), "svi": dict(steps=20, progress=False),
        "nuts": dict(chains=1, warmup=5, draws=5, progress=False),
        "gibbs": dict(chains=1, warmup=5, draws=5, progress=False)}


def _genotype_dataset(n=N, d=D, c=C, seed=0):
    rng = np.random.default_rng(seed)
    ids = [f"s{i}" for i in range(n)]
    G = rng.integers(0, 3, size=(n, d)).astype(float)
    G[np.arange(n), np.arange(n) % d] = 1.0          # no constant SNP
    G[0, :] = 0.0
    genes = [f"g{j // 2}" for j in range(d)]
    snps = pd.DataFrame({"snp": [f"rs{j}" for j in range(d)], "chrom": ["1"] * d,
                         "pos": np.arange(d), "a1": ["A"] * d, "a2": ["G"] * d, "gene": genes})
    Y = pd.DataFrame(rng.normal(size=(n, c)), index=ids, columns=[f"y{j}" for j in range(c)])
    Z = pd.DataFrame({"age": rng.normal(size=n)}, index=ids)
    return make_dataset(GenotypeTable(np.asarray(ids), G, snps), Y, Z, min_subjects=2)


@pytest.fixture(scope="module")
def dataset():
    return _genotype_dataset()


@pytest.fixture(scope="module")
def views():
    rng = np.random.default_rng(1)
    ids = [f"s{i}" for i in range(24)]
    a = pd.DataFrame(rng.normal(size=(24, 3)), index=ids, columns=["a0", "a1", "a2"])
    b = pd.DataFrame(rng.integers(0, 2, size=(24, 2)).astype(float), index=ids,
                     columns=["b0", "b1"])
    return make_views({"a": a, "b": b}, likelihoods={"b": "bernoulli"})


def _guarded_models():
    """Models being written by others: included only when importable."""
    out = {}
    try:
        from bayesimg.models import GLRR
        out["glrr"] = lambda: GLRR(1)
    except ImportError:  # pragma: no cover - depends on the tree
        pass
    try:
        from bayesimg.models import MultiViewFactor
        out["factor"] = lambda: MultiViewFactor(2)
    except ImportError:  # pragma: no cover
        pass
    return out


GUARDED = _guarded_models()


def _assert_named(err, data):
    """The error is a BayesimgError that names a real column, subject or source."""
    assert isinstance(err, BayesimgError), f"{type(err).__name__}: {err}"
    subjects = {str(s) for s in data.subjects}
    named = False
    if getattr(err, "subject", None) is not None:
        assert err.subject in subjects, err.subject
        named = True
    if getattr(err, "column", None) is not None:
        named = True
    if getattr(err, "source", None) is not None:
        named = True
    return named


# --------------------------------------------------------------------------- Dataset models
PERTURBATIONS = st.sampled_from([
    "nan_X", "inf_X", "nan_Y", "inf_Y", "nan_Z", "huge_Y", "huge_X", "object_X", "str_Y",
    "complex_Y", "dup_subject", "dup_snp", "dup_phenotype", "no_subjects", "ungrouped",
    "uncentred_Y", "multiview"])


def _perturb(data, views, kind: str, i: int, j: int):
    X, Y, Z = data.genotypes.copy(), data.phenotypes.copy(), data.covariates.copy()
    rep = dataclasses.replace
    if kind in ("nan_X", "inf_X", "huge_X"):
        X[i, j % D] = {"nan_X": np.nan, "inf_X": -np.inf, "huge_X": 1e200}[kind]
        return rep(data, genotypes=X), ("column", f"rs{j % D}")
    if kind in ("nan_Y", "inf_Y", "huge_Y"):
        Y[i, j % C] = {"nan_Y": np.nan, "inf_Y": np.inf, "huge_Y": -3e160}[kind]
        return rep(data, phenotypes=Y), ("column", f"y{j % C}")
    if kind == "nan_Z":
        Z[i, 0] = np.nan
        return rep(data, covariates=Z), ("column", "age")
    if kind == "object_X":
        return rep(data, genotypes=X.astype(object)), None
    if kind == "str_Y":
        return rep(data, phenotypes=Y.astype(str)), None
    if kind == "complex_Y":
        return rep(data, phenotypes=Y + 1j), None
    if kind == "dup_subject":
        subjects = data.subjects.copy()
        subjects[i] = subjects[(i + 1) % N]
        return rep(data, subjects=subjects), ("subject", str(subjects[i]))
    if kind == "dup_snp":
        snps = data.snps.copy()
        snps.loc[j % D, "snp"] = snps.loc[(j + 1) % D, "snp"]
        return rep(data, snps=snps), ("column", snps.loc[j % D, "snp"])
    if kind == "dup_phenotype":
        return rep(data, phenotype_names=np.array(["y", "y"])), ("column", "y")
    if kind == "no_subjects":
        return data.subset_subjects(np.zeros(N, bool)), None
    if kind == "ungrouped":
        snps = data.snps.copy()
        snps["gene"] = snps["gene"].astype(object)
        snps.loc[j % D, "gene"] = None
        return rep(data, snps=snps), ("column", f"rs{j % D}")
    if kind == "uncentred_Y":
        return rep(data, phenotypes=Y + 10.0), None
    if kind == "multiview":
        return views, None
    raise AssertionError(kind)


def _dataset_models():
    out = {"gsmtr": lambda: GroupSparseMTR(), "gsmtr_cov": lambda: GroupSparseMTR(2.0, 0.5)}
    if "glrr" in GUARDED:
        out["glrr"] = GUARDED["glrr"]
    return out


@SETTINGS
@given(kind=PERTURBATIONS, i=st.integers(0, N - 1), j=st.integers(0, 7),
       method=st.sampled_from(["map", "svi", "nuts", "gibbs"]),
       model=st.sampled_from(sorted(_dataset_models())))
@example(kind="ungrouped", i=0, j=1, method="map", model="glrr")
@example(kind="uncentred_Y", i=0, j=0, method="map", model="glrr")
def test_dataset_models_name_the_culprit(dataset, views, kind, i, j, method, model):
    bad, culprit = _perturb(dataset, views, kind, i, j)
    if model == "glrr" and method == "gibbs" and kind == "uncentred_Y":
        kind = "nan_Y"
        bad, culprit = _perturb(dataset, views, kind, i, j)
    m = _dataset_models()[model]()
    if model == "glrr" and kind == "ungrouped":
        # valid data for GLRR: it has no gene groups (uncentred phenotypes are refused:
        # like the authors' code it has no intercept)
        bayesimg.fit(m, bad, method=method, **FAST[method])
        return
    with pytest.raises(BayesimgError) as info:
        bayesimg.fit(m, bad, method=method, **FAST[method])
    err = info.value
    event(f"{model}: {type(err).__name__}")
    assert _assert_named(err, bad) or kind in ("no_subjects", "uncentred_Y", "multiview")
    if culprit is not None:
        attr, value = culprit
        assert getattr(err, attr) == value, (kind, str(err))


# --------------------------------------------------------------------------- view models
VIEW_PERTURBATIONS = st.sampled_from(["nan_entry", "inf_entry", "constant", "object",
                                      "binomial2", "dup_subject", "dup_feature",
                                      "no_subjects", "too_many_clusters", "dataset",
                                      "huge"])


def _perturb_views(views, dataset, kind: str, i: int):
    rep = dataclasses.replace
    a = views.views[0]
    values = a.values.copy()
    if kind in ("nan_entry", "inf_entry", "huge"):
        values[i, 1] = {"nan_entry": np.nan, "inf_entry": np.inf, "huge": 1e200}[kind]
    elif kind == "constant":
        values[:, 1] = 0.5
    elif kind == "object":
        values = values.astype(object)
    elif kind == "binomial2":
        return rep(views, views=(rep(a, likelihood="binomial2"), views.views[1])), 2
    elif kind == "dup_subject":
        subjects = views.subjects.copy()
        subjects[i] = subjects[(i + 1) % len(subjects)]
        return rep(views, subjects=subjects), 2
    elif kind == "dup_feature":
        return rep(views, views=(rep(a, feature_names=np.array(["a0", "a0", "a2"])),
                                 views.views[1])), 2
    elif kind == "no_subjects":
        return views.subset_subjects(np.zeros(views.n_subjects, bool)), 2
    elif kind == "too_many_clusters":
        return views, 5                           # 24 subjects < 5 × min_cluster_size
    elif kind == "dataset":
        return dataset, 2
    return rep(views, views=(rep(a, values=values), views.views[1])), 2


def _view_models():
    out = {"bnmix": lambda k: BNMix(k)}
    if "factor" in GUARDED:
        from bayesimg.models import MultiViewFactor
        out["factor"] = lambda k: MultiViewFactor(k)
    return out


@SETTINGS
@given(kind=VIEW_PERTURBATIONS, i=st.integers(0, 23),
       method=st.sampled_from(["map", "gibbs", "nuts"]),
       model=st.sampled_from(sorted(_view_models())))
def test_view_models_name_the_culprit(views, dataset, kind, i, method, model):
    if model == "factor" and kind in ("nan_entry", "too_many_clusters", "binomial2",
                                      "constant"):
        return   # documented: the factor model masks NaN, has no clusters, fits dosages
        #          and a constant feature (make_views drops those by default)
    bad, k = _perturb_views(views, dataset, kind, i)
    m = _view_models()[model](k)
    try:
        bayesimg.fit(m, bad, method=method, **FAST[method])
    except BayesimgError as err:
        event(f"{model}: {type(err).__name__}")
        assert _assert_named(err, bad) or kind in ("no_subjects", "too_many_clusters",
                                                   "dataset", "binomial2"), str(err)
        if kind in ("dup_subject", "inf_entry", "nan_entry", "huge"):
            assert err.subject == str(bad.subjects[i]), str(err)
        return
    except ModelSpecError:  # pragma: no cover - subclass of BayesimgError
        raise
    pytest.fail(f"{model} accepted hostile data ({kind}) with method={method}")


# --------------------------------------------------------------------------- options
BAD_OPTIONS = st.sampled_from([
    ("nuts", "chains", 0), ("nuts", "chains", 1.5), ("nuts", "chains", "2"),
    ("nuts", "draws", 0), ("nuts", "warmup", -1), ("nuts", "thin", 0),
    ("nuts", "seed", "a"), ("nuts", "seed", -1), ("nuts", "target_accept", 1.5),
    ("nuts", "target_accept", float("nan")), ("nuts", "max_tree_depth", 0),
    ("nuts", "chain_method", "warp"), ("nuts", "max_draw_bytes", -5.0),
    ("nuts", "steps", 10), ("gibbs", "chains", True), ("map", "steps", 0),
    ("map", "steps", 2.5), ("map", "learning_rate", -1.0), ("map", "tol", -1.0),
    ("map", "seed", None), ("map", "guide", "mean_field"), ("svi", "guide", "full"),
    ("svi", "rank", 0), ("svi", "num_particles", 0), ("svi", "num_draws", 0),
    ("svi", "chains", 2), ("bogus", "steps", 1)])


@settings(max_examples=40, deadline=None)
@given(bad=BAD_OPTIONS, model=st.sampled_from(["gsmtr", "bnmix"]))
def test_invalid_options_raise_model_spec_error(dataset, views, bad, model):
    method, key, value = bad
    m, data = (GroupSparseMTR(), dataset) if model == "gsmtr" else (BNMix(2), views)
    opts = {k: v for k, v in FAST.get(method, {}).items() if k != key}
    with pytest.raises(ModelSpecError) as info:
        bayesimg.fit(m, data, method=method, **opts, **{key: value})
    assert key in str(info.value) or "method" in str(info.value)


@pytest.mark.parametrize("lam", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_hyperparameters_raise_model_spec_error(lam):
    with pytest.raises(ModelSpecError, match="lambda1"):
        GroupSparseMTR(lam, 1.0)
    with pytest.raises(ModelSpecError):
        BNMix(0)


# --------------------------------------------------------------------------- p >> n and files
@pytest.fixture(scope="module")
def wide_fit():
    """p ≫ n (60 SNPs, 12 subjects): documented to fit (MAP), finite estimates."""
    data = _genotype_dataset(n=N, d=60, c=1, seed=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return bayesimg.fit(GroupSparseMTR(), data, method="map", steps=200, progress=False)


def test_p_much_larger_than_n_gives_finite_estimates(wide_fit):
    W = wide_fit.posterior["W"].values
    assert W.shape[-2:] == (60, 1)
    assert np.isfinite(W).all()
    assert np.isfinite(wide_fit.posterior["sigma2"].values).all()


def test_saved_fit_loads_without_pickle(wide_fit, tmp_path, monkeypatch):
    path = wide_fit.save(tmp_path / "fit.nc")
    assert path.read_bytes()[:8] == b"\x89HDF\r\n\x1a\n"     # netCDF4/HDF5, not a pickle

    def forbidden(*args, **kwargs):
        raise AssertionError("pickle used while loading a fit")
    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(pickle, "loads", forbidden)
    monkeypatch.setattr(pickle, "Unpickler", forbidden)
    back = load(path)
    np.testing.assert_array_equal(back.posterior["W"].values, wide_fit.posterior["W"].values)
    assert back.tree.attrs["method"] == "map"


def test_failed_save_leaves_nothing_half_written(wide_fit, tmp_path, monkeypatch):
    target = tmp_path / "out" / "fit.nc"
    original = wide_fit.save(target)
    before = original.read_bytes()

    def crash(self, path, *args, **kwargs):
        Path(path).write_bytes(b"\x89HDF partial")          # a half-written file
        raise OSError("disk full")
    monkeypatch.setattr(xr.DataTree, "to_netcdf", crash)
    with pytest.raises(OSError, match="disk full"):
        wide_fit.save(target)
    assert target.read_bytes() == before                     # old result intact
    assert sorted(p.name for p in target.parent.iterdir()) == ["fit.nc"]   # no leftovers
    with pytest.raises(OSError):
        wide_fit.save(tmp_path / "new" / "fit.nc")
    assert not (tmp_path / "new" / "fit.nc").exists()
    assert list((tmp_path / "new").iterdir()) == []


def test_loading_garbage_is_a_named_error(tmp_path):
    path = tmp_path / "fit.nc"
    path.write_bytes(b"\x80\x04\x95 not a netcdf file")   # a pickle header
    with pytest.raises(BayesimgError) as info:
        load(path)
    assert info.value.path == str(path)
    with pytest.raises(BayesimgError):
        load(tmp_path / "fit.pkl")


def test_views_with_all_missing_view_is_refused_at_construction():
    ids = [f"s{i}" for i in range(6)]
    with pytest.raises(DataValidationError) as info:
        make_views({"a": pd.DataFrame({"x": np.full(6, np.nan)}, index=ids),
                    "b": pd.DataFrame({"y": np.arange(6.0)}, index=ids)})
    assert info.value.source == "a"
