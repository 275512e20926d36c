"""The base every model's exact Gibbs kernel shares.

A model's Gibbs kernel is a NumPyro :class:`~numpyro.infer.mcmc.MCMCKernel`, so the
shared MCMC driver runs it like NUTS.  It draws every value itself (no potential
function, so ``model`` is ``None``) and keeps the current draw under ``state.z``.
"""

from __future__ import annotations

from numpyro.infer.mcmc import MCMCKernel


class ExactGibbsKernel(MCMCKernel):
    """An MCMC kernel whose state holds the current draw in ``z`` (sites → values)."""

    sample_field = "z"

    @property
    def model(self):
        return None
