"""One process per run directory: an advisory file lock, taken before anything is written.

:func:`run_directory_lock` holds ``DIR/.pgjax-lock`` (``fcntl.flock``, exclusive, non-blocking)
for as long as a train run, a sweep or a meta-learning run writes into ``DIR``; the file names
its owner (pid, host, start time, command), and is removed when the run ends. A second process
that tries the same directory is refused in one line naming the owner (:class:`RunDirectoryBusy`).
The operating system drops the lock when its process dies (even by SIGKILL), so the lock file a
dead process left behind is taken over, with a warning naming it. The lock is re-entrant within
a process (``pgjax.resume`` → ``train``). Under ``jax.distributed`` process 0 alone writes and
takes it.

A directory that cannot be written (read-only, permission denied, no space) is refused here too,
before anything is compiled: :class:`pgjax.faults.WriteFault` names the path and the OS error.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import time
import warnings
from pathlib import Path

from pgjax.faults import WriteFault, write_fault_message

__all__ = ["LOCK_FILE", "RunDirectoryBusy", "run_directory_lock"]

#: The lock file in a run directory.
LOCK_FILE = ".pgjax-lock"

#: Directories this process holds, with their nesting depth (the lock is re-entrant).
_held: dict[Path, int] = {}


class RunDirectoryBusy(ValueError):
    """Another live process holds the run directory."""


def _parse_owner(text: str) -> dict | None:
    try:
        owner = json.loads(text) if text.strip() else None
    except ValueError:
        return None
    return owner if isinstance(owner, dict) else None


def _describe(owner: dict | None) -> str:
    if not owner:
        return "another process"
    return (f"pgjax process {owner.get('pid', '?')} on {owner.get('host', '?')} "
            f"(since {owner.get('started', '?')})")


@contextlib.contextmanager
def run_directory_lock(directory, *, what: str = "out", enabled: bool = True):
    """Hold ``directory`` (created if missing) for this process while the block runs.

    Raises :class:`RunDirectoryBusy` (a ``ValueError``: bad input, exit 2 in the CLI) when a
    live process holds it, :class:`~pgjax.faults.WriteFault` when it cannot be written;
    ``what`` names the argument in the message. ``enabled=False`` holds nothing (the
    non-writing processes of a multi-process sweep).
    """
    if not enabled:
        yield
        return
    directory = Path(directory).absolute()
    if directory in _held:
        _held[directory] += 1
        try:
            yield
        finally:
            _held[directory] -= 1
        return
    path = directory / LOCK_FILE
    fd = _acquire(directory, path, what)
    _held[directory] = 1
    try:
        yield
    finally:
        del _held[directory]
        with contextlib.suppress(OSError):  # a clean release leaves no lock file behind
            path.unlink()
        os.close(fd)  # closing the descriptor releases the lock


def _acquire(directory: Path, path: Path, what: str) -> int:
    """The locked descriptor of ``path``, its owner written (retried when the file was
    replaced between opening and locking it: a previous owner removes it on release)."""
    import fcntl

    for _ in range(100):
        try:
            directory.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            raise WriteFault(write_fault_message(directory, error)) from None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                owner = _parse_owner(os.pread(fd, 4096, 0).decode(errors="replace"))
                raise RunDirectoryBusy(
                    f"{what}: {directory} is in use by {_describe(owner)}; wait for it to end "
                    "or choose another directory") from None
            if not _same_file(fd, path):  # released and removed meanwhile: lock the new one
                os.close(fd)
                continue
            stale = _parse_owner(os.pread(fd, 4096, 0).decode(errors="replace"))
            if stale:
                warnings.warn(f"{what}: took over the lock of {_describe(stale)} on "
                              f"{directory}, which is no longer running", stacklevel=4)
            _write_owner(fd, path)
        except BaseException:
            os.close(fd)
            raise
        return fd
    raise RunDirectoryBusy(f"{what}: {directory}: its lock file keeps changing; another "
                           "process is starting and stopping there")


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.stat(path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        return False


def _write_owner(fd: int, path: Path) -> None:
    owner = {"pid": os.getpid(), "host": socket.gethostname(),
             "started": time.strftime("%Y-%m-%d %H:%M:%S"),
             "command": " ".join(sys.argv)[:300]}
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(owner).encode(), 0)
    except OSError as error:
        raise WriteFault(write_fault_message(path, error)) from None
