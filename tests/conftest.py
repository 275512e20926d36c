"""Test-session hygiene shared by every test module.

The suite runs ~450 tests in one process, each compiling its own JAX programs.
Compiled executables stay alive in JAX's caches for the life of the process, so
memory (and the amount of JIT-compiled machine code mapped into it) grows with
every module: 4.4 GB resident by the last modules.  After each module bayesimg's
cache of compiled samplers and JAX's caches are cleared, so a module's programs
are freed once its fixtures are.
"""

from __future__ import annotations

import gc

import jax
import pytest

from bayesimg.inference import clear_compile_cache


@pytest.fixture(scope="module", autouse=True)
def _free_compiled_programs():
    yield
    clear_compile_cache()
    jax.clear_caches()
    gc.collect()
