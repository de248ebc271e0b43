"""Full-state checkpoints with orbax: the vmapped training state, the metrics so far and the
host-side facts of the run (config, seeds, program shape), written atomically, last ``keep`` kept.

A checkpoint is one orbax step directory ``DIR/<updates done>/`` with three items:

* ``state``: the state pytree as host numpy arrays (typed PRNG keys stored as their key data,
  :func:`jax.random.key_data`, and rewrapped on restore), any pytree — a runner's vmapped
  ``TrainState``, a sweep group's, an ES state;
* ``history``: ``name → array [..., updates done]``, the metrics so far;
* ``meta``: a JSON dict — what must match to resume (``identity``: config, seeds, program shape),
  plus a SHA-256 of the state's bytes, so a damaged checkpoint that still reads is caught.

orbax writes each step into a temporary directory and renames it when complete, so a process
killed mid-save (or a save that fails: no space, read-only, permission denied) leaves the
previous checkpoints intact; a failed save is :class:`pgjax.faults.WriteFault` naming the step's
path and the reason, and the temporary directories left behind are removed
(:meth:`Checkpointer.remove_temporary`, also at the next start). orbax's own log records go to
``checkpoints.log`` beside the checkpoints (:mod:`pgjax.checkpoint_log`), not the terminal.
:meth:`Checkpointer.restore_latest` tries the newest step first; one that fails to read
(truncated, corrupted, checksum mismatch) gives a warning, is moved to ``DIR/damaged/`` and the
previous one is tried.

The generic pieces are used by the host engine (:class:`pgjax.engine.RunCheckpoints`, under
:func:`pgjax.train`, :func:`pgjax.sweep` and :func:`pgjax.resume`), by the meta-learner, and
are meant for any loop over jitted chunks.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import json
import shutil
import time
import warnings
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from pgjax.checkpoint_log import route_to
from pgjax.checks import check_count, check_number
from pgjax.faults import WriteFault, write_fault_message

__all__ = ["CheckpointOptions", "Checkpointer", "CheckpointMismatch", "Snapshot",
           "first_difference", "shape_signature", "state_checksum"]

_ITEMS = ("state", "history", "meta")
#: What orbax calls a step directory it is still writing.
TEMPORARY_SUFFIX = ".orbax-checkpoint-tmp"


@dataclasses.dataclass(frozen=True)
class CheckpointOptions:
    """When and how a run checkpoints (between chunks of updates, so a checkpoint can
    only fall on a chunk boundary; more ``num_chunks`` give finer ones).

    A checkpoint is written after the first chunk that ends ``every_seconds`` after the last
    one (or after the start), after the first chunk that ends ``every_updates`` updates after
    it, and after the last chunk. ``None`` turns a criterion off.
    """

    every_seconds: float | None = 60.0  #: wall-clock interval
    every_updates: int | None = None  #: interval in updates
    keep: int = 3  #: the newest ``keep`` checkpoints are kept, older ones deleted
    #: write in a background thread (the training continues while files are written)
    async_save: bool = True
    #: a checkpoint that cannot be written (no space, read-only, permission denied): "stop"
    #: the run with :class:`pgjax.faults.WriteFault` (the default: a run that goes on without
    #: checkpoints could not be resumed after a crash, and its result files would likely fail
    #: to write too), or "continue" training with a one-line warning and try again next time
    on_write_error: str = "stop"

    def __post_init__(self):
        if self.every_seconds is not None:
            check_number("checkpoint every_seconds", self.every_seconds, finite=False)
        if self.every_updates is not None:
            check_count("checkpoint every_updates", self.every_updates)
        check_count("checkpoint keep", self.keep)
        if not isinstance(self.async_save, bool):
            raise ValueError(f"checkpoint async_save: {self.async_save!r} must be true or "
                             "false")
        if self.on_write_error not in ("stop", "continue"):
            raise ValueError(f"checkpoint on_write_error: {self.on_write_error!r} must be "
                             "'stop' or 'continue'")


class CheckpointMismatch(ValueError):
    """A checkpoint belongs to a different run (config or program shape)."""


@dataclasses.dataclass
class Snapshot:
    """A restored checkpoint."""

    step: int  #: updates done
    state: Any  #: host numpy arrays, typed PRNG keys rewrapped
    history: dict  #: metrics so far
    meta: dict


def _is_key(x) -> bool:
    return hasattr(x, "dtype") and jnp.issubdtype(x.dtype, jax.dtypes.prng_key)


def keys_as_data(tree):
    return jax.tree.map(lambda x: jax.random.key_data(x) if _is_key(x) else x, tree)


def to_host(tree):
    """``tree`` as host numpy arrays, typed PRNG keys replaced by their key data."""
    return jax.tree.map(np.asarray, jax.device_get(keys_as_data(tree)))


def from_host(tree, like):
    """Inverse of :func:`to_host`: the leaves of ``like`` that are typed keys are rewrapped
    with ``like``'s key implementation."""
    return jax.tree.map(
        lambda x, t: jax.random.wrap_key_data(x, impl=_key_impl(t)) if _is_key(t) else x,
        tree, like)


def _key_impl(like):
    if isinstance(like, jax.Array):
        return jax.random.key_impl(like)
    return like.dtype._impl  # a jax.ShapeDtypeStruct of a key dtype


def _abstract(like):
    """Shape/dtype targets for restoring ``to_host(like)``."""
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype),
                        jax.eval_shape(keys_as_data, like))


def state_checksum(host_tree) -> str:
    """SHA-256 over the bytes, shapes and dtypes of a host pytree's leaves, in tree order."""
    digest = hashlib.sha256()
    for x in jax.tree.leaves(host_tree):
        x = np.ascontiguousarray(x)
        digest.update(f"{x.shape}{x.dtype}".encode())
        digest.update(x.tobytes())
    return digest.hexdigest()


def shape_signature(tree) -> dict:
    """``path → "shape dtype"`` of every leaf (typed keys as ``key<impl>``): the program shape
    a checkpoint must match."""
    out = {}
    for path, x in jax.tree_util.tree_leaves_with_path(jax.eval_shape(lambda t: t, tree)):
        out[jax.tree_util.keystr(path)] = f"{tuple(x.shape)} {x.dtype}"
    return out


def first_difference(saved: dict, current: dict, prefix: str = "") -> str | None:
    """The first key (dotted, depth first) whose value differs, described in words, or None."""
    for key in list(saved) + [k for k in current if k not in saved]:
        name = f"{prefix}{key}"
        if key not in current:
            return f"{name} is {saved[key]!r} there and absent here"
        if key not in saved:
            return f"{name} is absent there and {current[key]!r} here"
        a, b = saved[key], current[key]
        if isinstance(a, dict) and isinstance(b, dict):
            found = first_difference(a, b, f"{name}.")
            if found:
                return found
        elif _jsonable(a) != _jsonable(b):
            return f"{name} is {_short(a)} there and {_short(b)} here"
    return None


def _jsonable(x):
    return json.loads(json.dumps(x, default=str))


def _short(x, limit: int = 60) -> str:
    text = repr(x)
    return text if len(text) <= limit else text[:limit - 3] + "..."


class Checkpointer:
    """Save and restore full-state checkpoints in ``directory`` (an orbax CheckpointManager)."""

    def __init__(self, directory, options: CheckpointOptions | None = None):
        import orbax.checkpoint as ocp

        self.directory = Path(directory).absolute()
        self.options = options or CheckpointOptions()
        self._ocp = ocp
        self._manager = None
        self._last_step = None
        self._last_time = time.monotonic()
        self._route = None
        self._pending = None  #: the step of a save that may still be in flight
        self.saved = 0  #: checkpoints written by this checkpointer

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close(quiet=True)

    @property
    def log_file(self) -> Path:
        """Where orbax's log records go: ``checkpoints.log`` beside the checkpoint directory."""
        return self.directory.with_name(self.directory.name + ".log")

    def manager(self):
        if self._manager is None:
            ocp = self._ocp
            self._route = route_to(self.log_file)
            alone = {}  # under jax.distributed one process writes (a sweep's process 0)
            if jax.process_count() > 1:
                self.directory.mkdir(parents=True, exist_ok=True)
                this = jax.process_index()
                alone = {"create": False, "multiprocessing_options": ocp.options
                         .MultiprocessingOptions(primary_host=this, active_processes={this})}
            self._manager = ocp.CheckpointManager(
                self.directory,
                options=ocp.CheckpointManagerOptions(
                    max_to_keep=self.options.keep,
                    enable_async_checkpointing=self.options.async_save,
                    **{"create": True, **alone}),
                item_names=_ITEMS)
        return self._manager

    def steps(self) -> list[int]:
        """The steps of the complete checkpoints on disk, oldest first."""
        if not self.directory.exists():
            return []
        return sorted(self.manager().all_steps())

    def start(self, step: int = 0) -> None:
        """Start the interval clocks (after compiling, at ``step`` updates done)."""
        self._last_step, self._last_time = step, time.monotonic()

    def due(self, step: int, final: bool = False) -> bool:
        """Whether a checkpoint is due after ``step`` updates (always when ``final``)."""
        o = self.options
        last = self._last_step or 0
        return (final
                or (o.every_updates is not None and step - last >= o.every_updates)
                or (o.every_seconds is not None
                    and time.monotonic() - self._last_time >= o.every_seconds))

    def save(self, step: int, state, history: dict, meta: dict) -> None:
        """Write a checkpoint at ``step`` (asynchronously if the options say so).

        Raises :class:`~pgjax.faults.WriteFault` when this save, or the background save
        before it, fails — unless ``on_write_error="continue"``, which warns in one line."""
        self.wait()
        if self._manager is not None and not self.directory.is_dir():  # removed under the run
            self._pending = step
            self._failed(FileNotFoundError(errno.ENOENT, "the directory was removed"))
            return
        host = to_host(state)
        meta = {**meta, "step": int(step), "checksum": state_checksum(host)}
        ocp = self._ocp
        self._pending = step
        try:
            self.manager().save(step, args=ocp.args.Composite(
                state=ocp.args.StandardSave(host),
                history=ocp.args.StandardSave({k: np.asarray(v) for k, v in history.items()}),
                meta=ocp.args.JsonSave(meta)))
        except Exception as error:  # noqa: BLE001 - whatever orbax raises: one line
            self._failed(error)
            return
        self._last_step, self._last_time = step, time.monotonic()
        self.saved += 1

    def wait(self) -> None:
        """Block until a background save has finished; a failed one is handled as in
        :meth:`save`."""
        if self._manager is not None and self._pending is not None:
            try:
                self._manager.wait_until_finished()
            except Exception as error:  # noqa: BLE001 - whatever orbax raises: one line
                self._failed(error)
                return
        self._pending = None

    def _failed(self, error: Exception) -> None:
        """A save failed: drop the manager and its temporary directory, then stop (raise
        :class:`~pgjax.faults.WriteFault`) or warn, as ``on_write_error`` says."""
        step, self._pending = self._pending, None
        self.close(quiet=True)
        self.remove_temporary()
        complete = sorted(int(p.name) for p in self.directory.glob("*") if p.name.isdigit())
        message = "checkpoint: " + write_fault_message(self.directory / str(step), error) + (
            f" (the newest complete checkpoint is update {complete[-1]})" if complete
            else " (no complete checkpoint)")
        if self.options.on_write_error == "continue":
            warnings.warn(f"{message}; training continues (on_write_error='continue'), "
                          f"details in {self.log_file}", stacklevel=3)
            self._last_time = time.monotonic()
            return
        raise WriteFault(message) from None

    def remove_temporary(self) -> list[Path]:
        """Delete the temporary step directories an interrupted or failed save left behind
        (never a complete checkpoint); the paths removed."""
        if not self.directory.is_dir():
            return []
        left = [p for p in self.directory.iterdir() if TEMPORARY_SUFFIX in p.name]
        for path in left:
            shutil.rmtree(path, ignore_errors=True)
        return left

    def close(self, quiet: bool = False) -> None:
        """Wait for a background save (unless ``quiet``, as after a failed one), then release
        orbax's threads."""
        if self._manager is not None and not quiet:
            self.wait()  # a failure raises here, or (on_write_error="continue") closes
        if self._manager is not None:
            manager, self._manager = self._manager, None
            try:
                manager.close()
            except Exception:  # noqa: BLE001 - nothing is pending: the manager is gone
                pass
        if self._route is not None:
            self._route.close()
            self._route = None

    def read_meta(self, step: int) -> dict:
        ocp = self._ocp
        return self.manager().restore(step, args=ocp.args.Composite(
            meta=ocp.args.JsonRestore()))["meta"]

    def restore(self, step: int, like) -> Snapshot:
        """Read the checkpoint at ``step``; ``like`` is a state of the same structure (arrays
        or ``jax.ShapeDtypeStruct``) that tells shapes, dtypes and which leaves are keys."""
        ocp = self._ocp
        restored = self.manager().restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(_abstract(like)),
            history=ocp.args.StandardRestore(),
            meta=ocp.args.JsonRestore()))
        host = jax.tree.map(np.asarray, restored["state"])
        meta = restored["meta"]
        if meta.get("checksum") != state_checksum(host):
            raise ValueError("the state's checksum does not match the one saved with it")
        history = {k: np.asarray(v) for k, v in restored["history"].items()}
        return Snapshot(int(meta["step"]), from_host(host, like), history, meta)

    def latest_meta(self) -> tuple[int, dict] | None:
        """``(step, meta)`` of the newest checkpoint whose metadata reads (without moving
        anything), or None."""
        for step in reversed(self.steps()):
            try:
                return step, self.read_meta(step)
            except Exception:  # noqa: BLE001 - any unreadable checkpoint: try the previous
                continue
        return None

    def restore_latest(self, like, identity: dict | None = None) -> Snapshot | None:
        """The newest checkpoint that reads, or None when there is none.

        A checkpoint that fails to read gives a warning and is moved to ``damaged/`` next to
        the checkpoints, then the previous one is tried. With ``identity``, the checkpoint's
        ``meta["identity"]`` must equal it, else :class:`CheckpointMismatch` names the first
        field that differs (and nothing is moved or written).
        """
        steps = self.steps()
        if identity is not None and steps:
            found = self.latest_meta()
            if found is not None:
                self.check_identity(found[1], identity)
        for step in reversed(steps):
            try:
                return self.restore(step, like)
            except Exception as error:  # noqa: BLE001 - any damage: fall back
                detail = (str(error).strip().splitlines() or [type(error).__name__])[0][:160]
                moved = self._set_aside(step)
                warnings.warn(f"checkpoint {step} in {self.directory} is damaged "
                              f"({type(error).__name__}: {detail}); moved to {moved}, "
                              "falling back to the previous one", stacklevel=2)
        return None

    def check_identity(self, meta: dict, identity: dict) -> None:
        """Raise :class:`CheckpointMismatch` naming the first field where the checkpoint's
        ``identity`` differs from ``identity``."""
        difference = first_difference(_jsonable(meta.get("identity", {})), _jsonable(identity))
        if difference:
            raise CheckpointMismatch(
                f"resume: the checkpoints in {self.directory} are of a different run: "
                f"{difference}; nothing was changed")

    def _set_aside(self, step: int) -> Path:
        """Move a damaged step out of orbax's way (so a new save at that step can happen)."""
        self.close()
        target = self.directory.parent / "damaged" / f"{self.directory.name}-{step}"
        while target.exists():
            target = target.with_name(target.name + "+")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(self.directory / str(step)), str(target))
        return target
