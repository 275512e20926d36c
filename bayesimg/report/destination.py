"""Where reports may be written: never over anything bayesimg did not create.

A report folder written by bayesimg carries a marker file (:data:`MARKER`, see
:mod:`bayesimg.folder_marker`).  A
destination is accepted when

* nothing exists there yet (the folder, and any missing parents, are created), or
* it is a folder holding the marker **and** the caller asked to overwrite it.

Anything else — an existing file, a folder of the user's notes, ``"."``, a symlink,
a bayesimg report without ``overwrite`` — is refused with
:class:`~bayesimg.errors.OutputFolderError` before any data are read or any model is
compiled, so neither a user's files nor the time of a long run are lost.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from bayesimg.errors import OutputFolderError
from bayesimg.folder_marker import is_marked
from bayesimg.folder_marker import write_marker as write_folder_marker

#: File that marks a folder as a bayesimg report (JSON: creator, version, time).
MARKER = ".bayesimg-report.json"


def is_bayesimg_report(folder: str | os.PathLike) -> bool:
    """True when ``folder`` is a real folder (not a symlink) holding the report marker."""
    return is_marked(folder, MARKER)


def check_destination(folder: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Refuse a report destination that would destroy files bayesimg did not make.

    Also checks that the folder can be created (its nearest existing ancestor is a
    folder we can write into).  Cheap, touches nothing permanent: call it before
    reading data or fitting.

    Raises
    ------
    OutputFolderError
        Naming the path, why it is refused and what to do instead.
    """
    folder = Path(folder).expanduser()
    if folder.is_symlink() or folder.exists():
        if not folder.is_dir() or folder.is_symlink():
            raise OutputFolderError(
                f"{str(folder)!r} already exists and is not a bayesimg report folder (it is a "
                f"{'symlink' if folder.is_symlink() else 'file'}); bayesimg never overwrites "
                "files it did not create: choose a new output folder")
        if not is_bayesimg_report(folder):
            raise OutputFolderError(
                f"{str(folder)!r} already exists and was not made by bayesimg (no {MARKER} "
                "marker); bayesimg never writes into or deletes folders it did not create: "
                "choose a new output folder (it will be created)")
        if not overwrite:
            raise OutputFolderError(
                f"{str(folder)!r} holds an earlier bayesimg report; pass --overwrite "
                "(overwrite=True) to replace it, or choose a new output folder")
    ancestor = folder.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise OutputFolderError(
            f"cannot create {str(folder)!r}: {str(ancestor)!r} is a file, not a folder")
    try:
        probe = tempfile.mkdtemp(prefix=".bayesimg-probe.", dir=ancestor)
        os.rmdir(probe)
    except OSError as err:
        raise OutputFolderError(
            f"cannot write a report under {str(ancestor)!r}: {err.strerror or err}; choose a "
            "writable output folder") from err
    return folder


def write_marker(folder: Path) -> None:
    """Mark ``folder`` (being built) as a bayesimg report."""
    write_folder_marker(folder, MARKER)
