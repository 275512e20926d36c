"""Keep BLAS/LAPACK threads from fighting the sampler's own parallelism.

JAX's CPU Cholesky and triangular solves call the OpenBLAS bundled with
NumPy/SciPy, which starts one thread per core.  When chains already run in
parallel on one JAX device per core, every device's LAPACK call then spawns
threads of its own and the cores are oversubscribed: measured here, an exact
Gibbs sweep of GSMTR (411 SNPs, 4 chains on 2 cores) took 56 ms per chain with
default threads and 2.8 ms with one BLAS thread per device.  During a run we
therefore give BLAS ``cores // parallel devices`` threads (threadpoolctl, the
library scikit-learn uses for the same purpose), and restore the setting after.
A thread cap set in the environment (``OPENBLAS_NUM_THREADS`` or
``OMP_NUM_THREADS``, as Dask sets to 1 in its worker processes) is never
exceeded, so single-thread workers stay single-threaded.
"""

from __future__ import annotations

import contextlib
import os

from threadpoolctl import threadpool_limits


@contextlib.contextmanager
def blas_threads_for(parallel_devices: int):
    """Limit BLAS threads to ``cores // parallel_devices`` inside the block."""
    cores = os.cpu_count() or 1
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
        value = os.environ.get(var, "")
        if value.isdigit() and int(value) >= 1:
            cores = min(cores, int(value))
    limit = max(1, cores // max(1, parallel_devices))
    with threadpool_limits(limits=limit, user_api="blas"):
        yield
