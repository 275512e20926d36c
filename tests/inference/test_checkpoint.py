"""Checkpoint and resume: a killed run, resumed, gives the same draws as an uninterrupted one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import bayesimg as bi
from bayesimg.errors import InputFileError, ModelSpecError
from bayesimg.inference import mcmc as mcmc_module

SCRIPT = textwrap.dedent("""
    import sys
    import bayesimg as bi
    data, _ = bi.data.simulate_gsmtr(n_subjects=150, n_snps=20, n_phenotypes=3,
                                     n_active_genes=2, seed=1)
    model = bi.models.GroupSparseMTR(lambda1=5.0, lambda2=5.0)
    method, ckpt, out = sys.argv[1], sys.argv[2], sys.argv[3]
    if method == "nuts":
        options = dict(chains=2, warmup=200, draws=600, seed=3, chain_method="sequential",
                       checkpoint_every=25)
    else:
        options = dict(steps=8000, learning_rate=0.005, num_draws=200, seed=3,
                       stop_on_convergence=False, checkpoint_every=500)
    fit = bi.fit(model, data, method=method, progress=False, checkpoint=ckpt, **options)
    fit.save(out)
""")


def _env():
    env = dict(os.environ, BAYESIMG_CPU_DEVICES="1", PYTHONWARNINGS="ignore")
    env.pop("XLA_FLAGS", None)
    return env


def _run_killed_then_resumed(tmp_path: Path, method: str) -> tuple[Path, dict]:
    """Start the fit, SIGKILL it at its first commit, then run it again to the end."""
    script = tmp_path / "run.py"
    script.write_text(SCRIPT)
    ckpt, out = tmp_path / "run.ckpt", tmp_path / "resumed.nc"
    args = [sys.executable, str(script), method, str(ckpt), str(out)]
    proc = subprocess.Popen(args, env=_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    meta_file = ckpt / "meta.json"
    killed_at = None
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if meta_file.exists():
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            killed_at = json.loads(meta_file.read_text())["progress"]
            break
        time.sleep(0.02)
    if killed_at is None:
        proc.kill()
        pytest.fail(f"the run ended before its first checkpoint: {proc.stderr.read()[-2000:]}")
    assert not out.exists()
    done = subprocess.run(args, env=_env(), capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stderr[-3000:]
    assert not ckpt.exists(), "the checkpoint folder is removed once the run completes"
    return out, killed_at


def _uninterrupted(tmp_path: Path, method: str) -> Path:
    script = tmp_path / "run.py"
    out = tmp_path / "straight.nc"
    done = subprocess.run([sys.executable, str(script), method, str(tmp_path / "other.ckpt"),
                           str(out)], env=_env(), capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stderr[-3000:]
    return out


@pytest.mark.timeout(900)
@pytest.mark.parametrize("method", ["nuts", "svi"])
def test_killed_run_resumes_with_the_same_draws(tmp_path, method):
    resumed, killed_at = _run_killed_then_resumed(tmp_path, method)
    straight = _uninterrupted(tmp_path, method)
    a, b = bi.load(resumed), bi.load(straight)
    if method == "nuts":
        assert killed_at["group"] == 0  # stopped inside the first chain
    else:
        assert 0 < killed_at["done"] < 8000
    for name in ("W", "sigma2"):
        np.testing.assert_array_equal(a.posterior[name].values, b.posterior[name].values)
    np.testing.assert_array_equal(a.tree["log_likelihood"]["y"].values,
                                  b.tree["log_likelihood"]["y"].values)
    if method == "nuts":
        np.testing.assert_array_equal(a.tree["sample_stats"]["step_size"].values,
                                      b.tree["sample_stats"]["step_size"].values)
    else:
        # the loss values themselves may differ in the last bit between processes (threaded
        # reductions); the optimiser path and the draws above are bit-identical
        np.testing.assert_allclose(a.tree["svi"]["elbo"].values, b.tree["svi"]["elbo"].values,
                                   rtol=1e-12)


class _Interrupt(Exception):
    pass


def _interrupt_after(monkeypatch, calls: int):
    """Make the compiled driver's ``advance`` raise after ``calls`` chunks (in-process kill)."""
    original = mcmc_module.CompiledMCMC._run_group
    count = {"n": 0}

    def patched(self, states, kwargs, *args, **kw):
        advance = self._advance

        def counting(*a):
            count["n"] += 1
            if count["n"] > calls:
                raise _Interrupt
            return advance(*a)
        self._advance = counting
        try:
            return original(self, states, kwargs, *args, **kw)
        finally:
            self._advance = advance
    monkeypatch.setattr(mcmc_module.CompiledMCMC, "_run_group", patched)


@pytest.fixture(scope="module")
def small():
    data, _ = bi.data.simulate_gsmtr(n_subjects=120, n_snps=40, n_phenotypes=3,
                                     n_active_genes=2, seed=5)
    return bi.models.GroupSparseMTR(lambda1=5.0, lambda2=5.0), data


@pytest.mark.parametrize("calls", [5, 25, 45, 60])
def test_resume_across_chain_groups_and_thinned_storage(small, tmp_path, monkeypatch, calls):
    """Interrupted in warm-up, in sampling, and in both phases of the second chain group
    (chunks of 3 transitions: 34 per group); draws thinned by the storage budget."""
    model, data = small
    options = dict(chains=2, warmup=40, draws=60, seed=2, chain_method="sequential",
                   progress=False, max_draw_bytes=60_000, checkpoint_every=10)
    reference = bi.fit(model, data, method="gibbs", **options)
    assert "posterior_streaming" in reference.tree.children
    ckpt = tmp_path / "c.ckpt"
    with monkeypatch.context() as patch:
        _interrupt_after(patch, calls)
        with pytest.raises(_Interrupt):
            bi.fit(model, data, method="gibbs", checkpoint=ckpt, **options)
    assert (ckpt / "meta.json").exists()
    resumed = bi.fit(model, data, method="gibbs", checkpoint=ckpt, **options)
    np.testing.assert_array_equal(resumed.posterior["W"].values, reference.posterior["W"].values)
    for name in ("mean", "sd", "prob_positive"):
        np.testing.assert_allclose(resumed.tree["posterior_streaming"][f"W_{name}"].values,
                                   reference.tree["posterior_streaming"][f"W_{name}"].values,
                                   rtol=1e-12)
    assert not ckpt.exists()


def test_checkpoint_of_another_run_is_refused(small, tmp_path, monkeypatch):
    model, data = small
    options = dict(chains=1, warmup=20, draws=40, progress=False, checkpoint_every=10)
    ckpt = tmp_path / "c.ckpt"
    with monkeypatch.context() as patch:
        _interrupt_after(patch, 8)
        with pytest.raises(_Interrupt):
            bi.fit(model, data, method="gibbs", seed=1, checkpoint=ckpt, **options)
    with pytest.raises(ModelSpecError, match="seed"):
        bi.fit(model, data, method="gibbs", seed=2, checkpoint=ckpt, **options)
    with pytest.raises(ModelSpecError, match="lambda1"):
        bi.fit(model.replace(lambda1=1.0), data, method="gibbs", seed=1, checkpoint=ckpt,
               **options)


def test_bad_checkpoint_options(small, tmp_path):
    model, data = small
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputFileError, match="not a folder"):
        bi.fit(model, data, method="gibbs", chains=1, warmup=5, draws=5, progress=False,
               checkpoint=tmp_path / "file")
    with pytest.raises(ModelSpecError, match="checkpoint_every"):
        bi.fit(model, data, method="gibbs", chains=1, warmup=5, draws=5, progress=False,
               checkpoint=tmp_path / "c", checkpoint_every=0)


def test_atomic_writes_keep_the_usual_permissions(tmp_path):
    import os
    import stat

    from bayesimg.atomic import new_file_mode, write_text_atomic
    target = write_text_atomic(tmp_path / "result.json", "{}")
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    assert stat.S_IMODE(os.stat(target).st_mode) == stat.S_IMODE(os.stat(plain).st_mode) \
        == new_file_mode()
