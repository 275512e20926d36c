"""Predictive model comparison: WAIC, PSIS-LOO and ranking tables.

The unit of prediction is whatever indexes the pointwise log-likelihood after
``chain`` and ``draw`` -- in bayesimg fits, the **subject** (the log-likelihood is
already summed over phenotypes), i.e. leave-one-subject-out.

* :func:`waic` is computed here from the pointwise log-likelihood: ArviZ 1.x removed
  WAIC.  Formulae follow Vehtari, Gelman & Gabry (2017) and R's ``loo::waic``.
* :func:`loo` wraps ``arviz_stats.loo`` (PSIS-LOO) and reports Pareto k values.
* :func:`compare` ranks fits and computes the standard error of each difference
  from the pointwise values (same subjects required).

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

from bayesimg.errors import BayesimgWarning, ModelSpecError
from bayesimg.report import _mcmc_stats, _tree

__all__ = ["ICResult", "waic", "loo", "compare", "P_WAIC_MAX", "KHAT_BAD", "KHAT_VERY_BAD"]

#: Pointwise p_waic above this makes WAIC unreliable (R ``loo``'s threshold).
P_WAIC_MAX = 0.4
#: Pareto k above this: the PSIS estimate for that subject is unreliable.
KHAT_BAD = 0.7
#: Pareto k above this: importance sampling fails for that subject (mean undefined).
KHAT_VERY_BAD = 1.0
# How many subject labels a warning lists before "...".
_MAX_LISTED = 10


@dataclass
class ICResult:
    """An information criterion (WAIC or PSIS-LOO) on the log score (elpd) scale.

    Attributes
    ----------
    kind : {"waic", "loo"}
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

    @property
    def ic(self) -> float:
        """The criterion on the deviance scale, ``-2 * elpd`` (WAIC / LOOIC)."""
        return -2.0 * self.elpd

    def __str__(self) -> str:
        lines = [
            f"{self.kind.upper()} ({self.n_obs} observations over {self.obs_dims}, "
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
        warnings.warn(m, BayesimgWarning, stacklevel=3)


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


def compare(fits: dict[str, Any], ic: str = "loo", var_name: str | None = None) -> pd.DataFrame:
    """Rank fits by expected log predictive density, best first.

    Parameters
    ----------
    fits : dict of str to Fit, DataTree or ICResult
        Named fits (or precomputed :func:`loo`/:func:`waic` results of the matching kind).
    ic : {"loo", "waic"}, default "loo"
        Criterion.
    var_name : str, optional
        Log-likelihood variable.

    Returns
    -------
    pandas.DataFrame
        Index: model names, best first.  Columns: ``rank`` (0 = best), ``elpd``, ``p``,
        ``elpd_diff`` (best minus this model, >= 0), ``se``, ``dse`` (standard error of
        the pointwise difference to the best model, ``sqrt(n var(elpd_best,i -
        elpd_model,i))``), ``weight``, ``warning`` (True if the model's criterion
        reported reliability warnings).  ``df.attrs``: ``ic``, ``weight_method``,
        ``n_obs`` and ``warnings`` (per model).

        Weights: for LOO, stacking weights from ``arviz_stats.compare(method=
        "stacking")`` (Yao et al. 2018); if those cannot be computed reliably
        (pointwise elpd so low that ArviZ's unshifted exponentials underflow) the
        table falls back to pseudo-BMA weights and says so in
        ``df.attrs["weight_method"]`` and a warning.  For WAIC: pseudo-BMA
        (Akaike-type) weights ``exp(elpd_k - max elpd) / sum``.

    Raises
    ------
    ModelSpecError
        Fewer than two fits, unknown ``ic``, or fits evaluated on different subjects
        (the message names the models).
    """
    ic = str(ic).lower()
    if ic not in ("loo", "waic"):
        raise ModelSpecError(f"ic must be 'loo' or 'waic', got {ic!r}")
    if not isinstance(fits, dict) or len(fits) < 2:
        raise ModelSpecError("compare needs a dict of at least two named fits")
    func = loo if ic == "loo" else waic
    results: dict[str, ICResult] = {}
    for name, f in fits.items():
        if isinstance(f, ICResult):
            if f.kind != ic:
                raise ModelSpecError(
                    f"model {name!r} is a precomputed {f.kind.upper()} result; ic={ic!r}")
            results[str(name)] = f
        else:
            try:
                results[str(name)] = func(f, var_name=var_name)
            except ModelSpecError as err:
                raise ModelSpecError(f"model {name!r}: {err}") from err
    results = _check_same_obs(results)

    names = list(results)
    elpd = np.array([results[n].elpd for n in names])
    weight_method = "pseudo-BMA"
    weights = None
    if ic == "loo":
        weights = _stacking_weights(results)
        if weights is not None:
            weight_method = "stacking"
        else:
            warnings.warn("stacking weights could not be computed reliably; using pseudo-BMA "
                          "weights instead", BayesimgWarning, stacklevel=2)
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
            "weight": float(weights[i]), "warning": bool(r.warnings)})
    df = pd.DataFrame(rows, index=pd.Index([names[i] for i in order], name="model"))
    df.attrs.update({"ic": ic, "weight_method": weight_method, "n_obs": best.n_obs,
                     "warnings": {n: list(results[n].warnings) for n in names}})
    return df
