"""Memory-bounded storage of MCMC draws: thinned draws plus streaming summaries.

A weight matrix of d × c entries costs ``chains × draws × d × c × 8`` bytes to
keep (20 000 SNPs × 100 phenotypes × 4 × 1000 draws is 64 GB).  When the draws
of a run would exceed ``max_draw_bytes``, the driver

* keeps every ``k``-th draw of every site (the smallest ``k`` that fits), so
  the posterior group still has (chain, draw) arrays from which ArviZ computes
  R-hat, ESS, intervals and LOO on the kept draws;
* streams exact summaries of every *large* site (at least ``MIN_STREAMED_SIZE``
  elements) over **all** draws: mean, sd (Chan et al.'s pairwise update of
  mean and sum of squares, per chain, merged at the end), the posterior
  probability ``P(x > 0)`` and ``P(|x| > threshold)`` (an importance measure for
  shrunk coefficients, ``threshold`` in the units of the site);
* bounds the per-chunk buffers so that the device and host hold at most
  ``chunk_bytes`` of draws at a time.

The plan is recorded in the fit (attribute ``draw_storage``) and the
summaries in the group ``posterior_streaming``; :meth:`Fit.summary` reports the
streamed mean and sd for those sites.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

#: default budget for kept draws (all sites, all chains, incl. log-likelihood)
DEFAULT_MAX_DRAW_BYTES = 2 * 1024**3
#: device/host buffer budget per chunk: the compiled buffer (and its host copy) is
#: allocated at full size whatever the number of draws, so it is kept small (64 MB:
#: at 100 × 20,000 × 15 factors, 256 MB made the fit's peak 2.4 GB, 64 MB 1.x GB)
CHUNK_BYTES = 64 * 1024**2
#: prefix of the per-draw log-likelihood entries in ``site_sizes`` (counted, not streamed)
LOGLIK_PREFIX = "log_likelihood:"
#: sites with at least this many elements get streaming summaries when thinned
MIN_STREAMED_SIZE = 100


@dataclasses.dataclass(frozen=True)
class StoragePlan:
    """How draws are kept: every ``keep_every``-th draw; which sites stream summaries."""

    keep_every: int
    chunk: int
    streamed_sites: tuple[str, ...]
    threshold: float
    bytes_per_draw: int
    draws_total: int

    @property
    def thinned(self) -> bool:
        return self.keep_every > 1

    @property
    def draws_kept(self) -> int:
        return self.draws_total // self.keep_every

    def describe(self) -> dict:
        return {"keep_every": self.keep_every, "draws_total_per_chain": self.draws_total,
                "draws_kept_per_chain": self.draws_kept,
                "streamed_sites": list(self.streamed_sites),
                "importance_threshold": self.threshold,
                "bytes_per_draw_all_chains": self.bytes_per_draw}


def plan_storage(site_sizes: dict[str, int], n_chains: int, draws: int, *,
                 max_draw_bytes: float | None, threshold: float = 0.05,
                 max_chunk: int = 100, itemsize: int = 8,
                 not_streamed: frozenset[str] = frozenset()) -> StoragePlan:
    """Choose thinning and chunk size for ``draws`` per chain of sites of these sizes
    (sites in ``not_streamed`` — label-dependent ones — are thinned, never streamed)."""
    per_draw = int(sum(site_sizes.values()) * n_chains * itemsize)
    chunk = max(1, min(max_chunk, CHUNK_BYTES // max(per_draw, 1)))
    keep_every = 1
    if max_draw_bytes is not None and per_draw * draws > max_draw_bytes:
        keep_every = math.ceil(per_draw * draws / max_draw_bytes)
        keep_every = min(keep_every, draws)
    streamed = tuple(sorted(k for k, v in site_sizes.items()
                            if v >= MIN_STREAMED_SIZE and not k.startswith(LOGLIK_PREFIX)
                            and k not in not_streamed)) \
        if keep_every > 1 else ()
    return StoragePlan(keep_every=keep_every, chunk=chunk, streamed_sites=streamed,
                       threshold=float(threshold), bytes_per_draw=per_draw, draws_total=draws)


class StreamingSummary:
    """Exact running mean, variance and tail probabilities over draws, per chain."""

    def __init__(self, threshold: float):
        self.threshold = threshold
        self.n = 0
        self.mean: np.ndarray | None = None
        self.m2: np.ndarray | None = None
        self.n_positive: np.ndarray | None = None
        self.n_exceeds: np.ndarray | None = None

    def update(self, x: np.ndarray) -> None:
        """``x``: (chain, draw, ...) draws of one chunk."""
        x = np.asarray(x, dtype=np.float64)
        nb = x.shape[1]
        if nb == 0:
            return
        mb = x.mean(axis=1)
        m2b = ((x - mb[:, None]) ** 2).sum(axis=1)
        pos = (x > 0).sum(axis=1)
        exc = (np.abs(x) > self.threshold).sum(axis=1)
        if self.mean is None:
            self.n, self.mean, self.m2 = nb, mb, m2b
            self.n_positive, self.n_exceeds = pos, exc
            return
        n = self.n + nb
        delta = mb - self.mean
        self.mean = self.mean + delta * (nb / n)
        self.m2 = self.m2 + m2b + delta**2 * (self.n * nb / n)
        self.n_positive = self.n_positive + pos
        self.n_exceeds = self.n_exceeds + exc
        self.n = n

    def result(self) -> dict[str, np.ndarray]:
        """Summaries pooled over chains (arrays of the site's shape)."""
        n_chains = self.mean.shape[0]
        total = self.n * n_chains
        grand = self.mean.mean(axis=0)
        m2 = self.m2.sum(axis=0) + (self.n * ((self.mean - grand) ** 2)).sum(axis=0)
        return {"mean": grand, "sd": np.sqrt(m2 / (total - 1)),
                "prob_positive": self.n_positive.sum(axis=0) / total,
                "prob_exceeds": self.n_exceeds.sum(axis=0) / total}
