"""Predictive model comparison: WAIC, PSIS-LOO and ranking tables.

The unit of prediction is whatever indexes the pointwise log-likelihood after
``chain`` and ``draw`` -- in bayesimg fits, the **subject** (the log-likelihood is
already summed over phenotypes), i.e. leave-one-subject-out.

* :func:`waic` is computed here from the pointwise log-likelihood: ArviZ 1.x removed
  WAIC.  Formulae follow Vehtari, Gelman & Gabry (2017) and R's ``loo::waic``.
* :func:`loo` wraps ``arviz_stats.loo`` (PSIS-LOO) and reports Pareto k values.
* :func:`compare` ranks fits and computes the standard error of each difference
  from the pointwise values (same subjects required).  Given several estimates of a
  model (integrated LOO, K-fold, PSIS) it chooses the most reliable one the models
  share (:data:`RELIABILITY`), names it per row (``estimate``) and refuses to mix
  LOO with K-fold estimates unless ``allow_mixed=True``.

Every :class:`ICResult` names its ``method``: ``"psis"`` (plain PSIS-LOO over all
posterior draws), ``"integrated"`` (PSIS over hyperparameter draws of
log p(y_i | y_{-i}, θ) with the coefficients integrated out:
:func:`bayesimg.inference.loo.integrated_loo`), ``"kfold"``
(:func:`bayesimg.kfold`) or ``"waic"``; :meth:`ICResult.to_arviz` gives ArviZ 1.x
``ELPDData`` for ``arviz_stats.compare`` / ``arviz_plots.plot_compare``.

Standard errors use ``sqrt(n * var(x))`` with the sample variance (ddof = 1), as in
R's ``loo`` and ``arviz_stats.loo``.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from scipy.special import logsumexp

from bayesimg import mcmc_stats as _mcmc_stats
from bayesimg.errors import LIBRARY_FILES, BayesimgWarning, ModelSpecError
from bayesimg.report import _tree
from bayesimg.report.display import DisplayTable

__all__ = ["ICResult", "waic", "loo", "compare", "P_WAIC_MAX", "KHAT_BAD",
           "KHAT_VERY_BAD", "RELIABILITY", "warn_user"]



def warn_user(message: str, category=BayesimgWarning) -> None:
    """Warn pointing at the user's call (the first frame outside bayesimg), in one line."""
    warnings.warn(" ".join(str(message).split()), category, skip_file_prefixes=LIBRARY_FILES)

#: Pointwise p_waic above this makes WAIC unreliable (R ``loo``'s threshold).
P_WAIC_MAX = 0.4
#: Pareto k above this: the PSIS estimate for that subject is unreliable.
KHAT_BAD = 0.7
#: Pareto k above this: importance sampling fails for that subject (mean undefined).
KHAT_VERY_BAD = 1.0
# How many subject labels a warning lists before "...".
_MAX_LISTED = 10


@dataclass(repr=False)
class ICResult:
    """An information criterion (WAIC or PSIS-LOO) on the log score (elpd) scale.

    Attributes
    ----------
    kind : {"waic", "loo", "kfold"}
    elpd : float
        Expected log pointwise predictive density (higher is better).
    se : float
        Standard error of ``elpd``: ``sqrt(n * var(pointwise))``.
    p : float
        Effective number of parameters (``p_waic`` or ``p_loo``).
    pointwise : ndarray, shape (n_obs,)
        ``elpd_i`` per observation (subject), flattened in C order over obs dims.
    n_obs : int
        Number of observations (subjects).
    n_draws : int
        Posterior draws used (chains x draws).
    warnings : list of str
        Reliability warnings (high p_waic_i or Pareto k, approximate posterior).
    pareto_k : ndarray or None
        Pareto k per observation (LOO only).
    p_pointwise : ndarray or None
        ``p_waic_i`` or ``p_loo_i`` per observation.
    obs_labels : ndarray
        Label of each observation (subject IDs; ``a, b`` for several obs dims).
    obs_dims : tuple of str
        Observation dims of the log-likelihood (normally ``("subject",)``).
    var_name : str
        Log-likelihood variable used.
    good_k : float or None
        ArviZ's sample-size dependent k threshold ``min(1 - 1/log10(S), 0.7)`` (LOO).
    approximate : bool
        True when computed from an SVI approximation instead of MCMC draws.
    method : str
        How the estimate was made: ``"psis"``, ``"integrated"``, ``"kfold"`` or ``"waic"``.
    details : dict
        Method specifics (draws used, folds, what was integrated).
    """

    kind: str
    elpd: float
    se: float
    p: float
    pointwise: np.ndarray
    n_obs: int
    n_draws: int
    warnings: list[str] = field(default_factory=list)
    pareto_k: np.ndarray | None = None
    p_pointwise: np.ndarray | None = None
    obs_labels: np.ndarray = field(default_factory=lambda: np.array([], dtype=object))
    obs_dims: tuple[str, ...] = ("subject",)
    var_name: str = "y"
    good_k: float | None = None
    approximate: bool = False
    method: str = ""
    details: dict = field(default_factory=dict)

    def __post_init__(self):
        if not self.method:
            self.method = {"loo": "psis", "waic": "waic", "kfold": "kfold"}.get(self.kind,
                                                                                self.kind)

    @property
    def family(self) -> str:
        """Estimand: ``"loo"`` (PSIS or integrated), ``"kfold"`` or ``"waic"``."""
        return {"psis": "loo", "integrated": "loo"}.get(self.method, self.method)

    @property
    def reliable(self) -> bool:
        """No Pareto k above 0.7 (or NaN) and not from an approximate posterior."""
        if self.approximate:
            return False
        if self.pareto_k is not None:
            k = np.asarray(self.pareto_k, dtype=float)
            return bool(np.all(np.isfinite(k) & (k <= KHAT_BAD)))
        if self.method == "waic":
            return not self.warnings
        return True

    def to_arviz(self):
        """ArviZ 1.x ELPD data (``ELPDDataLOO``, or ``ELPDDataLOOKFold`` for K-fold)."""
        from arviz_stats.utils import ELPDDataLOO, ELPDDataLOOKFold

        elpd_i = xr.DataArray(self.pointwise, dims=[self.obs_dims[0] if len(self.obs_dims) == 1
                                                    else "obs"],
                              coords={self.obs_dims[0] if len(self.obs_dims) == 1 else "obs":
                                      np.asarray(list(map(str, self.obs_labels)))
                                      if self.obs_labels.size == self.pointwise.size
                                      else np.arange(self.pointwise.size)})
        common = dict(elpd=self.elpd, se=self.se, p=self.p, n_samples=self.n_draws,
                      n_data_points=self.n_obs, scale="log", warning=not self.reliable,
                      elpd_i=elpd_i)
        if self.method == "kfold":
            return ELPDDataLOOKFold(**common, good_k=None,
                                    n_folds=int(self.details.get("k", 0)))
        pk = None if self.pareto_k is None else elpd_i.copy(data=self.pareto_k)
        return ELPDDataLOO(**common, good_k=self.good_k, pareto_k=pk,
                           approx_posterior=self.approximate)

    @property
    def ic(self) -> float:
        """The criterion on the deviance scale, ``-2 * elpd`` (WAIC / LOOIC)."""
        return -2.0 * self.elpd

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        from bayesimg.report.display import key_value_table, number
        rows = [("estimate", f"{self.kind.upper()} by {self.method}, {self.n_obs} "
                             f"observations, {self.n_draws} draws"),
                (f"elpd_{self.kind}", f"{number(self.elpd, 2)} (se {number(self.se, 2)})"),
                (f"p_{self.kind}", number(self.p, 2))]
        if self.pareto_k is not None:
            k = np.asarray(self.pareto_k, dtype=float)
            rows.append(("Pareto k > 0.7", f"{int(np.sum(k > KHAT_BAD))} of {k.size}"))
        return key_value_table("Predictive accuracy", rows, notes=self.warnings,
                               verdict="reliable" if self.reliable else "check warnings")

    def __str__(self) -> str:
        lines = [
            f"{self.kind.upper()} [{self.method}] ({self.n_obs} observations over "
            f"{self.obs_dims}, "
            f"{self.n_draws} draws{', approximate posterior' if self.approximate else ''})",
            f"  elpd_{self.kind} {self.elpd:12.2f}  se {self.se:8.2f}",
            f"  p_{self.kind}    {self.p:12.2f}",
        ]
        if self.pareto_k is not None:
            k = self.pareto_k
            lines.append(
                f"  Pareto k: {int(np.sum(k <= KHAT_BAD))} <= {KHAT_BAD}, "
                f"{int(np.sum((k > KHAT_BAD) & (k <= KHAT_VERY_BAD)))} in ({KHAT_BAD}, "
                f"{KHAT_VERY_BAD}], {int(np.sum(k > KHAT_VERY_BAD))} > {KHAT_VERY_BAD}")
        lines.extend(f"  warning: {w}" for w in self.warnings)
        return "\n".join(lines)


def _se(pointwise: np.ndarray) -> float:
    n = pointwise.size
    if n < 2:
        return 0.0
    return float(math.sqrt(n * np.var(pointwise, ddof=1)))


def _obs_labels(da, obs_dims: tuple[str, ...]) -> np.ndarray:
    coords = _tree.element_coords(da, obs_dims)
    if len(obs_dims) == 1:
        return np.asarray(coords[obs_dims[0]], dtype=object)
    cols = [list(map(str, v)) for v in coords.values()]
    return np.array([", ".join(p) for p in zip(*cols, strict=True)], dtype=object)


def _listed(labels: np.ndarray) -> str:
    shown = ", ".join(map(str, labels[:_MAX_LISTED]))
    return shown + (f", ... ({labels.size - _MAX_LISTED} more)" if labels.size > _MAX_LISTED
                    else "")


def _prepare(fit: Any, var_name: str | None, kind: str):
    """Log-likelihood as (S, N) numpy, plus metadata; rejects single-draw fits."""
    tree = _tree.as_tree(fit)
    da, name = _tree.log_likelihood(tree, var_name)
    obs_dims = tuple(str(d) for d in da.dims[2:])
    n_draws = int(da.sizes["chain"] * da.sizes["draw"])
    if n_draws < 2:
        meth = _tree.method(tree)
        raise ModelSpecError(
            f"{kind.upper()} needs posterior draws, but this fit ({meth or 'unknown method'}) "
            f"has {n_draws} draw: a MAP point estimate has no posterior to average over. "
            "Refit with method='nuts' (or 'svi' for an approximation).")
    ll = np.asarray(da.transpose("chain", "draw", *obs_dims).values, dtype=float)
    ll = ll.reshape(n_draws, -1)
    if not np.isfinite(ll).all():
        bad = np.flatnonzero(~np.isfinite(ll).all(axis=0))
        labels = _obs_labels(da, obs_dims)
        raise ModelSpecError(
            f"log_likelihood/{name} has non-finite values for {bad.size} observation(s): "
            f"{_listed(labels[bad])}")
    return tree, da, name, obs_dims, ll


def _approx_note(tree, kind: str) -> list[str]:
    if not _tree.is_approximate(tree):
        return []
    meth = (_tree.method(tree) or "approximate").upper()
    return [f"approximate posterior ({meth}): {kind.upper()} uses draws from the variational "
            "approximation, not the posterior; treat it as indicative only and prefer NUTS "
            "fits for model choice."]


def _emit(messages: list[str]) -> None:
    for m in messages:
        warn_user(m)


def waic(fit: Any, var_name: str | None = None) -> ICResult:
    """Widely applicable information criterion from the pointwise log-likelihood.

    ArviZ 1.x removed WAIC; it is computed here as in Vehtari, Gelman & Gabry (2017)
    and R's ``loo::waic``: with ``S`` draws and ``ll[s, i]`` the log-likelihood of
    observation ``i`` at draw ``s``,

    * ``lppd_i = log(mean_s exp(ll[s, i]))`` (via logsumexp - log S),
    * ``p_waic_i = var_s(ll[s, i])`` (sample variance, ddof = 1),
    * ``elpd_waic_i = lppd_i - p_waic_i``; ``elpd = sum_i``; ``se = sqrt(n var(elpd_i))``.

    Parameters
    ----------
    fit : Fit or xarray.DataTree
        Needs a ``log_likelihood`` group with dims ``(chain, draw, subject)``.
    var_name : str, optional
        Log-likelihood variable (default: the only one, or ``"y"``).

    Returns
    -------
    ICResult
        ``kind="waic"``.  A :class:`~bayesimg.errors.BayesimgWarning` is emitted (and
        recorded in ``warnings``) when any ``p_waic_i > 0.4``, where WAIC is known to be
        unreliable and PSIS-LOO is preferable.

    Raises
    ------
    ModelSpecError
        No log-likelihood, or a single draw (MAP).
    """
    tree, da, name, obs_dims, ll = _prepare(fit, var_name, "waic")
    s = ll.shape[0]
    lppd_i = logsumexp(ll, axis=0) - math.log(s)
    p_i = np.var(ll, axis=0, ddof=1)
    elpd_i = lppd_i - p_i
    labels = _obs_labels(da, obs_dims)
    msgs = []
    high = np.flatnonzero(p_i > P_WAIC_MAX)
    if high.size:
        msgs.append(
            f"{high.size} of {p_i.size} observations have p_waic > {P_WAIC_MAX} "
            f"({_listed(labels[high])}): WAIC is unreliable here; use loo() instead.")
    msgs += _approx_note(tree, "waic")
    _emit(msgs)
    return ICResult(kind="waic", elpd=float(elpd_i.sum()), se=_se(elpd_i), p=float(p_i.sum()),
                    pointwise=elpd_i, n_obs=int(elpd_i.size), n_draws=int(s), warnings=msgs,
                    p_pointwise=p_i, obs_labels=labels, obs_dims=obs_dims, var_name=name,
                    approximate=_tree.is_approximate(tree))


def _relative_eff(tree, n_samples: int) -> float:
    """ArviZ's default r_eff (mean relative ESS of all posterior elements), vectorised.

    ``arviz_stats.loo`` computes the same quantity (``_get_r_eff``) with one Python
    call per posterior element, which takes minutes for large weight matrices.
    """
    post = tree["posterior"].to_dataset()
    if post.sizes.get("chain", 1) == 1:
        return 1.0
    vals = [_mcmc_stats.convergence_table(
                _tree.flatten_var(post, str(name), with_labels=False).values,
                stats=("ess_mean",))["ess_mean"]
            for name in post.data_vars]
    ess = np.concatenate(vals) if vals else np.array([float(n_samples)])
    if not np.isfinite(ess).any():
        return 1.0
    return float(np.nanmean(ess) / n_samples)


def loo(fit: Any, var_name: str | None = None) -> ICResult:
    """Pareto-smoothed importance-sampling leave-one-out cross-validation (PSIS-LOO).

    Wraps ``arviz_stats.loo(tree, pointwise=True, var_name=..., reff=...)``.  ``reff``
    is ArviZ's own default (mean relative ESS over the posterior), computed here with
    vectorised code; for approximate fits it is 1 (independent draws).

    Parameters
    ----------
    fit : Fit or xarray.DataTree
    var_name : str, optional
        Log-likelihood variable (default: the only one, or ``"y"``).

    Returns
    -------
    ICResult
        ``kind="loo"`` with ``pareto_k``.  Warnings (also emitted as
        :class:`~bayesimg.errors.BayesimgWarning`) list how many and which subjects
        have k > 0.7 and k > 1.0, and flag approximate (SVI) posteriors.

    Raises
    ------
    ModelSpecError
        No log-likelihood, or a single draw (MAP).
    """
    from arviz_stats import loo as az_loo

    tree, da, name, obs_dims, ll = _prepare(fit, var_name, "loo")
    n_samples = ll.shape[0]
    approximate = _tree.is_approximate(tree)
    reff = 1.0 if approximate or not _tree.has_group(tree, "posterior") else \
        _relative_eff(tree, n_samples)
    with warnings.catch_warnings():
        # ArviZ's generic Pareto-k UserWarning is replaced by the specific one below.
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        res = az_loo(tree, pointwise=True, var_name=name, reff=reff)

    elpd_i = np.asarray(res.elpd_i.transpose(*obs_dims).values, dtype=float).ravel()
    k = np.asarray(res.pareto_k.transpose(*obs_dims).values, dtype=float).ravel()
    lppd_i = logsumexp(ll, axis=0) - math.log(n_samples)
    labels = _obs_labels(da, obs_dims)
    msgs = []
    # A NaN k (the tail fit failed, e.g. overflowing importance ratios) counts as very bad.
    k_rank = np.where(np.isfinite(k), k, np.inf)
    bad = np.flatnonzero(k_rank > KHAT_BAD)
    if bad.size:
        very = np.flatnonzero(k_rank > KHAT_VERY_BAD)
        n_nan = int(np.sum(~np.isfinite(k)))
        nan_note = f", {n_nan} not estimable" if n_nan else ""
        worst = bad[np.argsort(-k_rank[bad], kind="stable")]
        msgs.append(
            f"{bad.size} of {k.size} observations have Pareto k > {KHAT_BAD} "
            f"({very.size} with k > {KHAT_VERY_BAD}{nan_note}); worst first: "
            f"{_listed(labels[worst])}. "
            "Their PSIS-LOO estimates are unreliable (influential subjects or a model too "
            "flexible for them): check them, use a more robust likelihood, or use K-fold CV.")
    good_k = float(res.good_k) if res.good_k is not None else None
    if good_k is not None and good_k < KHAT_BAD:
        mid = np.flatnonzero((k > good_k) & (k <= KHAT_BAD))
        if mid.size:
            msgs.append(
                f"{mid.size} observations have Pareto k in ({good_k:.2f}, {KHAT_BAD}]: with "
                f"only {n_samples} draws, k above {good_k:.2f} is already unreliable; run "
                "more draws.")
    msgs += _approx_note(tree, "loo")
    _emit(msgs)
    return ICResult(kind="loo", elpd=float(res.elpd), se=float(res.se), p=float(res.p),
                    pointwise=elpd_i, n_obs=int(elpd_i.size), n_draws=int(n_samples),
                    warnings=msgs, pareto_k=k, p_pointwise=lppd_i - elpd_i, obs_labels=labels,
                    obs_dims=obs_dims, var_name=name, good_k=good_k, approximate=approximate)


def _pseudo_bma(elpd: np.ndarray) -> np.ndarray:
    z = np.exp(elpd - np.max(elpd))
    return z / z.sum()


def _stacking_weights(results: dict[str, ICResult]) -> np.ndarray | None:
    """ArviZ's stacking weights (``arviz_stats.compare``), or None if unreliable.

    ``arviz_stats.compare`` optimises ``sum_i log sum_k w_k exp(elpd_ik)`` without
    shifting, so when every model gives some subject a pointwise elpd below about
    -745 (easy when a subject's log-likelihood sums over many phenotypes) the
    exponentials underflow to 0 and the weights are meaningless; None is returned
    then, and also if the weights are not a valid simplex.
    """
    from arviz_stats import compare as az_compare
    from arviz_stats.utils import ELPDDataLOO

    mat = np.column_stack([r.pointwise for r in results.values()])
    if np.any(mat.max(axis=1) < np.log(np.finfo(float).tiny) + 1.0):
        return None
    elpds = {}
    for name, r in results.items():
        elpds[name] = ELPDDataLOO(
            elpd=r.elpd, se=r.se, p=r.p, n_samples=r.n_draws, n_data_points=r.n_obs,
            scale="log", warning=False, good_k=r.good_k,
            elpd_i=xr.DataArray(r.pointwise, dims=["obs"]),
            pareto_k=xr.DataArray(r.pareto_k, dims=["obs"]) if r.pareto_k is not None
            else None,
            approx_posterior=r.approximate)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            table = az_compare(elpds, method="stacking", round_to="none")
    except (ValueError, FloatingPointError, np.linalg.LinAlgError):
        return None
    w = table["weight"].reindex(list(results)).to_numpy(dtype=float)
    if not np.all(np.isfinite(w)) or np.any(w < -1e-8) or abs(w.sum() - 1.0) > 1e-6:
        return None
    return np.clip(w, 0.0, 1.0)


def _check_same_obs(results: dict[str, ICResult]) -> dict[str, ICResult]:
    """Require identical observations; align pointwise values by label if reordered."""
    names = list(results)
    ref_name = names[0]
    ref = results[ref_name]
    ref_labels = list(map(str, ref.obs_labels))
    out = {ref_name: ref}
    for name in names[1:]:
        r = results[name]
        labels = list(map(str, r.obs_labels))
        if labels == ref_labels:
            out[name] = r
            continue
        if sorted(labels) != sorted(ref_labels) or len(set(labels)) != len(labels):
            only_ref = sorted(set(ref_labels) - set(labels))
            only_this = sorted(set(labels) - set(ref_labels))
            raise ModelSpecError(
                f"models {ref_name!r} and {name!r} were evaluated on different subjects "
                f"({len(ref_labels)} vs {len(labels)}; only in {ref_name!r}: "
                f"{only_ref[:_MAX_LISTED]}, only in {name!r}: {only_this[:_MAX_LISTED]}). "
                "Compare fits to the same data.")
        pos = {lab: i for i, lab in enumerate(labels)}
        order = np.array([pos[lab] for lab in ref_labels])
        out[name] = ICResult(**{**r.__dict__, "pointwise": r.pointwise[order],
                                "pareto_k": None if r.pareto_k is None else r.pareto_k[order],
                                "p_pointwise": None if r.p_pointwise is None
                                else r.p_pointwise[order],
                                "obs_labels": r.obs_labels[order]})
    return out


#: estimates by reliability, best first (a reliable estimate has no Pareto k > 0.7):
#: integrated LOO, PSIS-LOO, K-fold, then the unreliable LOO estimates
RELIABILITY = ("integrated", "psis", "kfold", "integrated (unreliable)", "psis (unreliable)")


def _rank_of(r: ICResult) -> int:
    label = r.method if r.reliable or r.method not in ("integrated", "psis") \
        else f"{r.method} (unreliable)"
    return RELIABILITY.index(label) if label in RELIABILITY else len(RELIABILITY)


def _candidates(name: str, f: Any, ic: str, var_name: str | None) -> list[ICResult]:
    """Every estimate available for one model (computing LOO of a fit when needed)."""
    items = list(f) if isinstance(f, list | tuple) else [f]
    out = []
    for item in items:
        if isinstance(item, ICResult):
            out.append(item)
            continue
        try:
            if ic == "waic":
                # a Fit's cached WAIC: its warning is said once per fit, not per compare
                cached_waic = getattr(item, "waic", None)
                out.append(cached_waic() if callable(cached_waic) and var_name is None
                           else waic(item, var_name=var_name))
                continue
            loo_method = getattr(item, "loo", None)
            if callable(loo_method) and var_name is None:
                # a Fit: its default LOO (integrated where the family allows) and any
                # K-fold result attached to it by bayesimg.kfold(..., fit=fit)
                out.append(loo_method(method="psis") if ic == "psis" else loo_method())
                cached = getattr(item, "_results", {}).get("kfold")
                if cached is not None:
                    out.append(cached)
            else:
                out.append(loo(item, var_name=var_name))
        except ModelSpecError as err:
            raise ModelSpecError(f"model {name!r}: {err}") from err
    return out


def _choose(candidates: dict[str, list[ICResult]], ic: str, allow_mixed: bool
            ) -> dict[str, ICResult]:
    """The most reliable estimate per model among those of one shared estimand."""
    if ic in ("waic", "psis", "kfold", "integrated"):
        chosen = {}
        for name, cands in candidates.items():
            keep = [c for c in cands if c.method == ic]
            if not keep:
                raise ModelSpecError(
                    f"model {name!r} has no {ic} estimate (it has: "
                    f"{sorted({c.method for c in cands})}); pass one or use ic='loo'")
            chosen[name] = keep[0]
        return chosen
    best_family = None
    fallback = None
    for family in ("loo", "kfold"):
        if all(any(c.family == family for c in cands) for cands in candidates.values()):
            picked = {n: min((c for c in cands if c.family == family), key=_rank_of)
                      for n, cands in candidates.items()}
            if all(r.reliable for r in picked.values()):
                best_family = picked
                break
            fallback = fallback or picked
    if best_family is not None:
        return best_family
    if fallback is not None:
        return fallback
    if not allow_mixed:
        have = {n: sorted({c.method for c in cands}) for n, cands in candidates.items()}
        raise ModelSpecError(
            f"the models have no estimate of the same kind ({have}): LOO and K-fold "
            "estimates are not comparable (K-fold fits on (K-1)/K of the data). Compute "
            "bayesimg.kfold for every model, or pass allow_mixed=True to compare them anyway")
    return {n: min(cands, key=_rank_of) for n, cands in candidates.items()}


def compare(fits: dict[str, Any], ic: str = "loo", var_name: str | None = None, *,
            allow_mixed: bool = False) -> ComparisonTable:
    """Rank fits by expected log predictive density, best first.

    Parameters
    ----------
    fits : dict of str to Fit, DataTree, ICResult, or a list of them
        Named fits or precomputed estimates.  A list gives several estimates of one
        model (e.g. ``[fit, kfold_result]``); a Fit contributes ``fit.loo()`` (integrated
        LOO where its family allows, else PSIS) and a K-fold result attached by
        ``bayesimg.kfold(..., fit=fit)``.
    ic : {"loo", "waic", "psis", "integrated", "kfold"}, default "loo"
        ``"loo"``: choose, among the estimates every model has, the most reliable
        (:data:`RELIABILITY`: integrated LOO, PSIS-LOO, K-fold; an estimate with Pareto
        k > 0.7 is unreliable): the LOO estimates if every model's are reliable, else
        K-fold if every model has one, else the LOO estimates with a warning naming the
        unreliable models.  The other values ask for that estimate only.
    var_name : str, optional
        Log-likelihood variable.
    allow_mixed : bool
        Compare models with estimates of different kinds (LOO and K-fold) instead of
        raising; the ``estimate`` column says which each row uses.

    Returns
    -------
    pandas.DataFrame
        Index: model names, best first.  Columns: ``rank`` (0 = best), ``elpd``, ``p``,
        ``elpd_diff`` (best minus this model, >= 0), ``se``, ``dse`` (standard error of
        the pointwise difference to the best model, ``sqrt(n var(elpd_best,i -
        elpd_model,i))``), ``weight``, ``warning`` (True if the model's estimate
        reported reliability warnings), ``estimate`` (the method used: ``integrated``,
        ``psis``, ``kfold``, ``waic``).  ``df.attrs``: ``ic``, ``estimates``,
        ``weight_method``, ``n_obs`` and ``warnings`` (per model), ``elpd_data`` (name →
        ArviZ ``ELPDData``, for ``arviz_stats.compare`` / ``arviz_plots.plot_compare``).

        Weights: stacking weights from ``arviz_stats.compare(method="stacking")`` (Yao
        et al. 2018) for LOO and K-fold; if those cannot be computed reliably
        (pointwise elpd so low that ArviZ's unshifted exponentials underflow) the
        table falls back to pseudo-BMA weights and says so in
        ``df.attrs["weight_method"]`` and a warning.  For WAIC: pseudo-BMA
        (Akaike-type) weights ``exp(elpd_k - max elpd) / sum``.

    Raises
    ------
    ModelSpecError
        Fewer than two fits, unknown ``ic``, fits evaluated on different subjects
        (the message names the models), or estimates of different kinds without
        ``allow_mixed=True``.
    """
    ic = str(ic).lower()
    if ic not in ("loo", "waic", "psis", "integrated", "kfold"):
        raise ModelSpecError(
            f"ic must be 'loo', 'waic', 'psis', 'integrated' or 'kfold', got {ic!r}")
    if not isinstance(fits, dict) or len(fits) < 2:
        raise ModelSpecError("compare needs a dict of at least two named fits")
    candidates = {str(name): _candidates(str(name), f, ic, var_name)
                  for name, f in fits.items()}
    for name, cands in candidates.items():
        if ic == "waic" and any(c.kind != "waic" for c in cands):
            raise ModelSpecError(
                f"model {name!r} is a precomputed {cands[0].kind.upper()} result; ic={ic!r}")
        if ic != "waic" and any(c.kind == "waic" for c in cands):
            raise ModelSpecError(f"model {name!r} is a precomputed WAIC result; ic={ic!r}")
    results = _check_same_obs(_choose(candidates, ic, allow_mixed))
    methods = {n: r.method for n, r in results.items()}
    if len({r.family for r in results.values()}) > 1:
        warn_user(f"compare mixes estimates of different kinds ({methods}) as asked "
                  "(allow_mixed=True); elpd differences between them are not like for like")
    if ic == "loo":
        unreliable = [n for n, r in results.items() if not r.reliable]
        if unreliable:
            warn_user(
                f"compare: the estimates of {unreliable} are unreliable "
                f"({ {n: methods[n] for n in unreliable} }, Pareto k > {KHAT_BAD} for some "
                "subjects); compute bayesimg.kfold(model, data, k=10, fit=fit) for every "
                "model, and compare chooses K-fold")
        kfolds = [r.details.get("folds_hash") for r in results.values()
                  if r.method == "kfold"]
        if len(set(kfolds)) > 1:
            warn_user("compare: the K-fold estimates used different folds; pass the same "
                      "folds= (or seed=) to bayesimg.kfold so the differences are paired")

    names = list(results)
    elpd = np.array([results[n].elpd for n in names])
    weight_method = "pseudo-BMA"
    weights = None
    if ic != "waic":
        weights = _stacking_weights(results)
        if weights is not None:
            weight_method = "stacking"
        else:
            warn_user("stacking weights could not be computed reliably; using pseudo-BMA "
                      "weights instead")
    if weights is None:
        weights = _pseudo_bma(elpd)

    order = np.argsort(-elpd, kind="stable")
    best = results[names[order[0]]]
    rows = []
    for rank, i in enumerate(order):
        r = results[names[i]]
        diff_i = best.pointwise - r.pointwise
        rows.append({
            "rank": rank, "elpd": r.elpd, "p": r.p, "elpd_diff": float(diff_i.sum()),
            "se": r.se, "dse": 0.0 if rank == 0 else _se(diff_i),
            "weight": float(weights[i]), "warning": bool(r.warnings) or not r.reliable,
            "estimate": r.method})
    df = ComparisonTable(rows, index=pd.Index([names[i] for i in order], name="model"))
    df.attrs.update({"ic": ic, "weight_method": weight_method, "n_obs": best.n_obs,
                     "estimates": methods,
                     "warnings": {n: list(results[n].warnings) for n in names},
                     "elpd_data": ELPDData({n: results[n].to_arviz() for n in names})})
    return df


class ComparisonTable(DisplayTable):
    """The table :func:`compare` returns: raw values, with a rounded, titled display.

    elpd, p, differences and standard errors are shown to one decimal (log-density
    units, where differences below about 1 carry no information), weights to two,
    the rank as an integer; the data keep every digit.
    """

    _ONE_DECIMAL = ("elpd", "p", "elpd_diff", "se", "dse")

    def display_frame(self, max_rows: int | None = None) -> pd.DataFrame:
        head = self if max_rows is None else self.iloc[:max_rows]

        def shown(column: str, value: object) -> str:
            if isinstance(value, bool | np.bool_):
                return "yes" if value else ""
            if column in self._ONE_DECIMAL and isinstance(value, int | float | np.number):
                return f"{float(value):.1f}" if np.isfinite(value) else "—"
            if column == "weight" and isinstance(value, int | float | np.number):
                return f"{float(value):.2f}"
            if column == "rank":
                return str(int(value))
            return str(value)

        return pd.DataFrame({c: [shown(str(c), v) for v in head[c]] for c in head.columns},
                            index=pd.Index(head.index, name=head.index.name))

    def _title(self) -> str:
        attrs = self.attrs
        ic = str(attrs.get("ic", "loo")).upper()
        parts = [f"Model comparison by {ic} (elpd: higher is better)"]
        if attrs.get("n_obs") is not None:
            parts.append(f"{attrs['n_obs']} subjects")
        if attrs.get("weight_method"):
            parts.append(f"{attrs['weight_method']} weights")
        return ", ".join(parts)


class ELPDData(dict):
    """Model name → ArviZ ELPD data, kept in a comparison table's ``attrs``.

    Compares by identity: pandas compares ``attrs`` when tables are concatenated or
    merged, and the arrays inside ELPD data cannot be compared elementwise to one bool.
    """

    __eq__ = object.__eq__
    __hash__ = object.__hash__
