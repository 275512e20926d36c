"""The small interface between a model family and the shared inference drivers.

A :class:`Model` is three things:

1. a NumPyro model function, :meth:`Model.numpyro_model`, whose *data and
   hyperparameters are all keyword arguments* (arrays).  The drivers pass them
   as arguments to one compiled program, so refitting on new data of the same
   shape, or over a grid of hyperparameters (λ, rank, K), never recompiles;
2. :meth:`Model.model_args` turning a data object (:class:`~bayesimg.data.Dataset`,
   :class:`~bayesimg.data.MultiViewData`) into
   those keyword arguments, and :meth:`Model.static_key` naming everything that
   *does* change the program (structure switches), for the compile cache;
3. labels: :attr:`Model.dims` (a dim name for every axis of every latent,
   deterministic and observed site — the drivers refuse to invent ``W_dim_0``)
   and :meth:`Model.coords` (the labels along each dim).

Optional hooks: :meth:`as_data` (other input forms, e.g. a plain table, turned into
the family's data object), :meth:`init_strategy`, :meth:`gibbs_kernel` (an exact
conditional sampler as a NumPyro ``MCMCKernel``), :meth:`align_draws`
(relabelling / sign / rotation alignment of draws across chains),
:meth:`predict_draws` (new subjects, from a fit's DataTree alone) and
:meth:`loo_given_hyperparameters` (integrated LOO for Gaussian coefficients).

Models never import :mod:`bayesimg.inference`; the drivers only use what is
declared here.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import Any

import numpy as np
from numpyro.infer import init_to_uniform

from bayesimg.data.base import SubjectData
from bayesimg.errors import ModelSpecError

#: argument through which a sampler that takes zero-padded subject rows gets the real
#: subject count (:meth:`Model.pads_subjects`, :mod:`bayesimg.inference.padding`)
REAL_SUBJECTS_ARG = "n_real_subjects"


class Model(abc.ABC):
    """Base class of every bayesimg model family.

    Subclasses set :attr:`name`, :attr:`dims`, :attr:`observed` and implement
    :meth:`numpyro_model`, :meth:`model_args` and :meth:`coords`.
    """

    #: short name used in reports and saved fits
    name: str = "model"
    #: site name → dim names of the site's axes (chain/draw excluded)
    dims: Mapping[str, tuple[str, ...]] = {}
    #: observed site name → dims of the observed array; the first dim is the
    #: unit of leave-one-out (the pointwise log-likelihood is summed over the rest)
    observed: Mapping[str, tuple[str, ...]] = {}
    #: latent sites that are only a reparameterisation: sampled, used for the
    #: log-likelihood, but not stored in the posterior (e.g. whitened weights)
    hidden_sites: frozenset[str] = frozenset()
    #: sites whose elements change meaning with the label or sign a draw happens to
    #: carry (matched only after sampling by :meth:`align_draws`): never given
    #: streaming summaries, which would pool unaligned draws
    label_dependent_sites: frozenset[str] = frozenset()
    #: sites stored for a later computation, not for reading (e.g. the unidentified
    #: layers integrated LOO conditions on): marked ``attrs["role"] = "helper"`` in the
    #: posterior and left out of summaries, plots and diagnostics unless named
    helper_sites: frozenset[str] = frozenset()
    #: the coefficient site whose elements are "associations" (forest plots, top hits)
    association_site: str | None = None
    #: low-dimensional sites worth a trace plot in reports
    trace_sites: tuple[str, ...] = ()
    #: the model function takes ``subsample_size=`` and then evaluates the likelihood
    #: on a random minibatch of LOO units (a NumPyro subsampling plate) — SVI on
    #: biobank-sized data; all its latent sites must be global (not per unit)
    supports_subsampling: bool = False

    # ------------------------------------------------------------ required
    @abc.abstractmethod
    def numpyro_model(self, method: str = "nuts"):
        """Return the NumPyro model function used by ``method``.

        Every argument of the returned function is a keyword argument; the
        observed site(s) take ``None`` to draw from the predictive.
        """

    @abc.abstractmethod
    def model_args(self, data: SubjectData, method: str = "nuts") -> dict[str, Any]:
        """Keyword arguments (numpy/JAX arrays) for :meth:`numpyro_model` ``(method)``."""

    @abc.abstractmethod
    def coords(self, data: SubjectData) -> dict[str, np.ndarray]:
        """Labels for every dim in :attr:`dims` and :attr:`observed`."""

    # ------------------------------------------------------------ optional
    def static_key(self, data: SubjectData) -> tuple:
        """Everything that changes the compiled program for ``data`` (not array values)."""
        return (type(self).__qualname__,)

    def settings(self) -> dict[str, Any]:
        """Hyperparameters and switches, recorded in a saved fit's attributes."""
        return {}

    def validate(self, data: SubjectData) -> None:
        """Raise a named error if ``data`` cannot be fitted by this model."""
        return None

    def init_strategy(self, data: SubjectData, method: str):
        """NumPyro init strategy (default: uniform in (-1, 1) unconstrained)."""
        return init_to_uniform(radius=1.0)

    def observed_data(self, data: SubjectData) -> dict[str, np.ndarray]:
        """Observed arrays by site name (stored in the fit's ``observed_data``)."""
        return {}

    def constant_data(self, data: SubjectData) -> dict[str, tuple[tuple[str, ...], np.ndarray]]:
        """Non-observed inputs worth keeping with a fit: name → (dims, array)."""
        return {}

    def pads_subjects(self, data: SubjectData, method: str) -> bool:
        """True when ``method``'s sampler gives the same draws on zero-padded subjects.

        That is: with every :meth:`subject_axis_args` array padded with zero rows and
        the real count passed as the argument :data:`REAL_SUBJECTS_ARG`, the kernel's
        draws are those of the unpadded data with the same keys (it sees the rows only
        through sums over them, where zero rows add nothing, and draws nothing per
        subject), and no stored site has a subject axis.  Batched fits of such a model
        on nearby subject counts then share one compiled program
        (:mod:`bayesimg.inference.padding`).  Default False.
        """
        return False

    def subject_axis_args(self, data: SubjectData, method: str = "nuts", *,
                          args: Mapping[str, Any] | None = None) -> frozenset[str]:
        """Names of the :meth:`model_args` arrays whose axis 0 is the subject axis.

        ``bayesimg.fit(..., shard_data=True)`` splits these row-wise over the
        devices (:mod:`bayesimg.inference.sharding`) and replicates the rest.
        ``args``: the arguments already built by ``model_args(data, method)``
        (saves building them again).

        The default takes every array argument with at least one axis whose
        leading dimension equals ``data.n_subjects``.  Its caveat: an argument
        that only happens to have that length (a d×d matrix when d = n, an edge
        list as long as the subject list) is sharded too, and a per-subject
        argument stored subject-axis-last is not; families override this with
        the exact names.  Either mistake costs speed only, never correctness:
        a compiled program computes the same whatever the placement of its
        inputs.
        """
        if args is None:
            args = self.model_args(data, method)
        n = data.n_subjects
        return frozenset(key for key, value in args.items()
                         if value is not None and not isinstance(value, int | str)
                         and np.ndim(value) >= 1 and np.shape(value)[0] == n)

    def as_data(self, data: Any) -> Any:
        """The family's data object for ``data`` (default: ``data`` unchanged).

        :func:`bayesimg.fit` calls this first, so a family may accept other input forms
        (BNMix: a pandas DataFrame of binary and continuous columns); whatever it returns
        is then checked as usual.
        """
        return data

    def gibbs_kernel(self, data: SubjectData):
        """An exact conditional ``numpyro.infer.mcmc.MCMCKernel``, if the math allows."""
        raise ModelSpecError(
            f"{self.name} has no exact Gibbs kernel; use method='nuts', 'svi' or 'map'")

    def align_draws(self, samples: dict[str, np.ndarray], data: SubjectData,
                    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Resolve non-identifiability in posterior draws before they are stored.

        ``samples`` maps site name → array ``(chain, draw, *site_shape)``.  A
        family whose parameters are identified only up to sign, permutation,
        rotation or label switching (rank layers, factors, clusters) overrides
        this to map every draw of every chain onto one reference, so that R-hat,
        ESS and intervals of the stored sites mean something.  Returns the
        aligned samples and a JSON-serialisable summary of what was done
        (stored as the fit's ``alignment`` attribute; empty: nothing to say).
        """
        return samples, {}

    def predictive_args(self, data: SubjectData, method: str = "nuts") -> dict[str, Any]:
        """Arguments for drawing the observed sites from the predictive."""
        raise NotImplementedError(f"{self.name} does not define predictive_args")

    def predict_draws(self, tree, new_data: SubjectData, *, draws: np.ndarray,
                      rng: np.random.Generator):
        """Predictive draws for subjects the fit never saw (``bayesimg.predict``).

        ``tree``: the fit's DataTree (everything needed — training standardisation,
        labels — is read from it, so a loaded fit predicts); ``draws``: flat
        (chain·draw) indices of the posterior draws to use.  Returns a
        :class:`bayesimg.models.core.predict.PredictiveDraws` (original units).
        """
        raise ModelSpecError(f"{self.name} cannot predict new subjects")

    def loo_given_hyperparameters(self, tree, *, draws: np.ndarray,
                                  rng: np.random.Generator):
        """Integrated LOO hook: log p(y_i | y_{-i}, θ_s) with the coefficients integrated out.

        For families whose coefficients are Gaussian given hyperparameters θ, return
        ``(log_lik, theta, note)``: ``log_lik`` (S, n) at the flat draw indices
        ``draws``, ``theta`` name → (dims, array (S, …)) (the hyperparameter draws, for
        the relative efficiency) and a one-line note on what was integrated.  None
        (the default) where it does not apply; ``fit.loo()`` then uses plain PSIS.
        """
        return None

    def heldout_given_hyperparameters(self, tree, new_data: SubjectData, *,
                                      draws: np.ndarray, rng: np.random.Generator):
        """log p(ỹ_i | y_train, θ_s) (S, m) of ``new_data``'s subjects, coefficients
        integrated out given each hyperparameter draw (flat indices ``draws``), in the
        fit's model units; :func:`bayesimg.kfold` uses it for held-out densities without
        Monte Carlo error in the coefficients.  None (the default): not available, kfold
        uses :func:`bayesimg.predict`'s log mean over the posterior draws."""
        return None

    def replace(self, **changes) -> Model:
        """A copy with some settings changed (``settings()`` are constructor arguments)."""
        unknown = set(changes) - set(self.settings())
        if unknown:
            raise ModelSpecError(
                f"{type(self).__name__} has no setting(s) {sorted(unknown)}; "
                f"settings: {sorted(self.settings())}")
        return type(self)(**{**self.settings(), **changes})

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self.settings().items())
        return f"{type(self).__name__}({inner})"
