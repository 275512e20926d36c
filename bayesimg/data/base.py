"""What every data object handed to the inference drivers provides.

The drivers and reports need only the subjects (the unit of leave-one-out), a
name and a fingerprint stored with each fit.  :class:`~bayesimg.data.Dataset`
(genotypes → phenotypes) and :class:`~bayesimg.data.MultiViewData` (several
feature views of the same subjects) both derive from :class:`SubjectData`, so a
model family states which one it consumes in its ``validate``.
"""

from __future__ import annotations

import abc
import hashlib
from collections.abc import Iterable

import numpy as np


class SubjectData(abc.ABC):
    """Abstract base: one row per subject, labelled by ``subjects``."""

    subjects: np.ndarray
    name: str

    @property
    def n_subjects(self) -> int:
        return len(self.subjects)

    @abc.abstractmethod
    def fingerprint(self) -> str:
        """A short hash of the numbers and labels (stored in saved fits)."""

    @abc.abstractmethod
    def subset_subjects(self, mask_or_index) -> SubjectData:
        """A new object keeping only the selected subjects (rows)."""


def hash_arrays(arrays: Iterable[np.ndarray | None], labels: Iterable[Iterable]) -> str:
    """Sixteen hex digits of SHA-256 over float64 arrays (NaN-stable) and label lists."""
    h = hashlib.sha256()
    for arr in arrays:
        if arr is not None:
            h.update(np.ascontiguousarray(arr, dtype=np.float64).tobytes())
    for label_list in labels:
        h.update("|".join(map(str, label_list)).encode())
    return h.hexdigest()[:16]
