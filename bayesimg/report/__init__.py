"""Reporting for bayesimg fits: summaries, diagnostics, WAIC/LOO comparison, plots.

Every function takes a fit (``bayesimg.inference.Fit``, or anything with a ``.tree``
``xarray.DataTree``) or the DataTree itself, and only reads it.

Intervals are 95% equal-tailed everywhere (:data:`CI_PROB`, :data:`CI_KIND`; ArviZ
1.x defaults to 89%).  Numbers are raw floats; verdicts use the thresholds in
:mod:`bayesimg.report.diagnostics`.

The plotting functions are imported on first use (PEP 562 ``__getattr__``): importing
matplotlib costs about 1 CPU s, which every fit would otherwise pay when it checks its
diagnostics (``bayesimg.report.diagnostics``) in a new process.
"""

from bayesimg import _jax_setup

_jax_setup.configure()  # before anything below imports JAX

from bayesimg.report.compare import ICResult, compare, loo, waic  # noqa: E402
from bayesimg.report.diagnostics import Diagnostics, diagnose, warn_if_problems  # noqa: E402
from bayesimg.report.discovery import (  # noqa: E402
    credible_sets,
    discoveries,
    inclusion_probabilities,
)
from bayesimg.report.intervals import CI_KIND, CI_PROB  # noqa: E402
from bayesimg.report.summary import summary, top_associations  # noqa: E402

#: name → module of the functions imported on first use (they import matplotlib)
_LAZY = {"plot_manhattan": "discovery_plots", "plot_pip_heatmap": "discovery_plots",
         **{name: "plots" for name in ("plot_compare", "plot_elbo", "plot_forest",
                                       "plot_khat", "plot_ppc", "plot_trace", "save_figure")}}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib
        value = getattr(importlib.import_module(f"bayesimg.report.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'bayesimg.report' has no attribute {name!r}")


__all__ = [
    "CI_KIND",
    "CI_PROB",
    "Diagnostics",
    "ICResult",
    "compare",
    "credible_sets",
    "diagnose",
    "discoveries",
    "inclusion_probabilities",
    "loo",
    "plot_compare",
    "plot_elbo",
    "plot_forest",
    "plot_khat",
    "plot_manhattan",
    "plot_pip_heatmap",
    "plot_ppc",
    "plot_trace",
    "save_figure",
    "summary",
    "top_associations",
    "waic",
    "warn_if_problems",
]
