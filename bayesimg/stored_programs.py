"""The driver's compiled programs kept on disk under bayesimg's own key.

JAX's persistent compilation cache (:mod:`bayesimg._jax_setup`) saves the XLA compile,
but its key is a hash of the lowered program, so every new process still traces the
model's Python code and lowers it to StableHLO before it can look the program up: on a
warm cache that was 1–4 CPU s per fit, most of a fit's overhead over sampling.  The
driver knows a cheaper key.  A program of :class:`~bayesimg.inference.mcmc.CompiledMCMC`
is fixed by what the driver already uses to reuse programs *within* a process (the
model's ``static_key``, kernel settings, chain layout, buffer size) plus the shapes,
dtypes, placement and tree structure of the arguments.  So each program is stored,
compiled, under a hash of

* that in-process key, normalised so it is the same in every process (sets sorted,
  arrays by content hash; an object whose ``repr`` names a memory address turns
  storing off for that program);
* which program (``init`` or ``advance``) and its arguments' tree structure and
  ``(shape, dtype, weak type, sharding)`` per leaf;
* the code: a hash of every ``.py`` file of the installed ``bayesimg`` package, and the
  versions of JAX, jaxlib, NumPyro and NumPy;
* the machine: backend, platform version, device kinds and count, ``XLA_FLAGS``, and
  the JAX settings that change a trace (x64, matmul precision, PRNG implementation).

A new process then loads the executable (``jax.experimental.serialize_executable``)
without tracing or lowering anything.  The same inputs give the same executable as a
fresh compile, so draws are unchanged (``tests/inference/test_stored_programs.py``
checks bit-identical draws across processes).

Safety, as for JAX's cache:

* only models defined inside the ``bayesimg`` package are stored (the code hash covers
  them); for any other model class the driver compiles as before;
* files live in a subfolder, :data:`FOLDER`, of the compilation-cache folder, and only
  when that folder carries bayesimg's marker (:mod:`bayesimg.folder_marker`); a cache
  folder chosen through JAX itself is not written into;
* only freshly compiled executables are stored: one JAX loaded from its own cache does not
  serialise completely (its copy fails to run, "Function … not found"), so a program JAX's
  cache already held is not stored, and later processes take JAX's cache for it as before;
* writes go to a temporary file moved into place with ``os.replace`` (atomic), so
  concurrent processes never read a half-written program; each file starts with a
  SHA-256 of its content and the full key, and a file that fails either check, or
  fails to load, is ignored with one warning and the program compiled as before;
* the folder is capped at :data:`MAX_FRACTION` of the compilation cache's cap, least
  recently used files deleted first (only files named ``*.bexe`` in :data:`FOLDER`);
* the files are executable code, like JAX's cache: the folder is trusted, as the
  compilation-cache folder is.  (They hold pickled tree structures, via JAX's
  ``serialize_executable``; fits themselves are never pickled.)

``BAYESIMG_STORED_PROGRAMS=0`` turns this off (JAX's cache still applies).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import json
import os
import pickle
import re
import tempfile
import warnings
from pathlib import Path
from typing import Any

import jax
import numpy as np

#: Subfolder of the compilation-cache folder that holds the stored programs.
FOLDER = "bayesimg-programs"
#: Share of the compilation cache's size cap the stored programs may use.
MAX_FRACTION = 0.25
_MAGIC = b"BAYESIMG-PROGRAM-1\n"
_SUFFIX = ".bexe"
_state: dict[str, Any] = {"warned": False}


class Unstable(Exception):
    """A key part that is not the same in every process (storing is then off)."""


def stable(obj) -> Any:
    """``obj`` as JSON-ready data equal in every process for equal inputs.

    Sets are sorted, dicts sorted by key, arrays replaced by (dtype, shape, content
    hash); anything else must have a ``repr`` free of memory addresses.
    """
    if obj is None or isinstance(obj, bool | int | float | str):
        return obj
    if isinstance(obj, np.integer | np.floating | np.bool_):
        return [type(obj).__name__, obj.item()]
    if isinstance(obj, tuple | list):
        return [type(obj).__name__, [stable(x) for x in obj]]
    if isinstance(obj, set | frozenset):
        return ["set", sorted(json.dumps(stable(x), sort_keys=True) for x in obj)]
    if isinstance(obj, dict):
        return ["dict", sorted([json.dumps(stable(k), sort_keys=True), stable(v)]
                               for k, v in obj.items())]
    if isinstance(obj, np.ndarray):
        data = np.ascontiguousarray(obj)
        return ["ndarray", str(data.dtype), list(data.shape),
                hashlib.sha256(data.tobytes()).hexdigest()]
    text = repr(obj)
    if " at 0x" in text or "object at" in text:
        raise Unstable(text)
    return [type(obj).__qualname__, text]


@functools.cache
def code_fingerprint() -> str:
    """SHA-256 over every ``.py`` file of the bayesimg package (path and content)."""
    import bayesimg
    root = Path(bayesimg.__file__).resolve().parent
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        h.update(str(path.relative_to(root)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


@functools.cache
def _environment() -> list:
    versions = {}
    for dist in ("jax", "jaxlib", "numpyro", "numpy"):
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = None
    devices = jax.local_devices()
    backend = devices[0].client
    return [versions, code_fingerprint(), jax.default_backend(), backend.platform_version,
            sorted({d.device_kind for d in devices}), len(devices),
            os.environ.get("XLA_FLAGS", "")]


def _jax_settings() -> list:
    c = jax.config
    return [bool(c.jax_enable_x64), str(c.jax_default_matmul_precision),
            str(c.jax_default_prng_impl), bool(c.jax_threefry_partitionable),
            str(c.jax_numpy_dtype_promotion)]


def _leaf(x) -> list:
    if isinstance(x, jax.Array):
        return [list(x.shape), str(x.dtype), bool(getattr(x, "weak_type", False)),
                str(x.sharding) if x.committed else None]
    if isinstance(x, np.ndarray | np.generic):
        return [list(np.shape(x)), str(np.asarray(x).dtype), False, None]
    if isinstance(x, bool | int | float | complex):
        return [type(x).__name__]
    raise Unstable(type(x).__qualname__)


def args_signature(args: tuple) -> list:
    """Tree structure and per-leaf (shape, dtype, weak type, placement) of call arguments."""
    leaves, tree = jax.tree_util.tree_flatten(args)
    return [str(tree), [_leaf(x) for x in leaves]]


def folder() -> Path | None:
    """The stored-programs folder, or ``None`` when storing is off."""
    if os.environ.get("BAYESIMG_STORED_PROGRAMS", "").strip().lower() in ("0", "false", "no",
                                                                         "off"):
        return None
    from bayesimg._jax_setup import CACHE_MARKER, compilation_cache_dir
    from bayesimg.folder_marker import is_marked
    cache = compilation_cache_dir()
    if not cache or not is_marked(cache, CACHE_MARKER):
        return None
    return Path(cache) / FOLDER


def _warn_once(message: str) -> None:
    if not _state["warned"]:
        _state["warned"] = True
        warnings.warn(f"bayesimg: {message}; compiling it instead (later problems of this "
                      "kind are not reported)", RuntimeWarning, stacklevel=4)


class StoredProgram:
    """A jitted (or pmapped) program whose compiled executables live on disk.

    Calling it with arguments of a signature seen before in this process runs the
    executable in memory; else it loads the executable stored under the key of
    ``identity`` and the arguments' signature, or compiles (``lower().compile()``)
    and stores it.  With ``identity=None`` (storing off) it is the plain program.
    """

    def __init__(self, program, identity: list | None):
        self.program = program
        self.identity = identity
        self._executables: dict[str, Any] = {}
        self.loaded = 0

    def __call__(self, *args):
        if self.identity is None:
            return self.program(*args)
        try:
            signature = json.dumps(args_signature(args))
        except Unstable:
            return self.program(*args)
        executable = self._executables.get(signature)
        if executable is None:
            executable = self._load_or_compile(args, signature)
            self._executables[signature] = executable
        return executable(*args)

    def _key(self, signature: str) -> tuple[str, bytes]:
        text = json.dumps([self.identity, signature, _environment(), _jax_settings()],
                          sort_keys=True).encode()
        return hashlib.sha256(text).hexdigest(), text

    def _load_or_compile(self, args, signature: str):
        where = folder()
        if where is None:
            return self.program.lower(*args).compile()
        name, key_text = self._key(signature)
        path = where / f"{name}{_SUFFIX}"
        if path.is_file():
            loaded = _load(path, key_text)
            if loaded is not None:
                self.loaded += 1
                return loaded
        hits = _jax_cache_hits()
        compiled = self.program.lower(*args).compile()
        if _jax_cache_hits() == hits:
            _store(where, path, key_text, compiled)
        # else: loaded from JAX's cache, and an executable loaded from serialised form does
        # not serialise completely (loading the copy fails with "Function … not found"):
        # never stored; a later process takes JAX's cache as before
        return compiled


def _jax_cache_hits() -> int:
    """Programs this process has loaded from JAX's persistent cache so far."""
    if "hits" not in _state:
        _state["hits"] = 0

        def count(event: str, **_) -> None:
            if event.endswith("/compilation_cache/cache_hits"):
                _state["hits"] += 1

        jax.monitoring.register_event_listener(count)
    return _state["hits"]


def stored_jit(fn, *identity) -> StoredProgram:
    """``jax.jit(fn)`` with its executables kept on disk under ``identity`` (plus the
    arguments' signature): for a helper program of a bayesimg model (an EM start, a
    pilot run).  ``identity`` must name the function and every Python value it closes
    over; its code is covered by the bayesimg source hash."""
    return StoredProgram(jax.jit(fn), stable(["stored_jit", *identity]))


_CUSTOM_CALL = re.compile(r'custom_call_target="([^"]+)"')


def _lapack_targets() -> frozenset[str] | None:
    """LAPACK custom calls, made ready to run (``None``: not possible here).

    A program that was lowered in this process has had its LAPACK functions set up by
    the lowering; a loaded one has not, and calling an uninitialised one crashes the
    process.  So loading first initialises them (as ``jax.export`` does), and only
    programs whose custom calls are all LAPACK's are stored.
    """
    try:
        from jax._src.lax import linalg
        from jax._src.lib import lapack
        linalg.initialize_lapack()
        return frozenset(lapack.registrations()["cpu"][i][0]
                         for i in range(len(lapack.registrations()["cpu"])))
    except Exception:  # noqa: BLE001 - a JAX without these internals: store nothing
        return None


def _load(path: Path, key_text: bytes):
    from jax.experimental.serialize_executable import deserialize_and_load
    if _lapack_targets() is None:
        return None
    try:
        blob = path.read_bytes()
        head = len(_MAGIC)
        digest, payload = blob[head:head + 32], blob[head + 32:]
        if blob[:head] != _MAGIC or hashlib.sha256(payload).digest() != digest:
            raise ValueError("damaged file (checksum)")
        stored_key, serialized, in_tree, out_tree, device_ids = pickle.loads(payload)
        if stored_key != key_text:
            raise ValueError("key mismatch")
        by_id = {d.id: d for d in jax.local_devices()}
        executable = deserialize_and_load(serialized, in_tree, out_tree,
                                          execution_devices=[by_id[i] for i in device_ids])
        os.utime(path)   # least recently used goes first when capping
        return executable
    except Exception as err:  # noqa: BLE001 - any failure: compile as if never stored
        _warn_once(f"a stored compiled program ({path.name}) could not be loaded ({err})")
        return None


def _store(where: Path, path: Path, key_text: bytes, compiled) -> None:
    from jax.experimental.serialize_executable import serialize
    try:
        ready = _lapack_targets()
        if ready is None or not set(_CUSTOM_CALL.findall(compiled.as_text())) <= ready:
            return   # a custom call a new process would not have set up: never stored
        serialized, in_tree, out_tree = serialize(compiled)
        # the devices it runs on (a 1-device program must not be loaded onto all of them)
        device_ids = [d.id for d in compiled._executable.xla_executable.local_devices()]
        payload = pickle.dumps((key_text, serialized, in_tree, out_tree, device_ids),
                               protocol=pickle.HIGHEST_PROTOCOL)
        where.mkdir(exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".part", dir=where)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(_MAGIC + hashlib.sha256(payload).digest() + payload)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        _cap(where)
    except Exception as err:  # noqa: BLE001 - storing is an optimisation only
        _warn_once(f"a compiled program could not be stored ({err})")


def _cap(where: Path) -> None:
    """Delete the least recently used ``*.bexe`` files beyond the folder's cap."""
    from bayesimg._jax_setup import _cache_max_bytes
    limit = MAX_FRACTION * _cache_max_bytes()
    files = []
    for p in where.glob(f"*{_SUFFIX}"):
        try:
            st = p.stat()
        except OSError:
            continue
        files.append((st.st_mtime, st.st_size, p))
    total = sum(size for _, size, _ in files)
    for _, size, p in sorted(files, key=lambda t: t[0]):
        if total <= limit:
            break
        p.unlink(missing_ok=True)
        total -= size
