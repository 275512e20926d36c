"""Errors and warnings raised by bayesimg.

Every error about user input names what is at fault: the file, the column, the
subject or the SNP.  They subclass the builtin exception a Python user would
expect (``ValueError`` for bad values, ``FileNotFoundError`` for missing files)
so generic ``except ValueError`` code keeps working.
"""

from __future__ import annotations

from pathlib import Path

#: Passed as ``warnings.warn(..., skip_file_prefixes=LIBRARY_FILES)`` so every bayesimg
#: warning points at the user's own line (script, notebook cell), not at library code.
LIBRARY_FILES = (str(Path(__file__).resolve().parent),)


class BayesimgError(Exception):
    """Base class of every error raised on purpose by bayesimg."""


class DataValidationError(BayesimgError, ValueError):
    """Input data failed validation.

    Attributes
    ----------
    source : str or None
        The file (or in-memory table name) at fault.
    column : str or None
        The column (SNP, phenotype, covariate) at fault.
    subject : str or None
        The subject ID at fault.
    """

    def __init__(self, message: str, *, source: str | None = None,
                 column: str | None = None, subject: str | None = None):
        where = []
        if source is not None:
            where.append(f"file {source!r}")
        if column is not None:
            where.append(f"column {column!r}")
        if subject is not None:
            where.append(f"subject {subject!r}")
        full = f"{message} [{', '.join(where)}]" if where else message
        super().__init__(full)
        self.source = source
        self.column = column
        self.subject = subject


class InputFileError(BayesimgError, OSError):
    """A file could not be found, opened or parsed (truncated, wrong format)."""

    def __init__(self, message: str, *, path: str | None = None):
        super().__init__(f"{message} [file {path!r}]" if path else message)
        self.path = path


class ModelSpecError(BayesimgError, ValueError):
    """A model or inference setting is invalid (bad hyperparameter, unknown method)."""


class ConfigError(BayesimgError, ValueError):
    """A run configuration file is invalid; the message names the key."""


class OutputFolderError(BayesimgError, FileExistsError):
    """An output destination is refused: it exists and bayesimg did not create it, it holds
    an earlier report and overwriting was not asked for, or it cannot be written."""


class ResultFileError(InputFileError):
    """An output file of :func:`bayesimg.fit_many` is unreadable or belongs to another job
    (different data, model, method, options or seed); pass ``overwrite=True`` to replace it."""


class FitManyError(BayesimgError, RuntimeError):
    """Some jobs of :func:`bayesimg.fit_many` failed; the others finished (and were saved).

    Attributes
    ----------
    failures : dict[str, str]
        Job name → the error, as text.
    results : FitResults
        What did finish.
    """

    def __init__(self, message: str, *, failures: dict | None = None, results=None):
        super().__init__(message)
        self.failures = dict(failures or {})
        self.results = results


class BayesimgWarning(UserWarning):
    """Base class of bayesimg warnings."""


class DataWarning(BayesimgWarning):
    """Something in the data was changed or dropped (subjects, SNPs, imputed genotypes)."""


class ConvergenceWarning(BayesimgWarning):
    """A fit shows convergence problems (R-hat, ESS, divergences, BFMI, ELBO)."""
