"""Convergence diagnostics with a verdict and advice.

Thresholds are those used by Stan, PyMC and brms (Vehtari et al. 2021 for R-hat and
ESS; Betancourt 2016 for BFMI).  All numbers are raw (unrounded), so thresholds are
applied to exact values: ArviZ 1.x's ``summary`` rounds to two significant figures
unless ``round_to="none"``, which would turn an R-hat of 1.014 into 1.0.

For approximate fits (SVI, MAP) R-hat and ESS are not reported as verdicts: the
draws are independent samples from the approximation, so they can look perfect
while the approximation itself is poor.  SVI fits are judged on ELBO convergence
(root attribute ``svi_converged``) instead.

Parameters a model declares unidentified by design are left out of R-hat and ESS,
and the verdict says how many and why: a model's ``align_draws`` info (root
attribute ``alignment``) may hold ``convergence_exclude = {"reason": text,
"elements": [{"var": name, "sel": {dim: label, ...}}, ...]}`` (an empty ``sel``: the
whole variable).  The factor model
lists there the loadings (``W_<view>``, ``incl_<view>``) and ARD precisions
(``alpha``) of factors its own activity measure finds switched off in a view
(and the scores ``Z`` of factors off in every view): those are draws from the
shrinkage prior, whose scale wanders freely, not convergence failures.

A model may also name groups of variables that answer different questions, under
``convergence_groups = {group: [var, ...]}`` in the same info (BNMix: "clusters" —
weights and memberships — and "networks" — skeleton indicators and implied moments).
Each group then gets its own line (max R-hat, min ESS, converged or not), so a fit
whose clusters converged while its networks did not says so instead of one blanket
verdict.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import xarray as xr

from bayesimg import mcmc_stats as _mcmc_stats
from bayesimg.errors import LIBRARY_FILES, ConvergenceWarning
from bayesimg.mcmc_stats import ESS_MIN, RHAT_MAX, longer_run_factor
from bayesimg.report import _tree

__all__ = ["Diagnostics", "diagnose", "warn_if_problems", "sampling_problems",
           "warn_after_sampling", "RHAT_MAX", "ESS_MIN", "BFMI_MIN",
           "DEFAULT_MAX_TREE_DEPTH", "N_WORST"]

#: E-BFMI below this (per chain) means the momentum resampling explores energy poorly.
BFMI_MIN = 0.3
#: NUTS ``max_tree_depth`` assumed when the fit's settings do not record it (NumPyro's).
DEFAULT_MAX_TREE_DEPTH = 10
#: Number of worst parameters listed.
N_WORST = 5


@dataclass(repr=False)
class Diagnostics:
    """Raw convergence numbers of a fit, with a verdict.

    Attributes
    ----------
    method : str or None
        Inference method (``nuts``, ``gibbs``, ``svi``, ``map``).
    approximate : bool
        True for SVI/MAP: R-hat and ESS are NaN and not used for the verdict.
    n_chains, n_draws, n_params : int
        Chains, draws per chain, scalar parameters checked.
    max_rhat : float
        Largest rank-normalised split R-hat (NaN if not computable).
    min_ess_bulk, min_ess_tail : float
        Smallest bulk and tail ESS (total over chains).
    n_divergent : int or None
        Divergent transitions after warm-up (None: not recorded, e.g. Gibbs).
    n_max_treedepth : int or None
        Draws whose NUTS tree reached ``max_tree_depth`` (None: not recorded).
    max_tree_depth : int or None
        The tree-depth limit used for that count.
    bfmi : ndarray or None
        E-BFMI per chain (None without an ``energy`` sample stat).
    worst_rhat : list of (str, float)
        The parameters with the largest R-hat, worst first.
    worst_ess : list of (str, float)
        The parameters with the smallest min(bulk, tail) ESS, worst first.
    svi_converged : bool or None
        ELBO convergence flag of SVI fits.
    problems : list of str
        Failed checks, each with advice.  Empty means the fit passed.
    messages : list of str
        Every verdict message: the problems, then notes and efficiency warnings.
    ok : bool
        True when there are no problems.
    """

    method: str | None
    approximate: bool
    n_chains: int
    n_draws: int
    n_params: int
    max_rhat: float = np.nan
    min_ess_bulk: float = np.nan
    min_ess_tail: float = np.nan
    n_divergent: int | None = None
    n_max_treedepth: int | None = None
    max_tree_depth: int | None = None
    bfmi: np.ndarray | None = None
    worst_rhat: list[tuple[str, float]] = field(default_factory=list)
    worst_ess: list[tuple[str, float]] = field(default_factory=list)
    svi_converged: bool | None = None
    problems: list[str] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    ok: bool = True

    @property
    def worst_parameters(self) -> list[str]:
        """Names of the worst parameters by R-hat, then by ESS, without repeats."""
        seen: list[str] = []
        for name, _ in [*self.worst_rhat, *self.worst_ess]:
            if name not in seen:
                seen.append(name)
        return seen

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        from bayesimg.report.display import key_value_table, number
        rows = [("method", f"{self.method or '?'}: {self.n_chains} chain(s) × "
                           f"{self.n_draws} draw(s), {self.n_params} parameter(s)")]
        if not self.approximate:
            rows += [("max R-hat", f"{number(self.max_rhat, 4)} (problem if > {RHAT_MAX})"),
                     ("min ESS bulk / tail", f"{number(self.min_ess_bulk, 0)} / "
                                             f"{number(self.min_ess_tail, 0)} "
                                             f"(problem if < {ESS_MIN})")]
        if self.n_divergent is not None:
            rows.append(("divergences", str(self.n_divergent)))
        if self.bfmi is not None:
            rows.append(("E-BFMI per chain", " ".join(number(b, 2) for b in self.bfmi)))
        if self.svi_converged is not None:
            rows.append(("ELBO converged", "yes" if self.svi_converged else "NO"))
        return key_value_table("Convergence diagnostics", rows, notes=self.messages,
                               verdict="OK" if self.ok else "PROBLEMS")

    def __str__(self) -> str:
        head = (f"Convergence diagnostics ({self.method or 'unknown method'}: "
                f"{self.n_chains} chain(s) x {self.n_draws} draw(s), "
                f"{self.n_params} parameter(s))")
        lines = [head]

        def row(name: str, value: str, rule: str = "") -> None:
            lines.append(f"  {name:<16}{value:<14} {rule}".rstrip())

        if self.approximate:
            row("R-hat / ESS", "n/a", "(approximate fit)")
        else:
            row("max R-hat", _fmt(self.max_rhat, ".4f"), f"(problem if > {RHAT_MAX})")
            row("min ESS bulk", _fmt(self.min_ess_bulk, ".0f"), f"(problem if < {ESS_MIN})")
            row("min ESS tail", _fmt(self.min_ess_tail, ".0f"), f"(problem if < {ESS_MIN})")
        if self.n_divergent is not None:
            row("divergences", str(self.n_divergent), "(problem if > 0)")
        if self.n_max_treedepth is not None:
            row("max tree depth", str(self.n_max_treedepth),
                f"(draws at depth {self.max_tree_depth})")
        if self.bfmi is not None:
            row("E-BFMI/chain", " ".join(_fmt(b, ".2f") for b in self.bfmi),
                f"(problem if < {BFMI_MIN})")
        if self.svi_converged is not None:
            row("ELBO converged", "yes" if self.svi_converged else "NO")
        lines.append(f"Verdict: {'OK' if self.ok else 'PROBLEMS'}")
        lines.extend(f"  - {m}" for m in self.messages)
        return "\n".join(lines)


def _fmt(x: float | None, spec: str) -> str:
    if x is None or not np.isfinite(x):
        return "nan"
    return format(float(x), spec)


def _worst(labels: list[str], values: np.ndarray, largest: bool) -> list[tuple[str, float]]:
    finite = np.flatnonzero(np.isfinite(values))
    if finite.size == 0:
        return []
    key = -values[finite] if largest else values[finite]
    pick = finite[np.argsort(key, kind="stable")[:N_WORST]]
    return [(labels[i], float(values[i])) for i in pick]


def _named(items: list[tuple[str, float]], spec: str) -> str:
    return ", ".join(f"{name} ({format(v, spec)})" for name, v in items)


def _exclusions(tree: xr.DataTree, post: xr.Dataset) -> tuple[dict[str, np.ndarray], str]:
    """Keep-masks (flattened as :func:`_tree.flatten_var`) of the variables with elements
    the model excludes from convergence checks, and the model's reason."""
    raw = tree.attrs.get("alignment")
    try:
        info = json.loads(raw) if isinstance(raw, str) else dict(raw or {})
    except (json.JSONDecodeError, TypeError, ValueError):
        return {}, ""
    spec = info.get("convergence_exclude") if isinstance(info, dict) else None
    if not isinstance(spec, dict) or not spec.get("elements"):
        return {}, ""
    masks: dict[str, xr.DataArray] = {}
    for item in spec["elements"]:
        name, sel = item.get("var"), dict(item.get("sel") or {})
        if name not in post.data_vars:
            continue
        da = post[name]
        dims = [str(d) for d in da.dims[2:]]
        if not set(sel) <= set(dims):
            continue
        if name not in masks:
            masks[name] = xr.DataArray(np.ones([da.sizes[d] for d in dims], bool), dims=dims,
                                       coords={d: da[d].values for d in dims if d in da.coords})
        if not sel:  # the whole variable
            masks[name][...] = False
            continue
        try:
            masks[name].loc[sel] = False
        except (KeyError, ValueError):
            continue
    out = {name: m.transpose(*[str(d) for d in post[name].dims[2:]]).values.ravel()
           for name, m in masks.items()}
    return out, str(spec.get("reason", "declared unidentified by the model"))


def _model_summary(tree: xr.DataTree) -> str:
    """The model's own one-line account of its identified quantities (``alignment`` root
    attribute, key ``convergence_summary``), or ''."""
    raw = tree.attrs.get("alignment")
    try:
        info = json.loads(raw) if isinstance(raw, str) else dict(raw or {})
    except (json.JSONDecodeError, TypeError, ValueError):
        return ""
    return str(info.get("convergence_summary", "")) if isinstance(info, dict) else ""


def _kept(block: _tree.Block, keep: dict[str, np.ndarray]) -> tuple[np.ndarray, list[str]]:
    """The block's draws and labels without its excluded elements."""
    mask = keep.get(block.name)
    if mask is None or mask.size != block.values.shape[0]:
        return block.values, list(block.labels)
    return block.values[mask], [lab for lab, k in zip(block.labels, mask, strict=True) if k]


def _excluded_note(n: int, reason: str) -> str:
    return f"{n} parameter(s) not checked for convergence: {reason}."


def _groups(tree: xr.DataTree) -> dict[str, list[str]]:
    """The model's ``convergence_groups`` (module docstring), or {}."""
    raw = tree.attrs.get("alignment")
    try:
        info = json.loads(raw) if isinstance(raw, str) else dict(raw or {})
    except (json.JSONDecodeError, TypeError, ValueError):
        return {}
    groups = info.get("convergence_groups") if isinstance(info, dict) else None
    if not isinstance(groups, dict):
        return {}
    return {str(k): [str(v) for v in vs] for k, vs in groups.items() if isinstance(vs, list)}


def _group_lines(groups: dict[str, list[str]], per_var: dict[str, tuple[np.ndarray, np.ndarray]],
                 n_chains: int) -> list[str]:
    """One line per group: its worst R-hat and ESS and whether it passes."""
    lines = []
    for group, names in groups.items():
        present = [n for n in names if n in per_var]
        if not present:
            continue
        rhat = np.concatenate([per_var[n][0] for n in present])
        ess = np.concatenate([per_var[n][1] for n in present])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            r = float(np.nanmax(rhat)) if np.isfinite(rhat).any() else np.nan
            e = float(np.nanmin(ess)) if np.isfinite(ess).any() else np.nan
        ok = (n_chains >= 2 and not (r > RHAT_MAX) and not (e < ESS_MIN))
        lines.append(f"{group} ({', '.join(present)}): max R-hat {_fmt(r, '.3f')}, min ESS "
                     f"{_fmt(e, '.0f')} - {'converged' if ok else 'NOT converged'}.")
    return lines


def _check_mcmc(diag: Diagnostics, blocks: list[_tree.Block],
                keep: dict[str, np.ndarray] | None = None, reason: str = "",
                summary: str = "", groups: dict[str, list[str]] | None = None) -> None:
    keep = keep or {}
    per_var: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    n_excluded = 0
    labels: list[str] = []
    stats: dict[str, list[np.ndarray]] = {"rhat": [], "ess_bulk": [], "ess_tail": []}
    for b in blocks:
        values, block_labels = _kept(b, keep)
        n_excluded += b.values.shape[0] - values.shape[0]
        if not values.shape[0]:
            continue
        res = _mcmc_stats.convergence_table(values, stats=("rhat", "ess_bulk", "ess_tail"))
        for k in stats:
            stats[k].append(res[k])
        labels.extend(block_labels)
        per_var[b.name] = (res["rhat"], np.fmin(res["ess_bulk"], res["ess_tail"]))
    rhat = np.concatenate(stats["rhat"]) if labels else np.array([])
    bulk = np.concatenate(stats["ess_bulk"]) if labels else np.array([])
    tail = np.concatenate(stats["ess_tail"]) if labels else np.array([])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        diag.max_rhat = float(np.nanmax(rhat)) if np.isfinite(rhat).any() else np.nan
        diag.min_ess_bulk = float(np.nanmin(bulk)) if np.isfinite(bulk).any() else np.nan
        diag.min_ess_tail = float(np.nanmin(tail)) if np.isfinite(tail).any() else np.nan
        ess = np.fmin(bulk, tail)
    diag.worst_rhat = _worst(labels, rhat, largest=True)
    diag.worst_ess = _worst(labels, ess, largest=False)

    if diag.n_chains < 2:
        diag.messages.append(
            "R-hat needs at least 2 chains and was not computed; run 4 chains to check "
            "that independent chains agree.")
    if n_excluded:
        diag.messages.append(_excluded_note(n_excluded, reason))
    diag.messages.extend(_group_lines(groups or {}, per_var, diag.n_chains))
    bad_rhat = rhat > RHAT_MAX
    bad_ess = ess < ESS_MIN
    if bad_rhat.any() or bad_ess.any():
        diag.problems.append(_not_converged_line(labels, rhat, ess, diag.n_draws))
    if summary:
        diag.messages.append(f"Identified quantities: {summary}.")
    if bad_rhat.any():
        over = [w for w in diag.worst_rhat if w[1] > RHAT_MAX]
        diag.problems.append(
            f"R-hat > {RHAT_MAX} for {int(bad_rhat.sum())} of {rhat.size} parameters "
            f"(worst: {_named(over, '.3f')}): the chains disagree, so the posterior has not "
            "been explored. Run longer (more warm-up and draws), check for multimodality or "
            "non-identifiability (label switching, sign flips), or reparameterise.")
    if bad_ess.any():
        under = [w for w in diag.worst_ess if w[1] < ESS_MIN]
        diag.problems.append(
            f"ESS < {ESS_MIN} for {int(bad_ess.sum())} of {ess.size} parameters "
            f"(worst: {_named(under, '.0f')}): too few effective draws for reliable "
            "means and 95% intervals. Draw more samples or reparameterise to reduce "
            "autocorrelation.")


def _variable(label: str) -> str:
    return label.split("[", 1)[0]


def _not_converged_line(labels: list[str], rhat: np.ndarray, ess: np.ndarray,
                        n_draws: int) -> str:
    """One line: which quantities failed, how badly, and about how much longer to run."""
    bad = (rhat > RHAT_MAX) | (ess < ESS_MIN)
    groups: dict[str, list[int]] = {}
    for i in np.flatnonzero(bad):
        groups.setdefault(_variable(labels[i]), []).append(int(i))
    worst_first = sorted(groups, key=lambda g: -np.nanmax(
        [longer_run_factor(rhat[i], ess[i]) for i in groups[g]]))
    parts = []
    for g in worst_first[:4]:
        idx = groups[g]
        r = np.nanmax(rhat[idx]) if np.isfinite(rhat[idx]).any() else np.nan
        e = np.nanmin(ess[idx]) if np.isfinite(ess[idx]).any() else np.nan
        worst = labels[max(idx, key=lambda i: longer_run_factor(rhat[i], ess[i]))]
        parts.append(f"{g} ({len(idx)}, worst {worst}: R-hat up to {_fmt(r, '.3f')}, "
                     f"ESS down to {_fmt(e, '.0f')})")
    more = f" and {len(worst_first) - 4} more" if len(worst_first) > 4 else ""
    factor = max(longer_run_factor(rhat[i], ess[i]) for i in np.flatnonzero(bad))
    draws = int(np.ceil(factor * n_draws / 100.0) * 100)
    return (f"Not converged: {'; '.join(parts)}{more}. Run about {factor:.0f}x longer "
            f"(~{draws} draws per chain, with warm-up to match).")


def _sample_stat(ss: xr.Dataset | None, name: str) -> np.ndarray | None:
    if ss is None or name not in ss.data_vars:
        return None
    return np.asarray(ss[name].values)


def _check_sampler(diag: Diagnostics, tree: xr.DataTree) -> None:
    ss = tree["sample_stats"].to_dataset() if _tree.has_group(tree, "sample_stats") else None
    n_total = diag.n_chains * diag.n_draws

    diverging = _sample_stat(ss, "diverging")
    if diverging is not None:
        diag.n_divergent = int(np.count_nonzero(diverging.astype(bool)))
        if diag.n_divergent > 0:
            pct = 100.0 * diag.n_divergent / max(n_total, 1)
            diag.problems.append(
                f"{diag.n_divergent} divergent transition(s) ({pct:.2g}% of draws): the "
                "sampler met curvature it cannot follow and the posterior may be biased. "
                "Increase target_accept (e.g. 0.95 or 0.99) and, if they persist, use a "
                "non-centred parameterisation of hierarchical scales.")

    settings = _tree.settings(tree)
    max_depth = settings.get("max_tree_depth", tree.attrs.get("max_tree_depth"))
    max_depth = int(max_depth) if max_depth is not None else DEFAULT_MAX_TREE_DEPTH
    depth = _sample_stat(ss, "tree_depth")
    n_steps = _sample_stat(ss, "n_steps")
    if depth is not None:
        hits = int(np.count_nonzero(depth >= max_depth))
    elif n_steps is not None:
        hits = int(np.count_nonzero(n_steps >= 2**max_depth - 1))
    else:
        hits = None
    if hits is not None:
        diag.n_max_treedepth = hits
        diag.max_tree_depth = max_depth
        if hits > 0:
            diag.messages.append(
                f"Efficiency warning: {hits} draw(s) hit the maximum tree depth {max_depth}; "
                "trajectories were cut short. Results stay valid, but consider raising "
                "max_tree_depth or reparameterising (strong posterior correlations).")

    energy = ss["energy"] if ss is not None and "energy" in ss.data_vars else None
    if energy is not None and energy.sizes.get("draw", 0) > 2:
        from arviz_stats import bfmi as _az_bfmi

        diag.bfmi = np.atleast_1d(np.asarray(_az_bfmi(energy, sample_dims=["chain", "draw"])))
        low = np.flatnonzero(diag.bfmi < BFMI_MIN)
        if low.size:
            diag.problems.append(
                f"E-BFMI < {BFMI_MIN} in chain(s) {', '.join(map(str, low))} "
                f"({', '.join(_fmt(diag.bfmi[i], '.2f') for i in low)}): the sampler "
                "explores the energy distribution poorly, typical of heavy-tailed or "
                "funnel-shaped posteriors. Reparameterise (non-centred scales).")


def _check_approximate(diag: Diagnostics, tree: xr.DataTree) -> None:
    name = (diag.method or "approximate").upper()
    if diag.method == "map" or diag.n_chains * diag.n_draws == 1:
        diag.messages.append(
            f"{name} gives a single point estimate: there is no posterior uncertainty, and "
            "R-hat, ESS, intervals, LOO and WAIC do not apply.")
    else:
        diag.messages.append(
            f"R-hat and ESS do not apply to {name} fits: the draws are independent samples "
            "from an approximation, so they cannot reveal how far it is from the posterior. "
            "Check key results against NUTS on a subset of the data.")
    diag.svi_converged = _tree.attr_bool(tree, "svi_converged")
    final = None
    if _tree.has_group(tree, "svi") and "elbo" in tree["svi"].to_dataset().data_vars:
        elbo = np.asarray(tree["svi"]["elbo"].values, dtype=float).ravel()
        if elbo.size:
            final = float(np.mean(elbo[-max(1, elbo.size // 20):]))
    at = f" (final ELBO {final:.6g})" if final is not None else ""
    if diag.svi_converged is True:
        diag.messages.append(f"The ELBO converged{at}.")
    elif diag.svi_converged is False:
        diag.problems.append(
            f"The ELBO did not converge{at}: the optimisation stopped while still improving. "
            "Run more steps or lower the learning rate, then check plot_elbo().")
    elif diag.method == "svi":
        diag.messages.append("No ELBO convergence record ('svi_converged') in the fit.")


def diagnose(fit: Any, var_names: str | list[str] | None = None) -> Diagnostics:
    """Check a fit's convergence and return the numbers with a verdict.

    Parameters
    ----------
    fit : Fit or xarray.DataTree
    var_names : str or list of str, optional
        Posterior variables to check (default: all).

    Returns
    -------
    Diagnostics
        ``str(diag)`` is a readable report; ``diag.ok`` the verdict.

    Notes
    -----
    Problems (``ok`` becomes False): R-hat > :data:`RHAT_MAX`, bulk or tail ESS <
    :data:`ESS_MIN`, any divergent transition, E-BFMI < :data:`BFMI_MIN` in any
    chain, and for SVI an ELBO that did not converge.  Draws that hit the maximum
    tree depth are reported as an efficiency warning and do not fail the verdict
    (the draws remain valid).  E-BFMI is computed with ``arviz_stats.bfmi``; R-hat
    and ESS with the vectorised equivalents of ``arviz_stats.rhat``/``ess``.
    """
    tree = _tree.as_tree(fit)
    post = _tree.group(tree, "posterior", purpose="diagnostics")
    names = _tree.select_vars(post, var_names, "the posterior")
    approximate = _tree.is_approximate(tree)
    blocks = [_tree.flatten_var(post, n) for n in names]
    diag = Diagnostics(
        method=_tree.method(tree), approximate=approximate,
        n_chains=int(post.sizes.get("chain", 0)), n_draws=int(post.sizes.get("draw", 0)),
        n_params=int(sum(b.values.shape[0] for b in blocks)))
    if approximate:
        _check_approximate(diag, tree)
    else:
        _check_mcmc(diag, blocks, *_exclusions(tree, post), summary=_model_summary(tree),
                    groups=_groups(tree))
        _check_sampler(diag, tree)
    diag.messages[:0] = diag.problems
    diag.ok = not diag.problems
    return diag


def warn_if_problems(diag: Diagnostics, stacklevel: int = 2) -> bool:
    """Emit one :class:`~bayesimg.errors.ConvergenceWarning` listing the problems.

    Parameters
    ----------
    diag : Diagnostics
    stacklevel : int, default 2
        Ignored (kept for compatibility): the warning points at the first frame outside
        bayesimg, i.e. the user's own line.

    Returns
    -------
    bool
        True if a warning was emitted.
    """
    if diag.ok:
        return False
    text = "; ".join(diag.problems)
    warnings.warn(f"Convergence problems ({diag.method or 'fit'}): {text}",
                  ConvergenceWarning, skip_file_prefixes=LIBRARY_FILES)
    return True


def sampling_problems(fit: Any) -> list[str]:
    """The problems an MCMC run reports at once: divergences, R-hat, Cholesky jitter.

    A lighter check than :func:`diagnose` (no ESS, no E-BFMI), run automatically
    by :func:`bayesimg.fit` after every NUTS/Gibbs run; each item carries advice.
    Empty for approximate fits.
    """
    tree = _tree.as_tree(fit)
    if _tree.is_approximate(tree) or not _tree.has_group(tree, "posterior"):
        return []
    post = tree["posterior"].to_dataset()
    n_chains, n_draws = int(post.sizes.get("chain", 0)), int(post.sizes.get("draw", 0))
    ss = tree["sample_stats"].to_dataset() if _tree.has_group(tree, "sample_stats") else None
    problems: list[str] = []

    diverging = _sample_stat(ss, "diverging")
    if diverging is not None and diverging.astype(bool).any():
        n_div = int(np.count_nonzero(diverging.astype(bool)))
        pct = 100.0 * n_div / max(n_chains * n_draws, 1)
        problems.append(
            f"{n_div} divergent transition(s) ({pct:.2g}% of draws): the sampler met "
            "curvature it cannot follow and the posterior may be biased. Increase "
            "target_accept (e.g. 0.95 or 0.99) and, if they persist, use a non-centred "
            "parameterisation of hierarchical scales (or the exact Gibbs kernel, "
            "method='gibbs', where the model has one).")

    if n_chains >= 2 and n_draws >= 4:
        keep, reason = _exclusions(tree, post)
        labels: list[str] = []
        rhats: list[np.ndarray] = []
        n_excluded = 0
        for name in post.data_vars:
            block = _tree.flatten_var(post, str(name))
            values, block_labels = _kept(block, keep)
            n_excluded += block.values.shape[0] - values.shape[0]
            if values.shape[0]:
                rhats.append(_mcmc_stats.convergence_table(values, stats=("rhat",))["rhat"])
                labels.extend(block_labels)
        rhat = np.concatenate(rhats) if rhats else np.array([])
        bad = rhat > RHAT_MAX
        if bad.any():
            worst = [w for w in _worst(labels, rhat, largest=True) if w[1] > RHAT_MAX]
            note = f" ({_excluded_note(n_excluded, reason)[:-1]})" if n_excluded else ""
            problems.append(
                f"R-hat > {RHAT_MAX} for {int(bad.sum())} of {rhat.size} parameters "
                f"(worst: {_named(worst, '.3f')}){note}: the chains disagree, so the "
                "posterior has not been explored. Run longer (more warm-up and draws), check "
                "for multimodality or non-identifiability, or reparameterise.")

    jitter = _sample_stat(ss, "cholesky_jitter")
    if jitter is not None and np.any(jitter > 0):
        # the retry limit is written with the stat at fit time (fits saved before it was
        # recorded all used 5 retries)
        tries = int(ss["cholesky_jitter"].attrs.get("jitter_tries", 5))
        n_used = int(np.count_nonzero(jitter > 0))
        failed = int(np.count_nonzero(jitter > tries))
        tail = (f"; in {failed} of them even the largest jitter failed and the draws are "
                "not finite" if failed else "")
        problems.append(
            f"{n_used} of {jitter.size} recorded Gibbs sweeps needed jitter on the "
            f"diagonal to factor a numerically singular precision matrix (up to "
            f"{int(jitter.max())} retries; sample stat 'cholesky_jitter'){tail}. Those "
            "draws are slightly over-concentrated. Usual causes: duplicated or perfectly "
            "correlated SNP columns (prune them with bayesimg.data.ld_prune), a very "
            "small lambda, or float32 precision (bayesimg.set_precision('float64')).")
    return problems


def warn_after_sampling(fit: Any, stacklevel: int = 3) -> bool:
    """Emit one :class:`~bayesimg.errors.ConvergenceWarning` for :func:`sampling_problems`."""
    problems = sampling_problems(fit)
    if not problems:
        return False
    method = _tree.method(_tree.as_tree(fit)) or "mcmc"
    warnings.warn(f"Convergence problems ({method}): " + "; ".join(problems) +
                  " Run bayesimg.report.diagnose(fit) for the full check.",
                  ConvergenceWarning, skip_file_prefixes=LIBRARY_FILES)
    return True
