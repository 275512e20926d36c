"""Checkpoint and resume for long MCMC and SVI runs.

A checkpoint is a folder::

    run.ckpt/
        meta.json            what run this is (fingerprint) and how far it got
        state-<k>.npz        sampler / optimiser state after commit k
        part-<g>-<i>.npz     the i-th chunk of kept draws of chain group g
        extra-<k>.npz        driver bookkeeping (streaming summaries, ELBO history)

Every file is written to a temporary name and renamed into place (atomic on
POSIX), and ``meta.json`` is written last: it is the single commit point, and
names the state file and the number of chunks that belong to the commit.  A
run killed at any moment therefore leaves either the previous commit or the
new one, never a mixture; files written after the last commit are ignored and
overwritten on resume.  Only ``numpy.savez`` (no pickle) and JSON are used.

The kernel and optimiser states carry their own RNG keys and the drivers
advance in chunks whose lengths do not depend on where a run stopped, so a
resumed run gives *the same draws* as an uninterrupted one with the same seed.

The fingerprint records the model, its settings, the data fingerprint, the
method and every option that changes the draws; resuming with anything
different is refused with the differing fields named.  The folder is removed
when the run completes (``keep=True`` keeps it).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import jax
import numpy as np

from bayesimg.atomic import write_atomic
from bayesimg.errors import InputFileError, ModelSpecError

_FORMAT = 1


def _save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    def write(tmp):
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
    write_atomic(path, write)


def _load_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    except (OSError, ValueError) as err:
        raise InputFileError(f"checkpoint file is unreadable ({err}); delete the checkpoint "
                             "folder to start over", path=str(path)) from err


def flatten_tree(tree) -> dict[str, np.ndarray]:
    """Leaves of a pytree of arrays, as host arrays named by position."""
    leaves = jax.tree.leaves(tree)
    from bayesimg.inference.sharding import to_host
    return {f"leaf{i:05d}": x for i, x in enumerate(to_host(leaves))}


def unflatten_like(template, arrays: dict[str, np.ndarray]):
    """Rebuild a pytree shaped like ``template`` (arrays or ShapeDtypeStructs)."""
    leaves, treedef = jax.tree.flatten(template)
    if len(arrays) != len(leaves):
        raise InputFileError(f"checkpoint state has {len(arrays)} arrays, the run expects "
                             f"{len(leaves)}; delete the checkpoint folder to start over")
    restored = []
    for i, leaf in enumerate(leaves):
        value = arrays[f"leaf{i:05d}"]
        if tuple(value.shape) != tuple(leaf.shape):
            raise InputFileError(f"checkpoint state array {i} has shape {value.shape}, the run "
                                 f"expects {tuple(leaf.shape)}; delete the checkpoint folder")
        restored.append(np.asarray(value, dtype=leaf.dtype))
    return jax.tree.unflatten(treedef, restored)


def _flatten_named(parts: tuple[dict[str, np.ndarray], ...]) -> dict[str, np.ndarray]:
    """``(samples, stats, extra)`` dicts → one npz namespace ``"<i>/<name>"``."""
    return {f"{i}/{name}": np.asarray(v) for i, part in enumerate(parts)
            for name, v in part.items()}


def _unflatten_named(arrays: dict[str, np.ndarray], n_parts: int):
    parts: list[dict[str, np.ndarray]] = [{} for _ in range(n_parts)]
    for key, value in arrays.items():
        i, name = key.split("/", 1)
        parts[int(i)][name] = value
    return tuple(parts)


def fingerprint_of(fields: dict[str, Any]) -> dict[str, str]:
    """JSON-safe fingerprint: every field as a canonical string."""
    return {k: json.dumps(v, sort_keys=True, default=str) for k, v in fields.items()}


class Checkpoint:
    """One run's checkpoint folder (see the module docstring).

    Parameters
    ----------
    path : folder to write (created if missing; resumed if it holds a commit).
    fingerprint : what makes two runs the same run (from :func:`fingerprint_of`).
    every : commit at most every ``every`` iterations (MCMC transitions per
        chain, or SVI steps); ``None``: at every chunk of the driver.
    keep : keep the folder after the run completes.
    """

    def __init__(self, path: str | os.PathLike, fingerprint: dict[str, str],
                 every: int | None = None, keep: bool = False):
        self.path = Path(path)
        self.fingerprint = fingerprint
        self.every = every
        self.keep = keep
        self.meta: dict[str, Any] | None = None
        self._since_commit = 0
        if self.path.exists() and not self.path.is_dir():
            raise InputFileError("checkpoint path exists and is not a folder", path=str(path))
        meta_file = self.path / "meta.json"
        if meta_file.exists():
            try:
                meta = json.loads(meta_file.read_text())
            except (OSError, ValueError) as err:
                raise InputFileError(f"checkpoint meta.json is unreadable ({err})",
                                     path=str(meta_file)) from err
            if meta.get("format") != _FORMAT:
                raise InputFileError(f"checkpoint format {meta.get('format')!r} is not "
                                     f"{_FORMAT}; delete the folder", path=str(self.path))
            stored = meta.get("fingerprint", {})
            differ = sorted(k for k in set(stored) | set(fingerprint)
                            if stored.get(k) != fingerprint.get(k))
            if differ:
                detail = "; ".join(f"{k}: saved {stored.get(k)} vs now {fingerprint.get(k)}"
                                   for k in differ[:4])
                raise ModelSpecError(
                    f"checkpoint {self.path} belongs to a different run ({detail}); pass a new "
                    "checkpoint path or delete the folder")
            self.meta = meta
        self.path.mkdir(parents=True, exist_ok=True)
        for stale in self.path.glob(".*.tmp"):  # a write cut short by a kill
            stale.unlink(missing_ok=True)

    # ------------------------------------------------------------ reading
    @property
    def resuming(self) -> bool:
        return self.meta is not None

    @property
    def progress(self) -> dict[str, Any]:
        return dict(self.meta["progress"]) if self.meta else {}

    def state(self, template):
        """The committed sampler/optimiser state, shaped like ``template``."""
        return unflatten_like(template, _load_npz(self.path / self.meta["state_file"]))

    def extra(self) -> dict[str, np.ndarray]:
        name = self.meta.get("extra_file")
        return _load_npz(self.path / name) if name else {}

    def parts(self, group: int, n_parts: int = 3) -> list[tuple]:
        """Committed chunks of kept draws of chain group ``group``, in order."""
        count = self.meta["parts"].get(str(group), 0) if self.meta else 0
        return [_unflatten_named(_load_npz(self._part_file(group, i)), n_parts)
                for i in range(count)]

    # ------------------------------------------------------------ writing
    def _part_file(self, group: int, index: int) -> Path:
        return self.path / f"part-{group:03d}-{index:06d}.npz"

    def add_part(self, group: int, index: int, part: tuple) -> None:
        """Write one chunk of kept draws (committed by the next :meth:`commit`)."""
        _save_npz(self._part_file(group, index), _flatten_named(part))

    def due(self, iterations: int) -> bool:
        """Count ``iterations`` done since the last commit; is a commit due now?"""
        self._since_commit += iterations
        return self.every is None or self._since_commit >= self.every

    def commit(self, state, progress: dict[str, Any], parts: dict[int, int],
               extra: dict[str, np.ndarray] | None = None) -> None:
        """Make ``state`` + ``progress`` + the first ``parts[g]`` chunks the resume point.

        ``parts`` updates the committed chunk counts of the groups it names;
        other groups keep theirs.
        """
        previous = self.meta or {}
        k = int(previous.get("commit", 0)) + 1
        state_file, extra_file = f"state-{k:06d}.npz", None
        _save_npz(self.path / state_file, flatten_tree(state))
        if extra:
            extra_file = f"extra-{k:06d}.npz"
            _save_npz(self.path / extra_file, extra)
        meta = {"format": _FORMAT, "fingerprint": self.fingerprint, "commit": k,
                "state_file": state_file, "extra_file": extra_file,
                "parts": {**previous.get("parts", {}),
                          **{str(g): int(n) for g, n in parts.items()}},
                "progress": _json_safe(progress)}
        write_atomic(self.path / "meta.json",
                      lambda tmp: Path(tmp).write_text(json.dumps(meta, indent=1)))
        for name in (previous.get("state_file"), previous.get("extra_file")):
            if name and name not in (state_file, extra_file):
                (self.path / name).unlink(missing_ok=True)
        self.meta = meta
        self._since_commit = 0

    def finish(self) -> None:
        """The run completed: remove the folder unless ``keep``."""
        if not self.keep:
            shutil.rmtree(self.path, ignore_errors=True)


def _json_safe(value):
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def data_digest(arrays: dict[str, Any]) -> str:
    """Hash of model arguments (arrays and scalars) for a fingerprint."""
    h = hashlib.sha256()
    for key in sorted(arrays):
        value = arrays[key]
        h.update(key.encode())
        if value is None:
            h.update(b"None")
            continue
        arr = np.asarray(jax.device_get(value))
        h.update(str(arr.dtype).encode() + str(arr.shape).encode())
        h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()[:20]
