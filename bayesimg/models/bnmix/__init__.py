"""Bayesian-network mixture clustering (bnClustOmics's model): :mod:`.model` (the model, its
math in the docstring, and what users read off a fit), :mod:`.gibbs` (its exact Gibbs kernel),
:mod:`.order` and :mod:`.order_gibbs` (``structure="order"``: conjugate DAG scores, order MCMC
and its blocked Gibbs kernel),
:mod:`.init` (EM restarts and order search), :mod:`.math` (shared likelihood algebra),
:mod:`.identified` (direction-free summaries and what the diagnostics excuse) and
:mod:`.table` (one mixed-type DataFrame → the model's data).

``select_n_clusters`` compares fits, so it lives in :mod:`bayesimg.workflows`; it is still
reachable here (imported on first use)."""

from bayesimg.models.bnmix.model import (
    BNMix,
    BNMixLikelihood,
    bic,
    cluster_labels,
    consensus_graphs,
    edge_probabilities,
    membership,
    skeleton_probabilities,
)

# the class keeps the path it has always had (bayesimg.models.bnmix.BNMix): fit_many's job
# fingerprints name it, so saved result folders stay recognised
BNMix.__module__ = __name__


def __getattr__(name: str):
    if name == "select_n_clusters":
        from bayesimg.workflows import select_n_clusters
        return select_n_clusters
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["BNMix", "BNMixLikelihood", "bic", "cluster_labels", "consensus_graphs",
           "edge_probabilities", "membership", "select_n_clusters", "skeleton_probabilities"]
