"""The :class:`Fit` every driver returns, and saving/loading it atomically.

A Fit is an ArviZ 1.x ``xarray.DataTree`` (a subclass; ``fit.tree`` is the fit) holding
``posterior``, ``sample_stats`` (MCMC), ``log_likelihood`` (per subject),
``observed_data`` and ``constant_data``, all numpy with labelled coords, and in
its attributes the method, model, settings, seed, data fingerprint and package
versions.  Any ArviZ function takes a Fit directly; the methods here
are shortcuts to :mod:`bayesimg.report` with the project's 95% convention.

Files: ``.nc`` (netCDF4/HDF5 via h5netcdf) or ``.zarr`` (needs the ``zarr``
extra).  Writes go to a temporary sibling first and are moved into place with
``os.replace``, so an interrupted save never leaves a half-written result.
No pickle anywhere.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from bayesimg.errors import InputFileError, OutputFolderError


class _GroupDataset(xr.Dataset):
    """A group of a Fit as an ``xarray.Dataset`` that also answers the DataTree calls
    ArviZ makes on a group (``to_dataset()``, ``.dataset``, ``.ds``)."""

    __slots__ = ()

    @classmethod
    def of(cls, ds: xr.Dataset) -> _GroupDataset:
        return cls(dict(ds.data_vars), coords=ds.coords, attrs=ds.attrs)

    def to_dataset(self, inherit: bool = True) -> xr.Dataset:
        return xr.Dataset(dict(self.data_vars), coords=self.coords, attrs=self.attrs)

    @property
    def dataset(self) -> xr.Dataset:
        return self.to_dataset()

    @property
    def ds(self) -> xr.Dataset:
        return self.to_dataset()


class Fit(xr.DataTree):
    """A fitted model: an ArviZ 1.x DataTree with shortcuts to the reports.

    A Fit *is* an ``xarray.DataTree``, so every ArviZ 1.x function (``arviz.summary``,
    ``arviz.loo``, ``arviz.ess``, ``arviz_plots.plot_forest``, ``plot_ppc_dist`` after
    :meth:`with_posterior_predictive`, ...) accepts it directly; ``fit.tree`` is the fit
    itself (kept for older code).  ``fit.posterior`` is the posterior group as an
    ``xarray.Dataset``; other groups are reached as on any DataTree
    (``fit["sample_stats"]``, ``fit.log_likelihood``).  Fits compare and hash by identity.
    """

    __slots__ = ("_fit_results",)

    def __init__(self, tree: xr.DataTree | xr.Dataset | None = None, children=None,
                 name: str | None = None):
        if isinstance(tree, xr.DataTree):
            if "posterior" not in tree.children:
                raise ValueError("a Fit needs a DataTree with a 'posterior' group")
            super().__init__(dataset=tree.to_dataset(inherit=False),
                             children={k: v.copy() for k, v in tree.children.items()},
                             name=tree.name)
            self.attrs.update(tree.attrs)
        else:                      # xarray rebuilding a node (copy, map): DataTree's arguments
            super().__init__(dataset=tree, children=children, name=name)

    __eq__ = object.__eq__
    __hash__ = object.__hash__

    def __bool__(self) -> bool:
        return True

    @property
    def _results(self) -> dict[str, Any]:
        try:
            return self._fit_results
        except AttributeError:
            self._fit_results = {}
            return self._fit_results

    @property
    def tree(self) -> xr.DataTree:
        """The fit itself (a DataTree); kept so ``fit.tree`` in older code keeps working."""
        return self

    # ------------------------------------------------------------ properties
    @property
    def posterior(self) -> xr.Dataset:
        return _GroupDataset.of(self["posterior"].to_dataset())

    @property
    def method(self) -> str:
        return str(self.tree.attrs.get("method", "?"))

    @property
    def model_name(self) -> str:
        return str(self.tree.attrs.get("model", "?"))

    @property
    def approximate(self) -> bool:
        return bool(self.tree.attrs.get("approximate", 0))

    @property
    def settings(self) -> dict[str, Any]:
        return _json_attr(self.tree.attrs, "settings")

    @property
    def model_settings(self) -> dict[str, Any]:
        return _json_attr(self.tree.attrs, "model_settings")

    @property
    def timings(self) -> dict[str, float]:
        return _json_attr(self.tree.attrs, "timings")

    @property
    def n_chains(self) -> int:
        return int(self.posterior.sizes["chain"])

    @property
    def n_draws(self) -> int:
        return int(self.posterior.sizes["draw"])

    # ------------------------------------------------------------ reports
    def summary(self, var_names=None, **kwargs):
        """Labelled table: mean, sd, 95% ETI, R-hat, ESS (see :func:`bayesimg.report.summary`)."""
        from bayesimg.report import summary
        return summary(self, var_names=var_names, **kwargs)

    def top_associations(self, n: int = 20, **kwargs):
        from bayesimg.report import top_associations
        return top_associations(self, n=n, **kwargs)

    def diagnose(self, var_names=None):
        """Convergence verdict (R-hat, ESS, divergences, BFMI) from raw numbers."""
        from bayesimg.report import diagnose
        return diagnose(self, var_names=var_names)

    def loo(self, method: str = "auto", *, max_draws: int | None = 1000):
        """Leave-one-subject-out elpd (cached per method); the result names its method.

        ``method="auto"`` (default): integrated LOO — PSIS over hyperparameter draws with
        the coefficients integrated out exactly (:mod:`bayesimg.inference.loo`) — for the
        Gaussian regressions that allow it (GSMTR: W, Γ given σ², τ, ω; GLRR: the SNP-side
        factor U and Γ given diag(δ)Vᵀ, Σ and U's prior scales; SpikeSlabMTR: the included
        effects and Γ given the inclusion/pattern configuration and Σ; L2R2: as GLRR plus
        the subject intercepts, given ω too), using the data
        stored in the fit;
        plain PSIS-LOO otherwise.  ``"integrated"`` insists (error if not available),
        ``"psis"`` is plain PSIS-LOO over all posterior draws.  ``max_draws`` caps the
        hyperparameter draws of the integrated form (evenly thinned per chain).
        """
        from bayesimg.inference.loo import check_method, integrated_loo
        method = check_method(method)
        if method in ("auto", "integrated") and "loo_integrated" not in self._results:
            self._results["loo_integrated"] = integrated_loo(self, max_draws=max_draws)
        if method == "integrated" and self._results["loo_integrated"] is None:
            from bayesimg.errors import ModelSpecError
            raise ModelSpecError(
                f"integrated LOO does not apply to this {self.model_name} fit ({self.method}; "
                "it needs a family with Gaussian coefficients given hyperparameters and the "
                "data stored in the fit); use fit.loo(method='psis') or bayesimg.kfold")
        if method != "psis" and self._results.get("loo_integrated") is not None:
            return self._results["loo_integrated"]
        if "loo" not in self._results:
            from bayesimg.report import loo
            self._results["loo"] = loo(self)
        return self._results["loo"]

    def discoveries(self, fdr: float = 0.05, **kwargs):
        """SNP (or credible set) × ROI discoveries at Bayesian FDR ``fdr``, effects in original
        units (:func:`bayesimg.report.discoveries`)."""
        from bayesimg.report.discovery import discoveries
        return discoveries(self, fdr=fdr, **kwargs)

    def credible_sets(self, coverage: float = 0.95, min_purity: float = 0.5, **kwargs):
        """Credible sets of SNPs with their purity (:func:`bayesimg.report.credible_sets`)."""
        from bayesimg.report.discovery import credible_sets
        return credible_sets(self, coverage=coverage, min_purity=min_purity, **kwargs)

    def inclusion_probabilities(self):
        """Gene, SNP and SNP×ROI PIPs and lfsr (:func:`bayesimg.report.inclusion_probabilities`)."""
        from bayesimg.report.discovery import inclusion_probabilities
        return inclusion_probabilities(self)

    def predict(self, new_data, *, num_draws: int | None = None, seed: int = 0):
        """Posterior predictive of new subjects (:func:`bayesimg.predict`)."""
        from bayesimg.inference.predictive import predict
        return predict(self, new_data, num_draws=num_draws, seed=seed)

    def with_posterior_predictive(self, num_draws: int = 100, seed: int = 0) -> Fit:
        """A new Fit with a ``posterior_predictive`` group of the training data (model
        units, as ``observed_data``: ready for ``arviz_plots.plot_ppc_dist(fit)``)."""
        from bayesimg.inference.predictive import add_posterior_predictive
        return add_posterior_predictive(self, num_draws=num_draws, seed=seed)

    def waic(self):
        """WAIC from the pointwise log-likelihood per subject (cached)."""
        if "waic" not in self._results:
            from bayesimg.report import waic
            self._results["waic"] = waic(self)
        return self._results["waic"]

    # ------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike, *, include_data: bool = True,
             overwrite: bool = False) -> Path:
        """Write the fit to ``.nc`` or ``.zarr``, atomically.  Returns the path.

        ``include_data=False`` leaves out individual-level data (genotypes, phenotypes,
        covariates: every observed/constant array over subjects) and replaces subject IDs
        by positions, so the file can be shared; posterior, diagnostics and the pointwise
        log-likelihood (LOO/WAIC) stay.  The file says so in its ``individual_data`` attr.
        An existing saved bayesimg fit at ``path`` is replaced; any other existing file or
        folder only with ``overwrite=True``.
        """
        tree = self.tree if include_data else without_individual_data(self.tree)
        return save_tree(tree, path, overwrite=overwrite)

    def _repr_html_(self) -> str:
        """Notebook display: what was fitted, how, the variables and their dims."""
        from bayesimg.report.display import esc, key_value_table
        post = self.posterior
        variables = ", ".join(f"{k}{tuple(post[k].dims[2:]) if post[k].dims[2:] else ''}"
                              for k in list(post.data_vars)[:12])
        more = f" … ({len(post.data_vars)} in all)" if len(post.data_vars) > 12 else ""
        groups = ", ".join(self.tree.children)
        attrs = self.tree.attrs
        rows = [("model", esc(f"{self.model_name} {self.model_settings or ''}")),
                ("method", esc(f"{self.method}: {self.n_chains} chain(s) × {self.n_draws} "
                               f"draw(s), seed {attrs.get('seed', '?')}")),
                ("data", esc(f"{attrs.get('data_name', '?')}, {attrs.get('n_subjects', '?')} "
                             "subjects")),
                ("posterior", esc(variables + more)),
                ("groups", esc(groups))]
        if "individual_data" in attrs:
            rows.append(("individual data", esc(attrs["individual_data"])))
        notes = ["fit.summary(), fit.diagnose(), fit.loo(); fit.tree is the ArviZ DataTree"]
        return key_value_table("bayesimg Fit", rows, notes=notes)

    def __repr__(self) -> str:
        post = self.posterior
        shown = ", ".join(f"{k}{tuple(post[k].dims[2:]) or ''}" for k in list(post.data_vars)[:8])
        return (f"<Fit {self.model_name} by {self.method}: {self.n_chains} chain(s) × "
                f"{self.n_draws} draw(s); {shown}>")


def _json_attr(attrs, key) -> dict[str, Any]:
    raw = attrs.get(key)
    if raw is None:
        return {}
    return json.loads(raw) if isinstance(raw, str) else dict(raw)


def _format_of(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in (".nc", ".netcdf", ".h5", ".nc4"):
        return "netcdf"
    if suffix == ".zarr":
        return "zarr"
    raise InputFileError("fit files end in .nc (netCDF) or .zarr", path=str(path))


#: Groups whose arrays over subjects are the individual-level data.
_DATA_GROUPS = ("observed_data", "constant_data")


def without_individual_data(tree: xr.DataTree) -> xr.DataTree:
    """A copy of ``tree`` without individual-level data, for sharing.

    Drops every array over the ``subject`` dim of the observed and constant data (the
    genotypes, phenotypes and covariates) and replaces subject IDs everywhere by their
    positions 0..n-1.  Per-SNP/phenotype constants (e.g. standardisation) stay.
    """
    out = tree.copy()
    for group in _DATA_GROUPS:
        if group in out.children:
            ds = out[group].to_dataset()
            keep = ds.drop_vars([v for v in ds.data_vars if "subject" in ds[v].dims])
            out[group] = xr.DataTree(keep.drop_dims("subject", errors="ignore"))
    for node in out.subtree:
        ds = node.to_dataset()
        if "subject" in ds.coords:
            node.dataset = ds.assign_coords(subject=np.arange(ds.sizes["subject"]))
    out.attrs = {**tree.attrs, "individual_data": "removed: no genotypes, phenotypes or "
                 "covariates; subject IDs replaced by positions"}
    return out


def is_saved_fit(path: str | os.PathLike) -> bool:
    """True when ``path`` holds a fit saved by bayesimg (read lazily: attrs only)."""
    path = Path(path)
    try:
        engine = "h5netcdf" if _format_of(path) == "netcdf" else "zarr"
        kwargs = {} if engine == "h5netcdf" else {"consolidated": False}
        with xr.open_datatree(path, engine=engine, **kwargs) as opened:
            attrs = dict(opened.attrs)
    except Exception:  # noqa: BLE001 - anything unreadable is not ours
        return False
    return "data_fingerprint" in attrs and "bayesimg" in str(attrs.get("versions", ""))


def save_tree(tree: xr.DataTree, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Atomically write ``tree`` to ``path`` (.nc or .zarr).

    An existing path is replaced only when it is a fit saved by bayesimg, or when
    ``overwrite=True``; anything else raises :class:`~bayesimg.errors.OutputFolderError`.
    """
    path = Path(path)
    fmt = _format_of(path)
    if (path.exists() or path.is_symlink()) and not overwrite and not is_saved_fit(path):
        raise OutputFolderError(
            f"{str(path)!r} already exists and is not a fit saved by bayesimg; pass "
            "overwrite=True to replace it, or choose another file name")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent)
    tmp = Path(tmp_dir) / path.name
    try:
        if fmt == "netcdf":
            tree.to_netcdf(tmp, engine="h5netcdf")
        else:
            try:
                import zarr  # noqa: F401
            except ImportError as err:
                raise InputFileError("saving to .zarr needs the 'zarr' package "
                                     "(pip install 'bayesimg[zarr]')", path=str(path)) from err
            tree.to_zarr(tmp, consolidated=False)  # zarr v3 has no consolidated metadata
        if path.is_dir():
            old = Path(tmp_dir) / "previous"
            os.replace(path, old)
            os.replace(tmp, path)
        else:
            os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    return path


def load(path: str | os.PathLike) -> Fit:
    """Load a fit saved with :meth:`Fit.save` (netCDF or zarr; no pickle)."""
    path = Path(path)
    if not path.exists():
        raise InputFileError("no saved fit here", path=str(path))
    fmt = _format_of(path)
    try:
        if fmt == "netcdf":
            with xr.open_datatree(path, engine="h5netcdf") as opened:
                tree = opened.load()
        else:
            with xr.open_datatree(path, engine="zarr", consolidated=False) as opened:
                tree = opened.load()
    except (OSError, ValueError) as err:
        raise InputFileError(f"could not read a saved fit: {err}", path=str(path)) from err
    return Fit(tree)
