"""Fewer distinct compiled programs: run length and grid length never add one.

* The Gibbs kernels ignore the warm-up length (no adaptation), so it is a run setting,
  not part of their compiled program (``mcmc.program_warmup``); the number of draws
  never was.
* Batches of fits (λ grids, folds with one training-set shape) are padded to the next
  power of two with copies of their last fit (``batched.fit_bucket``): a 3-value and a
  4-value grid run one program, and the padding changes no draw -- the three λ values
  shared by both grids get bit-identical draws.
* Fits on nearby subject counts (K-fold training sets) share a program where the
  sampler allows zero-padded subjects (``padding.subject_bucket``; GSMTR Gibbs): the
  padded fit equals the unpadded one up to rounding, log_likelihood included.
* The pointwise log-likelihood of SVI/MAP draws is computed in chunks of one fixed
  length, the last padded, so its program does not depend on ``num_draws``; the padded
  result equals the per-draw computation.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist

import bayesimg as bi
from bayesimg.inference.batched import fit_bucket
from bayesimg.inference.loglik import batched_loglik, pointwise_loglik_fn
from bayesimg.inference.padding import subject_bucket


def test_fit_bucket_is_next_power_of_two():
    assert [fit_bucket(n) for n in (1, 2, 3, 4, 5, 8, 9)] == [1, 2, 4, 4, 8, 8, 16]


def test_grid_and_run_length_reuse_one_program():
    data, _ = bi.data.simulate_gsmtr(n_subjects=37, n_snps=6, n_genes=2, n_phenotypes=2,
                                     seed=3)
    run = {"chains": 1, "progress": False, "seed": 4}

    def grid(values, warmup=4, draws=6):
        _, _, fits = bi.select_hyperparameter(
            bi.models.GroupSparseMTR(), data, [{"lambda1": v, "lambda2": v} for v in values],
            ic="waic", method="gibbs", warmup=warmup, draws=draws, **run)
        return list(fits.values())

    three = grid([1.0, 5.0, 25.0])
    four = grid([1.0, 5.0, 25.0, 125.0])
    # the batch's time is shared by the real fits only
    assert {(f.timings["batched_fits"], f.timings["batch_lanes"]) for f in three} == {(3, 4)}
    assert all(f.timings["compile_seconds"] == 0.0 for f in four)
    for a, b in zip(three, four[:3], strict=True):
        assert a.model_settings == b.model_settings
        np.testing.assert_array_equal(a.posterior["W"].values, b.posterior["W"].values)
    assert not np.array_equal(four[2].posterior["W"].values, four[3].posterior["W"].values)
    # another warm-up length and number of draws: still the same program
    longer = grid([2.0, 7.0, 11.0], warmup=9, draws=11)
    assert all(f.timings["compile_seconds"] == 0.0 for f in longer)
    assert longer[0].posterior["W"].shape[:2] == (1, 11)


def test_padded_loglik_chunks_equal_per_draw_values():
    def model(x, y=None):
        mu = numpyro.sample("mu", dist.Normal(0.0, 1.0))
        with numpyro.plate("subject", x.shape[0]):
            numpyro.sample("y", dist.Normal(mu * x, 1.0), obs=y)

    x = jnp.linspace(-1.0, 1.0, 9)
    kwargs = {"x": x, "y": 0.5 * x + 0.1}
    one = pointwise_loglik_fn(model, {"y": ("subject",)})
    for n in (1, 5, 7):
        mu = jnp.linspace(-2.0, 2.0, n)
        got = batched_loglik(model, {"y": ("subject",)}, {"mu": mu}, kwargs, batch=4)["y"]
        want = np.stack([np.asarray(one({"mu": m}, kwargs)["y"]) for m in mu])
        assert got.shape == (n, 9)
        np.testing.assert_allclose(got, want, rtol=1e-12)
    assert jax.config.jax_enable_x64


def test_subject_buckets():
    assert [subject_bucket(n) for n in (5, 16, 17, 42, 43, 44, 100, 1000)] == \
        [5, 16, 18, 44, 44, 44, 104, 1024]
    assert all(n <= subject_bucket(n) <= n * 1.125 for n in range(1, 3000))


def test_folds_of_nearby_sizes_share_a_program_with_unchanged_draws():
    """Two training sets of 41 and 43 subjects (with covariates) run as one batch of
    44-row arguments; each fit equals the unpadded single fit up to rounding, its
    log_likelihood included (padded rows dropped)."""
    data, _ = bi.data.simulate_gsmtr(n_subjects=45, n_snps=5, n_genes=2, n_phenotypes=2,
                                     n_covariates=1, seed=8)
    model = bi.models.GroupSparseMTR(lambda1=3.0, lambda2=3.0)
    assert model.pads_subjects(data, "gibbs") and not model.pads_subjects(data, "nuts")
    run = {"chains": 1, "warmup": 3, "draws": 5, "progress": False, "seed": 2}
    parts = {"a": data.subset_subjects(np.arange(41)), "b": data.subset_subjects(np.arange(2, 45))}
    fits = bi.fit_many({k: bi.FitJob(model, d, "gibbs", run) for k, d in parts.items()})
    assert {fits[k].timings["batched_fits"] for k in parts} == {2}
    single = bi.fit(model, parts["a"], method="gibbs", **run)
    for site in ("W", "sigma2", "gamma", "tau"):
        np.testing.assert_allclose(fits["a"].posterior[site].values,
                                   single.posterior[site].values, rtol=1e-9, atol=1e-12)
    got, want = fits["a"].log_likelihood["y"], single.log_likelihood["y"]
    assert got.shape == want.shape == (1, 5, 41)
    np.testing.assert_allclose(got.values, want.values, rtol=1e-9)


def test_data_derived_start_values_are_part_of_the_program_key():
    """MultiViewFactor's NUTS start (PCA + varimax of the data) is closed over by the compiled
    program, so a second data set of the same layout must not reuse the first one's program;
    a strategy without data-derived values keeps sharing it."""
    from bayesimg.data.simulate_factor import simulate_factor
    from bayesimg.inference.sampling import mcmc_kernel

    model = bi.models.MultiViewFactor(n_factors=2)
    keys = []
    for seed in (0, 1):
        data, _ = simulate_factor(n=30, sizes={"a": 8, "b": 6}, n_factors=2, seed=seed)
        bi.inference.common.check_inputs(model, data)  # binds the views' layout
        settings, _ = mcmc_kernel(model, data, "nuts", model.numpyro_model("nuts"))
        keys.append((model.static_key(data), tuple(sorted(settings.items()))))
    assert keys[0][0] == keys[1][0]  # same layout ...
    assert keys[0][1] != keys[1][1]  # ... other start values: another program
    gsmtr = bi.models.GroupSparseMTR(lambda1=20.0, lambda2=20.0)
    data = bi.data.simulate_gsmtr(n_subjects=30, n_snps=6, n_genes=2, n_phenotypes=2)[0]
    settings, _ = mcmc_kernel(gsmtr, data, "nuts", gsmtr.numpyro_model("nuts"))
    assert "start_values" not in settings
