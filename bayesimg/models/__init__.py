"""Model families: each a NumPyro model plus what the shared drivers need.

One package per family (``gsmtr``, ``glrr``, ``factor``, ``bnmix``: model, exact Gibbs
kernel and family helpers) and ``core`` (the :class:`Model` interface and what the families
share).  Families import ``core``, never each other; nothing here imports
:mod:`bayesimg.inference`, :mod:`bayesimg.report` or :mod:`bayesimg.workflows` at import time.
"""

from bayesimg import _jax_setup

_jax_setup.configure()  # before anything below imports JAX

import sys as _sys  # noqa: E402

from bayesimg.models.bnmix import BNMix  # noqa: E402
from bayesimg.models.core.base import Model  # noqa: E402
from bayesimg.models.factor import MultiViewFactor  # noqa: E402
from bayesimg.models.factor import outputs as factor_outputs  # noqa: E402
from bayesimg.models.glrr import (  # noqa: E402
    GLRR,
    L2R2,
    GeneralizedLowRankRegression,
    LongitudinalLowRankRegression,
)
from bayesimg.models.gsmtr import BilateralGSMTR, GroupSparseMTR, SpikeSlabMTR  # noqa: E402

# the module's old path: `from bayesimg.models import factor_outputs` and
# `import bayesimg.models.factor_outputs` keep working
_sys.modules.setdefault(f"{__name__}.factor_outputs", factor_outputs)

__all__ = ["BNMix", "BilateralGSMTR", "GLRR", "L2R2", "GeneralizedLowRankRegression",
           "GroupSparseMTR", "LongitudinalLowRankRegression", "Model", "MultiViewFactor",
           "SpikeSlabMTR"]
