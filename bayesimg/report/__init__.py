"""Reporting for bayesimg fits: summaries, diagnostics, WAIC/LOO comparison, plots.

Every function takes a fit (``bayesimg.inference.Fit``, or anything with a ``.tree``
``xarray.DataTree``) or the DataTree itself, and only reads it.

Intervals are 95% equal-tailed everywhere (:data:`CI_PROB`, :data:`CI_KIND`; ArviZ
1.x defaults to 89%).  Numbers are raw floats; verdicts use the thresholds in
:mod:`bayesimg.report.diagnostics`.
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
from bayesimg.report.discovery_plots import plot_manhattan, plot_pip_heatmap  # noqa: E402
from bayesimg.report.intervals import CI_KIND, CI_PROB  # noqa: E402
from bayesimg.report.plots import (  # noqa: E402
    plot_compare,
    plot_elbo,
    plot_forest,
    plot_khat,
    plot_ppc,
    plot_trace,
    save_figure,
)
from bayesimg.report.summary import summary, top_associations  # noqa: E402

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
