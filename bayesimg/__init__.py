"""bayesimg: Bayesian models for brain imaging genomics and multimodal data.

    import bayesimg as bi
    data = bi.data.load_demo()
    fit = bi.fit(bi.models.GroupSparseMTR(), data, method="nuts", chains=4)
    fit.summary(var_names=["W"])

The package loads its parts on first use (PEP 562), so ``import bayesimg`` and the
command line's ``--help`` and configuration checks are fast and do not start JAX; the
subpackages that compute configure JAX (:mod:`bayesimg._jax_setup`) before they import it.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

#: public name → module that defines it (imported on first access)
_EXPORTS = {
    "Fit": "bayesimg.inference", "FitJob": "bayesimg.inference", "fit": "bayesimg.inference",
    "fit_many": "bayesimg.inference", "kfold": "bayesimg.inference",
    "load": "bayesimg.inference", "predict": "bayesimg.inference",
    "select_hyperparameter": "bayesimg.inference", "compare": "bayesimg.report",
    "current_precision": "bayesimg._jax_setup", "set_precision": "bayesimg._jax_setup",
}
_SUBMODULES = ("data", "models", "inference", "report", "workflows", "metrics", "baselines",
               "errors", "config", "jobs")

__all__ = ["Fit", "FitJob", "compare", "current_precision", "data", "fit", "fit_many", "kfold",
           "load", "models", "predict", "report", "select_hyperparameter", "set_precision",
           "__version__"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        module = importlib.import_module(_EXPORTS[name])
        if _EXPORTS[name] == "bayesimg._jax_setup":
            module.configure()
        value = getattr(module, name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f"bayesimg.{name}")
    raise AttributeError(f"module 'bayesimg' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS) | set(_SUBMODULES))
