"""Shared, model-agnostic inference drivers: NUTS, Gibbs kernels, SVI, MAP."""

from bayesimg import _jax_setup

_jax_setup.configure()  # before anything below imports JAX

from bayesimg.inference.api import METHODS, fit, select_hyperparameter  # noqa: E402
from bayesimg.inference.fit import Fit, load  # noqa: E402
from bayesimg.inference.kfold import kfold, make_folds  # noqa: E402
from bayesimg.inference.many import FitJob, FitResults, fit_many  # noqa: E402
from bayesimg.inference.mcmc import clear_compile_cache  # noqa: E402
from bayesimg.inference.predictive import add_posterior_predictive, predict  # noqa: E402

__all__ = ["METHODS", "Fit", "FitJob", "FitResults", "add_posterior_predictive",
           "clear_compile_cache", "fit", "fit_many", "kfold", "load", "make_folds", "predict",
           "select_hyperparameter"]
