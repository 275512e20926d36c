"""The float64 / float32 switch (issue 7, point 5) is honoured by ``bayesimg.fit``.

``set_precision`` flips JAX's global ``jax_enable_x64``; the compiled-program
caches are keyed on it, so switching at run time must give posteriors (and
log-likelihoods, sample stats) in the chosen precision.  The import-time switch
``BAYESIMG_PRECISION`` is checked in a fresh interpreter.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest

import bayesimg
from bayesimg.data import make_dataset
from bayesimg.data.io import GenotypeTable
from bayesimg.inference.common import device_args
from bayesimg.models import GroupSparseMTR


def _data():
    rng = np.random.default_rng(0)
    n, d = 16, 3
    ids = [f"s{i}" for i in range(n)]
    G = rng.integers(0, 3, size=(n, d)).astype(float)
    G[np.arange(n), np.arange(n) % d] = 1.0
    G[0] = 0.0
    snps = pd.DataFrame({"snp": [f"rs{j}" for j in range(d)], "chrom": ["1"] * d,
                         "pos": np.arange(d), "a1": ["A"] * d, "a2": ["G"] * d,
                         "gene": ["g1", "g1", "g2"]})
    Y = pd.DataFrame(rng.normal(size=(n, 1)), index=ids, columns=["y"])
    return make_dataset(GenotypeTable(np.asarray(ids), G, snps), Y, min_subjects=2)


@pytest.fixture
def restore_precision():
    before = bayesimg.current_precision()
    yield
    bayesimg.set_precision(before)


def _float_dtypes(fit) -> set[str]:
    out = set()
    for group in ("posterior", "log_likelihood", "sample_stats"):
        if group in fit.tree.children:
            for var in fit.tree[group].to_dataset().data_vars.values():
                if np.issubdtype(var.dtype, np.floating):
                    out.add(str(var.dtype))
    return out


def _fit(method: str, data, precision: str):
    bayesimg.set_precision(precision)
    assert bayesimg.current_precision() == precision
    options = dict(steps=30) if method == "map" else dict(chains=1, warmup=5, draws=5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = bayesimg.fit(GroupSparseMTR(), data, method=method, progress=False, **options)
    assert _float_dtypes(fit) == {precision}, (method, precision, _float_dtypes(fit))
    assert fit.tree.attrs["precision"] == precision
    assert np.isfinite(fit.posterior["W"].values).all()
    return fit


def test_set_precision_is_honoured_at_run_time(restore_precision):
    """float32 for MAP and for the Gibbs kernel, then back to float64 in one process.

    (float64 fits, the CPU default, are checked by every other fit test, e.g.
    ``test_numerics.py``; a third compile here would only add run time.)
    """
    data = _data()
    _fit("map", data, "float32")
    gibbs = _fit("gibbs", data, "float32")
    assert gibbs.tree["sample_stats"]["cholesky_jitter"].dtype == np.int32
    bayesimg.set_precision("float64")
    args = device_args(GroupSparseMTR().model_args(data, "map"))
    assert args["X"].dtype == np.float64 and args["Y"].dtype == np.float64


def test_set_precision_rejects_unknown_values():
    with pytest.raises(ValueError, match="float32"):
        bayesimg.set_precision("float16")


def test_environment_switch_at_import():
    """BAYESIMG_PRECISION=float32 at import reaches the arrays the drivers build."""
    script = (
        "import json, numpy as np\n"
        "import bayesimg\n"
        "from bayesimg.inference.common import device_args\n"
        "args = device_args({'X': np.ones((2, 2)), 'k': np.arange(2)})\n"
        "print(json.dumps({'precision': bayesimg.current_precision(),\n"
        "                  'X': str(args['X'].dtype)}))\n")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    for wanted in ("float32", "float64"):
        env = dict(os.environ, BAYESIMG_PRECISION=wanted, JAX_PLATFORMS="cpu")
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                             env=env, cwd=root, timeout=300)
        assert out.returncode == 0, out.stderr[-2000:]
        result = json.loads(out.stdout.strip().splitlines()[-1])
        assert result == {"precision": wanted, "X": wanted}
