"""bayesimg: Bayesian models for brain imaging genomics and multimodal data.

    import bayesimg as bi
    data = bi.data.load_demo()
    fit = bi.fit(bi.models.GroupSparseMTR(), data, method="nuts", chains=4)
    fit.summary(var_names=["W"])
"""

from bayesimg import _jax_setup

_jax_setup.configure()

from bayesimg import data, models, report  # noqa: E402
from bayesimg._jax_setup import current_precision, set_precision  # noqa: E402
from bayesimg.inference import (  # noqa: E402
    Fit,
    FitJob,
    fit,
    fit_many,
    kfold,
    load,
    predict,
    select_hyperparameter,
)
from bayesimg.report import compare  # noqa: E402

__version__ = "0.1.0"

__all__ = ["Fit", "FitJob", "compare", "current_precision", "data", "fit", "fit_many", "kfold",
           "load", "models", "predict", "report", "select_hyperparameter", "set_precision",
           "__version__"]
