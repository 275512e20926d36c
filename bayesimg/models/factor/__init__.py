"""Multi-view factor analysis (MOFA+-like): :mod:`.layout` (static data structure, shared by
model and sampler), :mod:`.model` (the model, its math in the docstring), :mod:`.gibbs` (its
exact Gibbs kernel), :mod:`.align` (draw alignment across chains) and :mod:`.outputs` (what
users read off a fit: variance explained, inclusion, transform, impute, ...)."""

from bayesimg.models.factor import outputs
from bayesimg.models.factor.layout import (
    KIND_CODES,
    OUTCOME_VIEW,
    TRIALS,
    FactorLayout,
    make_layout,
)
from bayesimg.models.factor.model import (
    MixedViewLikelihood,
    MultiViewFactor,
    column_blocks,
    pca_varimax_init,
    varimax,
)

# the class keeps the path it has always had (bayesimg.models.factor.MultiViewFactor): fit_many's
# job fingerprints name it, so saved result folders stay recognised
MultiViewFactor.__module__ = __name__

__all__ = ["KIND_CODES", "OUTCOME_VIEW", "TRIALS", "FactorLayout", "MixedViewLikelihood",
           "MultiViewFactor", "column_blocks", "make_layout", "outputs", "pca_varimax_init",
           "varimax"]
