"""``shard_data``: the subject axis split over several devices gives the same fit.

The device count is fixed when JAX starts, and this process has started it, so
the fits run in one subprocess with ``BAYESIMG_CPU_DEVICES=4``: GSMTR NUTS (a
short run: NUTS is chaotic, and after a few dozen adapted iterations two runs
whose gradients differ in the last bit part ways, sharded or not), GSMTR SVI
and MultiViewFactor MAP (the SVI driver with a point-mass guide; its per-subject
latent factors make it the family-generic case), each sharded and unsharded
with the same seed, plus the errors for bad inputs.  Option checks that need
no devices run here.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from jax.sharding import PartitionSpec

import bayesimg as bi
from bayesimg.errors import ModelSpecError
from bayesimg.inference import sharding
from bayesimg.models.core.base import Model

ROWS, REPLICATED = str(PartitionSpec("subjects")), str(PartitionSpec())

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SCRIPT = r"""
import json, warnings
warnings.simplefilter("ignore")
import jax
import numpy as np
import bayesimg as bi
from bayesimg.data.simulate_factor import simulate_factor
from bayesimg.errors import DataValidationError, ModelSpecError
from bayesimg.inference.common import device_args
from bayesimg.inference.sharding import shard_model_args

out = {"devices": jax.device_count()}
data, _ = bi.data.simulate_gsmtr(n_subjects=120, n_snps=20, n_genes=4, n_phenotypes=3, seed=3)
gsmtr = bi.models.GroupSparseMTR()
views, _ = simulate_factor(n=40, sizes={"a": 6, "b": 4}, n_factors=1, view_activity=1.0,
                           feature_sparsity=0.5, missing=0.05, seed=8)
factor = bi.models.MultiViewFactor(1)

def placement(model, data, method):
    args = model.model_args(data, method)
    kw, settings = shard_model_args(model, data, method, args, device_args(args), True)
    return {"settings": settings, **{
        k: {"spec": str(v.sharding.spec), "shards": len(v.addressable_shards),
            "shard_rows": sorted({s.data.shape[0] if v.ndim else 1
                                  for s in v.addressable_shards})}
        for k, v in kw.items() if isinstance(v, jax.Array)}}

out["placement"] = {"gsmtr": placement(gsmtr, data, "nuts"),
                    "factor": placement(factor, views, "map")}

def rel(a, b):
    worst = 0.0
    groups = [("posterior", name) for name in a.posterior.data_vars]
    groups += [("log_likelihood", name) for name in a.tree["log_likelihood"].data_vars]
    for group, name in groups:
        x = np.asarray(a.tree[group][name].values)
        y = np.asarray(b.tree[group][name].values)
        worst = max(worst, float(np.max(np.abs(x - y)) / max(float(np.max(np.abs(x))), 1e-300)))
    return worst

def pair(model, data, method, **opts):
    plain = bi.fit(model, data, method=method, seed=1, progress=False, **opts)
    sharded = bi.fit(model, data, method=method, seed=1, progress=False, shard_data=True, **opts)
    return {"rel_diff": rel(plain, sharded), "settings": sharded.settings,
            "plain_settings": plain.settings}

out["gsmtr_nuts"] = pair(gsmtr, data, "nuts", chains=2, warmup=10, draws=10)
out["gsmtr_svi"] = pair(gsmtr, data, "svi", steps=200, num_draws=20)
out["factor_map"] = pair(factor, views, "map", steps=100)

def error(**opts):
    try:
        bi.fit(gsmtr, opts.pop("data", data), progress=False, **opts)
    except (DataValidationError, ModelSpecError) as exc:
        return [type(exc).__name__, str(exc)]
    return None

odd = data.subset_subjects(np.arange(118))  # 118 = 2 x 59: only 1 or 2 devices divide it
out["errors"] = {
    "indivisible": error(data=odd, method="svi", shard_data=True),
    "indivisible_k": error(data=odd, method="nuts", shard_data=4, chains=2),
    "too_many": error(method="map", shard_data=8),
}
print("RESULT " + json.dumps(out, default=str))
"""


@pytest.fixture(scope="module")
def run():
    env = dict(os.environ, BAYESIMG_CPU_DEVICES="4", JAX_PLATFORMS="cpu")
    # (a forced device count in XLA_FLAGS would win over ours) LLVM optimisation off:
    # a third less compile time; the SPMD partitioning under test is done before it
    env["XLA_FLAGS"] = "--xla_backend_optimization_level=0"
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")][-1]
    result = json.loads(line[len("RESULT "):])
    assert result["devices"] == 4
    return result


def test_subject_arrays_are_split_over_four_devices(run):
    gsmtr = run["placement"]["gsmtr"]
    assert gsmtr["settings"] == {"data_sharded": True, "data_devices": 4}
    for name in ("X", "Y"):
        assert gsmtr[name] == {"spec": ROWS, "shards": 4,
                               "shard_rows": [30]}
    # per-SNP / per-gene arguments and hyperparameters are replicated
    for name in ("whitener", "gene_index", "lambda1"):
        assert gsmtr[name]["spec"] == REPLICATED, name
    factor = run["placement"]["factor"]
    for name in ("Y", "mask", "present"):
        assert factor[name]["spec"] == ROWS and \
            factor[name]["shard_rows"] == [10], name


@pytest.mark.parametrize("case", ["gsmtr_nuts", "gsmtr_svi", "factor_map"])
def test_sharded_fit_matches_unsharded(run, case):
    result = run[case]
    # draws, parameters and the pointwise log-likelihood: equal up to reduction order
    assert result["rel_diff"] < 1e-6, result["rel_diff"]
    assert result["settings"]["data_sharded"] is True
    assert result["settings"]["data_devices"] == 4
    assert "data_sharded" not in result["plain_settings"]


def test_sharded_mcmc_runs_chains_vectorised(run):
    assert run["gsmtr_nuts"]["settings"]["chain_method"] == "vectorized"
    assert run["gsmtr_nuts"]["plain_settings"]["chain_method"] == "parallel"


def test_bad_device_counts_are_named_errors(run):
    errors = run["errors"]
    for key in ("indivisible", "indivisible_k"):
        kind, message = errors[key]
        assert kind == "DataValidationError"
        assert "118 subjects over 4 devices" in message and "[1, 2]" in message, message
    kind, message = errors["too_many"]
    assert kind == "ModelSpecError" and "shard_data=8" in message and "(4 cpu" in message


def test_parallel_chains_with_sharded_data_are_refused():
    data, _ = bi.data.simulate_gsmtr(n_subjects=20, n_snps=6, n_phenotypes=2, seed=1)
    with pytest.raises(ModelSpecError, match="chain_method='vectorized'"):
        bi.fit(bi.models.GroupSparseMTR(), data, method="nuts", shard_data=True,
               chain_method="parallel")


@pytest.mark.parametrize("value", [0, -2, "yes", 1.5, None])
def test_shard_data_must_be_bool_or_device_count(value):
    data, _ = bi.data.simulate_gsmtr(n_subjects=20, n_snps=6, n_phenotypes=2, seed=1)
    with pytest.raises(ModelSpecError, match="shard_data must be"):
        bi.fit(bi.models.GroupSparseMTR(), data, method="map", shard_data=value)


def test_default_subject_axis_rule_and_its_caveat():
    data, _ = bi.data.simulate_gsmtr(n_subjects=20, n_snps=20, n_genes=4, n_phenotypes=2,
                                     seed=1)
    model = bi.models.GroupSparseMTR()  # whitened: a d×d whitener, and d = n here
    args = model.model_args(data, "nuts")
    # the default takes every array of leading length n: here also the per-SNP
    # gene index and the d×d whitener (harmless, only slower); GSMTR names X, Y, Z and
    # the site design H (per subject; n×0 without site random effects)
    assert Model.subject_axis_args(model, data, "nuts", args=args) == \
        {"X", "Y", "whitener", "gene_index"}
    assert model.subject_axis_args(data, "nuts") == {"X", "Y", "Z", "H"}


def test_initialize_multihost_passes_arguments_through(monkeypatch):
    seen = {}
    monkeypatch.setattr(sharding.jax.distributed, "initialize", lambda **kw: seen.update(kw))
    sharding.initialize_multihost("10.0.0.1:1234", num_processes=2, process_id=1,
                                  initialization_timeout=60)
    assert seen == {"coordinator_address": "10.0.0.1:1234", "num_processes": 2,
                    "process_id": 1, "local_device_ids": None, "initialization_timeout": 60}

    def late(**kw):
        raise RuntimeError("jax.distributed.initialize() must be called before any JAX calls")

    monkeypatch.setattr(sharding.jax.distributed, "initialize", late)
    with pytest.raises(ModelSpecError, match="BAYESIMG_PRECISION"):
        sharding.initialize_multihost()


def test_placement_helpers_on_this_process():
    mesh = sharding.data_mesh(1)
    kw = sharding.place_args({"X": np.ones((4, 2)), "k": 3, "Z": None, "s": np.ones(())},
                             {"X", "s"}, mesh)
    assert str(kw["X"].sharding.spec) == ROWS
    assert kw["k"] == 3 and kw["Z"] is None and str(kw["s"].sharding.spec) == REPLICATED
