"""Marker files: how bayesimg knows a folder is its own before writing into or deleting in it.

A folder bayesimg creates for itself -- a report folder, the persistent compilation
cache -- carries a small JSON marker file (``{"created_by": "bayesimg", "version": ...,
"created": ...}``) whose name says what the folder is (``.bayesimg-report.json``,
``.bayesimg-cache.json``).  Code that overwrites or deletes files in a folder first
checks its marker, so a folder of the user's own files is never touched.

:func:`claim_folder` creates a marked folder without a race between processes: the
marker is written into a fresh temporary folder beside the target, which is then
renamed onto the target.  ``rename(2)`` is atomic and replaces only a missing or empty
folder, so two processes claiming one path together both end up with the same marked
folder, and neither ever sees it existing without its marker.

Imports nothing heavy (no JAX): :mod:`bayesimg._jax_setup` uses it before JAX starts.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path


def is_marked(folder: str | os.PathLike, marker: str) -> bool:
    """True when ``folder`` is a real folder (not a symlink) holding bayesimg's ``marker``."""
    folder = Path(folder)
    path = folder / marker
    if folder.is_symlink() or not folder.is_dir() or not path.is_file():
        return False
    try:
        return json.loads(path.read_text()).get("created_by") == "bayesimg"
    except (OSError, ValueError, AttributeError):
        return False


def write_marker(folder: str | os.PathLike, marker: str) -> None:
    """Write ``marker`` into ``folder`` (being built by bayesimg)."""
    from bayesimg import __version__
    (Path(folder) / marker).write_text(json.dumps({
        "created_by": "bayesimg", "version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}) + "\n")


def claim_folder(folder: str | os.PathLike, marker: str) -> str | None:
    """Make ``folder`` a bayesimg folder marked with ``marker``; return why not (``None``: done).

    Accepted: a folder already marked, a missing one (created with its missing parents)
    or an empty one.  Refused, untouched: a symlink, a file, a non-empty folder without
    the marker.
    """
    folder = Path(folder)
    if is_marked(folder, marker):
        return None
    if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
        return f"{str(folder)!r} is a {'symlink' if folder.is_symlink() else 'file'}"
    if folder.is_dir() and any(folder.iterdir()):
        return (f"folder {str(folder)!r} holds files bayesimg did not create (no {marker} "
                "marker)")
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        staging = tempfile.mkdtemp(prefix=f".{folder.name}.claim.", dir=folder.parent)
    except OSError as err:
        return f"folder {str(folder)!r} cannot be created ({err.strerror or err})"
    try:
        write_marker(staging, marker)
        os.rename(staging, folder)      # atomic; replaces only a missing or empty folder
    except OSError as err:
        shutil.rmtree(staging, ignore_errors=True)
        if is_marked(folder, marker):   # another process claimed it first: fine
            return None
        return f"folder {str(folder)!r} cannot be created ({err.strerror or err})"
    return None
