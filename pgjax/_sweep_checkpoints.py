"""Checkpoints of a sweep group: the group's vmapped state (one entry per run, padding dropped)
and its metrics so far, written between chunks into ``out/groups/<id>/checkpoints/`` with
:class:`pgjax.checkpoint.Checkpointer` (atomic orbax steps, last ``keep`` kept, damaged ones set
aside), and read back so that an interrupted group continues where it stopped.

Under ``jax.distributed`` every process takes part in gathering the state to the host (as the
metrics are gathered); process 0 alone writes and reads the files and broadcasts what it read.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import numpy as np

from pgjax.checkpoint import (Checkpointer, CheckpointMismatch, CheckpointOptions, _key_data,
                              shape_signature)

#: Where a sweep group keeps its checkpoints, under ``out/groups/<id>/``.
CHECKPOINT_DIR = "checkpoints"


def checkpoint_options(value) -> CheckpointOptions | None:
    """A spec's ``checkpoint`` value (None: the defaults; False: off; a dict of
    :class:`CheckpointOptions` fields, or the options) as options, None when off."""
    if value is False:
        return None
    if value is None or value is True:
        return CheckpointOptions()
    if isinstance(value, CheckpointOptions):
        return value
    if not isinstance(value, dict):
        raise ValueError(f"sweep: checkpoint: {value!r} must be false or a mapping of "
                         f"{', '.join(f.name for f in dataclasses.fields(CheckpointOptions))}")
    names = {f.name for f in dataclasses.fields(CheckpointOptions)}
    unknown = [k for k in value if k not in names]
    if unknown:
        raise ValueError(f"sweep: checkpoint: unknown option {unknown[0]!r} "
                         f"(known: {', '.join(sorted(names))})")
    return CheckpointOptions(**value)


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


def global_array(host: np.ndarray, devices, sharding):
    """``host`` (identical in every process) as one array split over ``devices``."""
    if len(devices) == 1:
        return jax.device_put(host, devices[0])
    return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])


class GroupCheckpoints:
    """Save and restore one group's checkpoints; ``identity`` is what a checkpoint must match
    to be continued (configs, seeds, chunking, the per-run state's shapes)."""

    def __init__(self, directory, options: CheckpointOptions, identity: dict, runs: int):
        self.writer = jax.process_index() == 0
        self.checkpointer = Checkpointer(Path(directory), options) if self.writer else None
        self.identity, self.runs = identity, runs
        self.meta = {"identity": identity, "checkpoint": dataclasses.asdict(options)}
        self.saved = 0

    def restore(self, state_like, history_like):
        """``(step, state, history)`` of the newest good checkpoint or None; ``state`` is host
        numpy ``[runs, ...]`` (keys as key data). ``state_like`` gives the per-run shapes
        (leading run axis of any length), ``history_like(step)`` the metric dtypes.

        Raises :class:`CheckpointMismatch` naming the first difference (in every process)."""
        like = jax.tree.map(lambda x: jax.ShapeDtypeStruct((self.runs, *x.shape[1:]), x.dtype),
                            state_like)
        snapshot, error = None, None
        if self.writer:
            try:
                snapshot = self.checkpointer.restore_latest(like, self.identity)
            except CheckpointMismatch as mismatch:
                error = mismatch
        code = broadcast(np.int32(2 if error else (0 if snapshot is None else 1)))
        if int(code) == 2:
            raise error or CheckpointMismatch("resume: process 0 found the group's checkpoints "
                                              "to be of a different run; nothing was changed")
        if int(code) == 0:
            return None
        step = int(broadcast(np.int32(snapshot.step if snapshot else 0)))
        if snapshot is not None:
            host = (jax.tree.map(np.asarray, _key_data(snapshot.state)), snapshot.history)
        else:  # placeholders of the right shapes for the broadcast
            host = (jax.tree.map(lambda x: np.zeros(x.shape, x.dtype), jax.eval_shape(
                _key_data, like)), history_like(step))
        state, history = broadcast(host)
        return step, jax.tree.map(np.asarray, state), {k: np.asarray(v)
                                                       for k, v in history.items()}

    def start(self, step: int) -> None:
        if self.writer:
            self.checkpointer.start(step)

    def maybe_save(self, step: int, state, history, final: bool) -> None:
        """Save after ``step`` updates if due (process 0's clock decides for every process);
        ``history()`` gives the metrics so far."""
        due = self.checkpointer.due(step, final) if self.writer else False
        if not bool(broadcast(np.int32(due))):
            return
        host = jax.tree.map(lambda x: np.array(x[:self.runs]), to_host(_key_data(state)))
        if self.writer:
            self.checkpointer.save(step, host, history(), self.meta)
        self.saved += 1

    def finish(self) -> None:
        """Wait for the last save, then keep only the newest checkpoint (the final state of
        every run); the group's files are written after this."""
        if self.writer:
            self.checkpointer.wait()
            manager = self.checkpointer.manager()
            for step in self.checkpointer.steps()[:-1]:
                manager.delete(step)
            self.close()

    def close(self) -> None:
        if self.writer:
            self.checkpointer.wait()
            self.checkpointer.close()


def group_identity(group, chunk_length: int, state_like=None) -> dict:
    """What a group's checkpoint must match: its configs, seeds, chunking and (given
    ``state_like``) the shapes of one run's state (device count and padding do not matter)."""
    identity = {"group": group.id, "configs": {str(i): c.to_dict() for i, c in
                                           enumerate(group.configs)},
            "seeds": group.seeds, "seed": group.seed,
            "num_updates": group.configs[0].num_updates, "chunk_length": chunk_length,
            }
    if state_like is not None:
        identity["state"] = shape_signature(jax.tree.map(
            lambda x: jax.ShapeDtypeStruct(x.shape[1:], x.dtype), state_like))
    return identity


def check_groups(groups, directories, chunk_lengths) -> None:
    """Before a sweep writes anything: the checkpoints of each group in ``directories`` (if
    any) are of that group, else :class:`CheckpointMismatch` names the first difference (in
    every process; the state's shapes are checked when the group starts)."""
    error = None
    if jax.process_index() == 0:
        for group, directory, length in zip(groups, directories, chunk_lengths):
            checkpoints = Checkpointer(directory)
            found = checkpoints.latest_meta()
            checkpoints.close()
            if found is None:
                continue
            saved = {k: v for k, v in found[1]["identity"].items() if k != "state"}
            try:
                checkpoints.check_identity({"identity": saved}, group_identity(group, length))
            except CheckpointMismatch as mismatch:
                error = mismatch
                break
    if int(broadcast(np.int32(error is not None))):
        raise error or CheckpointMismatch("resume: process 0 found checkpoints of a different "
                                          "run in the sweep directory; nothing was changed")


def check_group_faults(group, metrics: dict, first_update: int, saves) -> None:
    """Raise :class:`pgjax.runner.NumericalFault` for the first update of a group's chunk
    (``metrics``: name → ``[runs, length]``, runs ordered config-major) whose ``nonfinite`` code
    is set, naming the update, the quantity, the run's hyperparameters and seed, and the
    checkpoints kept (none is written after the fault)."""
    from pgjax.runner import NumericalFault, first_fault, kept_checkpoint

    fault = first_fault(metrics)
    if fault is None:
        return
    update, run, what = fault
    point = group.hyperparameters[run // group.seeds]
    where = ", ".join([f"{k}={v}" for k, v in point.items()] + [f"seed {run % group.seeds}"])
    kept = kept_checkpoint(saves.checkpointer if saves is not None else None)
    raise NumericalFault(f"numerical fault: {what} is NaN or infinite at update "
                         f"{first_update + update} of group {group.id} ({group.algo} on "
                         f"{group.env}, {where}); the sweep stopped, {kept} (set "
                         "skip_nonfinite=true to skip such updates instead)")
