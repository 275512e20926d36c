"""Generalized low-rank regression (the L2R2 sampler's model): :mod:`.model` (the model, its
math in the docstring, rank selection and alignment helpers) and :mod:`.gibbs` (its exact
blocked Gibbs kernel); its longitudinal extension L2R2 (subject random intercepts over
repeated visits): :mod:`.longitudinal` (kernel :mod:`.longitudinal_gibbs`)."""

from bayesimg.models.glrr.longitudinal import L2R2, LongitudinalLowRankRegression
from bayesimg.models.glrr.model import (
    GLRR,
    HIDDEN,
    PRIORS,
    RANK_PRIORS,
    GeneralizedLowRankRegression,
    align_loadings,
    choose_rank,
    rank_precision,
    ridge_svd,
    sign_reference,
    srrr_objective,
)

# the class keeps the path it has always had (bayesimg.models.glrr.GeneralizedLowRankRegression):
# fit_many's job fingerprints name it, so saved result folders stay recognised
GeneralizedLowRankRegression.__module__ = __name__
LongitudinalLowRankRegression.__module__ = __name__

__all__ = ["GLRR", "HIDDEN", "L2R2", "PRIORS", "RANK_PRIORS", "GeneralizedLowRankRegression",
           "LongitudinalLowRankRegression",
           "align_loadings", "choose_rank", "rank_precision", "ridge_svd", "sign_reference",
           "srrr_objective"]
