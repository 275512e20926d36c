"""Model families: each a NumPyro model plus what the shared drivers need."""

from bayesimg.models.base import Model
from bayesimg.models.bnmix import BNMix
from bayesimg.models.factor import MultiViewFactor
from bayesimg.models.glrr import GLRR, GeneralizedLowRankRegression
from bayesimg.models.gsmtr import GroupSparseMTR

__all__ = ["BNMix", "GLRR", "GeneralizedLowRankRegression", "GroupSparseMTR", "Model",
           "MultiViewFactor"]
