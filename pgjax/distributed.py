"""Where runs go: a leading axis of independent runs (seeds, or configuration × seed) padded to
a multiple of the device count and split across the devices — all local devices, and every
process's under ``jax.distributed``. Written once, used by the host engine
(:mod:`pgjax.engine`) and by the meta-learning evaluator (:mod:`pgjax.meta`).
"""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

__all__ = ["broadcast", "global_array", "over_runs", "padded_order", "run_devices",
           "run_sharding", "to_host"]


def run_devices(runs: int, devices=None) -> list:
    """The devices ``runs`` runs are split over: ``devices`` (default ``jax.devices()``), at
    most one per run in a single process (every process's device takes part otherwise)."""
    devices = list(devices if devices is not None else jax.devices())
    return devices[:runs] if jax.process_count() == 1 else devices


def padded_order(runs: int, device_count: int) -> np.ndarray:
    """Which run each slot of the device-split axis holds: ``0..runs-1``, then copies of the
    first runs up to a multiple of ``device_count`` (their results are dropped)."""
    padded = -(-runs // device_count) * device_count
    return np.arange(padded) % runs


def run_sharding(devices) -> NamedSharding:
    """Split a leading run axis across ``devices``."""
    return NamedSharding(jax.sharding.Mesh(np.array(devices), ("run",)), PartitionSpec("run"))


def over_runs(fn, devices):
    """``fn`` mapped over a leading run axis split across ``devices``.

    One device: ``vmap``. Several: ``shard_map``, each device running its share — vmapped on
    accelerators and wherever a process holds one CPU device (``jax.distributed``), one run
    after another (``lax.map``) on several CPU host devices of one process, where one program
    uses about one core anyway and vmapped runs deadlocked XLA (jax 0.10.2, measured).
    """
    if len(devices) == 1:
        return jax.vmap(fn)
    local = [d for d in devices if d.process_index == jax.process_index()]
    if devices[0].platform != "cpu" or len(local) == 1:
        per_device = jax.vmap(fn)
    else:
        def per_device(x):
            return jax.lax.map(fn, x)
    sharding = run_sharding(devices)
    return jax.shard_map(per_device, mesh=sharding.mesh, in_specs=sharding.spec,
                         out_specs=sharding.spec, check_vma=False)


def global_array(host: np.ndarray, devices):
    """``host`` (identical in every process) as one array split over ``devices``."""
    if len(devices) == 1:
        return jax.device_put(host, devices[0])
    return jax.make_array_from_callback(host.shape, run_sharding(devices),
                                        lambda index: host[index])


def broadcast(tree):
    """Process 0's ``tree`` (host arrays) in every process."""
    if jax.process_count() == 1:
        return tree
    from jax.experimental import multihost_utils

    return multihost_utils.broadcast_one_to_all(tree)


def to_host(tree):
    """A tree of (global) arrays as host arrays, gathered from every process."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        return multihost_utils.process_allgather(tree, tiled=True)
    return jax.device_get(tree)
