"""One big fit on several devices: the subject axis of the data sharded over a mesh.

``bayesimg.fit(..., shard_data=True)`` (or ``shard_data=k`` for the first ``k``
devices) places every model argument with a subject axis — the rows of X, Y,
Z, of a view matrix, its mask, ... — as a ``jax.Array`` split in equal row
blocks over a one-axis device mesh (axis name ``"subjects"``), and every other
argument (hyperparameters, gene index, whitening transform) replicated.  The
drivers already pass data as *arguments* of one jitted program, so nothing else
changes: XLA's SPMD partitioner splits the likelihood (``X @ W``, the pointwise
log-likelihood, XᵀX) by rows and inserts the all-reduces; parameters stay
replicated.  This is generic: it works for every model family through
:meth:`bayesimg.models.core.base.Model.subject_axis_args`.

Placement never changes what is computed, only where: a jitted program means
the same whatever the shardings of its inputs.  The draws of a sharded fit are
therefore those of the unsharded fit with the same seed, up to the order of
floating-point reductions (about 1e-12 relative in float64 on short runs; a
long NUTS run, being chaotic, can drift further apart, like any two platforms).

MCMC chains then run *vectorised* in that one program (``chain_method="auto"``
becomes ``"vectorized"``; ``"sequential"`` is kept): the devices are used for
the data, not for chains, so ``chain_method="parallel"`` is refused.

**n must be divisible by the number of devices.**  JAX refuses uneven
``NamedSharding`` blocks (``IndivisibleError``), and padding the data with
dummy subjects would change the density of most models (n enters the
conjugate updates, e.g. GSMTR's σ² | · ~ InvGamma(nc/2 + ...), plate sizes,
BNMix's mixture weights), so a fit with n not divisible by the device count
fails with a :class:`~bayesimg.errors.DataValidationError` naming the device
counts that would work (or drop a few subjects).

**Several hosts.**  Start the same script on every host (one process per host,
SPMD) with ``BAYESIMG_PRECISION`` (or ``JAX_PLATFORMS=cuda``) set, so that
importing bayesimg does not start the JAX backend; call
:func:`initialize_multihost` first, before any other JAX call, then fit with
``shard_data=True``: the mesh then spans the devices of all hosts, and each
process places only its own row blocks (every process loads the same full data
set).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from bayesimg.errors import DataValidationError, ModelSpecError

#: name of the mesh axis the subject axis (axis 0) of the data is split over
SUBJECT_AXIS = "subjects"


def check_shard_option(shard_data: Any) -> None:
    """Named error unless ``shard_data`` is a bool or an integer >= 1."""
    if isinstance(shard_data, bool | np.bool_):
        return
    if not isinstance(shard_data, int | np.integer) or shard_data < 1:
        raise ModelSpecError(
            "shard_data must be True/False or the number of devices (an integer >= 1), "
            f"got {shard_data!r}")


def shard_device_count(shard_data: bool | int, n_subjects: int) -> int:
    """Number of devices the subject axis is split over (0: not sharded).

    Raises :class:`ModelSpecError` when more devices are asked for than exist
    (or, on several hosts, fewer than all of them) and
    :class:`DataValidationError` when ``n_subjects`` is not divisible by the
    device count.
    """
    check_shard_option(shard_data)
    if shard_data is False or shard_data is np.False_:
        return 0
    available = jax.device_count()
    wanted = available if shard_data is True or shard_data is np.True_ else int(shard_data)
    if wanted > available:
        raise ModelSpecError(
            f"shard_data={wanted} asks for more devices than JAX has ({available} "
            f"{jax.default_backend()} device(s)); on CPU set BAYESIMG_CPU_DEVICES before "
            "importing bayesimg")
    if jax.process_count() > 1 and wanted != available:
        raise ModelSpecError(
            f"on several hosts the data are sharded over all {available} devices; "
            f"pass shard_data=True (got {shard_data!r})")
    if n_subjects % wanted:
        fits = [k for k in range(1, available + 1) if n_subjects % k == 0]
        raise DataValidationError(
            f"cannot shard {n_subjects} subjects over {wanted} devices: JAX splits the subject "
            f"axis in equal blocks, so n must be divisible by the device count (padding would "
            f"change the model's density); device counts up to {available} that divide "
            f"{n_subjects}: {fits} (pass shard_data=k), or drop "
            f"{n_subjects % wanted} subject(s)")
    return wanted


def data_mesh(n_devices: int | None = None) -> Mesh:
    """A one-axis mesh (``"subjects"``) over the first ``n_devices`` devices.

    ``jax.devices()`` lists the devices of every host once
    :func:`initialize_multihost` has run, and the local ones otherwise (CPU
    devices, or the GPUs of a GPU box).
    """
    devices = jax.devices()
    if n_devices is not None:
        devices = devices[:n_devices]
    return Mesh(np.asarray(devices), (SUBJECT_AXIS,))


def place_args(kwargs: Mapping[str, Any], subject_args: Iterable[str],
               mesh: Mesh) -> dict[str, Any]:
    """``kwargs`` with array ``subject_args`` split on axis 0 over ``mesh``, the rest replicated.

    Non-array values (None, ints, strings) are passed through unchanged.
    """
    subject_args = frozenset(subject_args)
    rows = NamedSharding(mesh, P(SUBJECT_AXIS))
    replicated = NamedSharding(mesh, P())
    out = {}
    for key, value in kwargs.items():
        if not isinstance(value, jax.Array | np.ndarray):
            out[key] = value
            continue
        sharded = key in subject_args and np.ndim(value) >= 1
        out[key] = _put(value, rows if sharded else replicated)
    return out


def _put(value, sharding: NamedSharding) -> jax.Array:
    if jax.process_count() == 1:
        return jax.device_put(value, sharding)
    # several hosts: every process holds the full array and supplies its own blocks
    host = np.asarray(value)
    return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])


def shard_model_args(model, data, method: str, args: Mapping[str, Any],
                     kwargs: Mapping[str, Any], shard_data: bool | int,
                     ) -> tuple[dict[str, Any], dict[str, Any]]:
    """Place a driver's model arguments for ``shard_data``.

    ``args`` are the model's host arguments (``model.model_args(data, method)``)
    and ``kwargs`` the same as device arrays (``device_args(args)``).  Returns the
    placed kwargs and the settings to record with the fit (empty when not
    sharded; otherwise ``data_sharded`` and ``data_devices``, which also key
    the compiled-program cache).
    """
    n_devices = shard_device_count(shard_data, data.n_subjects)
    if not n_devices:
        return dict(kwargs), {}
    subject_args = model.subject_axis_args(data, method, args=args)
    for key in subject_args:
        value = kwargs.get(key)
        if value is None or not hasattr(value, "shape"):
            continue
        if np.ndim(value) == 0 or value.shape[0] != data.n_subjects:
            raise ModelSpecError(
                f"{type(model).__name__}.subject_axis_args names {key!r}, whose shape "
                f"{tuple(value.shape)} has no leading subject axis of length {data.n_subjects}")
    placed = place_args(kwargs, subject_args, data_mesh(n_devices))
    return placed, {"data_sharded": True, "data_devices": n_devices}


def to_host(tree):
    """Numpy copies of a pytree of arrays, gathering the blocks other hosts hold.

    On one host this is ``jax.device_get``; an array split over several hosts
    (a per-subject output of a sharded fit) is all-gathered first, so every
    process gets the whole array.
    """
    def fetch(x):
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            from jax.experimental import multihost_utils
            return np.asarray(multihost_utils.process_allgather(x, tiled=True))
        return np.asarray(jax.device_get(x))

    return jax.tree.map(fetch, tree)


def sharded_chain_method(chain_method: str, shard_data: bool | int) -> str:
    """The MCMC chain layout to use with ``shard_data``.

    With sharded data the chains run in one program on the whole mesh:
    ``"auto"`` becomes ``"vectorized"``, ``"vectorized"`` and ``"sequential"`` are
    kept, and ``"parallel"`` (one device per chain group) is refused.
    """
    if not shard_data:
        return chain_method
    if chain_method == "parallel":
        raise ModelSpecError(
            "shard_data spreads the subjects over the devices, so chains cannot also run "
            "in parallel over them: use chain_method='vectorized' (or 'auto'), or drop "
            "shard_data")
    return "vectorized" if chain_method == "auto" else chain_method


def initialize_multihost(coordinator_address: str | None = None,
                         num_processes: int | None = None, process_id: int | None = None,
                         local_device_ids: int | list[int] | None = None,
                         **kwargs) -> None:
    """Join a multi-host JAX job (``jax.distributed.initialize``); call first on every host.

    Run the same script on every host, e.g. process 0 of 2::

        from bayesimg.inference.sharding import initialize_multihost
        initialize_multihost("10.0.0.1:1234", num_processes=2, process_id=0)
        import bayesimg as bi
        fit = bi.fit(model, data, method="svi", shard_data=True)

    and the same with ``process_id=1`` on the second host.  The arguments are
    passed to :func:`jax.distributed.initialize` unchanged (all optional on
    Slurm, Open MPI and Cloud TPU, where JAX finds them itself; extra keyword
    arguments such as ``initialization_timeout`` too).  Afterwards
    ``jax.devices()`` lists the devices of every host and ``shard_data=True``
    shards the subjects over all of them; every process must load the same data.
    It must run before the JAX backend starts: importing bayesimg starts it (to
    choose float64 on CPU) unless ``BAYESIMG_PRECISION`` is set or
    ``JAX_PLATFORMS`` names ``cuda``/``gpu``, so set one of these on every host.
    """
    try:
        jax.distributed.initialize(coordinator_address=coordinator_address,
                                   num_processes=num_processes, process_id=process_id,
                                   local_device_ids=local_device_ids, **kwargs)
    except RuntimeError as exc:
        if "before any JAX" not in str(exc):
            raise
        raise ModelSpecError(
            "initialize_multihost must run before the JAX backend starts; set "
            "BAYESIMG_PRECISION=float32|float64 (or JAX_PLATFORMS=cuda) so that importing "
            "bayesimg does not start it, and call initialize_multihost before any JAX "
            "computation") from exc
