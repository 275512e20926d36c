"""L2R2 (longitudinal GLRR with subject random intercepts).

* the integrated random-intercept likelihood and the intercepts' conditional against
  dense Gaussian algebra (brute force);
* L2R2's per-subject log-likelihood equals GLRR's when every subject has one visit
  (ω = 0: GLRR's; ω > 0: GLRR's with Σ + diag ω), at the same parameters;
* exact Gibbs recovers a planted low-rank B, the random-intercept variances and the
  intercepts;
* slow: against GLRR on the visit averages (the naive baseline), with the model's noise
  and with misspecified within-subject AR(1) noise;
* named errors for data the model cannot fit.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _glrr_helpers import draws, error_and_coverage, l2r2_loo_direct
from numpyro import handlers
from numpyro.infer.util import log_likelihood
from scipy.stats import multivariate_normal

import bayesimg
from bayesimg.data.simulate_l2r2 import simulate_l2r2
from bayesimg.errors import DataValidationError, ModelSpecError
from bayesimg.models import GLRR, L2R2
from bayesimg.models.core.random_intercept import RandomInterceptNormal


def _random_case(seed=0, n=4, T=3, c=3):
    rng = np.random.default_rng(seed)
    counts = np.array([1, T, 2, T])[:n]
    mask = np.arange(T)[None, :] < counts[:, None]
    A = rng.standard_normal((c, c))
    cov = A @ A.T + 0.5 * np.eye(c)
    omega = rng.uniform(0.2, 1.5, size=c)
    loc = rng.standard_normal((n, T, c))
    y = np.where(mask[..., None], rng.standard_normal((n, T, c)) * 2.0, 0.0)
    return loc, cov, omega, mask, y


def test_random_intercept_density_and_conditional_match_dense_algebra():
    loc, cov, omega, mask, y = _random_case()
    d = RandomInterceptNormal(jnp.asarray(loc), jnp.asarray(cov), jnp.asarray(omega),
                              jnp.asarray(mask))
    lp = np.asarray(d.log_prob(jnp.asarray(y)))
    effect = np.asarray(d.subject_effect(jnp.asarray(y)))
    c = cov.shape[0]
    D = np.diag(omega)
    for i in range(loc.shape[0]):
        T = int(mask[i].sum())
        C = np.kron(np.eye(T), cov) + np.kron(np.ones((T, T)), D)
        r = (y[i, :T] - loc[i, :T]).ravel()
        assert lp[i] == pytest.approx(multivariate_normal(np.zeros(T * c), C).logpdf(r),
                                      rel=1e-10, abs=1e-10)
        # b | y: Gaussian conditioning of (b, y) with cov(b, y) = 1ᵀ ⊗ D
        cross = np.kron(np.ones((1, T)), D)
        np.testing.assert_allclose(effect[i], cross @ np.linalg.solve(C, r), rtol=1e-9,
                                   atol=1e-12)
    # draws from the conditional: sample covariance of b_i − E[b_i|y] against the formula
    keys = jax.random.split(jax.random.PRNGKey(0), 4000)
    samples = np.asarray(jax.vmap(lambda k: d.subject_effect(jnp.asarray(y), key=k))(keys))
    i, T = 1, int(mask[1].sum())
    C = np.kron(np.eye(T), cov) + np.kron(np.ones((T, T)), D)
    cross = np.kron(np.ones((1, T)), D)
    expected = D - cross @ np.linalg.solve(C, cross.T)
    np.testing.assert_allclose(np.cov(samples[:, i].T), expected, atol=0.08 * expected.max())
    # ω = 0: independent visits
    d0 = RandomInterceptNormal(jnp.asarray(loc), jnp.asarray(cov), jnp.zeros(c),
                               jnp.asarray(mask))
    direct = [sum(multivariate_normal(loc[i, t], cov).logpdf(y[i, t])
                  for t in range(int(mask[i].sum()))) for i in range(len(loc))]
    np.testing.assert_allclose(np.asarray(d0.log_prob(jnp.asarray(y))), direct, rtol=1e-10)


def _one_visit(seed=3):
    data, _ = simulate_l2r2(n_subjects=40, n_snps=8, n_phenotypes=4, rank=2, max_visits=1,
                            seed=seed)
    return data


@pytest.mark.parametrize("omega", [0.0, 0.4])
def test_one_visit_per_subject_is_glrr(omega):
    """Same parameters, same per-subject log-likelihood: L2R2 with one visit per subject
    is GLRR (ω = 0) or GLRR with noise Σ + diag ω."""
    data = _one_visit()
    l2r2 = L2R2(rank=2, noise_factors=1, subject_var_prior=omega, time_effect=False)
    glrr = GLRR(rank=2, noise_factors=1)
    base = data.baseline()
    kw_l = l2r2.model_args(data)
    kw_g = glrr.model_args(base)
    rng = np.random.default_rng(0)
    c = data.n_phenotypes
    params = {"U": rng.standard_normal((data.n_snps, 2)) * 0.3,
              "V": rng.standard_normal((c, 2)), "delta": np.array([1.0, 0.5]),
              "rank_global": np.asarray(1.0), "rank_increment": np.array([2.0]),
              "psi": rng.uniform(0.3, 1.0, c), "noise_increment": np.array([1.5]),
              "noise_raw": rng.standard_normal((c, 1))}
    ll_l = log_likelihood(l2r2.numpyro_model(), params, batch_ndims=0, **kw_l)["y"]
    if omega == 0.0:
        ll_g = log_likelihood(glrr.numpyro_model(), params, batch_ndims=0, **kw_g)["y"]
    else:
        Lam = params["noise_raw"] / np.sqrt(np.cumprod(params["noise_increment"]))
        cov = Lam @ Lam.T + np.diag(params["psi"]) + omega * np.eye(c)
        B = (params["U"] * params["delta"]) @ params["V"].T
        ll_g = multivariate_normal(np.zeros(c), cov).logpdf(base.phenotypes - base.genotypes @ B)
    np.testing.assert_allclose(np.asarray(ll_l).reshape(-1), np.asarray(ll_g).reshape(-1),
                               rtol=1e-9)
    # the traced model also stores GLRR's identified sites and the subject effects
    tr = handlers.trace(handlers.substitute(handlers.seed(l2r2.numpyro_model(), 0), params)
                        ).get_trace(**kw_l)
    assert {"B", "singular_values", "noise_cov", "subject_effect"} <= set(tr)


def _recovery_case(seed=12, **kw):
    return simulate_l2r2(n_subjects=120, n_snps=10, n_phenotypes=5, rank=2,
                         singular_values=[20.0, 12.0], max_visits=4, min_visits=2,
                         subject_sd=0.8, seed=seed, **kw)


def test_gibbs_recovers_low_rank_and_subject_variance():
    full, truth = _recovery_case()
    held = np.arange(full.n_subjects) >= 100
    data = full.subset_subjects(~held)
    fit = bayesimg.fit(L2R2(rank=2, noise_factors=1), data, method="gibbs", chains=1,
                       warmup=200, draws=200, seed=0, progress=False)
    B = truth.B.to_numpy()
    rel, cover = error_and_coverage(draws(fit, "B"), B)
    assert rel < 0.3                                  # measured 0.18
    assert cover > 0.85
    # ω against the variances of the planted intercepts (what 100 subjects inform)
    omega = draws(fit, "subject_var")
    realised = truth.subject_effect[~held].var(axis=0)
    lo, hi = np.quantile(omega, [0.005, 0.995], axis=0)
    assert np.mean((lo <= realised) & (realised <= hi)) >= 0.8
    assert np.corrcoef(omega.mean(0), realised)[0, 1] > 0.7
    # subject effects track the planted intercepts
    effect = draws(fit, "subject_effect").mean(0)
    assert np.corrcoef(effect.ravel(), truth.subject_effect[~held].ravel())[0, 1] > 0.75
    # labelled outputs; the LOO unit is the subject (all its visits)
    assert fit.log_likelihood["y"].dims == ("chain", "draw", "subject")
    assert fit.tree["observed_data"]["y"].dims == ("subject", "visit", "phenotype")
    assert fit.posterior["subject_effect"].dims[2:] == ("subject", "phenotype")
    assert np.isnan(fit.tree["observed_data"]["y"].values[~data.visit_mask]).all()
    # held-out subjects: predicted visit means follow the planted genetic mean, and the
    # per-subject predictive density is that of a new subject (its LOO analogue)
    new = full.subset_subjects(held)
    pred = bayesimg.predict(fit, new, num_draws=100)
    mean = pred["predictions_summary"]["y_mean"].values            # (subject, visit, phen)
    planted = (new.genotypes @ B)[:, None, :] + new.time[..., None] * truth.time_effect
    m = new.visit_mask
    assert np.corrcoef(mean[m].ravel(), planted[m].ravel())[0, 1] > 0.8
    lpd = pred["predictions_summary"]["log_pred_density_model"].values
    assert lpd.shape == (20,) and np.isfinite(lpd).all()
    loo = fit.loo()
    assert loo.method == "integrated"
    assert "subject intercepts b_i integrated out" in loo.details["integrated"]
    assert np.sum(loo.pareto_k > 0.7) <= 1, loo.pareto_k
    loo_per_visit = float(loo.elpd) / data.n_visits
    assert abs(lpd.sum() / new.n_visits - loo_per_visit) < 1.0
    assert fit.loo(method="psis").method == "psis"
    # the hook (visit design rebuilt from the fit) equals the dense Gaussian conditional
    model = L2R2(rank=2, noise_factors=1)
    X, Z = model.design(data)
    subject, _ = data.visit_index()
    flat, some = np.array([7, 150]), np.array([0, 41, 99])
    ll, theta, _ = model.loo_given_hyperparameters(fit.tree, draws=flat,
                                                   rng=np.random.default_rng(0))
    *_, s_u, _ = model.loo_conditioning(fit.tree, draws=flat, rng=np.random.default_rng(0),
                                        d=X.shape[1], c=data.n_phenotypes)
    for s in range(2):
        direct = l2r2_loo_direct(X, Z, data.flat_phenotypes(), subject, theta["layers"][1][s],
                                 theta["noise_cov"][1][s], theta["subject_var"][1][s],
                                 s_u[s], model.covariate_scale**2, only=some)
        np.testing.assert_allclose(ll[s, some], direct, atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("noise", ["iid", "ar1"])
def test_gibbs_against_glrr_on_visit_averages(noise):
    """Against the naive baseline (GLRR on each subject's visit average), with the
    model's noise and misspecified within-subject AR(1) noise (ρ = 0.7, which the random
    intercept only partly captures): B as well recovered, ω absorbing the serial
    correlation (larger than the planted intercept variances under AR(1))."""
    data, truth = _recovery_case(seed=5, noise=noise)
    B = truth.B.to_numpy()
    opts = {"chains": 2, "warmup": 300, "draws": 300, "seed": 1, "progress": False}
    fit = bayesimg.fit(L2R2(rank=2, noise_factors=1), data, method="gibbs", **opts)
    naive = bayesimg.fit(GLRR(rank=2, noise_factors=1), data.visit_average(),
                         method="gibbs", **opts)
    rel, cover = error_and_coverage(draws(fit, "B"), B)
    rel_naive, _ = error_and_coverage(draws(naive, "B"), B)
    assert rel < 0.35
    assert cover > 0.8
    assert rel < rel_naive + 0.03
    omega = draws(fit, "subject_var").mean(0)
    if noise == "ar1":
        assert np.all(omega > truth.subject_effect.var(axis=0))


def test_named_errors():
    data = _one_visit()
    with pytest.raises(DataValidationError, match="LongitudinalData"):
        L2R2().model_args(data.baseline())
    no_time = dataclasses.replace(data, time=np.zeros_like(data.time))
    with pytest.raises(ModelSpecError, match="visit times"):
        L2R2(rank=2, genotype_by_time=True).validate(no_time)
    with pytest.raises(ModelSpecError, match="subject_var_prior"):
        L2R2(subject_var_prior=(1.0, -1.0))
    shifted = dataclasses.replace(data, phenotypes=data.phenotypes + 5.0)
    with pytest.raises(DataValidationError, match="centred"):
        L2R2(rank=2).validate(shifted)


def test_design_with_interactions_and_visit_covariates():
    data, _ = simulate_l2r2(n_subjects=30, n_snps=4, n_phenotypes=3, rank=1, seed=2)
    rng = np.random.default_rng(0)
    Z = np.where(data.visit_mask[..., None], rng.standard_normal(data.visit_mask.shape + (2,)),
                 0.0)
    data = dataclasses.replace(data, covariates=Z, covariate_names=np.array(["icv", "scanner"]))
    model = L2R2(rank=2, genotype_by_time=True)
    X, Zd = model.design(data)
    rows, _ = data.visit_index()
    t = data.flat_time()
    np.testing.assert_allclose(X[:, :4], data.genotypes[rows])
    np.testing.assert_allclose(X[:, 4:], t[:, None] * data.genotypes[rows])
    np.testing.assert_allclose(Zd, np.column_stack([t, data.flat_covariates()]))
    coords = model.coords(data)
    assert list(coords["snp"][4:]) == [f"{s}:time" for s in data.snp_names]
    assert list(coords["covariate"]) == ["time", "icv", "scanner"]
    kw = model.model_args(data)
    assert kw["X"].shape == (data.n_visits, 8) and kw["Y_obs"].shape == data.phenotypes.shape
    # the NUTS model function runs on these arguments and stores labelled-size sites
    tr = handlers.trace(handlers.seed(model.numpyro_model(), 0)).get_trace(**kw)
    assert tr["B"]["value"].shape == (8, 3) and tr["gamma"]["value"].shape == (3, 3)
    assert tr["y"]["fn"].log_prob(kw["Y_obs"]).shape == (data.n_subjects,)
