r"""Bayesian-network mixture clustering (BNMix): a mixture of K DAG models.

In the spirit of bnClustOmics (Suter et al. 2022, PLoS Comput Biol), but fully
Bayesian: subjects fall into K clusters, and within cluster k the nodes (the
features of all views) follow a Bayesian network on a DAG G_k with its own
weights, so clusters may differ only in their dependence structure.

Notation: n subjects, p nodes (Gaussian nodes standardised), K clusters; B_k
(p × p) with B_k[i, j] the weight of edge i → j ("parent" i, "node" j); a node
order σ shared by the clusters makes every B_k triangular after permutation.

Joint density::

    π ~ Dirichlet(α 1_K)
    z_i | π ~ Categorical(π)                          (marginalised for NUTS/SVI)
    x_ij | z_i = k ~ N(μ_kj + Σ_i' B_k[i', j] x_ii', σ²_kj)       Gaussian node j
    x_ij | z_i = k ~ Bernoulli(logit⁻¹ μ_kj)                       binary node j (a root)
    logit⁻¹ μ_kj ~ Beta(1, 1) (binary),  σ²_kj ~ InvGamma(a, b) (Gaussian)
    B_k[i, j] = 0 unless i precedes j in σ, the edge is not blacklisted and j is Gaussian;
    σ: given, or uniform over orders consistent with the whitelist (Gibbs only).

Partial pooling across clusters (``pooling=True``, the default).  Every Gaussian
node's intercept and allowed edge weights are a shared part plus a cluster
deviation, each with horseshoe shrinkage (Carvalho et al. 2010)::

    μ_kj = m_j + δ_kj,            m_j ~ N(0, s_μ²),   δ_kj ~ N(0, ω² ψ²_kj)
    B_k[i, j] = B₀[i, j] + Δ_k[i, j]
    B₀[i, j] ~ N(0, τ₀² λ₀²_ij)                        (shared network)
    Δ_k[i, j] ~ N(0, σ²_kj τ_k² λ²_kij)                (deviation, scaled by the noise)
    λ₀_ij, λ_kij ~ C⁺(0, 1/pf_ij),  ψ_kj ~ C⁺(0, 1)
    τ₀ ~ C⁺(0, t₀ₛ),  τ_k ~ C⁺(0, t₀),  ω ~ C⁺(0, ω₀)
    whitelisted edges: B₀[i, j] ~ N(0, c²) (no shrinkage), Δ as above.

So the clusters share one network and one set of node means unless the data say
otherwise, and a difference in one edge or one mean costs one deviation, not a
fresh estimate of every parameter.  With ``pooling=False`` the clusters are
independent (bnClustOmics' assumption): m = B₀ = 0, δ_kj ~ N(0, s_μ²) and
whitelisted Δ_k[i, j] ~ N(0, σ²_kj c²).

Why pooling: on the structure-only design (:mod:`bayesimg.data.simulate_bnmix`,
K = 3, p = 25, n = 450) the unpooled posterior with the *true* order settles at
ARI 0.67 against the oracle's 0.749 (mean of seeds 0–5) whether started at the
EM solution or at the true labels; the gap is parameter noise — each cluster
re-estimates ~75 parameters from ~150 subjects — not structure search or a
local mode.  Pooling brings the given-order ARI to 0.72 (benchmarks/README.md
has the table).

pf_ij ≥ 1 is the *edge-penalty matrix* (bnClustOmics' ``edgepmat``): it divides
the local scale, so penalised edges are shrunk harder (pf = ∞ ≡ blacklisted).
t₀ defaults to Piironen & Vehtari's rule p₀/(D − p₀)/√(n/K) with p₀ =
``expected_parents`` and D the number of allowed parents of an average node;
t₀ₛ the same with √n (the shared network sees every subject); ω₀ =
``mean_deviation_scale`` (1 on the standardised scale).  A given
``global_scale`` sets both t₀ and t₀ₛ.

Per-subject log-likelihood: log Σ_k π_k p(x_i | k) (labels summed out), so
PSIS-LOO/WAIC compare numbers of clusters.  Membership probabilities of every
draw, P(z_i = k | θ, x_i), are added after sampling (site ``membership``).
Stored besides ``B``, ``mu`` (the cluster totals): ``B_shared``, ``mu_shared``,
``tau_shared`` and ``omega`` (pooled fits only).

**Discrete structure (``structure="order"``).**  Instead of horseshoe weights, each
cluster has a DAG G_k with parent sets of at most ``max_parents`` nodes, Normal-inverse-
gamma weights and variances per node (β | σ² ~ N(0, σ² diag(s_μ², c², …)), σ² ~
InvGamma(a, b), c = ``weight_scale``) and its own node order ≺_k under the
order-modular prior p(≺_k, G_k) ∝ Π_j ρ_j(Pa_j) with ρ_j(U) = Π_{u∈U} (q/(1−q))/pf_uj
(q = ``expected_parents`` / candidate parents; blacklist, whitelist, edge penalties in
ρ).  Weights and variances integrate out in closed form, so the sampler
(:mod:`bayesimg.models.bnmix.order_gibbs`) moves over orders with every compatible
DAG summed out exactly (Friedman & Koller 2003), draws G_k | ≺_k exactly, then (μ, B,
σ²) from their conjugate posterior and the labels as below.  No pooling across
clusters; binary nodes are roots as above.  Maths and the prior's known bias in
:mod:`bayesimg.models.bnmix.order`.  An edge is then in or out of a draw, so the edge
probability is P(i → j ∈ G_k | data) (``edge_threshold`` 0 by default).

**Edge-inclusion probability.**  The shrinkage prior is continuous, so an
edge's posterior inclusion probability is *defined* as P(|B_k[i, j]| > δ | data)
with δ = ``edge_threshold`` (0.1 on the standardised scale by default):
:func:`edge_probabilities`.

Inference
    ``structure="order"``: ``gibbs`` only (above).  Horseshoe structure (the default):
    ``gibbs`` (fast, recommended): :mod:`bayesimg.models.bnmix.gibbs` samples
    labels, weights, each node's shared and deviation coefficients jointly
    (conjugate given the order), variances, horseshoe scales and — with
    ``sample_order`` — the node order by Metropolis moves (adjacent
    transpositions, relocations and segment reversals that carry the edge
    scales and residual variances along).  ``nuts``/``svi``/``map``: the
    marginalised-label NumPyro model below at the fixed (given or initial)
    order, non-centred, horseshoe locals as a · √b (a ~ N⁺(0, 1), b ~ IG(½, ½)).
    All start from the best of several MAP-EM runs (:mod:`bayesimg.models.bnmix.init`), every
    chain from the same labelled solution; NUTS/SVI/MAP from the last state of a
    short exact-Gibbs run begun there (``pilot_sweeps``), i.e. inside the
    posterior's bulk: a gradient sampler cannot cross between partitions, and
    the EM optimum need not be the posterior's partition.

Label switching: every chain starts from the same labelled solution, and
:meth:`BNMix.align_draws` relabels each draw onto one reference by Hungarian
matching of its membership probabilities (Stephens-style, iterated), so
``pi``, ``mu``, ``B``… and R-hat refer to fixed clusters.  With known labels
the clusters are anchored and no relabelling is done.

**What the diagnostics judge.**  With the order sampled, edge directions inside a
Markov equivalence class are not identified, so the directed weights (and each node's
intercept and residual variance, defined given its parents) need not agree between
chains that agree on everything the likelihood sees.  Every fit therefore also stores
direction-free summaries — ``skeleton`` (pair joined or not), ``implied_mean``,
``implied_var``, ``implied_cov`` (the cluster's implied moments) — and declares the
node order and the directed weights whose chains agree on the edge but not on its
direction as "direction not identified" (:mod:`bayesimg.models.bnmix.identified`);
:func:`bayesimg.report.diagnose` then judges the clusters (``pi``, ``membership``)
and the networks (the summaries) on separate lines.

Input: a :class:`~bayesimg.data.MultiViewData`, or one pandas DataFrame of binary
and continuous columns (:mod:`bayesimg.models.bnmix.table`: column order and names
kept, constant columns refused).

Named dims: ``sample`` (subject, the leave-one-out unit), ``cluster``, ``node``,
``parent``, ``pair`` (an unordered pair of nodes an edge may join, ``a--b``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pandas as pd
import xarray as xr
from numpyro.distributions import constraints
from scipy.optimize import linear_sum_assignment

from bayesimg.data.views import MultiViewData
from bayesimg.errors import DataValidationError, ModelSpecError
from bayesimg.models.bnmix.identified import (
    GROUPS,
    direction_exclusions,
    identified_summaries,
    pair_labels,
)
from bayesimg.models.bnmix.init import em_restarts, greedy_order
from bayesimg.models.bnmix.math import membership_probs, mixture_loglik
from bayesimg.models.core.base import Model

# select_n_clusters resolves through __getattr__ at the end of this module
__all__ = ["BNMix", "BNMixLikelihood", "bic", "cluster_labels", "consensus_graphs",  # noqa: F822
           "edge_probabilities", "membership", "select_n_clusters", "skeleton_probabilities"]


class BNMixLikelihood(dist.Distribution):
    """Per-subject mixture likelihood Σ_k π_k Π_j p(x_ij | parents, θ_k) (event: one subject)."""

    support = constraints.real_vector

    def __init__(self, pi, mu, B, sigma2, is_binary, known, validate_args=None):
        self.pi, self.mu, self.B, self.sigma2 = pi, mu, B, sigma2
        self.is_binary, self.known = is_binary, known
        super().__init__(batch_shape=jnp.shape(known), event_shape=(jnp.shape(mu)[-1],),
                         validate_args=validate_args)

    def log_prob(self, value):
        return mixture_loglik(value, self.pi, self.mu, self.B, self.sigma2, self.is_binary,
                              self.known)

    def sample(self, key, sample_shape=()):
        raise NotImplementedError("BNMixLikelihood does not draw new subjects")


def _as_edge_matrix(spec, names: np.ndarray, what: str, *, dtype=bool, fill=False) -> np.ndarray:
    """Blacklist/whitelist/penalty given as array, DataFrame or (parent, child) pairs → (p, p)."""
    p = len(names)
    index = {str(n): i for i, n in enumerate(names)}
    if spec is None:
        return np.full((p, p), fill, dtype=dtype)
    if isinstance(spec, pd.DataFrame):
        for label in list(spec.index) + list(spec.columns):
            if str(label) not in index:
                raise DataValidationError(f"{what} names node {label!r}, which is not in the data",
                                          column=str(label))
        out = np.full((p, p), fill, dtype=dtype)
        rows = [index[str(r)] for r in spec.index]
        cols = [index[str(c)] for c in spec.columns]
        out[np.ix_(rows, cols)] = spec.to_numpy(dtype=dtype)
        return out
    if isinstance(spec, list | tuple) and (len(spec) == 0 or isinstance(spec[0], list | tuple)):
        if dtype is not bool:
            raise ModelSpecError(f"{what} must be a matrix (array or DataFrame)")
        out = np.zeros((p, p), dtype=bool)
        for pair in spec:
            if len(pair) != 2:
                raise ModelSpecError(f"{what} entries must be (parent, child) pairs, got {pair!r}")
            for node in pair:
                if str(node) not in index:
                    raise DataValidationError(
                        f"{what} names node {node!r}, which is not in the data", column=str(node))
            out[index[str(pair[0])], index[str(pair[1])]] = True
        return out
    arr = np.asarray(spec)
    if arr.shape != (p, p):
        missing = str(names[min(arr.shape[0], p - 1)] if arr.ndim == 2 else names[0])
        raise DataValidationError(
            f"{what} has shape {arr.shape} but the data have {p} nodes (it should be ({p}, {p}); "
            f"e.g. node {missing!r} has no row/column)", column=str(missing))
    return arr.astype(dtype)


def _find_cycle(adj: np.ndarray) -> list[int] | None:
    p = adj.shape[0]
    colour = np.zeros(p, int)
    stack_path: list[int] = []

    def visit(v):
        colour[v] = 1
        stack_path.append(v)
        for w in np.flatnonzero(adj[v]):
            if colour[w] == 1:
                return stack_path[stack_path.index(w):] + [int(w)]
            if colour[w] == 0:
                found = visit(w)
                if found:
                    return found
        colour[v] = 2
        stack_path.pop()
        return None

    for v in range(p):
        if colour[v] == 0:
            found = visit(v)
            if found:
                return found
    return None


#: the ``structure`` options: continuous horseshoe weights (Gibbs with order Metropolis
#: moves), or conjugate discrete DAGs with order MCMC (:mod:`bayesimg.models.bnmix.order`)
STRUCTURES = ("horseshoe", "order")


class BNMix(Model):
    """Mixture of K linear-Gaussian Bayesian networks with horseshoe edge priors.

    Parameters
    ----------
    n_clusters : int
        K.
    order : sequence of node names or indices, optional
        A node order shared by the clusters (parents precede children).  Default:
        :func:`~bayesimg.models.bnmix.init.greedy_order` on the pooled data.
    sample_order : bool, optional
        Metropolis moves on the order inside the Gibbs kernel (default: True when
        ``order`` is not given).  NUTS/SVI/MAP always use the fixed initial order.
    order_moves : int, optional
        Passes of adjacent-transposition proposals per Gibbs sweep (each pass
        proposes every adjacent pair once; default 1).
    relocation_moves : int, optional
        Relocation / segment-reversal proposals per Gibbs sweep (default p // 5, at
        least 1).
    blacklist, whitelist : (p, p) bool array, DataFrame (parent × node), or list of
        (parent, child) name pairs.  Blacklisted edges are hard zeros; whitelisted
        edges are unshrunk (prior N(0, c²) on the shared weight, or N(0, σ² c²)
        per cluster without pooling) and constrain the order.
    edge_penalty : (p, p) array or DataFrame of factors ≥ 1 (bnClustOmics' ``edgepmat``).
    dirichlet_alpha : float
        α of π ~ Dirichlet(α 1_K); α < 1 (e.g. 1/K) gives an overfitted sparse mixture.
    global_scale : float, optional
        Prior scale of the horseshoes' global scales (t₀, and t₀ₛ when pooled);
        default by Piironen & Vehtari's rule with ``expected_parents``.
    slab_scale, mean_scale : float
        c (whitelisted edges) and s_μ (intercepts).
    noise_prior : (a, b)
        σ² ~ InvGamma(a, b).
    known_labels : str, optional
        Column of ``data.labels`` with known memberships (NaN/empty = unknown);
        its categories name the clusters (semi-supervised: per-group networks).
    min_cluster_size : int
        Refuse K when n / K is below this.
    edge_threshold : float, optional
        δ of the edge-inclusion probability P(|b| > δ) (default 0.1; 0 with
        ``structure="order"``, whose drawn edges are exact indicators).
    init_restarts : int
        Number of EM starts (a quarter k-means on principal components, the rest
        random hard partitions softened as bnClustOmics' ``baseprob``).
    standardize : bool
        Centre and scale Gaussian nodes (the priors assume unit scale; default True).
    pooling : bool
        Partial pooling across clusters: shared intercepts and network plus
        horseshoe-shrunk cluster deviations (default True; module docstring).
    mean_deviation_scale : float
        ω₀, prior scale of the global scale of the intercept deviations (pooled).
    pilot_sweeps : int
        NUTS/SVI/MAP only: exact-Gibbs sweeps (order fixed) from the EM start whose
        final state starts every chain (default 200; 0 = start at the EM solution).
    structure : {"horseshoe", "order"}
        ``"horseshoe"`` (default): continuous horseshoe weights, order Metropolis moves.
        ``"order"``: discrete DAGs with conjugate weights, order MCMC per cluster with
        the DAGs summed out (module docstring; Gibbs only; ``pooling`` does not apply;
        ``order_moves`` = adjacent-transposition passes, default 2, ``relocation_moves``
        = exact Gibbs relocations of one node, each to a slot drawn from its
        conditional, default p; ``position`` is then per cluster).
    max_parents : int
        ``structure="order"``: largest parent set (default 3); the sets are enumerated
        once, Σ_{m ≤ d} C(p, m) of them, so cost grows as p^d.
    weight_scale : float
        ``structure="order"``: c, prior sd of an edge weight in units of the node's
        residual sd (default 1 on the standardised scale).
    """

    name = "bnmix"
    observed = {"x": ("sample", "node")}
    _hidden = frozenset({"lam", "nu", "xi", "labels", "mu_offset", "mu_binary_offset",
                         "log_sigma2_offset", "log_tau_offset", "B_raw", "lam_shared",
                         "nu_shared", "xi_shared", "psi", "nu_psi", "xi_omega", "m_offset",
                         "delta_raw", "log_omega_offset", "B0_raw", "log_tau0_offset"}
                        | {f"log_{v}_{h}" for v in ("lam", "lam0", "psi") for h in "ab"})
    _shared_sites = frozenset({"mu_shared", "B_shared", "tau_shared", "omega"})
    association_site = "B"
    trace_sites = ("pi", "tau")
    dims = {
        "pi": ("cluster",),
        "mu": ("cluster", "node"),
        "sigma2": ("cluster", "node"),
        "B": ("cluster", "parent", "node"),
        "tau": ("cluster",),
        "mu_shared": ("node",),
        "B_shared": ("parent", "node"),
        "tau_shared": (),
        "omega": (),
        "position": ("node",),
        "membership": ("sample", "cluster"),
        "skeleton": ("cluster", "pair"),
        "implied_mean": ("cluster", "node"),
        "implied_var": ("cluster", "node"),
        "implied_cov": ("cluster", "pair"),
    }

    def __init__(self, n_clusters: int = 2, *, order: Sequence | None = None,
                 sample_order: bool | None = None, order_moves: int | None = None,
                 relocation_moves: int | None = None,
                 blacklist=None, whitelist=None, edge_penalty=None,
                 dirichlet_alpha: float = 1.0, global_scale: float | None = None,
                 expected_parents: float = 1.0, slab_scale: float = 2.0,
                 mean_scale: float = 2.0, noise_prior: tuple[float, float] = (2.0, 1.0),
                 known_labels: str | None = None, min_cluster_size: int = 10,
                 edge_threshold: float | None = None, init_restarts: int = 20, init_seed: int = 0,
                 standardize: bool = True, pooling: bool = True,
                 mean_deviation_scale: float = 1.0, pilot_sweeps: int = 200,
                 structure: str = "horseshoe", max_parents: int = 3,
                 weight_scale: float = 1.0):
        if isinstance(n_clusters, bool) or not isinstance(n_clusters, int | np.integer) \
                or n_clusters < 1:
            raise ModelSpecError(f"n_clusters must be an integer >= 1, got {n_clusters!r}")
        for label, v in (("dirichlet_alpha", dirichlet_alpha), ("slab_scale", slab_scale),
                         ("mean_scale", mean_scale), ("expected_parents", expected_parents),
                         ("mean_deviation_scale", mean_deviation_scale),
                         ("weight_scale", weight_scale)):
            if not np.isfinite(v) or v <= 0:
                raise ModelSpecError(f"{label} must be a positive number, got {v!r}")
        if structure not in STRUCTURES:
            raise ModelSpecError(f"structure must be one of {STRUCTURES}, got {structure!r}")
        if isinstance(max_parents, bool) or not isinstance(max_parents, int | np.integer) \
                or max_parents < 1:
            raise ModelSpecError(f"max_parents must be an integer >= 1, got {max_parents!r}")
        if edge_threshold is None:
            # the order structure's edges are exact indicators (a drawn weight is never 0)
            edge_threshold = 0.0 if structure == "order" else 0.1
        if not np.isfinite(edge_threshold) or edge_threshold < 0:
            raise ModelSpecError(f"edge_threshold must be a number >= 0, got {edge_threshold!r}")
        if global_scale is not None and not (np.isfinite(global_scale) and global_scale > 0):
            raise ModelSpecError(f"global_scale must be > 0, got {global_scale!r}")
        if len(noise_prior) != 2 or min(noise_prior) <= 0:
            raise ModelSpecError(f"noise_prior must be (a, b) with a, b > 0, got {noise_prior!r}")
        for label, v in (("order_moves", order_moves), ("relocation_moves", relocation_moves)):
            if v is not None and (isinstance(v, bool) or v < 0 or int(v) != v):
                raise ModelSpecError(f"{label} must be an integer >= 0, got {v!r}")
        if isinstance(pilot_sweeps, bool) or pilot_sweeps < 0 \
                or int(pilot_sweeps) != pilot_sweeps:
            raise ModelSpecError(f"pilot_sweeps must be an integer >= 0, got {pilot_sweeps!r}")
        if init_restarts < 1:
            raise ModelSpecError(f"init_restarts must be >= 1, got {init_restarts!r}")
        self.n_clusters = int(n_clusters)
        self.order = None if order is None else list(order)
        self.sample_order = (order is None) if sample_order is None else bool(sample_order)
        self.order_moves = order_moves
        self.relocation_moves = relocation_moves
        self.blacklist = blacklist
        self.whitelist = whitelist
        self.edge_penalty = edge_penalty
        self.dirichlet_alpha = float(dirichlet_alpha)
        self.global_scale = None if global_scale is None else float(global_scale)
        self.expected_parents = float(expected_parents)
        self.slab_scale = float(slab_scale)
        self.mean_scale = float(mean_scale)
        self.noise_prior = tuple(float(v) for v in noise_prior)
        self.known_labels = known_labels
        self.min_cluster_size = int(min_cluster_size)
        self.edge_threshold = float(edge_threshold)
        self.init_restarts = int(init_restarts)
        self.init_seed = int(init_seed)
        self.standardize = bool(standardize)
        self.pooling = bool(pooling)
        self.mean_deviation_scale = float(mean_deviation_scale)
        self.pilot_sweeps = int(pilot_sweeps)
        self.structure = structure
        self.max_parents = int(max_parents)
        self.weight_scale = float(weight_scale)
        if structure == "order":
            # one order per cluster (bayesimg.models.bnmix.order)
            self.dims = {**type(self).dims, "position": ("cluster", "node")}
        self._prep_cache: tuple | None = None

    # ------------------------------------------------------------ settings
    def settings(self) -> dict[str, Any]:
        return {"n_clusters": self.n_clusters, "order": self.order,
                "sample_order": self.sample_order, "order_moves": self.order_moves,
                "relocation_moves": self.relocation_moves,
                "blacklist": self.blacklist, "whitelist": self.whitelist,
                "edge_penalty": self.edge_penalty, "dirichlet_alpha": self.dirichlet_alpha,
                "global_scale": self.global_scale, "expected_parents": self.expected_parents,
                "slab_scale": self.slab_scale, "mean_scale": self.mean_scale,
                "noise_prior": self.noise_prior, "known_labels": self.known_labels,
                "min_cluster_size": self.min_cluster_size,
                "edge_threshold": self.edge_threshold, "init_restarts": self.init_restarts,
                "init_seed": self.init_seed, "standardize": self.standardize,
                "pooling": self.pooling, "mean_deviation_scale": self.mean_deviation_scale,
                "pilot_sweeps": self.pilot_sweeps, "structure": self.structure,
                "max_parents": self.max_parents, "weight_scale": self.weight_scale}

    @property
    def hidden_sites(self) -> frozenset:
        # without pooling the shared parts are identically 0: not stored
        return self._hidden if self._pool else self._hidden | self._shared_sites

    @property
    def _pool(self) -> bool:
        """Partial pooling applies to the horseshoe structure only."""
        return self.pooling and self.structure == "horseshoe"

    def static_key(self, data=None) -> tuple:
        moves = self._n_moves(data) if data is not None else (self.order_moves,
                                                              self.relocation_moves)
        return (type(self).__qualname__, self.n_clusters, moves, self._pool, self.structure,
                self.max_parents)

    def _n_moves(self, data) -> tuple[int, int]:
        """(adjacent transpositions, relocations) per sweep (``structure="order"``:
        exact Gibbs relocations of a node, default p, every node once on average)."""
        if not self.sample_order:
            return 0, 0
        p = sum(v.n_features for v in data.views)
        if self.structure == "order":
            adjacent = 2 if self.order_moves is None else self.order_moves
            relocations = p if self.relocation_moves is None else self.relocation_moves
            return int(adjacent), int(relocations)
        adjacent = 1 if self.order_moves is None else self.order_moves
        relocations = max(1, p // 5) if self.relocation_moves is None else self.relocation_moves
        return int(adjacent), int(relocations)

    # ------------------------------------------------------------ data
    @staticmethod
    def node_names(data: MultiViewData) -> np.ndarray:
        """Node labels: feature names, prefixed ``view:`` only when names clash across views."""
        names = [str(f) for v in data.views for f in v.feature_names]
        if len(set(names)) == len(names):
            return np.asarray(names, dtype=str)
        return np.asarray([f"{v.name}:{f}" for v in data.views for f in v.feature_names],
                          dtype=str)

    def validate(self, data) -> None:
        self._prepare(data)

    def as_data(self, data):
        """A pandas DataFrame (subjects × nodes, binary and continuous columns mixed) →
        :func:`~bayesimg.models.bnmix.table.views_from_table` (column order and names
        kept, constant columns refused); anything else unchanged."""
        if isinstance(data, pd.DataFrame):
            from bayesimg.models.bnmix.table import views_from_table
            return views_from_table(data)
        return data

    def _prepare(self, data) -> dict[str, Any]:
        """Checked design: X, node types, masks, order, known labels (cached per data)."""
        if self._prep_cache is not None and self._prep_cache[0] is data:
            return self._prep_cache[1]
        if not isinstance(data, MultiViewData):
            raise DataValidationError(
                "BNMix needs a MultiViewData (bayesimg.data.make_views), got "
                f"{type(data).__name__}")
        names = self.node_names(data)
        blocks, binary = [], []
        for v in data.views:
            if v.likelihood not in ("gaussian", "bernoulli"):
                raise DataValidationError(
                    f"BNMix supports gaussian and bernoulli views, not {v.likelihood!r}",
                    source=v.name)
            miss = np.isnan(v.values)
            if miss.any():
                i, j = np.argwhere(miss)[0]
                raise DataValidationError(
                    "BNMix does not model missing entries yet; drop or impute them "
                    f"({int(miss.sum())} missing in this view)", source=v.name,
                    column=str(v.feature_names[j]), subject=str(data.subjects[i]))
            blocks.append(v.values)
            binary.extend([v.likelihood == "bernoulli"] * v.n_features)
        X = np.concatenate(blocks, axis=1).astype(float)
        is_binary = np.asarray(binary, dtype=bool)
        n, p = X.shape
        sd = X.std(axis=0)
        if np.any(sd == 0):
            j = int(np.flatnonzero(sd == 0)[0])
            raise DataValidationError(f"node {str(names[j])!r} is constant (every subject has "
                                      f"{X[0, j]:g}); remove it", column=str(names[j]))
        if not np.any(~is_binary):
            raise DataValidationError("BNMix needs at least one gaussian node (as bnClustOmics)")
        K = self.n_clusters
        if n < K * self.min_cluster_size:
            raise DataValidationError(
                f"too few samples per cluster: {n} subjects for K = {K} clusters "
                f"(n/K = {n / K:.1f} < min_cluster_size = {self.min_cluster_size}); "
                f"use at most K = {max(1, n // self.min_cluster_size)}")
        Xs = X.copy()
        g = ~is_binary
        if self.standardize:
            Xs[:, g] = (X[:, g] - X[:, g].mean(0)) / sd[g]

        black = _as_edge_matrix(self.blacklist, names, "blacklist")
        white = _as_edge_matrix(self.whitelist, names, "whitelist")
        pen = _as_edge_matrix(self.edge_penalty, names, "edge_penalty", dtype=float, fill=1.0)
        if np.any(~np.isfinite(pen) & ~np.isposinf(pen)) or np.any(pen < 1):
            i, j = np.argwhere(~(pen >= 1))[0]
            raise DataValidationError(
                f"edge_penalty must be >= 1 (got {pen[i, j]!r} for {names[i]} -> {names[j]})",
                column=str(names[j]))
        black = black | np.isposinf(pen)
        np.fill_diagonal(white, False)
        both = white & black
        if both.any():
            i, j = np.argwhere(both)[0]
            raise DataValidationError(f"edge {names[i]} -> {names[j]} is both whitelisted and "
                                      "blacklisted", column=str(names[j]))
        into_binary = white & is_binary[None, :]
        if into_binary.any():
            i, j = np.argwhere(into_binary)[0]
            raise DataValidationError(
                f"whitelisted edge {names[i]} -> {names[j]} points into a binary node; binary "
                "nodes are roots", column=str(names[j]))
        if self.structure == "order":
            from bayesimg.models.bnmix.order import MAX_TABLE, n_parent_sets
            size = n_parent_sets(p, self.max_parents) * p * K
            if size > MAX_TABLE:
                raise ModelSpecError(
                    f"structure='order' with p = {p} nodes, max_parents = {self.max_parents} "
                    f"and K = {K} needs a score table of {size:,} entries (limit "
                    f"{MAX_TABLE:,}); lower max_parents or blacklist node blocks")
        if self.structure == "order" and white.sum(axis=0).max() > self.max_parents:
            j = int(np.argmax(white.sum(axis=0)))
            raise DataValidationError(
                f"node {str(names[j])!r} has {int(white[:, j].sum())} whitelisted parents but "
                f"max_parents = {self.max_parents}", column=str(names[j]))
        cycle = _find_cycle(white)
        if cycle:
            raise DataValidationError("the whitelist has a cycle: "
                                      + " -> ".join(str(names[c]) for c in cycle))
        base = ~black & ~np.eye(p, dtype=bool) & ~is_binary[None, :]
        local_scale = np.where(np.isposinf(pen), 1.0, 1.0 / np.where(np.isposinf(pen), 1, pen))

        if self.order is not None:
            order = self._order_indices(self.order, names)
        else:
            order = greedy_order(Xs, is_binary, white)
        position = np.empty(p, dtype=np.int64)
        position[order] = np.arange(p)
        bad = white & (position[:, None] > position[None, :])
        if bad.any():
            i, j = np.argwhere(bad)[0]
            raise DataValidationError(f"the order puts {str(names[j])!r} before its whitelisted "
                                      f"parent {str(names[i])!r}", column=str(names[j]))

        known = np.full(n, -1, dtype=np.int64)
        cluster_names = np.asarray([f"c{k + 1}" for k in range(K)], dtype=str)
        if self.known_labels is not None:
            if data.labels is None or self.known_labels not in data.labels.columns:
                raise DataValidationError(f"known_labels column {self.known_labels!r} is not in "
                                          "data.labels")
            col = data.labels[self.known_labels]
            present = col.notna() & (col.astype(str) != "")
            cats = sorted(col[present].astype(str).unique())
            if len(cats) > K:
                raise DataValidationError(
                    f"known_labels has {len(cats)} categories but n_clusters = {K}",
                    column=self.known_labels)
            lookup = {c: i for i, c in enumerate(cats)}
            known = np.asarray([lookup[str(v)] if ok else -1
                                for v, ok in zip(col, present, strict=True)], dtype=np.int64)
            cluster_names = np.asarray(cats + [f"c{k + 1}" for k in range(len(cats), K)],
                                       dtype=str)
        prep = {"X": Xs, "is_binary": is_binary, "names": names, "black": black,
                "white": white, "base": base, "local_scale": local_scale, "order": order,
                "position": position, "known": known, "cluster_names": cluster_names,
                "center": np.where(g & self.standardize, X.mean(0), 0.0),
                "scale": np.where(g & self.standardize, sd, 1.0)}
        self._prep_cache = (data, prep)
        return prep

    @staticmethod
    def _order_indices(order, names) -> np.ndarray:
        p = len(names)
        index = {str(n): i for i, n in enumerate(names)}
        out = []
        for item in order:
            if isinstance(item, int | np.integer) and not isinstance(item, bool):
                if not 0 <= item < p:
                    raise DataValidationError(f"order index {item} is out of range (p = {p})")
                out.append(int(item))
            elif str(item) in index:
                out.append(index[str(item)])
            else:
                raise DataValidationError(f"order names node {item!r}, which is not in the data",
                                          column=str(item))
        if sorted(out) != list(range(p)):
            missing = [str(names[j]) for j in range(p) if j not in out]
            raise DataValidationError(
                f"order must list every node exactly once ({len(out)} given for {p} nodes"
                + (f"; missing e.g. {missing[0]!r})" if missing else "; duplicates)"),
                column=missing[0] if missing else None)
        return np.asarray(out, dtype=np.int64)

    def coords(self, data) -> dict[str, np.ndarray]:
        prep = self._prepare(data)
        return {"sample": np.asarray(data.subjects, dtype=str), "node": prep["names"],
                "parent": prep["names"], "cluster": prep["cluster_names"],
                "pair": pair_labels(prep["names"], prep["base"])}

    def observed_data(self, data) -> dict[str, np.ndarray]:
        return {"x": self._prepare(data)["X"]}

    def constant_data(self, data):
        prep = self._prepare(data)
        allowed = (prep["position"][:, None] < prep["position"][None, :]) & prep["base"]
        return {"is_binary": (("node",), prep["is_binary"].astype(np.int8)),
                "allowed_initial": (("parent", "node"), allowed.astype(np.int8)),
                "whitelist": (("parent", "node"), prep["white"].astype(np.int8)),
                "known_label": (("sample",), prep["known"]),
                # original units → model units of every node: (x − node_center)/node_scale
                # (the views' standardisation and the model's own, composed): prediction
                **_node_units(data, prep)}

    def predict_draws(self, tree, new_data, *, draws, rng):
        """Cluster membership probabilities of new subjects, P(z_i = k | θ_s, x_i) per draw,
        and log p(x_i | θ_s) = log Σ_k π_k p(x_i | k) (labels summed out)."""
        from bayesimg.models.core.predict import PredictiveDraws, flat_draws
        X, names = _new_nodes(tree, new_data)
        cd = tree["constant_data"].dataset
        is_binary = np.asarray(cd["is_binary"].values, dtype=bool)
        flat = flat_draws(tree, ("pi", "mu", "B", "sigma2"), draws)
        known = np.full(X.shape[0], -1, dtype=np.int64)
        probs = _memberships(X, flat, is_binary, known)                    # (S, n, K)
        loglik = _mixture_logliks(X, flat, is_binary, known)               # (S, n)
        u = rng.random(probs.shape[:2])[..., None]
        labels = np.minimum((u > np.cumsum(probs, axis=-1)).sum(-1), probs.shape[-1] - 1)
        scale = np.asarray(cd["node_scale"].values, float) if "node_scale" in cd \
            else np.ones(X.shape[1])
        clusters = np.asarray(tree["posterior"].dataset.coords["cluster"].values)
        return PredictiveDraws(
            draws={"label": (("sample",), labels.astype(np.int64))},
            probabilities={"membership": (("sample", "cluster"), probs)},
            log_density=loglik,
            log_jacobian=np.full(X.shape[0], -float(np.sum(np.log(scale[~is_binary])))),
            coords={"sample": np.asarray(new_data.subjects, dtype=str), "cluster": clusters,
                    "node": names},
            attrs={"units": "membership probabilities (cluster index draws, 0-based in the "
                            "cluster coord order); log densities of the nodes in original "
                            "units"},
            inputs={"x": (("sample", "node"), X)})

    # ------------------------------------------------------------ arguments
    def _global_scale(self, n: float, p: int, base: np.ndarray) -> float:
        """Piironen & Vehtari's τ₀ = p₀/(D − p₀)/√n for ``n`` subjects (σ = 1)."""
        if self.global_scale is not None:
            return self.global_scale
        d = max(1.0, base.sum() / max(1, p) / 2.0)   # allowed parents of an average node
        p0 = min(self.expected_parents, 0.5 * d)
        return float(p0 / max(d - p0, 1e-3) / np.sqrt(max(n, 1.0)))

    def model_args(self, data, method: str = "nuts") -> dict[str, Any]:
        if self.structure == "order" and method != "gibbs":
            raise ModelSpecError('BNMix(structure="order") samples discrete DAGs: fit it with '
                                 f'method="gibbs", not {method!r}')
        prep = self._prepare(data)
        X, is_binary = prep["X"], prep["is_binary"]
        n, p = X.shape
        K = self.n_clusters
        a, b = self.noise_prior
        allowed0 = (prep["position"][:, None] < prep["position"][None, :]) & prep["base"]
        em = em_restarts(X, is_binary, allowed0, prep["known"], K,
                         n_kmeans=max(1, self.init_restarts // 4),
                         n_random=max(0, self.init_restarts - self.init_restarts // 4),
                         noise_a=a, noise_b=b, seed=self.init_seed)
        self.last_init = em
        tau0 = self._global_scale(n / K, p, prep["base"])
        tau0_shared = self._global_scale(n, p, prep["base"])
        par, child = np.nonzero(allowed0)
        args = {
            "X": X, "is_binary": is_binary, "base_allowed": prep["base"],
            "whitelist": prep["white"], "local_scale": prep["local_scale"],
            "known": prep["known"], "alpha": np.full(K, self.dirichlet_alpha),
            "global_scale": np.asarray(tau0), "shared_global_scale": np.asarray(tau0_shared),
            "mean_dev_scale": np.asarray(self.mean_deviation_scale),
            "slab_scale": np.asarray(self.slab_scale),
            "mean_scale": np.asarray(self.mean_scale), "noise_a": np.asarray(a),
            "noise_b": np.asarray(b), "init_position": prep["position"],
            "par_idx": par.astype(np.int64), "child_idx": child.astype(np.int64),
            "edge_white": prep["white"][par, child],
            "edge_scale": prep["local_scale"][par, child],
            "gauss_idx": np.flatnonzero(~is_binary).astype(np.int64),
            "bin_idx": np.flatnonzero(is_binary).astype(np.int64),
        }
        args.update(self._start_values(em, args, allowed0))
        if self.structure == "order":
            from bayesimg.models.bnmix.order import parent_sets, set_validity
            sets = parent_sets(p, self.max_parents)
            pen = 1.0 / prep["local_scale"]
            d = max(1.0, prep["base"].sum() / max(1, p))   # candidate parents of a node
            q = min(self.expected_parents / d, 0.5)
            valid, log_prior = set_validity(sets, prep["base"], prep["white"], pen,
                                            edge_log_odds=float(np.log(q / (1.0 - q))))
            args.update(parent_sets=sets, set_valid=valid, set_log_prior=log_prior,
                        weight_scale=np.asarray(self.weight_scale))
            return args
        if method != "gibbs" and self.pilot_sweeps > 0:
            # NUTS/SVI/MAP cannot cross between partitions: start every chain from one
            # state of a short exact-Gibbs run (fixed order) begun at the EM solution,
            # i.e. from the posterior's bulk rather than from the EM optimum (which can
            # be a different partition: on the agreement test's data set its ARI is ~0
            # while the posterior's is ~0.4)
            from bayesimg.models.bnmix.gibbs import pilot_run
            z = pilot_run(args, self.pilot_sweeps, self._pool, self.init_seed)
            self.last_pilot = z
            args.update(self._start_values(z, args, allowed0))
        return args

    def _start_values(self, start, args, allowed0) -> dict[str, np.ndarray]:
        """Model arguments ``init_*`` from a start (labels, mu, sigma2, B; with
        B_shared, mu_shared, tau, tau_shared, omega when it is a Gibbs state)."""
        K, p = start["mu"].shape
        gauss = ~args["is_binary"]
        pool = self._pool
        tau0, tau0_shared = float(args["global_scale"]), float(args["shared_global_scale"])
        mu, sigma2, B = (np.asarray(start[k], dtype=float) for k in ("mu", "sigma2", "B"))

        def rms(a, floor):
            return max(float(np.sqrt(np.mean(a**2))), floor) if a.size else floor

        # split into shared part (the Gibbs state's, or the cluster average) and deviations
        if not pool:
            B_sh, mu_sh = np.zeros((p, p)), np.zeros(p)
        elif "B_shared" in start:
            B_sh, mu_sh = np.asarray(start["B_shared"]), np.asarray(start["mu_shared"])
        else:
            B_sh, mu_sh = B.mean(axis=0), np.where(gauss, mu.mean(axis=0), 0.0)
        B_dev = B - B_sh
        if "tau" in start:
            init_tau = np.asarray(start["tau"], dtype=float)
            init_tau_shared = float(start["tau_shared"])
            init_omega = float(start["omega"])
        else:
            init_tau = np.full(K, rms((B_dev / np.sqrt(sigma2)[:, None, :])[:, allowed0], tau0))
            init_tau_shared = rms(B_sh[allowed0], tau0_shared)
            init_omega = rms((mu - mu_sh)[:, gauss], 0.01)
        par, child = args["par_idx"], args["child_idx"]
        white_e = args["edge_white"]
        scale_e = np.where(white_e & (not pool), self.slab_scale,
                           init_tau[:, None]) * np.sqrt(sigma2[:, child])
        return {
            "init_labels": np.asarray(start["labels"], dtype=np.int64),
            "init_mu": mu, "init_sigma2": sigma2, "init_B": B, "init_tau": init_tau,
            "init_raw": B_dev[:, par, child] / scale_e,
            "init_raw0": B_sh[par, child] / np.where(white_e, self.slab_scale, init_tau_shared),
            "init_mu_shared": mu_sh, "init_B_shared": B_sh,
            "init_tau_shared": np.asarray(init_tau_shared), "init_omega": np.asarray(init_omega),
        }

    def subject_axis_args(self, data, method: str = "nuts", *, args=None):
        # the rest is per feature, cluster or edge (an edge list can be n long)
        return frozenset({"X", "init_labels"})

    def init_strategy(self, data, method: str):
        # the start (EM, then the Gibbs pilot) enters through the offsets' origin (model
        # arguments), so the compiled program is reused across data sets; a small jitter
        return numpyro.infer.init_to_uniform(radius=0.05)

    # ------------------------------------------------------------ the model
    def numpyro_model(self, method: str = "nuts"):
        gibbs = method == "gibbs"
        pool = self._pool

        def horseshoe_factor(name, x, scale):
            # log-scale site x = log s with s ~ C⁺(0, scale) (Jacobian included)
            numpyro.factor(name, jnp.sum(dist.HalfCauchy(scale).log_prob(jnp.exp(x)) + x))

        def cauchy_local(name, shape, scale):
            # s ~ C⁺(0, scale) as scale · a · √b, a ~ N⁺(0, 1), b ~ IG(½, ½) (the
            # decomposition brms uses for horseshoe locals: easier geometry for NUTS)
            log_a = numpyro.sample(f"log_{name}_a",
                                   dist.ImproperUniform(constraints.real, (), shape))
            log_b = numpyro.sample(f"log_{name}_b",
                                   dist.ImproperUniform(constraints.real, (), shape))
            numpyro.factor(f"{name}_a_prior", jnp.sum(
                dist.HalfNormal(1.0).log_prob(jnp.exp(log_a)) + log_a))
            numpyro.factor(f"{name}_b_prior", jnp.sum(
                dist.InverseGamma(0.5, 0.5).log_prob(jnp.exp(log_b)) + log_b))
            return scale * jnp.exp(log_a + 0.5 * log_b)

        def bnmix_model(X, is_binary, base_allowed, whitelist, local_scale, known, alpha,
                        global_scale, shared_global_scale, mean_dev_scale, slab_scale,
                        mean_scale, noise_a, noise_b, init_labels=None, init_position=None,
                        init_mu=None, init_sigma2=None, init_B=None, init_tau=None,
                        init_raw=None, init_raw0=None, init_mu_shared=None,
                        init_B_shared=None, init_tau_shared=None, init_omega=None,
                        par_idx=None, child_idx=None, edge_white=None, edge_scale=None,
                        gauss_idx=None, bin_idx=None, parent_sets=None, set_valid=None,
                        set_log_prior=None, weight_scale=None):
            n, p = X.shape
            K = alpha.shape[0]
            pi = numpyro.sample("pi", dist.Dirichlet(alpha))
            if gibbs:
                # the Gibbs kernel supplies every value; these sites only carry them to the
                # likelihood (pointwise log-likelihood) with the intercept prior
                mu = numpyro.sample("mu", dist.ImproperUniform(constraints.real, (), (K, p)))
                sigma2 = numpyro.sample(
                    "sigma2", dist.ImproperUniform(constraints.positive, (), (K, p)))
                B = numpyro.sample("B", dist.ImproperUniform(constraints.real, (), (K, p, p)))
                if pool:
                    for name, shape, sup in (("mu_shared", (p,), constraints.real),
                                             ("B_shared", (p, p), constraints.real),
                                             ("tau_shared", (), constraints.positive),
                                             ("omega", (), constraints.positive)):
                        numpyro.sample(name, dist.ImproperUniform(sup, (), shape))
                else:
                    numpyro.factor("mu_prior", jnp.sum(jnp.where(
                        is_binary, 0.0, dist.Normal(0.0, mean_scale).log_prob(mu))))
                numpyro.factor("mu_binary_prior", jnp.sum(jnp.where(
                    is_binary, jax.nn.log_sigmoid(mu) + jax.nn.log_sigmoid(-mu), 0.0)))
            else:
                m = par_idx.shape[0]
                pg, pb = gauss_idx.shape[0], bin_idx.shape[0]
                s_off = numpyro.sample("log_sigma2_offset",
                                       dist.ImproperUniform(constraints.real, (), (K, pg)))
                log_s2 = jnp.log(init_sigma2[:, gauss_idx]) + s_off
                s2g = jnp.exp(log_s2)
                numpyro.factor("sigma2_prior", jnp.sum(
                    dist.InverseGamma(noise_a, noise_b).log_prob(s2g) + log_s2))
                sigma2 = numpyro.deterministic(
                    "sigma2", jnp.ones((K, p), X.dtype).at[:, gauss_idx].set(s2g))
                # cluster deviations Δ_k (noise-scaled horseshoe; unpooled: the weights)
                log_tau = jnp.log(init_tau) + numpyro.sample(
                    "log_tau_offset", dist.ImproperUniform(constraints.real, (), (K,)))
                horseshoe_factor("tau_prior", log_tau, global_scale)
                tau = numpyro.deterministic("tau", jnp.exp(log_tau))
                if m:   # no candidate edges (one node, or all blacklisted): no edge sites
                    lam = cauchy_local("lam", (K, m), edge_scale)
                    raw = init_raw + numpyro.sample(
                        "B_raw", dist.ImproperUniform(constraints.real, (), (K, m)))
                    numpyro.factor("B_raw_prior", jnp.sum(-0.5 * raw**2))
                    dev_white = edge_white & (not pool)
                    scale = jnp.where(dev_white, slab_scale, tau[:, None] * lam) \
                        * jnp.sqrt(sigma2[:, child_idx])
                    w = raw * scale
                else:
                    w = jnp.zeros((K, 0), X.dtype)
                if pool:
                    # shared network B₀ (unscaled horseshoe, whitelisted edges N(0, c²))
                    log_tau0 = jnp.log(init_tau_shared) + numpyro.sample(
                        "log_tau0_offset", dist.ImproperUniform(constraints.real, (), ()))
                    horseshoe_factor("tau0_prior", log_tau0, shared_global_scale)
                    tau0 = numpyro.deterministic("tau_shared", jnp.exp(log_tau0))
                    if m:
                        lam0 = cauchy_local("lam0", (m,), edge_scale)
                        raw0 = init_raw0 + numpyro.sample(
                            "B0_raw", dist.ImproperUniform(constraints.real, (), (m,)))
                        numpyro.factor("B0_raw_prior", jnp.sum(-0.5 * raw0**2))
                        w0 = raw0 * jnp.where(edge_white, slab_scale, tau0 * lam0)
                    else:
                        w0 = jnp.zeros((0,), X.dtype)
                    numpyro.deterministic(
                        "B_shared", jnp.zeros((p, p), X.dtype).at[par_idx, child_idx].set(w0))
                    w = w + w0[None]
                    # intercepts: shared m_j ~ N(0, s_μ²) plus horseshoe deviations δ_kj
                    m_sh = init_mu_shared[gauss_idx] + numpyro.sample(
                        "m_offset", dist.ImproperUniform(constraints.real, (), (pg,)))
                    numpyro.factor("m_prior", jnp.sum(dist.Normal(0.0, mean_scale).log_prob(m_sh)))
                    numpyro.deterministic("mu_shared",
                                          jnp.zeros((p,), X.dtype).at[gauss_idx].set(m_sh))
                    log_om = jnp.log(init_omega) + numpyro.sample(
                        "log_omega_offset", dist.ImproperUniform(constraints.real, (), ()))
                    horseshoe_factor("omega_prior", log_om, mean_dev_scale)
                    omega = numpyro.deterministic("omega", jnp.exp(log_om))
                    psi = cauchy_local("psi", (K, pg), 1.0)
                    d_init = (init_mu[:, gauss_idx] - init_mu_shared[gauss_idx]) / init_omega
                    d_raw = d_init + numpyro.sample(
                        "delta_raw", dist.ImproperUniform(constraints.real, (), (K, pg)))
                    numpyro.factor("delta_raw_prior", jnp.sum(-0.5 * d_raw**2))
                    mu_g = m_sh + omega * psi * d_raw
                else:
                    mu_g = init_mu[:, gauss_idx] + numpyro.sample(
                        "mu_offset", dist.ImproperUniform(constraints.real, (), (K, pg)))
                    numpyro.factor("mu_prior",
                                   jnp.sum(dist.Normal(0.0, mean_scale).log_prob(mu_g)))
                mu = jnp.zeros((K, p), X.dtype).at[:, gauss_idx].set(mu_g)
                if pb:
                    mu_b = init_mu[:, bin_idx] + numpyro.sample(
                        "mu_binary_offset", dist.ImproperUniform(constraints.real, (), (K, pb)))
                    numpyro.factor("mu_binary_prior", jnp.sum(
                        jax.nn.log_sigmoid(mu_b) + jax.nn.log_sigmoid(-mu_b)))
                    mu = mu.at[:, bin_idx].set(mu_b)
                mu = numpyro.deterministic("mu", mu)
                B = numpyro.deterministic(
                    "B", jnp.zeros((K, p, p), X.dtype).at[:, par_idx, child_idx].set(w))
            numpyro.sample("x", BNMixLikelihood(pi, mu, B, sigma2, is_binary, known), obs=X)

        return bnmix_model

    def gibbs_kernel(self, data):
        """Exact Gibbs kernel with order moves (:mod:`bayesimg.models.bnmix.gibbs`)."""
        adjacent, relocations = self._n_moves(data)
        if self.structure == "order":
            from bayesimg.models.bnmix.order_gibbs import BNMixOrderGibbs
            return BNMixOrderGibbs(adjacent_passes=adjacent, node_moves=relocations)
        from bayesimg.models.bnmix.gibbs import BNMixGibbs
        return BNMixGibbs(order_moves=adjacent, relocations=relocations, pool=self.pooling)

    # ------------------------------------------------------------ label switching
    def align_draws(self, samples, data):
        prep = self._prepare(data)
        shape = samples["pi"].shape[:2]
        flat = {k: np.asarray(samples[k]).reshape((-1,) + samples[k].shape[2:])
                for k in ("pi", "mu", "B", "sigma2")}
        memb = _memberships(prep["X"], flat, prep["is_binary"], prep["known"])  # (S, n, K)
        S, n, K = memb.shape
        info: dict[str, Any] = {"method": "none (known labels anchor the clusters)"
                                if np.any(prep["known"] >= 0) else
                                "Hungarian matching of membership probabilities to a reference"}
        perms = np.tile(np.arange(K), (S, 1))
        if K > 1 and not np.any(prep["known"] >= 0):
            ref = memb.reshape(shape + (n, K))[0].mean(axis=0)
            for _ in range(3):
                for s in range(S):
                    _, cols = linear_sum_assignment(-(ref.T @ memb[s]))
                    perms[s] = cols
                aligned = np.take_along_axis(memb, perms[:, None, :], axis=2)
                ref = aligned.mean(axis=0)
            memb = aligned
            moved = np.any(perms != np.arange(K), axis=1)
            info["draws_relabelled"] = float(moved.mean())
            info["chains_relabelled"] = [float(m) for m in
                                         moved.reshape(shape).mean(axis=1)]
        out = dict(samples)
        for name, value in samples.items():
            dims = self.dims.get(name, ())
            if "cluster" not in dims or K == 1:
                continue
            axis = dims.index("cluster")
            v = np.asarray(value).reshape((S,) + value.shape[2:])
            idx = perms.reshape((S,) + (1,) * axis + (K,) + (1,) * (v.ndim - 2 - axis))
            out[name] = np.take_along_axis(v, idx, axis=1 + axis).reshape(value.shape)
        out["membership"] = memb.reshape(shape + (n, K))
        # direction-free summaries, and the directed parameters the data cannot pin down
        # declared to the diagnostics (bayesimg.models.bnmix.identified)
        out.update(identified_summaries(out, prep["is_binary"], prep["base"],
                                        self.edge_threshold))
        exclude = direction_exclusions(out, prep["names"], prep["cluster_names"],
                                       prep["base"], self.edge_threshold)
        if exclude:
            info["convergence_exclude"] = exclude
        info["convergence_groups"] = GROUPS
        return out, info


_MEMB = jax.jit(jax.vmap(membership_probs, in_axes=(None, 0, 0, 0, 0, None, None)))
_LOGLIK = jax.jit(jax.vmap(mixture_loglik, in_axes=(None, 0, 0, 0, 0, None, None)))


def _over_draws(fn, X, flat, is_binary, known, batch: int = 256) -> np.ndarray:
    """``fn`` (a vmapped per-draw function of the data and one draw) over all draws in
    ``flat``, ``batch`` draws per call so memory stays bounded."""
    S = flat["pi"].shape[0]
    parts = []
    for s in range(0, S, batch):
        sl = slice(s, s + batch)
        parts.append(np.asarray(fn(jnp.asarray(X), jnp.asarray(flat["pi"][sl]),
                                   jnp.asarray(flat["mu"][sl]), jnp.asarray(flat["B"][sl]),
                                   jnp.asarray(flat["sigma2"][sl]), jnp.asarray(is_binary),
                                   jnp.asarray(known)), dtype=float))
    return np.concatenate(parts, axis=0)


def _memberships(X, flat, is_binary, known, batch: int = 256) -> np.ndarray:
    return _over_draws(_MEMB, X, flat, is_binary, known, batch)


def _mixture_logliks(X, flat, is_binary, known, batch: int = 256) -> np.ndarray:
    return _over_draws(_LOGLIK, X, flat, is_binary, known, batch)


def _node_units(data, prep) -> dict:
    """node_center, node_scale: original units → model units of every node."""
    vc, vs = [], []
    pre = data.preprocessing or {}
    for v in data.views:
        vc.append(np.asarray(pre.get("centers", {}).get(v.name, np.zeros(v.n_features)), float)
                  .reshape(-1)[:v.n_features])
        vs.append(np.asarray(pre.get("scales", {}).get(v.name, np.ones(v.n_features)), float)
                  .reshape(-1)[:v.n_features])
    vc, vs = np.concatenate(vc), np.concatenate(vs)
    return {"node_center": (("node",), vc + prep["center"] * vs),
            "node_scale": (("node",), vs * prep["scale"])}


def _new_nodes(tree, new_data) -> tuple[np.ndarray, np.ndarray]:
    """New subjects' nodes in the fit's model units, in the fit's node order."""
    if not isinstance(new_data, MultiViewData):
        raise DataValidationError("a BNMix fit predicts from MultiViewData (make_views), got "
                                  f"{type(new_data).__name__}")
    names = np.asarray(tree["posterior"].dataset.coords["node"].values, dtype=str)
    pre = new_data.preprocessing or {}
    cols, labels_plain, labels_view = [], [], []
    for v in new_data.views:
        c = np.asarray(pre.get("centers", {}).get(v.name, np.zeros(v.n_features)), float)
        s = np.asarray(pre.get("scales", {}).get(v.name, np.ones(v.n_features)), float)
        cols.append(v.values * s.reshape(-1)[:v.n_features] + c.reshape(-1)[:v.n_features])
        labels_plain += [str(f) for f in v.feature_names]
        labels_view += [f"{v.name}:{f}" for f in v.feature_names]
    raw = np.hstack(cols)
    index = {lab: j for j, lab in enumerate(labels_plain)}
    index.update({lab: j for j, lab in enumerate(labels_view)})
    missing = [nm for nm in names if nm not in index]
    if missing:
        raise DataValidationError(f"the new data lack {len(missing)} of the fit's nodes (first: "
                                  f"{missing[0]})", column=missing[0])
    raw = raw[:, [index[nm] for nm in names]]
    if np.isnan(raw).any():
        i, j = np.argwhere(np.isnan(raw))[0]
        raise DataValidationError("BNMix cannot predict subjects with missing nodes yet",
                                  column=str(names[j]), subject=str(new_data.subjects[i]))
    cd = tree["constant_data"].dataset
    if "node_center" in cd:
        raw = (raw - cd["node_center"].values) / cd["node_scale"].values
    return raw, names


# ---------------------------------------------------------------- fit summaries
def _post(fit):
    return fit.posterior if hasattr(fit, "posterior") else fit["posterior"].to_dataset()


def membership(fit) -> xr.DataArray:
    """Posterior membership probabilities (sample × cluster), averaged over draws."""
    return _post(fit)["membership"].mean(("chain", "draw"))


def cluster_labels(fit) -> xr.DataArray:
    """Most probable cluster index of every subject (0-based, in ``cluster`` coord order).

    Labelled by subject ID (dim ``subject``); ``np.asarray`` gives the bare integers and
    ``.to_pandas()`` a Series indexed by subject.
    """
    labels = membership(fit).argmax("cluster")
    return labels.rename("cluster").assign_attrs(
        description="most probable cluster of each subject (0-based position in the "
                    "cluster coordinate)")


def edge_probabilities(fit, threshold: float | None = None) -> xr.DataArray:
    """P(|B_k[i, j]| > δ | data) per cluster, parent and node (δ: the model's edge_threshold)."""
    if threshold is None:
        settings = getattr(fit, "model_settings", {}) or {}
        threshold = float(settings.get("edge_threshold", 0.1))
    B = _post(fit)["B"]
    return (np.abs(B) > threshold).mean(("chain", "draw"))


def skeleton_probabilities(fit) -> xr.DataArray:
    """P(the pair is joined, in either direction | data) per cluster and pair (``a--b``):
    the direction-free edge probability (mean of the stored ``skeleton`` indicators)."""
    return _post(fit)["skeleton"].mean(("chain", "draw")).rename("skeleton_probability")


def consensus_graphs(fit, probability: float = 0.5, threshold: float | None = None,
                     ) -> xr.DataArray:
    """Edges with inclusion probability above ``probability`` (bool, cluster × parent × node)."""
    return edge_probabilities(fit, threshold) > probability


def bic(fit, probability: float = 0.5) -> dict[str, float]:
    """BIC as bnClustOmics computes it, from a fit's draws.

    loglik = the highest total log-likelihood over the draws (the anchor uses its
    EM optimum); npar = 2 · (#Gaussian nodes) · K + Σ_k |E_k| with E_k the
    consensus edges at ``probability``; BIC = log(n) npar − 2 loglik (lower is better).
    """
    ll = fit.tree["log_likelihood"]["x"]
    total = ll.sum("sample")
    loglik = float(total.max())
    n = int(ll.sizes["sample"])
    is_binary = fit.tree["constant_data"]["is_binary"].values.astype(bool)
    K = int(_post(fit).sizes["cluster"])
    edges = int(consensus_graphs(fit, probability).sum())
    npar = 2 * int((~is_binary).sum()) * K + edges
    return {"loglik": loglik, "npar": npar, "bic": float(np.log(n) * npar - 2 * loglik),
            "aic": float(2 * npar - 2 * loglik)}


def __getattr__(name: str):
    """``select_n_clusters`` fits nothing but compares fits (:func:`bayesimg.report.compare`),
    so it lives in :mod:`bayesimg.workflows`; still reachable here, imported on first use
    (models never import the layers above them at import time)."""
    if name == "select_n_clusters":
        from bayesimg.workflows import select_n_clusters
        return select_n_clusters
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
