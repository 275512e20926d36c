"""JAX start-up settings, applied once when bayesimg is imported.

* **CPU devices.**  NumPyro runs chains in parallel only across JAX devices, and
  the CPU counts as one device unless told otherwise *before the backend
  starts* (``numpyro.set_host_device_count`` is silently ignored afterwards).
  We set ``jax_num_cpu_devices`` to the number of cores (override with the
  environment variable ``BAYESIMG_CPU_DEVICES``).  If JAX was already
  initialised by the user we leave it alone; chains then run vectorised or in
  sequence (the driver says which).
* **Precision.**  float64 on CPU (exact Cholesky/Gibbs maths, stable
  diagnostics), float32 on GPU (JAX's default, much faster there).  Override
  with ``BAYESIMG_PRECISION=float32|float64`` or :func:`set_precision` early.
* **Persistent compilation cache.**  The MCMC driver compiles each model's
  programs once per process; XLA compilation of a Gibbs sweep takes seconds to
  minutes, often more than the sampling.  JAX's persistent compilation cache
  keeps compiled programs on disk, so a later process fitting a model of the
  same structure, settings and data shapes loads them instead (loading takes a
  fraction of a second; tracing the model in Python remains, except for the MCMC
  driver's own programs, which it keeps in a subfolder under its own key and loads
  without tracing: :mod:`bayesimg.stored_programs`).  It is on by
  default in ``$XDG_CACHE_HOME/bayesimg/jax`` (``~/.cache/bayesimg/jax``); only
  programs that took at least :data:`CACHE_MIN_COMPILE_SECONDS` to compile are
  written.  ``BAYESIMG_COMPILATION_CACHE=0`` turns it off; a cache folder
  already chosen through JAX (``JAX_COMPILATION_CACHE_DIR`` or ``jax.config``) is
  left alone.

  *Only bayesimg's own folder.*  Beyond the size cap JAX deletes cache entries
  (files named ``*-cache`` and ``*-atime``) in the folder it is given, so that
  folder must never be one holding the user's files.  ``BAYESIMG_COMPILATION_CACHE=<folder>``
  therefore does not hand ``<folder>`` itself to JAX: the cache goes into a
  subfolder bayesimg creates there, ``<folder>/bayesimg-jax-cache``, carrying the
  marker :data:`CACHE_MARKER` (:mod:`bayesimg.folder_marker`), and eviction only
  ever sees bayesimg's entries.  (The alternative -- use ``<folder>`` itself when it
  is new or empty, refuse it otherwise -- would turn away the natural choices, a
  scratch or project folder, for no gain.)  If that subfolder exists but is not
  bayesimg's (non-empty without the marker, a file, a symlink) the cache stays off
  for the process with one warning naming it; nothing there is touched.  The
  default folder lies inside bayesimg's own ``.../bayesimg/`` namespace and is used
  directly (earlier versions created it without a marker; it is marked on first use).

  *Size cap and concurrent processes.*  The folder is capped at
  :data:`CACHE_MAX_BYTES` (``BAYESIMG_COMPILATION_CACHE_MAX_SIZE``, bytes or
  ``500M``/``4G``): beyond it JAX deletes the least recently used programs.  With a cap
  JAX takes a file lock (``filelock``) around every read, write and eviction,
  so Dask workers, parallel test runs and notebooks can share one folder
  without ever reading a half-written entry (entries are also zlib streams with
  a checksum: a damaged one is recompiled with a warning, never loaded).

  *Unwritable folder.*  If the folder cannot be created or written (read-only
  home, full disk) the cache stays off, one warning says so, and every process
  compiles in memory as before.  The cache is trusted code: do not point it at
  a folder others can write to.  Delete the folder to reclaim its space.

  *History.*  The cache was opt-in for a while because a CI run crashed
  (segfault in JAX worker threads in the last test module) just after it was
  first turned on.  That crash was not the cache's doing: the same run crashed
  the same way with the cache off an hour later.  The most likely cause (the CI
  run's native stack was never kept) is the suite then keeping every compiled
  program alive in one process -- each XLA:CPU
  executable maps ~12 regions of JIT code and data, and at the kernel's
  ``vm.max_map_count`` (65 530) mapping fails (reproduced by filling the map
  table: compiles then raise ``Cannot allocate memory``, or LLVM aborts the
  process with ``Unable to allocate section memory``; measured: a new-shape
  GSMTR Gibbs + SVI pair kept ~1000 more maps, so ~60 such fits exhaust it).  ``tests/conftest.py``
  frees the programs after each module since; a program loaded from the cache
  maps as many regions as a freshly compiled one and is freed the same way
  (``tests/inference/test_compilation_cache.py`` checks both).
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path

import jax

from bayesimg.folder_marker import claim_folder, is_marked, write_marker

_state = {"cpu_devices_set": False}

#: Programs compiling faster than this (seconds) are not written to the cache.
CACHE_MIN_COMPILE_SECONDS = 0.5
#: Default cap on the cache folder (bytes); least recently used programs go first.
#: A small model's programs take 10-200 kB each, a large Gibbs sweep a few MB.
CACHE_MAX_BYTES = 1024**3
#: Subfolder of a ``BAYESIMG_COMPILATION_CACHE`` folder that holds the cache.
CACHE_SUBFOLDER = "bayesimg-jax-cache"
#: Marker file of a cache folder bayesimg created (:mod:`bayesimg.folder_marker`).
CACHE_MARKER = ".bayesimg-cache.json"
_OFF = ("0", "false", "no", "off")
_ON = ("1", "true", "yes", "on")
_SIZE_SUFFIXES = {"K": 1024, "M": 1024**2, "G": 1024**3}


def _configure_cpu_devices() -> None:
    wanted = os.environ.get("BAYESIMG_CPU_DEVICES")
    if "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", ""):
        return
    n = int(wanted) if wanted else (os.cpu_count() or 1)
    if n <= 1:
        return
    try:
        jax.config.update("jax_num_cpu_devices", n)
        _state["cpu_devices_set"] = True
    except RuntimeError:
        # backend already initialised by the user's own JAX code: keep theirs
        pass


def set_precision(precision: str) -> None:
    """Use ``"float64"`` or ``"float32"`` for all later bayesimg computations."""
    if precision not in ("float32", "float64"):
        raise ValueError(f"precision must be 'float32' or 'float64', got {precision!r}")
    jax.config.update("jax_enable_x64", precision == "float64")


def current_precision() -> str:
    configure()
    return "float64" if jax.config.jax_enable_x64 else "float32"


def _configure_precision() -> None:
    wanted = os.environ.get("BAYESIMG_PRECISION")
    if wanted:
        set_precision(wanted)
        return
    platforms = os.environ.get("JAX_PLATFORMS", "") or os.environ.get("JAX_PLATFORM_NAME", "")
    if "cuda" in platforms or "gpu" in platforms:
        return
    try:
        backend = jax.default_backend()
    except RuntimeError as err:  # pragma: no cover - broken installs
        warnings.warn(f"JAX backend could not start: {err}", stacklevel=2)
        return
    if backend == "cpu":
        set_precision("float64")


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/bayesimg/jax``, or ``~/.cache/bayesimg/jax``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "bayesimg" / "jax"


def _cache_folder(wanted: str) -> Path:
    """The cache folder for ``BAYESIMG_COMPILATION_CACHE=wanted`` (empty or "1": the default)."""
    if not wanted or wanted.lower() in _ON:
        return default_cache_dir()
    return Path(wanted).expanduser() / CACHE_SUBFOLDER


def compilation_cache_dir() -> str | None:
    """The persistent compilation cache folder in use (``None``: cache off)."""
    configure()
    return jax.config.jax_compilation_cache_dir if jax.config.jax_enable_compilation_cache \
        else None


def _cache_max_bytes() -> int:
    """The cap from ``BAYESIMG_COMPILATION_CACHE_MAX_SIZE`` (default :data:`CACHE_MAX_BYTES`)."""
    text = os.environ.get("BAYESIMG_COMPILATION_CACHE_MAX_SIZE", "").strip().upper()
    if not text:
        return CACHE_MAX_BYTES
    scale = _SIZE_SUFFIXES.get(text[-1], 1)
    number = text[:-1] if text[-1] in _SIZE_SUFFIXES else text
    try:
        size = int(float(number) * scale)
    except ValueError:
        raise ValueError("BAYESIMG_COMPILATION_CACHE_MAX_SIZE must be a size in bytes, "
                         f"optionally with K, M or G, got {text!r}") from None
    if size <= 0:
        raise ValueError(f"BAYESIMG_COMPILATION_CACHE_MAX_SIZE must be positive, got {text!r}")
    return size


def _cache_folder_problem(path: Path) -> str | None:
    """Why ``path`` cannot hold the cache (``None``: it can, and it is bayesimg's, marked)."""
    if not is_marked(path, CACHE_MARKER) and path == default_cache_dir() and path.is_dir() \
            and not path.is_symlink():
        # bayesimg's own namespace; earlier versions made it without a marker
        problem = None
        try:
            write_marker(path, CACHE_MARKER)
        except OSError as err:
            problem = f"folder {str(path)!r} is not writable ({err.strerror or err})"
    else:
        problem = claim_folder(path, CACHE_MARKER)
    if problem:
        return problem
    try:
        with tempfile.TemporaryFile(dir=path):   # writable, not just present
            pass
    except OSError as err:
        return f"folder {str(path)!r} is not writable ({err.strerror or err})"
    try:
        import filelock  # noqa: F401  (JAX needs it to cap the cache and lock it)
    except ImportError:
        return "the 'filelock' package (needed to cap the folder's size) is not installed"
    return None


def _configure_compilation_cache() -> None:
    wanted = os.environ.get("BAYESIMG_COMPILATION_CACHE", "").strip()
    if wanted.lower() in _OFF:
        return
    if jax.config.jax_compilation_cache_dir:   # chosen through JAX already: keep it
        return
    path = _cache_folder(wanted)
    max_bytes = _cache_max_bytes()
    problem = _cache_folder_problem(path)
    if problem:
        warnings.warn(
            f"bayesimg: JAX persistent compilation cache off, {problem}; every new process "
            "compiles its programs again. Set BAYESIMG_COMPILATION_CACHE to a writable "
            "folder (bayesimg keeps its cache in a subfolder it creates there, "
            f"{CACHE_SUBFOLDER!r}), or to 0 to silence this.", RuntimeWarning, stacklevel=3)
        return
    jax.config.update("jax_compilation_cache_max_size", max_bytes)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", CACHE_MIN_COMPILE_SECONDS)
    jax.config.update("jax_compilation_cache_dir", str(path))


def configure() -> None:
    """Apply the settings above, once per process (later calls do nothing).

    Called by each subpackage that computes (``bayesimg.data``, ``models``, ``inference``,
    ``report``) before it imports anything that starts JAX; ``import bayesimg`` alone and
    the command line's ``--help`` and config checks do not import JAX at all.
    """
    if _state.get("configured"):
        return
    _state["configured"] = True
    # numpyro imports tqdm.auto, which warns in every notebook without ipywidgets; bayesimg
    # draws its own progress bars (plain text there), so the warning says nothing useful
    warnings.filterwarnings("ignore", message="IProgress not found")
    _configure_cpu_devices()
    _configure_precision()
    _configure_compilation_cache()
