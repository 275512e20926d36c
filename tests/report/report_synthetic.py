"""Synthetic ArviZ-1.x DataTrees shaped like bayesimg fits, for the report tests."""

from __future__ import annotations

import numpy as np
import xarray as xr

SNPS = ["rs4988235", "rs429358", "rs7412", "rs1800497"]
PHENOS = ["Left_Hippocampus_vol", "Right_Amygdala_vol", "Left_Thalamus_vol"]
GENES = ["LCT", "APOE"]


def normal_loglik(y: np.ndarray, mu: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """Pointwise normal log density of ``y[i, p]`` summed over phenotypes.

    ``mu`` has shape (chain, draw, phenotype), ``sigma`` (chain, draw); returns
    (chain, draw, subject).
    """
    z = (y[None, None, :, :] - mu[:, :, None, :]) / sigma[:, :, None, None]
    ll = -0.5 * z**2 - np.log(sigma[:, :, None, None]) - 0.5 * np.log(2 * np.pi)
    return ll.sum(axis=-1)


def make_tree(*, n_chain: int = 4, n_draw: int = 400, n_subject: int = 40, seed: int = 0,
              method: str = "nuts", shift_chains: float = 0.0, n_divergent: int = 0,
              posterior_predictive: bool = True, sample_stats: bool = True,
              mu_offset: float = 0.0, subjects: list[str] | None = None,
              attrs: dict | None = None) -> xr.DataTree:
    """A well-mixed fit of a toy regression.

    ``W`` (snp x phenotype) has iid normal draws around fixed means; ``mu`` is the
    phenotype mean whose draws centre on the sample mean of ``y`` plus ``mu_offset``
    (a large offset makes a clearly worse model).  ``shift_chains`` adds
    ``c * shift_chains`` to chain ``c`` of ``mu`` (bad mixing).
    """
    rng = np.random.default_rng(seed)
    subjects = subjects or [f"sub-{i:03d}" for i in range(n_subject)]
    n_subject = len(subjects)
    data_rng = np.random.default_rng(12345)
    y = data_rng.normal(size=(n_subject, len(PHENOS))) + np.array([0.5, -1.0, 2.0])
    w_true = np.linspace(-1.0, 1.0, len(SNPS) * len(PHENOS)).reshape(len(SNPS), len(PHENOS))
    shape = (n_chain, n_draw)
    W = w_true + 0.3 * rng.normal(size=(*shape, len(SNPS), len(PHENOS)))
    mu = (y.mean(axis=0) + mu_offset
          + rng.normal(size=(*shape, len(PHENOS))) / np.sqrt(n_subject))
    mu = mu + shift_chains * np.arange(n_chain)[:, None, None]
    sigma = np.exp(rng.normal(scale=0.05, size=shape))
    gene_norm = np.abs(rng.normal(loc=2.0, size=(*shape, len(GENES))))
    coords = {"snp": SNPS, "phenotype": PHENOS, "gene": GENES, "subject": subjects}
    posterior = xr.Dataset(
        {"W": (("chain", "draw", "snp", "phenotype"), W),
         "mu": (("chain", "draw", "phenotype"), mu),
         "sigma": (("chain", "draw"), sigma),
         "gene_norm": (("chain", "draw", "gene"), gene_norm)},
        coords={k: coords[k] for k in ("snp", "phenotype", "gene")})
    groups = {
        "posterior": posterior,
        "log_likelihood": xr.Dataset(
            {"y": (("chain", "draw", "subject"), normal_loglik(y, mu, sigma))},
            coords={"subject": subjects}),
        "observed_data": xr.Dataset({"y": (("subject", "phenotype"), y)},
                                    coords={"subject": subjects, "phenotype": PHENOS}),
    }
    if posterior_predictive:
        y_rep = mu[:, :, None, :] + sigma[:, :, None, None] * rng.normal(
            size=(*shape, n_subject, len(PHENOS)))
        groups["posterior_predictive"] = xr.Dataset(
            {"y": (("chain", "draw", "subject", "phenotype"), y_rep)},
            coords={"subject": subjects, "phenotype": PHENOS})
    if sample_stats and method in ("nuts", "gibbs"):
        diverging = np.zeros(shape, dtype=bool)
        diverging.ravel()[:n_divergent] = True
        groups["sample_stats"] = xr.Dataset({
            "diverging": (("chain", "draw"), diverging),
            "energy": (("chain", "draw"), rng.normal(size=shape) * 3 + 50),
            "tree_depth": (("chain", "draw"), np.full(shape, 3)),
            "step_size": (("chain", "draw"), np.full(shape, 0.4)),
        })
    tree = xr.DataTree.from_dict(groups)
    tree.attrs.update({"method": method, "model": "toy",
                       "approximate": method in ("svi", "map")})
    tree.attrs.update(attrs or {})
    return tree


def make_svi_tree(*, converged: bool = True, n_draw: int = 400, seed: int = 1) -> xr.DataTree:
    """An SVI-like fit: one chain of independent draws plus an ``svi/elbo`` history."""
    tree = make_tree(n_chain=1, n_draw=n_draw, seed=seed, method="svi",
                     posterior_predictive=False, attrs={"svi_converged": converged})
    steps = np.arange(2000)
    elbo = -1000.0 * np.exp(-steps / 200.0) - 150.0 + np.random.default_rng(0).normal(
        size=steps.size)
    tree["svi"] = xr.DataTree(xr.Dataset({"elbo": (("step",), elbo)}, coords={"step": steps}))
    return tree


class FakeFit:
    """Stands in for ``bayesimg.inference.Fit``: anything with a ``.tree``."""

    def __init__(self, tree: xr.DataTree):
        self.tree = tree
