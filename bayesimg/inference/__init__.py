"""Shared, model-agnostic inference drivers: NUTS, Gibbs kernels, SVI, MAP."""

from bayesimg.inference.api import METHODS, fit, select_hyperparameter
from bayesimg.inference.fit import Fit, load
from bayesimg.inference.kfold import kfold, make_folds
from bayesimg.inference.many import FitJob, FitResults, fit_many
from bayesimg.inference.mcmc import clear_compile_cache
from bayesimg.inference.predictive import add_posterior_predictive, predict

__all__ = ["METHODS", "Fit", "FitJob", "FitResults", "add_posterior_predictive",
           "clear_compile_cache", "fit", "fit_many", "kfold", "load", "make_folds", "predict",
           "select_hyperparameter"]
