"""Grouped K-fold cross-validation for every family, through :func:`bayesimg.fit_many`.

    res = bi.kfold(bi.models.GroupSparseMTR(20, 20), data, k=10, method="gibbs",
                   draws=500, seed=1)                       # random folds, in process
    res = bi.kfold(model, data, k=5, folds="site")          # whole sites held out
    res = bi.kfold(model, data, folds="stratified", stratify="diagnosis", client="local")

The K training sets are fitted by :func:`~bayesimg.fit_many` (batched in one compiled
program per training-set shape, or on a Dask cluster with ``client=``); each held-out
subject's elpd_i = log mean_s p(y_i | θ_s^(−fold)) comes from
:func:`bayesimg.predict` on the fold's fit (its ``log_pred_density_model``).  The
folds share the dataset's standardisation (as the data handed to ``fit``), so the
elpd is in the same units as ``fit.loo()``.  The result is the same
:class:`~bayesimg.report.compare.ICResult` type as ``loo()`` (``kind="kfold"``,
``method="kfold"``), convertible to ArviZ's ``ELPDDataLOOKFold``; with ``fit=`` (the
full-data fit) it also gets p_kfold = lpd(full) − elpd_kfold and is attached to that
fit, so ``bayesimg.compare`` finds it.

Bias correction (``bias_correction=True``, needs ``fit=``).  Each fold's model is
trained on (K − 1)/K of the subjects, so K-fold estimates the elpd of a smaller study:
pessimistic, most where the posterior still moves with the sample size (weak shrinkage,
p ≈ n).  Burman's (1989, Biometrika 76:503) first-order correction, in the predictive-
density form of Vehtari & Lampinen (2002, Neural Computation 14:2439, §2.3), per subject::

    elpd_i^c = elpd_i^kfold + lpd_i(full fit) − (1/K) Σ_k lpd_i(fit without fold k)

with lpd_i(f) = log mean_s p(y_i | θ_s^f) over the draws of fit f, every subject scored by
every fold fit (training and held-out alike).  The corrected values are the result's
``elpd``/``pointwise``; the plain K-fold ones stay in ``details`` (``elpd_uncorrected``,
``se_uncorrected``, ``pointwise_uncorrected``) and the method reads ``kfold (bias-
corrected)`` in ``details["estimate"]``.

The correction is first-order in the training-set size.  Where the elpd still moves a lot
with n (weakly shrunk p ≈ n regressions, p_loo in the thousands) it can miss by several
SE in either direction (``benchmarks/results/kfold_bias.json``), so ``kfold`` warns once,
in one line, when the correction exceeds ``CORRECTION_WARN_SE`` = 0.5 SE of the elpd,
pointing to integrated LOO (``fit.loo()``), which needs no refit.

Held-out densities without Monte Carlo error in the coefficients
(``integrate_coefficients=True``, the default).  Where the family has an exact Gaussian
form given its hyperparameters θ (``Model.heldout_given_hyperparameters``: GSMTR), the
held-out subject is scored by lpd_i = log mean_s p(ỹ_i | y_train, θ_s) with the
coefficients integrated out, as integrated LOO does: a log-mean over *sampled*
coefficients is biased low where they are uncertain (p ≈ n), by 0.62 per subject on the
demo at λ = 2 (``benchmarks/results/kfold_bias.json``).  Burman's correction then uses
the same form for the full-data fit.  Other families use :func:`bayesimg.predict`.

Fold schemes (``folds=``): ``None``/``"random"`` (balanced random), ``"stratified"``
(balanced over the sorted values of ``stratify``: a label column, an array, or by
default the outcome or the first phenotype, in quantile bins), a column name (whole
groups — site, family — held out together: a ``labels`` column of MultiViewData, or a
covariate of a Dataset, one-hot dummies ``name[level]`` recognised), or an array of
fold ids (one per subject).
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

import numpy as np
from scipy.special import logsumexp

from bayesimg.data.base import SubjectData
from bayesimg.errors import DataValidationError, FitManyError, ModelSpecError
from bayesimg.inference.fit import Fit
from bayesimg.inference.many import FitJob, fit_many
from bayesimg.inference.predictive import predict
from bayesimg.models.core.base import Model

__all__ = ["kfold", "make_folds"]


def _group_column(data: SubjectData, name: str) -> np.ndarray | None:
    labels = getattr(data, "labels", None)
    if labels is not None and name in labels.columns:
        return np.asarray(labels[name].astype(str))
    covs = getattr(data, "covariates", None)
    names = getattr(data, "covariate_names", None)
    if covs is not None and names is not None:
        names = [str(x) for x in names]
        if name in names:
            return np.asarray(covs[:, names.index(name)]).round(10).astype(str)
        dummies = [i for i, x in enumerate(names) if x.startswith(f"{name}[")]
        if dummies:
            block = np.asarray(covs[:, dummies])
            return np.asarray([",".join(f"{v:.6g}" for v in row) for row in block])
    return None


def _stratify_values(data: SubjectData, stratify) -> np.ndarray:
    if stratify is not None and not isinstance(stratify, str):
        values = np.asarray(stratify)
        if values.shape[0] != data.n_subjects:
            raise DataValidationError(
                f"stratify has {values.shape[0]} values for {data.n_subjects} subjects")
        return values
    if isinstance(stratify, str):
        values = _group_column(data, stratify)
        if values is None:
            raise DataValidationError(f"no column {stratify!r} to stratify on (labels or "
                                      "covariates)", column=stratify)
        return values
    outcome = getattr(data, "outcome", None)
    if outcome is not None:
        return np.nan_to_num(np.asarray(outcome, float), nan=np.nanmedian(outcome))
    phen = getattr(data, "phenotypes", None)
    if phen is not None:
        return np.asarray(phen[:, 0])
    raise DataValidationError("folds='stratified' needs stratify= (a label column or an array): "
                              "the data have no outcome or phenotype to stratify on")


def make_folds(data: SubjectData, k: int = 10, folds: Any = None, *, stratify=None,
               seed: int = 0) -> np.ndarray:
    """Fold id (0 … K−1) of every subject (see the module docstring for ``folds``)."""
    n = data.n_subjects
    rng = np.random.default_rng(seed)
    if folds is None or (isinstance(folds, str) and folds == "random"):
        _check_k(k, n)
        ids = np.empty(n, dtype=np.int64)
        ids[rng.permutation(n)] = np.arange(n) % k
        return ids
    if isinstance(folds, str) and folds == "stratified":
        _check_k(k, n)
        values = _stratify_values(data, stratify)
        if np.issubdtype(values.dtype, np.number) and np.unique(values).size > k:
            # quantile bins of a continuous variable, then round-robin within each
            edges = np.quantile(values, np.linspace(0, 1, k + 1)[1:-1])
            values = np.searchsorted(edges, values)
        ids = np.empty(n, dtype=np.int64)
        start = 0
        for level in rng.permutation(np.unique(values.astype(str))):
            members = rng.permutation(np.flatnonzero(values.astype(str) == level))
            ids[members] = (start + np.arange(members.size)) % k
            start += members.size
        return ids
    if isinstance(folds, str):
        groups = _group_column(data, folds)
        if groups is None:
            raise DataValidationError(
                f"no column {folds!r} to group the folds by (a labels column of MultiViewData "
                "or a covariate of a Dataset)", column=folds)
        levels, inverse = np.unique(groups, return_inverse=True)
        if levels.size < 2:
            raise DataValidationError(f"column {folds!r} has a single group: nothing to hold "
                                      "out", column=folds)
        k = min(int(k), levels.size)
        sizes = np.bincount(inverse)
        fold_size = np.zeros(k)
        group_fold = np.empty(levels.size, dtype=np.int64)
        perm = rng.permutation(levels.size)
        for g in perm[np.argsort(-sizes[perm], kind="stable")]:   # largest groups first
            f = int(np.argmin(fold_size))
            group_fold[g] = f
            fold_size[f] += sizes[g]
        return group_fold[inverse]
    ids = np.asarray(folds)
    if ids.shape != (n,):
        raise DataValidationError(f"folds has shape {ids.shape}; give one fold id per subject "
                                  f"({n}), or None/'random'/'stratified'/a column name")
    _, ids = np.unique(ids, return_inverse=True)
    if ids.max() < 1:
        raise DataValidationError("folds holds a single fold: nothing to hold out")
    return ids.astype(np.int64)


def _check_k(k, n):
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or not 2 <= k <= n:
        raise ModelSpecError(f"k must be an integer in [2, {n}] (subjects), got {k!r}")


def kfold(model: Model, data: SubjectData, k: int = 10, folds: Any = None, *,
          method: str = "gibbs", stratify=None, seed: int = 0, client: Any = None,
          fit: Fit | None = None, num_draws: int | None = None, out_dir=None,
          progress: bool = False, keep_predictions: bool = False,
          bias_correction: bool = False, integrate_coefficients: bool = True, **options):
    """K-fold cross-validated elpd (see the module docstring).

    Parameters
    ----------
    model, data
        As for :func:`bayesimg.fit`.
    k : int
        Number of folds (grouped folds: at most the number of groups).
    folds : None, "random", "stratified", column name, or array of fold ids
    method : str
        Inference method of every fold fit; ``options`` are :func:`bayesimg.fit`'s.
    stratify : str or array, optional
        What ``folds="stratified"`` balances.
    seed : int
        Seed of the fold assignment and of every fold fit (unless ``options`` has one).
    client : None, "local" or distributed.Client
        Where the fold fits run (:func:`bayesimg.fit_many`).
    fit : Fit, optional
        The full-data fit: gives p_kfold and receives the result (``compare`` uses it).
    num_draws : int, optional
        Posterior draws per fold used for the predictive densities (default all).
    keep_predictions : bool
        Keep every fold's ``predictions_summary`` (held-out predictive means, original
        units) in ``details["predictions"]`` with the held-out positions in
        ``details["test_index"]``.
    bias_correction : bool
        Burman's first-order correction for training on (K − 1)/K of the subjects (see
        the module docstring); needs ``fit=``.  The plain K-fold values stay in
        ``details``.
    integrate_coefficients : bool
        Where the family has the exact form (GSMTR), score held-out subjects with the
        coefficients integrated out given each hyperparameter draw (module docstring);
        False, or other families: log mean over the fold fit's posterior draws.

    Returns
    -------
    ICResult
        ``kind="kfold"``, ``method="kfold"``, pointwise elpd per subject in data order,
        ``details``: ``k``, ``folds`` (ids), ``folds_hash``, ``seconds``,
        ``fold_max_rhat`` and ``fold_min_ess`` (convergence of each fold fit).
    """
    import time

    from bayesimg.report.compare import ICResult, _se

    t0 = time.perf_counter()
    if bias_correction and fit is None:
        raise ModelSpecError("bias_correction=True needs the full-data fit (fit=): the "
                             "correction compares it with the fold fits on every subject")
    ids = make_folds(data, k, folds, stratify=stratify, seed=seed)
    K = int(ids.max()) + 1
    opts = {"seed": seed, **options}
    jobs = {}
    for f in range(K):
        train = np.flatnonzero(ids != f)
        jobs[f"fold{f:02d}"] = FitJob(model, data.subset_subjects(train), method, opts)
    try:
        fits = fit_many(jobs, client=client, out_dir=out_dir, progress=progress)
    except FitManyError as err:
        if isinstance(err.__cause__, Exception):
            raise err.__cause__ from None
        raise
    convergence = _fold_convergence(fits, K)
    elpd_i = np.empty(data.n_subjects)
    draws_used = []
    kept, test_index = [], []
    fold_lpd = np.zeros(data.n_subjects)          # Σ_k lpd_i(fit without fold k), all i
    integrated_used = []
    for f in range(K):
        test = np.flatnonzero(ids == f)
        scored = np.arange(data.n_subjects) if bias_correction else test
        scored_data = data.subset_subjects(scored)
        integ = _integrated_lpd(model, fits[f"fold{f:02d}"], scored_data, num_draws, seed) \
            if integrate_coefficients else None
        integrated_used.append(integ is not None)
        pred = None
        if integ is None or keep_predictions:
            pred = predict(fits[f"fold{f:02d}"], scored_data, num_draws=num_draws, seed=seed)
        if integ is not None:
            lpd_f, used = integ
        else:
            if "log_pred_density_model" not in pred["predictions_summary"].dataset:
                raise ModelSpecError(f"{model.name}: the held-out subjects carry no outcomes, "
                                     "so there is no predictive density to cross-validate")
            lpd_f = pred["predictions_summary"].dataset["log_pred_density_model"].values
            used = int(pred.attrs["draws_used"])
        if bias_correction:
            fold_lpd += lpd_f
            lpd_f = lpd_f[test]
        elpd_i[test] = lpd_f
        draws_used.append(used)
        if keep_predictions:
            summary = pred["predictions_summary"].to_dataset()
            if bias_correction:
                summary = summary.isel(subject=test)
            kept.append(summary)
            test_index.append(test)
    p = float("nan")
    lpd = None
    integrated = all(integrated_used)
    if fit is not None:
        full = _integrated_lpd(model, fit, data, num_draws, seed) if integrated else None
        ll = _full_loglik(fit)
        if full is not None:
            lpd = full[0]          # the same coefficient-integrated form as the folds'
        elif ll is not None and ll.shape[1] == elpd_i.size:
            lpd = logsumexp(ll, axis=0) - math.log(ll.shape[0])
        if lpd is not None:
            p = float(np.sum(lpd - elpd_i))
    extra = {}
    if bias_correction:
        if lpd is None:
            raise ModelSpecError("bias_correction=True needs the full-data fit's pointwise "
                                 "log-likelihood (fit= a fit of these subjects)")
        correction = lpd - fold_lpd / K
        extra = {"estimate": "kfold (bias-corrected)",
                 "bias_correction": "Burman (1989): + lpd_i(full) - mean_k lpd_i(fold fit k)",
                 "elpd_uncorrected": float(elpd_i.sum()), "se_uncorrected": _se(elpd_i),
                 "pointwise_uncorrected": elpd_i.copy(),
                 "correction": float(correction.sum())}
        elpd_i = elpd_i + correction
        p = float(np.sum(lpd - elpd_i))
        _warn_large_correction(float(correction.sum()), _se(elpd_i), K,
                               getattr(model, "name", type(model).__name__))
    subjects = np.asarray(data.subjects, dtype=object)
    res = ICResult(kind="kfold", method="kfold", elpd=float(elpd_i.sum()), se=_se(elpd_i),
                   p=p, pointwise=elpd_i, n_obs=int(elpd_i.size), n_draws=int(min(draws_used)),
                   obs_labels=subjects, obs_dims=("subject",) if hasattr(data, "phenotypes")
                   else ("sample",), var_name="y",
                   details={"k": K, "folds": ids.tolist(),
                            "folds_hash": hashlib.sha1(ids.tobytes()).hexdigest()[:12],
                            "method": method, "seconds": time.perf_counter() - t0,
                            "heldout_density": HELDOUT_INTEGRATED if integrated else
                            "log mean over the fold fit's posterior draws",
                            **convergence, **extra,
                            **({"predictions": kept, "test_index": test_index}
                               if keep_predictions else {})})
    if fit is not None:
        fit._results["kfold"] = res
    return res


HELDOUT_INTEGRATED = "coefficients integrated out given each hyperparameter draw"


def _integrated_lpd(model, fit, new_data, num_draws, seed):
    """(lpd_i (m,), draws used) with the coefficients integrated out, or None."""
    from bayesimg.inference.loo import MAX_DRAWS
    from bayesimg.models.core.predict import thin_indices

    tree = fit.tree
    if "posterior" not in tree.children:
        return None
    post = tree["posterior"].dataset
    n_chains, n_draws = int(post.sizes["chain"]), int(post.sizes["draw"])
    idx = thin_indices(n_chains, n_draws, num_draws or MAX_DRAWS)
    flat = (np.arange(n_chains)[:, None] * n_draws + idx[None, :]).ravel()
    ll = model.heldout_given_hyperparameters(tree, new_data, draws=flat,
                                             rng=np.random.default_rng(seed))
    if ll is None:
        return None
    return logsumexp(ll, axis=0) - math.log(ll.shape[0]), int(flat.size)


#: Burman's correction above this many SE of the elpd: the first-order correction is not
#: to be trusted (see the module docstring), and kfold says so.
CORRECTION_WARN_SE = 0.5


def _warn_large_correction(correction: float, se: float, k: int, name: str) -> None:
    """One line when Burman's correction is large against the elpd's SE."""
    from bayesimg.report.compare import warn_user

    if not (np.isfinite(correction) and np.isfinite(se) and se > 0):
        return
    if abs(correction) <= CORRECTION_WARN_SE * se:
        return
    warn_user(f"kfold ({name}, K = {k}): Burman's bias correction is {correction:+.1f} "
              f"({correction / se:+.1f} SE): the fold fits predict much worse than the "
              "full-data fit, so K-fold's training-size bias is large and a first-order "
              "correction may leave several SE of it (benchmarks/results/kfold_bias.json); "
              "compare models with fit.loo() (integrated LOO) where the family has it, or "
              "use more folds (k=20)")


def _fold_convergence(fits, K: int) -> dict:
    """Max R-hat and min ESS of every fold fit (NaN where not computable, e.g. SVI)."""
    rhat, ess = [], []
    for f in range(K):
        diag = fits[f"fold{f:02d}"].diagnose()
        rhat.append(float(diag.max_rhat))
        ess.append(float(min(diag.min_ess_bulk, diag.min_ess_tail)))
    return {"fold_max_rhat": rhat, "fold_min_ess": ess}


def _full_loglik(fit: Fit) -> np.ndarray | None:
    tree = fit.tree
    if "log_likelihood" not in tree.children:
        return None
    ds = tree["log_likelihood"].dataset
    if len(ds.data_vars) != 1:
        return None
    da = ds[next(iter(ds.data_vars))]
    return np.asarray(da.values, dtype=float).reshape(-1, da.shape[-1])
