"""Subject counts bucketed: fits on nearby numbers of subjects share one compiled program.

Every new data shape compiles a new program; the folds of a K-fold split differ by a
subject or so (53 subjects in 5 folds: training sets of 42 and 43), and each size cost
its own compile (a 5-fold GSMTR ``kfold`` compiled 33 programs, 4 of them Gibbs
samplers of 20-40 s each).  A model whose exact sampler for ``method`` tolerates
padding (:meth:`~bayesimg.models.core.base.Model.pads_subjects`) has its subject-axis
arguments (:meth:`~bayesimg.models.core.base.Model.subject_axis_args`) padded with zero
rows up to :func:`subject_bucket` ``(n)``, and gets the real count as the argument
:data:`~bayesimg.models.core.base.REAL_SUBJECTS_ARG`.

Why the results do not change.  A model opts in only for a sampler that touches the
subjects through sums over rows (XᵀX, XᵀY, ‖Y‖², ZᵀZ, ...) and the count n: zero rows
add exactly nothing to those sums, and the kernel reads n from the real-count argument.
No random number is drawn per subject, so the same keys give the same draws, up to the
rounding of sums with extra zero terms (none in practice).  The per-draw pointwise
log-likelihood is computed for the padded rows too and dropped here
(:func:`drop_padding`); the numpyro model never sees the count argument
(:func:`without_count`).

Buckets: 8 sizes per doubling (n rounded up to a multiple of 2^(⌊log₂ n⌋ − 3)), so at
most 1/8 of the rows are padding -- free for such samplers, whose sweep cost does not
grow with n; the per-draw log-likelihood grows by at most 12.5%.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from bayesimg.models.core.base import REAL_SUBJECTS_ARG, Model


def subject_bucket(n: int) -> int:
    """The padded subject count for ``n`` subjects: ``n`` rounded up to 8 steps per doubling.

    Sizes up to 16 are kept; 42 and 43 both become 44, 100 → 104, 1000 → 1024.
    """
    n = int(n)
    if n <= 16:
        return n
    step = 1 << (n.bit_length() - 4)
    return -(-n // step) * step


def pad_subjects(model: Model, data, method: str, args: Mapping[str, Any],
                 n_to: int | None = None) -> dict[str, Any]:
    """``args`` (``model.model_args(data, method)``) padded to ``n_to`` subjects.

    ``n_to`` defaults to :func:`subject_bucket` of the data's count.  Returns ``args``
    unchanged (a copy) when the model does not pad for ``method``.
    """
    args = dict(args)
    if not model.pads_subjects(data, method):
        return args
    n = int(data.n_subjects)
    n_to = subject_bucket(n) if n_to is None else int(n_to)
    if n_to < n:
        raise ValueError(f"cannot pad {n} subjects down to {n_to}")
    for name in model.subject_axis_args(data, method, args=args):
        value = args.get(name)
        if value is None or np.ndim(value) == 0:
            continue
        value = np.asarray(value)
        if value.shape[0] != n:
            raise ValueError(f"{type(model).__name__}: argument {name!r} has {value.shape[0]} "
                             f"rows for {n} subjects")
        args[name] = np.concatenate(
            [value, np.zeros((n_to - n,) + value.shape[1:], value.dtype)]) if n_to > n else value
    args[REAL_SUBJECTS_ARG] = np.asarray(float(n))
    return args


def without_count(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """``kwargs`` less the real-count argument (what the numpyro model takes)."""
    return {k: v for k, v in kwargs.items() if k != REAL_SUBJECTS_ARG}


def record_without_count(record_extra):
    """``record_extra(sample, kwargs)`` called without the real-count argument."""
    if record_extra is None:
        return None
    return lambda sample, kwargs: record_extra(sample, without_count(kwargs))


def drop_padding(extra: Mapping[str, Any], n: int) -> dict[str, Any]:
    """Per-fit pointwise log-likelihoods (``(..., units)``) cut to the first ``n`` units."""
    return {k: np.asarray(v)[..., :n] for k, v in extra.items()}
