"""Numerical faults, in one place: what every update checks inside jit, and how the host engine
stops a run at the first non-finite update with one message.

Inside jit, every update reports the metric ``nonfinite``: 0 when every quantity in
:data:`FAULT_CHECKS` is finite, else 1 + the index there of the first one that is not
(:func:`first_nonfinite`). After each chunk the host engine reads it (:func:`first_fault`) and,
unless ``config.skip_nonfinite``, raises :class:`NumericalFault` naming the update, the
quantity, the run and the newest finite checkpoint — before the faulty chunk is checkpointed.

File-system faults (no space, read-only, permission denied, a directory removed under a run)
are :class:`WriteFault`: one line naming the path and the operating system's reason
(:func:`write_fault_message`); the CLI exits with status 4 on them.
"""

from __future__ import annotations

import errno
import os
import re

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["FAULT_CHECKS", "NumericalFault", "WriteFault", "fault_message", "first_fault",
           "first_nonfinite", "kept_checkpoint", "os_error_line", "os_reason",
           "write_fault_message"]

#: What the numerical-fault check of every update looks at, in this order: the metric
#: ``nonfinite`` is 0 when all are finite, else 1 + the index here of the first that is not.
FAULT_CHECKS = ("reward", "observation", "policy_loss", "value_loss", "entropy", "grad_norm",
                "params")


class NumericalFault(FloatingPointError):
    """A non-finite reward, observation, loss, gradient or parameter stopped the run."""


def first_nonfinite(named: dict, names=FAULT_CHECKS) -> jax.Array:
    """``0`` if every leaf of every value in ``named`` is finite, else ``1 +`` the index in
    ``names`` of the first one holding a NaN or infinity (names absent from ``named`` are not
    checked); an int32 scalar, cheap inside jit."""
    code = jnp.int32(0)
    for i, name in reversed(list(enumerate(names))):
        if name not in named:
            continue
        leaves = [x for x in jax.tree.leaves(named[name])
                  if jnp.issubdtype(jnp.result_type(x), jnp.inexact)]
        if not leaves:  # integers and booleans are always finite
            continue
        # One reduction over every leaf (a few fusions fewer to compile than one per leaf).
        finite = jnp.isfinite(jnp.concatenate([jnp.ravel(x) for x in leaves])).all()
        code = jnp.where(finite, code, jnp.int32(i + 1))
    return code


def first_fault(metrics: dict) -> tuple[int, int, str] | None:
    """``(update offset, run index, quantity)`` of the first update of a chunk's metrics
    (``[runs, length]``) whose ``nonfinite`` code is set, or None when all are finite."""
    code = np.asarray(metrics["nonfinite"])
    if not code.any():
        return None
    update = int(np.argmax(code.any(axis=0)))
    run = int(np.argmax(code[:, update] > 0))
    return update, run, FAULT_CHECKS[int(code[run, update]) - 1]


def kept_checkpoint(checkpointer) -> str:
    """What a fault message says is kept: the newest finite checkpoint of a
    :class:`pgjax.checkpoint.Checkpointer` (after its background save), or "no checkpoint"."""
    if checkpointer is None:
        return "no checkpoint"
    checkpointer.wait()
    steps = checkpointer.steps()
    return (f"last finite checkpoint: update {steps[-1]} in {checkpointer.directory}" if steps
            else "no checkpoint")


def fault_message(what: str, update: int, where: str, stopped: str, kept: str) -> str:
    """The one-line message of a :class:`NumericalFault`: ``where`` names the run (after the
    update number), ``stopped`` what stopped ("training", "the sweep")."""
    return (f"numerical fault: {what} is NaN or infinite at update {update} {where}; "
            f"{stopped} stopped, {kept} (set skip_nonfinite=true to skip such updates instead)")


class WriteFault(OSError):
    """A file could not be written (no space, read-only, permission denied, removed)."""

    def __str__(self):  # one line, without OSError's "[Errno N]" prefix
        return str(self.args[0]) if self.args else "write fault"


def os_reason(error: BaseException) -> str:
    """The operating system's reason for ``error`` in words ("No space left on device"): an
    ``OSError``'s strerror, or the ``os_error_code`` / ``errno`` a checkpoint library's
    message carries, else the error's first line."""
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    text = str(error)
    code = re.search(r"os_error_code='?(\d+)|\[Errno (\d+)\]", text)
    if code:
        return os.strerror(int(code.group(1) or code.group(2)))
    for number, name in ((errno.ENOSPC, "No space left"), (errno.EROFS, "Read-only file"),
                         (errno.EACCES, "Permission denied"), (errno.ENOENT, "No such file")):
        if name in text:
            return os.strerror(number)
    return (text.strip().splitlines() or [type(error).__name__])[0][:200]


def write_fault_message(path, error: BaseException) -> str:
    """``"cannot write PATH: REASON"`` — one line."""
    return f"cannot write {path}: {os_reason(error)}"


def os_error_line(error: OSError) -> str:
    """One line for any ``OSError`` reaching the CLI: a :class:`WriteFault`'s message, else
    ``"file system: PATH: REASON"``."""
    if isinstance(error, WriteFault) or not error.strerror:
        return str(error)
    return f"file system: {error.filename + ': ' if error.filename else ''}{error.strerror}"
